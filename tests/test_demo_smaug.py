"""A tiny run of the SMAUG demo: 24 videos of 32 px, a few steps per stage (CPU)."""

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
    from hf_videolang.demos import smaug

    root = tmp_path_factory.mktemp("demo_smaug")
    corpus = root / "corpus"
    make_corpus(corpus, num_videos=24, num_frames=8, size=32, seed=0)
    out = str(root / "out")
    results = {
        "pretraining": smaug.pretrain(str(corpus), out, seed=0, phases=(("1frame", 1, 2.0, 1e-3),
                                                                          ("4frames", 4, 1.0, 5e-4)),
                                      logging_steps=1),  # fmt: skip
        "retrieval": smaug.finetune_retrieval(out, str(corpus), seed=0, epochs=1.0, learning_rate=1e-4,
                                              logging_steps=1),  # fmt: skip
        "qa": smaug.finetune_qa(out, str(corpus), seed=0, epochs=1.0, learning_rate=1e-4, logging_steps=1),
    }
    results["picture"] = smaug.draw_overview(out, str(corpus), os.path.join(out, "smaug.png"), num_videos=2)
    return root, results


def test_pretraining_logs_every_term_in_both_phases(tiny_run):
    _, results = tiny_run
    phases = results["pretraining"]["phases"]
    assert (phases["1frame"]["frames"], phases["4frames"]["frames"]) == (1, 4)
    for phase in phases.values():
        for term in ("loss_vtc", "loss_vtm", "loss_mlm", "loss_mvm"):
            assert phase[f"{term}_first"] is not None and math.isfinite(phase[f"{term}_last"]), term


def test_retrieval_and_qa_are_reported_next_to_their_baselines(tiny_run):
    _, results = tiny_run
    retrieval, qa = results["retrieval"], results["qa"]
    assert retrieval["chance"]["t2v_R@1"] == pytest.approx(100 / retrieval["test_videos"])
    for name in ("metrics", "metrics_reranked", "metrics_reranked_all_frames"):
        assert {"t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_MdR"} <= set(retrieval[name]), name
    assert {"accuracy", "accuracy_multi_frame", "mc_accuracy"} <= set(qa["metrics"])
    per_type = {f"accuracy_type_{name}" for name in qa["test_questions_per_type"]}
    assert per_type and set(qa["prior"]) == {"accuracy", "accuracy_multi_frame", *per_type}
    assert qa["reload"]["max_abs_diff"] <= 1e-6 and qa["reload"]["auto_class"] == "SmaugModel"
    example = qa["pipeline_example"]
    assert len(example["answers"]) == 3 and isinstance(example["answers"][0]["answer"], str)
    saved = json.loads(open(os.path.join(qa["saved_to"], "config.json")).read())
    assert saved["answer_list"] and saved["model_type"] == "hfvl_smaug"


def test_the_picture_is_written(tiny_run):
    _, results = tiny_run
    from PIL import Image

    with Image.open(results["picture"]) as image:
        assert image.size[0] > 100 and image.size[1] > 100
