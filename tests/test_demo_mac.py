"""A tiny run of the MAC demo's training function: 24 videos of 32 px, a few steps per phase (CPU, < 40 s)."""

from __future__ import annotations

import math

import pytest

from hf_videolang.data import make_corpus
from hf_videolang.demos.mac import train_mac
from hf_videolang.demos.minilm import minilm_path
from hf_videolang.models.mac import MacForVideoTextRetrieval


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    try:
        minilm_path()
    except Exception as error:  # pragma: no cover - the package ships with the test environment
        pytest.skip(f"MiniLM is not available offline: {error}")
    root = tmp_path_factory.mktemp("demo_mac")
    make_corpus(root / "corpus", num_videos=24, num_frames=8, size=32, seed=0)
    phases = (("spatial", 1, 6.0, 1e-3), ("temporal", 2, 2.0, 5e-4))
    return root, train_mac(str(root / "corpus"), str(root / "out"), seed=0, phases=phases, logging_steps=2)


def test_loss_goes_down_and_every_phase_ran(tiny_run):
    _, results = tiny_run
    spatial, temporal = results["phases"]["spatial"], results["phases"]["temporal"]
    assert (spatial["frames"], temporal["frames"]) == (1, 2)
    assert math.isfinite(spatial["loss_vtc_first"]) and math.isfinite(temporal["loss_vtc_last"])
    assert spatial["loss_vtc_last"] < spatial["loss_vtc_first"]


def test_results_are_reported_next_to_chance_and_the_model_reloads(tiny_run):
    root, results = tiny_run
    assert results["chance"]["t2v_R@1"] == pytest.approx(100 / results["test_videos"])
    assert {"t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_MdR"} <= set(results["metrics"])
    assert results["reload_max_abs_diff"] <= 1e-6
    reloaded = MacForVideoTextRetrieval.from_pretrained(results["saved_to"])
    assert reloaded.config.vision_config.image_size == 32


def test_a_second_run_with_the_same_seed_gives_the_same_numbers(tiny_run):
    root, results = tiny_run
    phases = (("spatial", 1, 6.0, 1e-3), ("temporal", 2, 2.0, 5e-4))
    again = train_mac(str(root / "corpus"), str(root / "again"), seed=0, phases=phases, logging_steps=2)
    assert again["metrics"] == results["metrics"]
    for name in ("spatial", "temporal"):
        assert again["phases"][name]["loss_vtc_first"] == results["phases"][name]["loss_vtc_first"]
        assert again["phases"][name]["loss_vtc_last"] == results["phases"][name]["loss_vtc_last"]
