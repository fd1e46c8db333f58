"""The `evaluate` retrieval module ships with the package, loads offline and agrees with `retrieval_metrics`."""

from __future__ import annotations

import os

import evaluate
import numpy as np
import pytest

from hf_videolang.evaluation import VIDEO_TEXT_RETRIEVAL_METRIC_PATH, retrieval_metrics


@pytest.fixture(scope="module")
def metric():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return evaluate.load(VIDEO_TEXT_RETRIEVAL_METRIC_PATH)


def test_module_file_is_inside_the_package():
    assert os.path.isfile(VIDEO_TEXT_RETRIEVAL_METRIC_PATH)
    assert f"hf_videolang{os.sep}evaluation" in VIDEO_TEXT_RETRIEVAL_METRIC_PATH


def test_agrees_with_retrieval_metrics_with_several_captions_per_video(metric):
    rng = np.random.default_rng(0)
    text_to_video = np.array([0, 0, 1, 2, 2, 2, 3, 4])  # 8 captions of 5 videos
    sim = rng.normal(size=(8, 5))
    sim[np.arange(8), text_to_video] += 1.0
    result = metric.compute(predictions=sim.tolist(), references=text_to_video.tolist(), ks=[1, 5, 10])
    expected = retrieval_metrics(sim, text_to_video)
    assert result.keys() == expected.keys()
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, abs=1e-9)


def test_perfect_and_tied_scores(metric):
    perfect = metric.compute(predictions=[[0.9, 0.1], [0.2, 0.8]], references=[0, 1], ks=[1])
    assert perfect["t2v_R@1"] == 100.0 and perfect["v2t_MdR"] == 1.0
    tied = metric.compute(predictions=[[0.5, 0.5], [0.5, 0.5]], references=[0, 1], ks=[1])
    assert tied["t2v_R@1"] == 0.0  # pessimistic ties
    assert metric.compute(predictions=[[0.5, 0.5], [0.5, 0.5]], references=[0, 1], ks=[1], ties="optimistic")[
        "t2v_R@1"
    ] == 100.0
