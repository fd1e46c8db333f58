"""Pre-norm Transformer block with injectable attention, MLP and norm layers (timm's ``Block`` layout)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from .attention import Attention, QkvBias
from .drop import DropPath
from .mlp import Mlp


class LayerScale(nn.Module):
    """Per-channel learnable scale (CaiT, Touvron et al. 2021): ``x * gamma``."""

    def __init__(self, dim: int, init_values: float = 1e-5) -> None:
        super().__init__()
        self.init_values = init_values
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(GradientCheckpointingLayer):
    """``x + drop_path(ls1(attn(norm1(x))))`` then ``x + drop_path(ls2(mlp(norm2(x))))``.

    Args:
        dim: token width ``D``.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width is ``int(dim * mlp_ratio)`` (ignored when ``mlp_hidden_dim`` is given).
        qkv_bias: see :class:`Attention`.
        drop_path: stochastic-depth probability of both residual branches.
        init_values: LayerScale initial value; None disables LayerScale (UMT/VideoMAE use none).
        proj_drop: dropout after the attention projection and in the MLP.
        attn_drop: dropout on attention probabilities.
        attn_layer, mlp_layer, norm_layer, act_layer: module classes to build the sub-layers with.
        attn_implementation: default attention backend (see :class:`Attention`).
        mlp_hidden_dim: explicit MLP hidden width.

    Supports transformers' gradient checkpointing (``model.gradient_checkpointing_enable()``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: QkvBias = "qkv",
        drop_path: float = 0.0,
        init_values: float | None = None,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        attn_layer: Callable[..., nn.Module] = Attention,
        mlp_layer: Callable[..., nn.Module] = Mlp,
        norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
        act_layer: Callable[[], nn.Module] = nn.GELU,
        attn_implementation: str = "sdpa",
        mlp_hidden_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = attn_layer(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            attn_drop=attn_drop,
            proj_drop=proj_drop,
            attn_implementation=attn_implementation,
        )
        self.ls1 = LayerScale(dim, init_values) if init_values is not None else nn.Identity()
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = mlp_layer(
            in_features=dim, hidden_features=mlp_hidden_dim or int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop
        )
        self.ls2 = LayerScale(dim, init_values) if init_values is not None else nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        attn_implementation: str | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(B, N, D) -> (B, N, D)``, plus the ``(B, H, N, N)`` attention maps when ``output_attentions``."""
        attn_out, attn_weights = self.attn(
            self.norm1(hidden_states),
            attention_mask=attention_mask,
            attn_implementation=attn_implementation,
            output_attentions=output_attentions,
        )
        hidden_states = hidden_states + self.drop_path1(self.ls1(attn_out))
        hidden_states = hidden_states + self.drop_path2(self.ls2(self.mlp(self.norm2(hidden_states))))
        return hidden_states, attn_weights
