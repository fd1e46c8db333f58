"""Aggregation ``G`` of per-clip logits into video-level logits (ClipBERT §3 Eq. 4, Table 3, appendix Eq. 5)."""

from __future__ import annotations

import math

import torch

CLIP_AGGREGATIONS = ("mean", "max", "logsumexp")
"""Ways to combine per-clip logits (ClipBERT Table 3: mean pooling, max pooling, LogSumExp)."""


def aggregate_clip_logits(clip_logits: torch.Tensor, method: str = "mean", dim: int = 0) -> torch.Tensor:
    """Combine the logits of ``N`` clips (axis ``dim``) into video-level logits.

    ``"mean"`` and ``"max"`` pool the logits over clips (a softmax follows). ``"logsumexp"`` returns
    ``log(mean_i exp(g_i))``, whose softmax is Eq. 5: ``p = sum_i exp(g_i) / sum(sum_i exp(g_i))``; subtracting
    ``log N`` does not change the softmax, and keeps one clip's logits unchanged, so every method is the identity for
    ``N = 1``. The cross-entropy of the result is the loss of appendix Eq. 6 (the authors' ``run_video_qa.py``).
    """
    if clip_logits.ndim < 2 or clip_logits.shape[dim] == 0:
        raise ValueError(
            f"clip_logits needs a non-empty clip axis {dim} and a score axis, got {tuple(clip_logits.shape)}"
        )
    if method == "mean":
        return clip_logits.mean(dim=dim)
    if method == "max":
        return clip_logits.max(dim=dim).values
    if method == "logsumexp":
        return torch.logsumexp(clip_logits, dim=dim) - math.log(clip_logits.shape[dim])
    raise ValueError(f"clip_aggregation must be one of {CLIP_AGGREGATIONS}, got {method!r}")


__all__ = ["CLIP_AGGREGATIONS", "aggregate_clip_logits"]
