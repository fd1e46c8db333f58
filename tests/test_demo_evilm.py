"""The E-ViLM demo chain (tokenizer -> pre-training with and without MVM -> QA and retrieval) on a tiny corpus:
every stage runs and saves, and the results carry the metrics with their chance levels and priors, the ablation,
the codebook utilization, the reload check and a pipeline answer. Numbers are not asserted (a fraction of an epoch
on 24 videos learns little); the full-size demo reports them."""

from __future__ import annotations

import json
import math

import pytest

from hf_videolang.demos.minilm import minilm_path


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    try:
        minilm_path()
    except Exception as error:  # pragma: no cover - .ci/run installs it
        pytest.skip(f"MiniLM is not available offline: {error}")
    from hf_videolang.demos.evilm import run_evilm_demo

    out = tmp_path_factory.mktemp("demo_evilm")
    results = run_evilm_demo(str(out), num_videos=24, epochs=dict(tokenizer=0.5, pretrain=0.5, qa=0.5, retrieval=0.5))
    return out, results


def test_every_stage_trains_saves_and_reports(tiny_demo):
    out, results = tiny_demo
    for name in ("evilm_tokenizer", "evilm_pretrain", "evilm_pretrain_no_mvm", "evilm_qa", "evilm_retrieval"):
        assert (out / name / "model.safetensors").is_file(), name
    assert math.isfinite(results["evilm_pretrain"]["loss_mvm_first"])
    assert "loss_mvm_first" not in results["evilm_pretrain_no_mvm"]
    assert 0.0 < results["tokenizer"]["codebook_utilization_test"] <= 1.0
    assert json.loads((out / "results.json").read_text())["seed"] == 0


def test_metrics_sit_next_to_chance_and_prior_and_the_pipeline_answers(tiny_demo):
    out, results = tiny_demo
    answers = json.loads((out / "corpus" / "answers.json").read_text())
    for name in ("qa", "qa_no_mvm"):
        per_type = {f"accuracy_type_{kind}" for kind in results[name]["test_questions_per_type"]}
        assert per_type and set(results[name]["metrics"]) == {"accuracy", "accuracy_multi_frame", *per_type}
        assert set(results[name]["prior"]) == set(results[name]["metrics"])
        assert results[name]["chance"]["accuracy"] == pytest.approx(100 / len(answers))
    retrieval = results["retrieval"]
    assert {"t2v_R@1", "t2v_MdR", "mc_accuracy"} <= set(retrieval["metrics"])
    assert retrieval["chance"]["t2v_R@1"] == pytest.approx(100 / retrieval["test_videos"])
    assert results["reload"]["auto_class"] == "EvilmModel"
    predicted = results["pipeline_example"]["answers"]
    assert [e["score"] for e in predicted] == sorted((e["score"] for e in predicted), reverse=True)
    assert {e["answer"] for e in predicted} <= set(answers)
