"""Unmasked token alignment (UTA): distill a frozen image teacher into the student's visible tokens (UMT §3.1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_bool_mask, check_ndim

__all__ = ["UnmaskedTokenAlignmentLoss"]


class UnmaskedTokenAlignmentLoss(nn.Module):
    r"""Squared distance between L2-normalized student and teacher tokens, averaged over tokens and layers.

    UMT §3.1 ("Target"): the student's unmasked tokens, after a linear projection (done by the model), are aligned
    with the teacher's tokens at the same positions, after CLIP's visual projection, by "the mean squared error
    between the normalized pairs"; UMT aligns the last 6 layers and averages the per-layer losses. For L aligned
    layers and the visible token set :math:`\mathcal{V}` of the batch:

    .. math::
        \mathcal{L}_{\text{UTA}} = \frac{1}{L\,|\mathcal{V}|} \sum_{l=1}^{L} \sum_{i \in \mathcal{V}}
            \Big\lVert \frac{s_i^l}{\lVert s_i^l \rVert} - \frac{t_i^l}{\lVert t_i^l \rVert} \Big\rVert_2^2
            \;=\; \frac{1}{L\,|\mathcal{V}|} \sum_{l,i} \big(2 - 2 \cos(s_i^l, t_i^l)\big)

    This is ``feature_reduction="sum"``, the default of UMT's released code. ``"mean"`` divides each token's
    squared distance by the feature dimension D (``nn.MSELoss`` over all elements). The teacher is detached.

    Args:
        feature_reduction: How the squared differences of one token's D features are reduced: `"sum"` or `"mean"`.
    """

    def __init__(self, feature_reduction: Literal["sum", "mean"] = "sum") -> None:
        super().__init__()
        if feature_reduction not in ("sum", "mean"):
            raise ValueError(f"`feature_reduction` must be 'sum' or 'mean', got {feature_reduction!r}.")
        self.feature_reduction = feature_reduction

    def forward(
        self,
        student: torch.Tensor | Sequence[torch.Tensor],
        teacher: torch.Tensor | Sequence[torch.Tensor],
        bool_masked_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Computes the loss.

        Args:
            student: Projected student tokens: a list of L `(B, N, D)` tensors, one per aligned layer, a stacked
                `(L, B, N, D)` tensor, or a single `(B, N, D)` tensor (L = 1).
            teacher: Teacher tokens in the same layout as `student`.
            bool_masked_pos: Optional `(B, N_all)` bool mask (True = masked). When given, any input holding all
                `N_all` tokens is reduced to its visible tokens, so a full-length teacher output can be aligned
                with a student that only encoded the visible tokens. Without it, both must already be aligned
                token by token.

        Returns:
            Scalar loss.
        """
        students = self._as_layers("student", student)
        teachers = self._as_layers("teacher", teacher)
        if len(students) != len(teachers):
            raise ValueError(f"`student` has {len(students)} aligned layers but `teacher` has {len(teachers)}.")
        losses = []
        for layer, (s, t) in enumerate(zip(students, teachers)):
            if bool_masked_pos is not None:
                s = self._visible_tokens("student", s, bool_masked_pos)
                t = self._visible_tokens("teacher", t, bool_masked_pos)
            if s.shape != t.shape:
                raise ValueError(
                    f"Layer {layer}: student tokens {tuple(s.shape)} and teacher tokens {tuple(t.shape)} differ; "
                    "project the student to the teacher's dimension and select the same (visible) tokens."
                )
            squared = (F.normalize(s, dim=-1) - F.normalize(t.detach().to(s.dtype), dim=-1)).pow(2)
            per_token = squared.sum(dim=-1) if self.feature_reduction == "sum" else squared.mean(dim=-1)
            losses.append(per_token.mean())
        return torch.stack(losses).mean()

    @staticmethod
    def _as_layers(name: str, features: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if isinstance(features, torch.Tensor):
            check_ndim(name, features, (3, 4), "(num_layers, B, N, D) or (B, N, D)")
            return [features] if features.ndim == 3 else list(features.unbind(0))
        layers = list(features)
        if not layers:
            raise ValueError(f"`{name}` is an empty list; pass at least one (B, N, D) tensor.")
        for i, layer in enumerate(layers):
            check_ndim(f"{name}[{i}]", layer, 3, "(B, N, D)")
        return layers

    @staticmethod
    def _visible_tokens(name: str, features: torch.Tensor, bool_masked_pos: torch.Tensor) -> torch.Tensor:
        """`(B, N_all, D)` -> `(B, N_visible, D)`; inputs with fewer tokens are assumed to be visible-only."""
        check_bool_mask("bool_masked_pos", bool_masked_pos, (features.shape[0], bool_masked_pos.shape[-1]))
        num_all = bool_masked_pos.shape[1]
        if features.shape[1] != num_all:
            return features
        visible = ~bool_masked_pos
        counts = visible.sum(dim=1)
        if not bool(counts.eq(counts[0]).all()):
            raise ValueError(
                f"`bool_masked_pos` leaves different numbers of visible tokens per sample: {counts.tolist()}."
            )
        return features[visible].reshape(features.shape[0], int(counts[0]), features.shape[-1])
