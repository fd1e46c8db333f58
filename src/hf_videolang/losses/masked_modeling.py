"""Masked modeling objectives: masked language modeling, pixel and token masked video modeling.

Visual masks follow the package convention: `bool_masked_pos` is `(B, N)` bool, True = masked, tokens flattened
frame-major (time, then row, then column), the order `patchify` produces.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_bool_mask, check_ndim, zero_loss

__all__ = [
    "MaskedLanguageModelingLoss",
    "PixelMaskedVideoLoss",
    "TokenMaskedVideoLoss",
    "patchify",
    "unpatchify",
]


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def patchify(video: torch.Tensor, patch_size: int | tuple[int, int], tubelet_size: int = 1) -> torch.Tensor:
    """Cuts a video into flattened space-time patches.

    Args:
        video: `(B, T, C, H, W)` tensor; T divisible by `tubelet_size`, H and W by the patch size.
        patch_size: Spatial patch size `p` or `(ph, pw)`.
        tubelet_size: Frames per patch `u`.

    Returns:
        `(B, N, u * ph * pw * C)` with `N = (T / u) * (H / ph) * (W / pw)` ordered frame-major (tubelet, row,
        column), and each patch flattened as `(u, ph, pw, C)` (channels last, as MAE and VideoMAE do).
    """
    check_ndim("video", video, 5, "(batch_size, num_frames, channels, height, width)")
    ph, pw = _pair(patch_size)
    batch_size, num_frames, channels, height, width = video.shape
    if num_frames % tubelet_size or height % ph or width % pw:
        raise ValueError(
            f"`video` of shape {tuple(video.shape)} cannot be cut into tubelets of {tubelet_size} frames and "
            f"{ph}x{pw} patches: frames, height and width must be divisible by them."
        )
    t, h, w = num_frames // tubelet_size, height // ph, width // pw
    patches = video.reshape(batch_size, t, tubelet_size, channels, h, ph, w, pw)
    patches = patches.permute(0, 1, 4, 6, 2, 5, 7, 3)  # (B, t, h, w, u, ph, pw, C)
    return patches.reshape(batch_size, t * h * w, tubelet_size * ph * pw * channels)


def unpatchify(
    patches: torch.Tensor,
    patch_size: int | tuple[int, int],
    tubelet_size: int,
    num_frames: int,
    height: int,
    width: int,
) -> torch.Tensor:
    """Inverse of `patchify`: `(B, N, u * ph * pw * C)` -> `(B, T, C, H, W)`."""
    check_ndim("patches", patches, 3, "(batch_size, num_patches, patch_dim)")
    ph, pw = _pair(patch_size)
    if num_frames % tubelet_size or height % ph or width % pw:
        raise ValueError(
            f"A video of {num_frames} frames of {height}x{width} cannot hold tubelets of {tubelet_size} frames "
            f"and {ph}x{pw} patches."
        )
    t, h, w = num_frames // tubelet_size, height // ph, width // pw
    batch_size, num_patches, patch_dim = patches.shape
    pixels_per_channel = tubelet_size * ph * pw
    if num_patches != t * h * w or patch_dim % pixels_per_channel:
        raise ValueError(
            f"`patches` of shape {tuple(patches.shape)} do not fit a {num_frames}x{height}x{width} video with "
            f"tubelet {tubelet_size} and patch {ph}x{pw} (expected {t * h * w} patches of C*{pixels_per_channel})."
        )
    channels = patch_dim // pixels_per_channel
    video = patches.reshape(batch_size, t, h, w, tubelet_size, ph, pw, channels)
    video = video.permute(0, 1, 4, 7, 2, 5, 3, 6)  # (B, t, u, C, h, ph, w, pw)
    return video.reshape(batch_size, num_frames, channels, height, width)


def _select_masked(
    name: str, values: torch.Tensor, bool_masked_pos: torch.Tensor, num_masked_per_sample: int
) -> torch.Tensor:
    """Rows of `values` at masked positions, `(total_masked, *feature)`, in (sample, position) order.

    `values` holds either every token `(B, N, ...)` or only the masked ones `(B, M, ...)` (M masked per sample,
    in increasing position order, as `x[bool_masked_pos]` would give).
    """
    batch_size, num_tokens = bool_masked_pos.shape
    if values.shape[0] != batch_size:
        raise ValueError(f"`{name}` has batch size {values.shape[0]}, `bool_masked_pos` has {batch_size}.")
    if values.shape[1] == num_tokens:
        return values[bool_masked_pos]
    if num_masked_per_sample < 0:
        raise ValueError(
            f"`{name}` holds {values.shape[1]} of {num_tokens} tokens per sample, but `bool_masked_pos` masks a "
            "different number of tokens in each sample; pass predictions for all tokens instead."
        )
    if values.shape[1] == num_masked_per_sample:
        return values.reshape(-1, *values.shape[2:])
    raise ValueError(
        f"`{name}` has {values.shape[1]} tokens per sample; expected all {num_tokens} tokens or only the "
        f"{num_masked_per_sample} masked ones."
    )


def _masked_per_sample(bool_masked_pos: torch.Tensor) -> int:
    """The number of masked tokens per sample; -1 when samples differ (then only full-length inputs work)."""
    counts = bool_masked_pos.sum(dim=1)
    return int(counts[0]) if bool(counts.eq(counts[0]).all()) else -1


class MaskedLanguageModelingLoss(nn.Module):
    """Cross-entropy over the vocabulary at masked text positions (BERT MLM; UMT, SMAUG, ClipBERT, E-ViLM).

    Labels hold the original token id at masked positions and `ignore_index` (-100) elsewhere, as produced by
    `hf_videolang.video.masking.mask_tokens_mlm`. The loss is the mean over masked tokens of the whole batch; a
    batch without any masked token gives 0 (connected to the graph) instead of NaN.
    """

    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Computes the loss.

        Args:
            logits: `(B, L, V)` (or `(num_tokens, V)`) vocabulary logits.
            labels: `(B, L)` (or `(num_tokens,)`) target ids, `ignore_index` where not masked.

        Returns:
            Scalar mean cross-entropy over the labelled tokens.
        """
        check_ndim("logits", logits, (2, 3), "(batch_size, seq_len, vocab_size)")
        if labels.shape != logits.shape[:-1]:
            raise ValueError(f"`labels` has shape {tuple(labels.shape)}, expected {tuple(logits.shape[:-1])}.")
        if not bool(labels.ne(self.ignore_index).any()):
            return zero_loss(logits)
        return F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).long(), ignore_index=self.ignore_index
        )


class PixelMaskedVideoLoss(nn.Module):
    r"""Mean squared error on the pixels of masked patches (MAE-style MVM; SMAUG §3.1.1 "Feature decoding").

    .. math::
        \mathcal{L} = \frac{1}{|\mathcal{M}|} \sum_{i \in \mathcal{M}} \frac{1}{P} \lVert \hat{x}_i - \bar{x}_i
        \rVert_2^2, \qquad \bar{x}_i = \frac{x_i - \mu(x_i)}{\sqrt{\sigma^2(x_i) + \epsilon}}

    over the masked patches :math:`\mathcal{M}` of the batch, where :math:`x_i` is the flattened patch of P values
    and, with ``norm_pix=True``, the target is normalized by the patch's own mean and (unbiased) variance as in
    MAE's ``norm_pix_loss``. Visible patches never contribute.

    The target is the video the model saw before masking; if ``pixel_values`` are mean/std normalized, so is the
    target (MAE does the same; per-patch normalization removes most of the difference).

    Args:
        patch_size: Spatial patch size of the model's patch embedding.
        tubelet_size: Frames per patch (1 for per-frame patches, as in SMAUG).
        norm_pix: Normalize each target patch by its mean and variance.
        eps: Added to the variance before the square root.
    """

    def __init__(
        self, patch_size: int | tuple[int, int] = 16, tubelet_size: int = 1, norm_pix: bool = True, eps: float = 1e-6
    ) -> None:
        super().__init__()
        self.patch_size = _pair(patch_size)
        self.tubelet_size = tubelet_size
        self.norm_pix = norm_pix
        self.eps = eps

    def target_patches(self, target: torch.Tensor) -> torch.Tensor:
        """`(B, T, C, H, W)` video or `(B, N, P)` patches -> `(B, N, P)` float32 targets (normalized if `norm_pix`)."""
        check_ndim("target", target, (3, 5), "(batch_size, num_frames, channels, height, width) or (B, N, P)")
        patches = patchify(target, self.patch_size, self.tubelet_size) if target.ndim == 5 else target
        patches = patches.float()  # statistics in float32, also under mixed precision
        if self.norm_pix:
            mean = patches.mean(dim=-1, keepdim=True)
            var = patches.var(dim=-1, keepdim=True)  # unbiased, as MAE's norm_pix_loss
            patches = (patches - mean) / (var + self.eps).sqrt()
        return patches

    def forward(self, pred: torch.Tensor, target: torch.Tensor, bool_masked_pos: torch.Tensor) -> torch.Tensor:
        """Computes the loss.

        Args:
            pred: `(B, N, P)` decoder predictions for every patch, or `(B, M, P)` for the M masked patches of each
                sample only (in increasing position order).
            target: `(B, T, C, H, W)` original video, or its `(B, N, P)` patches from `patchify`.
            bool_masked_pos: `(B, N)` bool, True = masked.

        Returns:
            Scalar mean over masked patches of the per-patch mean squared error.
        """
        check_ndim("pred", pred, 3, "(batch_size, num_patches, patch_dim)")
        target = self.target_patches(target)
        check_bool_mask("bool_masked_pos", bool_masked_pos, tuple(target.shape[:2]))
        if pred.shape[-1] != target.shape[-1]:
            raise ValueError(
                f"`pred` has patch dimension {pred.shape[-1]} but the target patches have {target.shape[-1]} "
                f"(tubelet {self.tubelet_size} x patch {self.patch_size} x channels)."
            )
        if not bool(bool_masked_pos.any()):
            return zero_loss(pred)
        pred_masked = _select_masked("pred", pred, bool_masked_pos, _masked_per_sample(bool_masked_pos))
        return (pred_masked.float() - target[bool_masked_pos]).pow(2).mean()


class TokenMaskedVideoLoss(nn.Module):
    r"""Cross-entropy over visual-tokenizer code ids at masked positions (E-ViLM §3.2, Eq. 3; BEiT-style MVM).

    .. math::
        \mathcal{L}_{\text{MVM}} = -\frac{1}{N} \sum_{i=1}^{N} \log p(y_i^V \mid \text{masked video, text})

    over the N masked regions of the batch, where :math:`y_i^V` is the code id the (frozen) tokenizer assigns to
    the unmasked region.
    """

    def forward(
        self, logits: torch.Tensor, target_ids: torch.Tensor, bool_masked_pos: torch.Tensor
    ) -> torch.Tensor:
        """Computes the loss.

        Args:
            logits: `(B, N, K)` codebook logits for every token, or `(B, M, K)` for the M masked tokens of each
                sample only (in increasing position order).
            target_ids: `(B, N)` integer code ids of every token (only masked positions are read).
            bool_masked_pos: `(B, N)` bool, True = masked.

        Returns:
            Scalar mean cross-entropy over masked tokens.
        """
        check_ndim("logits", logits, 3, "(batch_size, num_tokens, codebook_size)")
        check_ndim("target_ids", target_ids, 2, "(batch_size, num_tokens)")
        if target_ids.is_floating_point():
            raise TypeError(f"`target_ids` must hold integer code ids, got dtype {target_ids.dtype}.")
        check_bool_mask("bool_masked_pos", bool_masked_pos, tuple(target_ids.shape))
        if not bool(bool_masked_pos.any()):
            return zero_loss(logits)
        logits_masked = _select_masked("logits", logits, bool_masked_pos, _masked_per_sample(bool_masked_pos))
        return F.cross_entropy(logits_masked, target_ids[bool_masked_pos].long())
