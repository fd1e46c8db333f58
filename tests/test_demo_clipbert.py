"""A tiny run of the ClipBERT demo: 16 videos of 32 px, a fraction of an epoch per stage (CPU)."""

from __future__ import annotations

import json
import math
import os

import pytest

from hf_videolang.data import make_corpus
from hf_videolang.demos.minilm import minilm_path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    try:
        minilm_path()
    except Exception as error:  # pragma: no cover - the package ships with the test environment
        pytest.skip(f"MiniLM is not available offline: {error}")
    from hf_videolang.demos import clipbert

    root = tmp_path_factory.mktemp("demo_clipbert")
    corpus = root / "corpus"
    make_corpus(corpus, num_videos=16, num_frames=16, size=32, seed=0)
    out = str(root / "out")
    results = {
        "pretraining": clipbert.pretrain(str(corpus), out, seed=0, epochs=0.3, logging_steps=1),
        "qa": clipbert.finetune_qa(str(corpus), out, seed=0, epochs=0.3, logging_steps=1),
        "retrieval": clipbert.finetune_retrieval(str(corpus), out, seed=0, epochs=0.3, logging_steps=1),
    }
    results["checks"] = clipbert.check_requirements(results)
    return results


def test_pretraining_logs_mlm_and_itm(tiny_run):
    pretraining = tiny_run["pretraining"]
    for term in ("loss_mlm", "loss_itm"):
        assert math.isfinite(pretraining[f"{term}_first"]) and math.isfinite(pretraining[f"{term}_last"]), term


def test_both_n_test_are_reported_next_to_their_baselines(tiny_run):
    retrieval, qa = tiny_run["retrieval"], tiny_run["qa"]
    assert retrieval["chance"]["t2v_R@1"] == pytest.approx(100 / retrieval["test_videos"])
    for n_test in ("n_test_1", "n_test_4"):
        assert {"t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_MdR", "mc_accuracy"} <= set(retrieval["metrics"][n_test])
        assert {"accuracy", "accuracy_multi_frame"} <= set(qa["metrics"][n_test])
    per_type = {f"accuracy_type_{name}" for name in qa["test_questions_per_type"]}
    assert per_type and set(qa["prior"]) == {"accuracy", "accuracy_multi_frame", *per_type}
    assert set(qa["metrics"]["n_test_4"]) == set(qa["prior"]) and qa["chance"]["accuracy"] > 0
    expected_checks = {"retrieval_R@1_at_least_5x_chance", "qa_above_prior", "qa_multi_frame_above_prior"}
    assert set(tiny_run["checks"]) >= expected_checks


def test_save_reload_and_pipeline(tiny_run):
    qa = tiny_run["qa"]
    assert qa["reload"]["auto_class"] == "ClipBertModel" and qa["reload"]["max_abs_diff"] <= 1e-6
    answers = qa["pipeline_example"]["answers"]
    assert len(answers) == 3 and isinstance(answers[0]["answer"], str) and 0.0 <= answers[0]["score"] <= 1.0
    saved = json.loads(open(os.path.join(qa["saved_to"], "config.json")).read())
    assert saved["model_type"] == "hfvl_clipbert" and saved["answer_list"]
    assert (saved["num_train_clips"], saved["frames_per_clip"], saved["clip_aggregation"]) == (2, 2, "logsumexp")
    retrieval = json.loads(open(os.path.join(tiny_run["retrieval"]["saved_to"], "config.json")).read())
    assert retrieval["answer_list"] is None
