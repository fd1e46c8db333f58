"""Multi-label focal loss, used by E-ViLM to train its semantic video tokenizer (E-ViLM §3.3, Eq. 6)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_ndim

__all__ = ["MultiLabelFocalLoss"]


class MultiLabelFocalLoss(nn.Module):
    r"""Per-class sigmoid focal loss for multi-label classification (Lin et al. 2017; E-ViLM Eq. 6).

    With :math:`p_k = \sigma(x_k)` and a target :math:`y_k \in [0, 1]`, each class contributes

    .. math::
        \ell_k = -\,\alpha\, y_k\, (1 - p_k)^{\gamma_+} \log p_k
                 \;-\; (1 - \alpha)\,(1 - y_k)\, p_k^{\gamma_-} \log(1 - p_k)

    and ``reduction="mean"`` averages over the K classes and the batch, as Eq. 6's :math:`\frac{1}{K}\sum_k`.
    The modulating factors shrink the loss of well-classified classes, which matters when positives are rare
    (E-ViLM predicts the few words of a caption out of the whole vocabulary). With ``alpha=None`` both terms have
    weight 1; with ``gamma=0`` and ``alpha=None`` the loss is binary cross-entropy.

    E-ViLM's Eq. 6, as printed, modulates only the negatives, with power 1 (``gamma=0, gamma_negative=1,
    alpha=None``), and cites focal loss and the asymmetric loss of Ben-Baruch et al.; the defaults here are Lin et
    al.'s ``gamma=2`` without class weighting, so pass those values to reproduce Eq. 6 literally.

    Args:
        alpha: Weight of the positive term in (0, 1) (negatives get `1 - alpha`), or None for no weighting.
            Lin et al. use 0.25 for detection.
        gamma: Focusing exponent :math:`\gamma_+` of the positive term (and of the negative term unless
            `gamma_negative` is given).
        gamma_negative: Focusing exponent :math:`\gamma_-` of the negative term; defaults to `gamma`.
        reduction: `"mean"` over all elements, `"sum"`, or `"none"` for the `(B, K)` loss.
    """

    def __init__(
        self,
        alpha: float | None = None,
        gamma: float = 2.0,
        gamma_negative: float | None = None,
        reduction: Literal["mean", "sum", "none"] = "mean",
    ) -> None:
        super().__init__()
        if alpha is not None and not 0.0 < alpha < 1.0:
            raise ValueError(f"`alpha` must be in (0, 1) or None, got {alpha}.")
        for name, value in (("gamma", gamma), ("gamma_negative", gamma_negative)):
            if value is not None and value < 0:
                raise ValueError(f"`{name}` must be >= 0, got {value}.")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"`reduction` must be 'mean', 'sum' or 'none', got {reduction!r}.")
        self.alpha = alpha
        self.gamma = gamma
        self.gamma_negative = gamma if gamma_negative is None else gamma_negative
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Computes the loss.

        Args:
            logits: `(B, K)` class logits (before the sigmoid).
            targets: `(B, K)` multi-hot targets in [0, 1].

        Returns:
            Scalar loss, or `(B, K)` with `reduction="none"`.
        """
        check_ndim("logits", logits, 2, "(batch_size, num_classes)")
        if targets.shape != logits.shape:
            raise ValueError(f"`targets` has shape {tuple(targets.shape)}, expected {tuple(logits.shape)}.")
        targets = targets.to(logits.dtype)
        prob = logits.sigmoid()
        # log-sigmoid keeps log p and log(1 - p) finite for large |logits|.
        positive = targets * (1 - prob).pow(self.gamma) * F.logsigmoid(logits)
        negative = (1 - targets) * prob.pow(self.gamma_negative) * F.logsigmoid(-logits)
        if self.alpha is not None:
            positive, negative = self.alpha * positive, (1 - self.alpha) * negative
        loss = -(positive + negative)
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss
