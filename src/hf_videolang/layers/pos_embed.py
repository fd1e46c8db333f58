"""Absolute position embeddings for token sequences: fixed sinusoidal tables or learnable ones."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn


def sinusoid_position_table(num_positions: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """The Transformer sinusoid table over a flat index (Vaswani et al. 2017, §3.5), as VideoMAE and UMT use it.

    ``table[p, 2i] = sin(p / base^(2i/dim))`` and ``table[p, 2i+1] = cos(p / base^(2i/dim))``. Over a video the index
    runs frame-major over all ``T * h * w`` tokens, so the first ``h * w`` rows are the table of a single frame.

    Returns:
        float32 tensor ``(num_positions, dim)``.
    """
    if num_positions <= 0 or dim <= 0:
        raise ValueError(
            f"sinusoid_position_table: num_positions and dim must be positive, got {num_positions}, {dim}."
        )
    position = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)
    exponent = 2.0 * torch.div(torch.arange(dim), 2, rounding_mode="floor").to(torch.float64) / dim
    angles = position / torch.pow(torch.tensor(base, dtype=torch.float64), exponent)
    table = torch.empty_like(angles)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.to(torch.float32)


class AbsolutePositionEmbedding(nn.Module):
    """Adds the first ``N`` rows of a ``(num_positions, dim)`` table to a ``(B, N, dim)`` sequence.

    Shorter sequences (an image through a video model, fewer frames) use a prefix of the table.

    Args:
        num_positions: table length (the longest sequence).
        dim: embedding width.
        kind: ``"sincos"`` (a fixed, non-persistent buffer rebuilt by :meth:`reset_parameters`) or ``"learnable"``
            (a parameter initialized with a truncated normal of std ``init_std``).
        init_std: std of the learnable table's initialization.
    """

    def __init__(
        self, num_positions: int, dim: int, kind: Literal["sincos", "learnable"] = "sincos", init_std: float = 0.02
    ) -> None:
        super().__init__()
        if kind not in ("sincos", "learnable"):
            raise ValueError(f"AbsolutePositionEmbedding: kind must be 'sincos' or 'learnable', got {kind!r}.")
        self.num_positions = num_positions
        self.dim = dim
        self.kind = kind
        self.init_std = init_std
        if kind == "learnable":
            self.table = nn.Parameter(torch.zeros(num_positions, dim))
        else:
            # Not saved: it is a pure function of the shape, rebuilt on init and on load.
            self.register_buffer("table", torch.zeros(num_positions, dim), persistent=False)
        self.reset_parameters()

    def initial_table(self) -> torch.Tensor:
        """The table this module starts from (sincos values, or a fresh truncated-normal draw)."""
        if self.kind == "sincos":
            return sinusoid_position_table(self.num_positions, self.dim)
        return nn.init.trunc_normal_(torch.empty(self.num_positions, self.dim), std=self.init_std)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        if self.table.device.type != "meta":
            self.table.copy_(self.initial_table())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        num_tokens = x.shape[1]
        if num_tokens > self.num_positions:
            raise ValueError(
                f"sequence of {num_tokens} tokens is longer than the position table ({self.num_positions}); "
                "build the model with more frames or a larger image_size."
            )
        return x + self.table[:num_tokens].to(dtype=x.dtype)

    def extra_repr(self) -> str:
        return f"num_positions={self.num_positions}, dim={self.dim}, kind={self.kind!r}"
