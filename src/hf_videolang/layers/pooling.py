"""Pooling of token sequences into one vector."""

from __future__ import annotations

from typing import Literal

import torch

TextPooling = Literal["cls", "mean"]


def pool_tokens(states: torch.Tensor, attention_mask: torch.Tensor | None, mode: TextPooling) -> torch.Tensor:
    """`(B, L, D)` tokens -> `(B, D)`: the first (`[CLS]`) token, or the mean of the tokens the mask keeps.

    `"mean"` suits text encoders trained with mean pooling (sentence-transformers' MiniLM), whose `[CLS]` state
    barely varies between sentences. Padding (mask 0) does not count; a row without any token gives zeros.
    """
    if mode == "cls":
        return states[:, 0]
    if mode != "mean":
        raise ValueError(f"pooling mode must be 'cls' or 'mean', got {mode!r}")
    if attention_mask is None:
        return states.mean(dim=1)
    weights = attention_mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
