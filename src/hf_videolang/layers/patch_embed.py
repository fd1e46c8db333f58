"""Video patch (tubelet) embedding: a 3D convolution whose kernel equals its stride."""

from __future__ import annotations

import torch
from torch import nn


def _pair(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if len(value) != 2:
        raise ValueError(f"expected an int or a pair, got {value!r}")
    return (int(value[0]), int(value[1]))


class PatchEmbed3d(nn.Module):
    """Split a video into non-overlapping ``tubelet x patch x patch`` cubes and project each to ``embed_dim``.

    Tokens are flattened frame-major (time, then row, then column), the order of ``bool_masked_pos``.

    Args:
        image_size: expected ``(H, W)`` (or one int); checked at run time.
        patch_size: spatial patch size.
        tubelet_size: temporal size of a cube (1 = one token grid per frame).
        in_channels: input channels ``C``.
        embed_dim: output width ``D``.
        bias: whether the projection has a bias.

    Shapes: ``(B, T, C, H, W) -> (B, (T / tubelet) * (H / p) * (W / p), D)``.
    """

    def __init__(
        self,
        image_size: int | tuple[int, int] = 224,
        patch_size: int | tuple[int, int] = 16,
        tubelet_size: int = 1,
        in_channels: int = 3,
        embed_dim: int = 768,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.image_size = _pair(image_size)
        self.patch_size = _pair(patch_size)
        if self.image_size[0] % self.patch_size[0] or self.image_size[1] % self.patch_size[1]:
            raise ValueError(
                f"PatchEmbed3d: image_size {self.image_size} is not divisible by patch_size {self.patch_size}."
            )
        self.tubelet_size = int(tubelet_size)
        self.grid_size = (self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1])
        self.num_patches_per_frame = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv3d(
            in_channels,
            embed_dim,
            kernel_size=(self.tubelet_size, *self.patch_size),
            stride=(self.tubelet_size, *self.patch_size),
            bias=bias,
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.ndim != 5:
            raise ValueError(f"pixel_values must be (B, T, C, H, W), got shape {tuple(pixel_values.shape)}.")
        _, num_frames, _, height, width = pixel_values.shape
        if (height, width) != self.image_size:
            expected = f"{self.image_size[0]}x{self.image_size[1]}"
            raise ValueError(f"pixel_values has frames of {height}x{width}, the model expects {expected}.")
        if num_frames % self.tubelet_size:
            raise ValueError(
                f"pixel_values has {num_frames} frames, not a multiple of tubelet_size={self.tubelet_size}."
            )
        # Conv3d wants (B, C, T, H, W); the output (B, D, T', h, w) flattens frame-major.
        x = self.proj(pixel_values.transpose(1, 2))
        return x.flatten(2).transpose(1, 2)
