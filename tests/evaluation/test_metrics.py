"""Retrieval / QA / MC metrics against hand-computed cases."""

import numpy as np
import pytest
import torch
from transformers.trainer_utils import EvalPrediction

from hf_videolang.evaluation.metrics import (
    build_mc_compute_metrics,
    build_qa_compute_metrics,
    build_retrieval_compute_metrics,
    chance_retrieval_metrics,
    mc_accuracy,
    qa_accuracy,
    retrieval_metrics,
)

# 5 captions of 3 videos: video 0 has captions 0 and 1, video 1 has caption 2, video 2 has captions 3 and 4.
TEXT_TO_VIDEO = [0, 0, 1, 2, 2]
SIM = np.array(
    [
        [0.9, 0.1, 0.2],  # gt 0: rank 1
        [0.3, 0.5, 0.4],  # gt 0: beaten by 0.5 and 0.4 -> rank 3
        [0.2, 0.1, 0.6],  # gt 1: beaten by 0.2 and 0.6 -> rank 3
        [0.3, 0.2, 0.3],  # gt 2: tied with video 0 -> pessimistic 2, optimistic 1
        [0.7, 0.6, 0.5],  # gt 2: rank 3
    ]
)
# Video to text, per column:
#   video 0: best caption score 0.9 (text 0); no other text reaches it                  -> rank 1
#   video 1: its caption (text 2) scores 0.1; texts 1, 3, 4 beat it, text 0 ties at 0.1 -> 5 pessimistic / 4 optimistic
#   video 2: best caption 0.5 (text 4); only text 2 (0.6) beats it                     -> rank 2


def test_hand_computed_pessimistic():
    m = retrieval_metrics(SIM, TEXT_TO_VIDEO, ks=(1, 2, 3))
    t2v_ranks, v2t_ranks = [1, 3, 3, 2, 3], [1, 5, 2]
    assert m["t2v_R@1"] == pytest.approx(20.0)
    assert m["t2v_R@2"] == pytest.approx(40.0)
    assert m["t2v_R@3"] == pytest.approx(100.0)
    assert m["t2v_MdR"] == 3.0
    assert m["t2v_MnR"] == pytest.approx(np.mean(t2v_ranks))
    assert m["v2t_R@1"] == pytest.approx(100 / 3)
    assert m["v2t_R@2"] == pytest.approx(200 / 3)
    assert m["v2t_R@3"] == pytest.approx(200 / 3)
    assert m["v2t_MdR"] == 2.0
    assert m["v2t_MnR"] == pytest.approx(np.mean(v2t_ranks))
    recalls = [20.0, 40.0, 100.0, 100 / 3, 200 / 3, 200 / 3]
    assert m["mean_R"] == pytest.approx(np.mean(recalls))
    assert m["rsum"] == pytest.approx(np.sum(recalls))


def test_hand_computed_optimistic_ties():
    m = retrieval_metrics(torch.tensor(SIM), torch.tensor(TEXT_TO_VIDEO), ks=(1, 2), ties="optimistic")
    assert m["t2v_R@1"] == pytest.approx(40.0)  # ranks [1, 3, 3, 1, 3]
    assert m["t2v_MnR"] == pytest.approx(11 / 5)
    assert m["v2t_MnR"] == pytest.approx(7 / 3)  # ranks [1, 4, 2]


def test_other_captions_of_the_same_video_do_not_count_against_it():
    # Video 0's two captions score 0.9 and 0.8; video 1's caption 0.5. Video 0 is rank 1, not 2.
    sim = np.array([[0.9, 0.0], [0.8, 0.1], [0.5, 0.7]])
    m = retrieval_metrics(sim, [0, 0, 1], ks=(1,))
    assert m["v2t_R@1"] == 100.0 and m["v2t_MnR"] == 1.0


def test_identity_is_perfect_and_default_mapping_is_diagonal():
    m = retrieval_metrics(np.eye(4) + 0.01)
    assert m["t2v_R@1"] == m["v2t_R@1"] == 100.0
    assert m["t2v_MdR"] == m["v2t_MnR"] == 1.0


def test_constant_similarity_is_not_perfect_under_the_default_tie_rule():
    n = 8
    m = retrieval_metrics(np.zeros((n, n)), ks=(1, 5, 10))
    chance = chance_retrieval_metrics(n, ks=(1, 5, 10))
    assert m["t2v_R@1"] == 0.0 < chance["t2v_R@1"]
    assert m["v2t_R@5"] == 0.0 < chance["v2t_R@5"]
    assert m["t2v_R@10"] == 100.0  # k >= n: every candidate is in the top k
    assert m["t2v_MdR"] == m["v2t_MnR"] == n
    # The optimistic rule would call the same degenerate model perfect.
    assert retrieval_metrics(np.zeros((n, n)), ties="optimistic")["t2v_R@1"] == 100.0


def test_chance_values_and_agreement_with_random_rankings():
    chance = chance_retrieval_metrics(20)
    assert chance["t2v_R@1"] == 5.0 and chance["v2t_R@5"] == 25.0 and chance["t2v_R@10"] == 50.0
    assert chance["t2v_MdR"] == chance["v2t_MnR"] == 10.5
    rng = np.random.default_rng(0)
    runs = [retrieval_metrics(rng.standard_normal((20, 20))) for _ in range(300)]
    assert np.mean([r["t2v_R@5"] for r in runs]) == pytest.approx(chance["t2v_R@5"], abs=2.0)
    assert np.mean([r["v2t_MnR"] for r in runs]) == pytest.approx(chance["v2t_MnR"], abs=0.5)


@pytest.mark.parametrize(
    ("sim", "mapping", "match"),
    [
        (np.zeros((3, 2)), None, "text_to_video"),
        (np.zeros((3, 3)), [0, 0, 1], "no caption"),
        (np.zeros((2, 2)), [0, 2], "index"),
        (np.array([[np.nan, 0.0], [0.0, 1.0]]), None, "NaN"),
    ],
)
def test_retrieval_input_errors(sim, mapping, match):
    with pytest.raises(ValueError, match=match):
        retrieval_metrics(sim, mapping)


def test_qa_and_mc_accuracy():
    assert qa_accuracy([" Red", "blue", "a  Dog", "cat"], ["red", "green", "A dog", None]) == pytest.approx(50.0)
    assert qa_accuracy(["two"], [["2", "Two"]]) == 100.0
    assert mc_accuracy(np.array([0, 2, 1, 1]), torch.tensor([0, 1, 1, 3])) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="gold"):
        qa_accuracy(["a"], ["a", "b"])


def test_retrieval_compute_metrics_from_similarity_and_from_embeddings():
    from_sim = build_retrieval_compute_metrics(TEXT_TO_VIDEO, ks=(1, 2))(EvalPrediction(SIM, None))
    assert from_sim == retrieval_metrics(SIM, TEXT_TO_VIDEO, ks=(1, 2))

    # One row per (video, caption) pair; label_ids are video ids, so rows 0/1 and 3/4 are the same video.
    rng = np.random.default_rng(1)
    unique_videos = rng.standard_normal((3, 4))
    video_ids = np.array([10, 10, 11, 12, 12])
    video_rows = unique_videos[[0, 0, 1, 2, 2]] * rng.uniform(0.5, 2.0, size=(5, 1))  # scale: cosine only
    text = rng.standard_normal((5, 4))
    got = build_retrieval_compute_metrics(ks=(1, 2))(EvalPrediction((video_rows, text), video_ids))
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    expected = retrieval_metrics(unit(text) @ unit(unique_videos).T, TEXT_TO_VIDEO, ks=(1, 2))
    assert got.keys() == expected.keys()
    assert all(got[k] == pytest.approx(expected[k]) for k in expected)


def test_qa_and_mc_compute_metrics():
    answers = ["red", "blue", "green"]
    logits = np.array([[3.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 2.0, 0.0], [0.0, 2.0, 0.0]])
    labels = np.array([0, 1, 1, -100])  # the last answer is not in the list: always wrong
    assert build_qa_compute_metrics(answers)(EvalPrediction(logits, labels)) == {"accuracy": 50.0}
    with pytest.raises(ValueError, match="answer logits"):
        build_qa_compute_metrics(answers[:2])(EvalPrediction(logits, labels))
    scores = (np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.4]]), np.zeros(3))  # tuple: scores come first
    assert build_mc_compute_metrics()(EvalPrediction(scores, np.array([1, 1, 1]))) == {
        "accuracy": pytest.approx(200 / 3)
    }
