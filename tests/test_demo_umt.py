"""The UMT demo chain (teacher -> stage 1 -> stage 2 -> QA) on a tiny corpus: every stage runs, saves and reloads,
and the results carry the metrics, their chance levels and a pipeline answer. Numbers are not asserted (one epoch
on 24 videos of 32 px learns little); the full-size demo reports them."""

from __future__ import annotations

import json
import math

import pytest

from hf_videolang.data import make_corpus
from hf_videolang.demos import umt as demo
from hf_videolang.demos.minilm import minilm_path


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    try:
        minilm_path()
    except Exception as error:  # pragma: no cover - .ci/run installs it
        pytest.skip(f"MiniLM is not available offline: {error}")
    out = tmp_path_factory.mktemp("demo_umt")
    corpus = str(out / "corpus")
    make_corpus(corpus, num_videos=24, num_frames=8, size=32, seed=0)
    results = {
        "teacher": demo.train_teacher(corpus, str(out), epochs=1),
        "stage1": demo.train_umt_stage1(corpus, str(out), epochs=1),
        "stage2": demo.train_umt_stage2(corpus, str(out), epochs=1),
        "qa": demo.finetune_umt_qa(corpus, str(out), epochs=1),
    }
    return out, results


def test_every_stage_trains_and_saves(tiny_demo):
    out, results = tiny_demo
    assert math.isfinite(results["stage1"]["loss_uta_first"]) and math.isfinite(results["stage2"]["loss_vtc_last"])
    for name in ("teacher_clip_vision", "umt_stage1", "umt_stage2", "umt_qa"):
        assert (out / name / "model.safetensors").is_file(), name
    stage2 = json.loads((out / "umt_stage2" / "config.json").read_text())
    assert stage2["text_pooling"] == "mean" and stage2["pretraining_stage"] == 2


def test_qa_stage_reports_metrics_next_to_baselines_and_answers_through_the_pipeline(tiny_demo):
    out, results = tiny_demo
    qa = results["qa"]
    per_type = {f"accuracy_type_{name}" for name in qa["test_questions_per_type"]}
    assert sum(qa["test_questions_per_type"].values()) == qa["test_questions"]
    assert set(qa["prior"]) == {"accuracy", "accuracy_multi_frame", *per_type}
    assert set(qa["metrics"]) == {*qa["prior"], "mc_accuracy", "mc_minimal_pairs_accuracy"}
    answers = json.loads((out / "corpus" / "answers.json").read_text())
    assert qa["chance"]["accuracy"] == pytest.approx(100 / len(answers))
    assert qa["chance"]["mc_accuracy"] == qa["chance"]["mc_minimal_pairs_accuracy"] == pytest.approx(20.0)  # 5 options
    assert 0 <= qa["prior"]["accuracy_multi_frame"] <= 100
    assert qa["reload"] == {"auto_class": "UmtModel", "max_abs_diff": 0.0}
    predicted = qa["pipeline_example"]["answers"]
    scores = [entry["score"] for entry in predicted]
    assert scores == sorted(scores, reverse=True) and len(predicted) == 3
    assert {entry["answer"] for entry in predicted} <= set(answers)
