"""Video-text contrastive (VTC) loss: symmetric InfoNCE over the global batch.

Used by UMT (§3.2 "Pre-training objectives", VTC), MAC (§3.3, Eq. 2-3) and SMAUG (§3.3, L_vtc).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_ndim
from .distributed import gather_features, get_rank_and_world_size

__all__ = ["VideoTextContrastiveLoss"]


class VideoTextContrastiveLoss(nn.Module):
    r"""Symmetric InfoNCE between L2-normalized video and text embeddings (MAC Eq. 2-3, UMT VTC).

    With unit vectors :math:`v_i, t_j`, temperature :math:`\tau` and :math:`s = \min(e^{\text{logit\_scale}}, 100)
    = 1 / \tau`:

    .. math::
        \mathcal{L} = \frac{1}{2B} \sum_{i=1}^{B} \Big[
            -\sum_j q_{ij} \log \operatorname{softmax}_j(s\, v_i^\top t_j)
            -\sum_j q_{ij} \log \operatorname{softmax}_j(s\, t_i^\top v_j) \Big]

    where :math:`q_{ij}` is one-hot on the paired column (MAC Eq. 3) or, when ``video_ids`` is given, spread
    uniformly over every column that shows the same video, so that a second caption of the same video is a
    positive rather than a negative (UMT's duplicate-aware targets). MAC Eq. 2 sums the two directions; we average
    them (as UMT and CLIP do), which halves the loss and its gradient.

    Distributed (``gather=True`` and torch.distributed initialized with world size W > 1): each rank scores its B
    local rows against the W*B gathered columns, with targets offset by ``rank * B``, and returns the mean over its
    local rows. The mean of the W rank losses equals the single-process loss over the global batch. Because the
    gather's backward sums gradients from every rank, each rank's embedding gradients are W times the
    global-loss gradient; DDP's gradient averaging over ranks divides by W again, so parameters get exactly the
    gradient of the global loss. Every rank must have the same local batch size.

    Args:
        gather: Gather embeddings (and ``video_ids``) from all ranks so negatives span the global batch.
        max_logit_scale: Upper clamp of ``exp(logit_scale)`` (100 in CLIP), which stops the temperature collapsing.
    """

    def __init__(self, gather: bool = True, max_logit_scale: float = 100.0) -> None:
        super().__init__()
        if max_logit_scale <= 0:
            raise ValueError(f"`max_logit_scale` must be positive, got {max_logit_scale}.")
        self.gather = gather
        self.max_logit_scale = max_logit_scale

    def forward(
        self,
        video_emb: torch.Tensor,
        text_emb: torch.Tensor,
        logit_scale: torch.Tensor | float,
        video_ids: torch.Tensor | None = None,
        return_logits: bool = False,
        negative_text_emb: torch.Tensor | None = None,
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        """Computes the loss.

        Args:
            video_emb: `(B, D)` projected video embeddings (normalized here), or `(B, T, D)` per-frame ones: each
                frame is normalized and the score is the mean of the per-frame cosines (UMT's `keep_temporal`,
                the authors' `criterions.get_sim`).
            text_emb: `(B, D)` projected text embeddings; row i is a caption of video row i.
            logit_scale: Scalar `log(1 / temperature)`, usually an `nn.Parameter` of the model.
            video_ids: Optional `(B,)` integer ids; rows with equal ids are positives of each other.
            return_logits: Return a dict with the loss and the local-vs-global logits instead of the loss alone.
            negative_text_emb: Optional `(B, K, D)` extra negative captions of each video row (e.g. its caption with
                one attribute swapped), appended to that row's video->text softmax with target 0, as NegCLIP's hard
                negatives (Yuksekgonul et al., 2023); not gathered, and not scored text->video.

        Returns:
            Scalar loss, or a dict with `loss`, `logits_per_video` `(B, W*B)` (local videos vs all texts) and
            `logits_per_text` `(B, W*B)` (local texts vs all videos).
        """
        if video_emb.ndim == 3:
            # mean_t cos(v_t, w) = (mean_t v_t / |v_t|) . w / |w|: average the unit frames, do not renormalize.
            video_emb = F.normalize(video_emb, dim=-1).mean(dim=1)
            video_emb, text_emb, logit_scale = self._validate(video_emb, text_emb, logit_scale, video_ids)
        else:
            video_emb, text_emb, logit_scale = self._validate(video_emb, text_emb, logit_scale, video_ids)
            video_emb = F.normalize(video_emb, dim=-1)
        text_emb = F.normalize(text_emb, dim=-1)
        rank, world_size = get_rank_and_world_size() if self.gather else (0, 1)
        all_video = gather_features(video_emb) if world_size > 1 else video_emb
        all_text = gather_features(text_emb) if world_size > 1 else text_emb

        scale = logit_scale.exp().clamp(max=self.max_logit_scale)
        logits_per_video = scale * video_emb @ all_text.T
        logits_per_text = scale * text_emb @ all_video.T

        batch_size = video_emb.shape[0]
        video_logits = logits_per_video
        if negative_text_emb is not None:
            check_ndim("negative_text_emb", negative_text_emb, 3, "(batch_size, num_negatives, dim)")
            if negative_text_emb.shape[0] != batch_size or negative_text_emb.shape[-1] != text_emb.shape[-1]:
                raise ValueError(f"`negative_text_emb` {tuple(negative_text_emb.shape)} must be (B, K, D) with B = "
                                 f"{batch_size} and D = {text_emb.shape[-1]}.")  # fmt: skip
            negatives = scale * (F.normalize(negative_text_emb, dim=-1) @ video_emb[:, :, None]).squeeze(-1)
            video_logits = torch.cat([logits_per_video, negatives], dim=1)
        if video_ids is None:
            labels = torch.arange(batch_size, device=video_emb.device) + rank * batch_size
            loss = (F.cross_entropy(video_logits, labels) + F.cross_entropy(logits_per_text, labels)) / 2
        else:
            all_ids = gather_features(video_ids) if world_size > 1 else video_ids
            targets = self._soft_targets(video_ids, all_ids, dtype=logits_per_video.dtype)
            video_targets = F.pad(targets, (0, video_logits.shape[1] - targets.shape[1]))
            # Probability targets: cross_entropy computes -sum_j q_ij log softmax_j, averaged over rows.
            loss = (F.cross_entropy(video_logits, video_targets) + F.cross_entropy(logits_per_text, targets)) / 2

        if return_logits:
            return {"loss": loss, "logits_per_video": logits_per_video, "logits_per_text": logits_per_text}
        return loss

    @staticmethod
    def _soft_targets(local_ids: torch.Tensor, all_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """`(B, W*B)` rows summing to 1, uniform over the columns that show the row's video."""
        positives = (local_ids[:, None] == all_ids[None, :]).to(dtype)
        return positives / positives.sum(dim=1, keepdim=True)

    @staticmethod
    def _validate(
        video_emb: torch.Tensor,
        text_emb: torch.Tensor,
        logit_scale: torch.Tensor | float,
        video_ids: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        check_ndim("video_emb", video_emb, 2, "(batch_size, dim)")
        check_ndim("text_emb", text_emb, 2, "(batch_size, dim)")
        if video_emb.shape != text_emb.shape:
            raise ValueError(
                f"`video_emb` {tuple(video_emb.shape)} and `text_emb` {tuple(text_emb.shape)} must have the same "
                "shape: row i of each is one video-text pair."
            )
        if not isinstance(logit_scale, torch.Tensor):
            logit_scale = torch.tensor(float(logit_scale), device=video_emb.device)
        if logit_scale.numel() != 1:
            raise ValueError(f"`logit_scale` must be a scalar, got shape {tuple(logit_scale.shape)}.")
        if video_ids is not None:
            check_ndim("video_ids", video_ids, 1, "(batch_size,)")
            if video_ids.shape[0] != video_emb.shape[0]:
                raise ValueError(f"`video_ids` has {video_ids.shape[0]} entries for a batch of {video_emb.shape[0]}.")
            if video_ids.is_floating_point():
                raise TypeError(f"`video_ids` must be an integer tensor, got dtype {video_ids.dtype}.")
        return video_emb, text_emb, logit_scale.reshape(())

