"""evaluate_matching_retrieval: a cross-encoder's score_candidates fills the (text, video) matrix."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hf_videolang.evaluation.retrieval import evaluate_matching_retrieval


class _StubProcessor:
    def __call__(self, videos=None, text=None, training=False):
        if videos is not None:
            return {"pixel_values": torch.tensor([float(v.split("_")[1]) for v in videos])[:, None]}
        ids = torch.tensor([[int(t.split("_")[1])] for t in text])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


class _StubMatcher(nn.Module):
    """Scores a pair by -|video - text|, except that it swaps the best match of videos 0 and 1."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def score_candidates(self, pixel_values, input_ids, attention_mask):
        video = pixel_values[:, 0][:, None]  # (b, 1)
        text = input_ids[..., 0].float()  # (b, J)
        swapped = torch.where(video < 2, 1 - video, video)
        return -(swapped - text).abs()


def test_scores_every_pair_in_video_and_text_batches():
    rows = [{"video": f"video_{i}", "caption": f"text_{i}"} for i in range(5)]
    result = evaluate_matching_retrieval(_StubMatcher(), _StubProcessor(), rows, video_batch_size=2, text_batch_size=3,
                                         progress=False)  # fmt: skip
    assert result.similarity.shape == (5, 5)
    assert result.similarity[0].tolist() == [-1.0, 0.0, -2.0, -3.0, -4.0]  # text 0 is closest to video 1
    assert result.metrics["t2v_R@1"] == pytest.approx(60.0)  # texts 2, 3, 4
    assert result.metrics["t2v_R@5"] == 100.0


def test_needs_score_candidates():
    with pytest.raises(AttributeError, match="score_candidates"):
        evaluate_matching_retrieval(nn.Linear(1, 1), _StubProcessor(), [{"video": "video_0", "caption": "text_0"}])
