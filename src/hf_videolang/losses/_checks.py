"""Shape and dtype checks shared by the loss modules; every error names the argument and what was expected."""

from __future__ import annotations

import torch


def check_ndim(name: str, tensor: torch.Tensor, ndims: int | tuple[int, ...], layout: str) -> None:
    """Raises `ValueError` unless `tensor.ndim` is one of `ndims`; `layout` describes the expected shape."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape {layout}, got {type(tensor).__name__}.")
    allowed = (ndims,) if isinstance(ndims, int) else ndims
    if tensor.ndim not in allowed:
        raise ValueError(
            f"`{name}` must have shape {layout}, got a {tensor.ndim}-d tensor of shape {tuple(tensor.shape)}."
        )


def check_bool_mask(name: str, mask: torch.Tensor, shape: tuple[int, int]) -> None:
    """Raises unless `mask` is a boolean tensor of exactly `shape` (B, N)."""
    check_ndim(name, mask, 2, "(batch_size, num_tokens)")
    if mask.dtype != torch.bool:
        raise TypeError(f"`{name}` must be a bool tensor (True = masked), got dtype {mask.dtype}.")
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"`{name}` has shape {tuple(mask.shape)}, expected {tuple(shape)}.")


def zero_loss(like: torch.Tensor) -> torch.Tensor:
    """A scalar 0 that stays connected to `like`'s graph, so `backward()` works when nothing is supervised."""
    return like.sum() * 0.0
