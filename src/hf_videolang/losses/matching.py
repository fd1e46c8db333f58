"""Video-text matching (VTM): hard-negative mining and the 2-way matching loss.

UMT §3.2 ("binary cross-entropy loss with hard negative mining", following ALBEF), SMAUG §3.3 (L_vtm),
E-ViLM §3.4 (L_VTM). The model's fusion encoder scores (video, text) pairs with a 2-way head; this module only mines
the negatives and computes the loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_ndim

__all__ = ["VideoTextMatchingLoss", "place_above", "sample_hard_negatives"]


@torch.no_grad()
def sample_hard_negatives(
    sim_v2t: torch.Tensor,
    *,
    video_ids: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples one hard negative text per video and one hard negative video per text (ALBEF-style mining).

    For video i the negative text j is drawn with probability `softmax_j(sim_v2t[i, j])` restricted to the
    non-positive columns, i.e. proportional to `exp(sim_v2t[i, j])`; symmetrically for texts over videos. The
    softmax is taken over negatives only, so large logit scales cannot underflow every negative weight to 0.

    Args:
        sim_v2t: `(B, B)` video-to-text similarities, already multiplied by the contrastive logit scale
            (`1 / temperature`) as in UMT, which controls how peaked the sampling is. Row i is video i, column j
            text j; pair (i, i) is positive.
        video_ids: Optional `(B,)` integer ids; every pair with equal ids is a positive and is never sampled.
            Without ids only the diagonal is positive.
        generator: Random generator (on `sim_v2t`'s device) for reproducible sampling.

    Returns:
        `(neg_text_idx, neg_video_idx)`, two `(B,)` int64 tensors: the negative text of each video, and the
        negative video of each text.

    Raises:
        ValueError: if some row has no negative at all (e.g. B == 1, or every row shows the same video).
    """
    check_ndim("sim_v2t", sim_v2t, 2, "(batch_size, batch_size)")
    batch_size = sim_v2t.shape[0]
    if sim_v2t.shape[1] != batch_size:
        raise ValueError(f"`sim_v2t` must be square (row i and column i form a pair), got {tuple(sim_v2t.shape)}.")
    if video_ids is None:
        positives = torch.eye(batch_size, dtype=torch.bool, device=sim_v2t.device)
    else:
        check_ndim("video_ids", video_ids, 1, "(batch_size,)")
        if video_ids.shape[0] != batch_size:
            raise ValueError(f"`video_ids` has {video_ids.shape[0]} entries for a batch of {batch_size}.")
        positives = video_ids[:, None] == video_ids[None, :]
    if bool((~positives).sum(dim=1).eq(0).any()):
        raise ValueError(
            "sample_hard_negatives: some rows have no negative (every item in the batch shows the same video, or "
            f"batch size {batch_size} < 2); VTM needs at least two distinct videos per batch."
        )
    sim = sim_v2t.float()
    weights_v2t = sim.masked_fill(positives, float("-inf")).softmax(dim=1)
    weights_t2v = sim.T.masked_fill(positives.T, float("-inf")).softmax(dim=1)
    neg_text_idx = torch.multinomial(weights_v2t, 1, generator=generator).squeeze(1)
    neg_video_idx = torch.multinomial(weights_t2v, 1, generator=generator).squeeze(1)
    return neg_text_idx, neg_video_idx


class VideoTextMatchingLoss(nn.Module):
    """2-way cross-entropy on matched (label 1) and unmatched (label 0) video-text pairs (UMT §3.2, ALBEF ITM).

    The model scores the B positive pairs and the mined negatives, typically the B (video_i, neg_text_i) pairs
    followed by the B (neg_video_j, text_j) pairs from `sample_hard_negatives`, with its matching head. Class index
    1 means "matched", as in UMT and ALBEF. The loss is the mean over all positive and negative pairs, so with 2B
    negatives it weighs negatives 2:1, as UMT does.
    """

    def forward(self, pos_logits: torch.Tensor, neg_logits: torch.Tensor) -> torch.Tensor:
        """Computes the loss.

        Args:
            pos_logits: `(B, 2)` head logits of matched pairs.
            neg_logits: `(M, 2)` head logits of unmatched pairs (M = 2B with text and video negatives).

        Returns:
            Scalar mean cross-entropy over the `B + M` pairs.
        """
        check_ndim("pos_logits", pos_logits, 2, "(num_positive_pairs, 2)")
        check_ndim("neg_logits", neg_logits, 2, "(num_negative_pairs, 2)")
        for name, logits in (("pos_logits", pos_logits), ("neg_logits", neg_logits)):
            if logits.shape[1] != 2:
                raise ValueError(
                    f"`{name}` must have 2 classes (not matched, matched), got shape {tuple(logits.shape)}."
                )
        logits = torch.cat([pos_logits, neg_logits], dim=0)
        labels = torch.cat(
            [
                torch.ones(pos_logits.shape[0], dtype=torch.long, device=logits.device),
                torch.zeros(neg_logits.shape[0], dtype=torch.long, device=logits.device),
            ]
        )
        return F.cross_entropy(logits, labels)


def place_above(scores: torch.Tensor, top_index: torch.Tensor, top_scores: torch.Tensor) -> torch.Tensor:
    """Put re-scored candidates above every other entry of their row, keeping the order of the others.

    Args:
        scores: ``(R, C)`` first-stage scores.
        top_index: ``(R, k)`` column of each re-scored candidate.
        top_scores: ``(R, k)`` their new scores.

    Returns:
        ``(R, C)``: the new scores at ``top_index``, the old ones shifted below the lowest new score elsewhere.
    """
    # Shift the first-stage scores so that the highest one ends 1 below the lowest re-ranked score.
    offset = top_scores.min() - 1 - scores.max()
    out = scores.float() + offset
    return out.scatter(1, top_index, top_scores.float())
