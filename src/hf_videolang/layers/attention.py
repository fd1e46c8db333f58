"""Multi-head self-attention with one module for every backend.

``eager`` is plain PyTorch and can return the attention maps (UMT's semantic masking reads them); every other name
(``"sdpa"``, ``"flash_attention_2"``, ``"flex_attention"``, ...) is looked up in transformers'
``ALL_ATTENTION_FUNCTIONS``, so a model switches backend through ``config._attn_implementation``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

QkvBias = Literal["qkv", "qv", "none"]


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q k^T * scaling + mask) v``, with the signature of transformers' attention interface.

    Args:
        query, key, value: ``(B, H, N, Dh)`` (key/value may have another length ``M``).
        attention_mask: additive float mask broadcastable to ``(B, H, N, M)`` (``-inf``/dtype-min = blocked), or a
            boolean one (True = attend).

    Returns:
        ``(B, N, H, Dh)`` output and ``(B, H, N, M)`` attention probabilities.
    """
    scores = torch.matmul(query, key.transpose(-2, -1)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


class Attention(nn.Module):
    """Multi-head self-attention ``(B, N, D) -> (B, N, D)``.

    Args:
        dim: token width ``D``.
        num_heads: number of heads ``H`` (``D`` must be divisible by it unless ``head_dim`` is given).
        qkv_bias: ``"qkv"`` (one bias on the fused projection, as ViT), ``"qv"`` (separate ``q_bias`` and ``v_bias``,
            no key bias, as BEiT / VideoMAE / UMT; a key bias cancels in the softmax), or ``"none"``.
        head_dim: per-head width (default ``D // H``).
        attn_drop: dropout on the attention probabilities (training only).
        proj_drop: dropout after the output projection.
        attn_implementation: default backend; a ``forward`` argument overrides it per call.
    """

    is_causal = False  # read by transformers' attention functions

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: QkvBias = "qkv",
        head_dim: int | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        attn_implementation: str = "sdpa",
    ) -> None:
        super().__init__()
        if qkv_bias not in ("qkv", "qv", "none"):
            raise ValueError(f"Attention: qkv_bias must be 'qkv', 'qv' or 'none', got {qkv_bias!r}.")
        if head_dim is None:
            if dim % num_heads:
                raise ValueError(f"Attention: dim={dim} is not divisible by num_heads={num_heads}.")
            head_dim = dim // num_heads
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.scaling = head_dim**-0.5
        self.attn_implementation = attn_implementation
        inner_dim = num_heads * head_dim
        self.qkv = nn.Linear(dim, 3 * inner_dim, bias=qkv_bias == "qkv")
        if qkv_bias == "qv":
            self.q_bias = nn.Parameter(torch.zeros(inner_dim))
            self.v_bias = nn.Parameter(torch.zeros(inner_dim))
        else:
            self.q_bias = None
            self.v_bias = None
        self.attn_drop = attn_drop
        self.proj = nn.Linear(inner_dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _qkv_bias(self) -> torch.Tensor | None:
        if self.q_bias is None:
            return self.qkv.bias
        return torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        attn_implementation: str | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """
        Args:
            hidden_states: ``(B, N, D)``.
            attention_mask: optional mask broadcastable to ``(B, H, N, N)``, additive float or boolean (True = attend).
            attn_implementation: backend for this call (default: the module's ``attn_implementation``).
            output_attentions: return the ``(B, H, N, N)`` probabilities; forces the eager path for this call since
                fused kernels never materialize them.

        Returns:
            ``(B, N, D)`` output and the attention probabilities (or None).
        """
        batch_size, num_tokens, _ = hidden_states.shape
        qkv = F.linear(hidden_states, self.qkv.weight, self._qkv_bias())
        qkv = qkv.view(batch_size, num_tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)

        implementation = attn_implementation or self.attn_implementation
        if output_attentions or implementation in (None, "eager"):
            attention_fn = eager_attention_forward
        else:
            attention_fn = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        boolean_mask = attention_mask is not None and attention_mask.dtype == torch.bool
        if boolean_mask and attention_fn is not eager_attention_forward:
            # transformers' kernels take additive masks
            attention_mask = torch.zeros(attention_mask.shape, dtype=query.dtype, device=query.device).masked_fill(
                ~attention_mask, torch.finfo(query.dtype).min
            )
        output, weights = attention_fn(
            self,
            query,
            key,
            value,
            attention_mask,
            scaling=self.scaling,
            dropout=self.attn_drop if self.training else 0.0,
        )
        output = self.proj_drop(self.proj(output.reshape(batch_size, num_tokens, -1)))
        return output, (weights if output_attentions else None)
