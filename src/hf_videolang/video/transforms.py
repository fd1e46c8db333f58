"""Spatial transforms of decoded videos, applied to every frame of a clip alike.

The functions work on ``torch.Tensor`` videos of shape ``(T, C, H, W)``. Geometric transforms (resize, crop, flip,
pad) keep the dtype: uint8 stays uint8 (resampling is done in float32, then rounded and clamped back to [0, 255]),
float stays float. :func:`normalize` turns a uint8 video into float32. Random transforms draw their parameters once
per call, so every frame of one video gets the same crop and the same flip (temporal consistency), from a
``torch.Generator`` so that a seed reproduces them.

:class:`VideoTransform` chains them into the two pipelines the methods use:

- ``mode="crop"`` (UMT, SMAUG, MAC, E-ViLM): evaluation resizes the shorter side to ``image_size`` and takes the centre
  square; training (with ``train_augment``) takes a random resized crop and a random horizontal flip.
- ``mode="pad"`` (ClipBERT §4.1, "Weight Initialization and Pre-training"): the longer side is resized to
  ``image_size`` keeping the aspect ratio and the shorter side is zero-padded to ``image_size``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel RGB mean of ImageNet on the [0, 1] scale (ResNet / ViT backbones)."""
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Per-channel RGB standard deviation of ImageNet on the [0, 1] scale."""
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
"""Per-channel RGB mean used by OpenAI CLIP (UMT's teacher) on the [0, 1] scale."""
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
"""Per-channel RGB standard deviation used by OpenAI CLIP on the [0, 1] scale."""

Size = int | Sequence[int]
"""An output size: ``int`` for a square ``(size, size)``, or ``(height, width)``."""

_MODES = ("crop", "pad")


# ---------------------------------------------------------------------------------------------------- validation


def _check_video(video: torch.Tensor, name: str = "video") -> None:
    if not isinstance(video, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (T, C, H, W), got {type(video).__name__}")
    if video.ndim != 4:
        raise ValueError(f"{name} must have shape (T, C, H, W), got {tuple(video.shape)}")
    if video.dtype != torch.uint8 and not video.is_floating_point():
        raise ValueError(f"{name} must be uint8 or floating point, got {video.dtype}")
    if video.shape[-2] < 1 or video.shape[-1] < 1:
        raise ValueError(f"{name} has an empty frame: shape {tuple(video.shape)}")


def _as_hw(size: Size, name: str = "size") -> tuple[int, int]:
    """``int`` -> ``(size, size)``; ``(h, w)`` -> ``(h, w)``; both positive."""
    if isinstance(size, (int, np.integer)):
        height, width = int(size), int(size)
    else:
        values = tuple(int(s) for s in size)
        if len(values) != 2:
            raise ValueError(f"{name} must be an int or (height, width), got {size!r}")
        height, width = values
    if height < 1 or width < 1:
        raise ValueError(f"{name} must be positive, got {size!r}")
    return height, width


def _check_range(values: Sequence[float], name: str, positive: bool = False) -> tuple[float, float]:
    if len(values) != 2:
        raise ValueError(f"{name} must be a pair (low, high), got {values!r}")
    low, high = (float(v) for v in values)
    if low > high or low < 0 or (positive and low <= 0):
        kind = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a non-decreasing pair (low, high) of {kind} numbers, got {tuple(values)}")
    return low, high


# ---------------------------------------------------------------------------------------------------- layout


def to_tchw(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Bring decoded frames to a ``(T, C, H, W)`` tensor (no copy when possible).

    Args:
        frames: ``(T, H, W, 3)`` (the layout of :func:`~hf_videolang.video.io.read_frames`) or ``(T, 3, H, W)``, as a
            NumPy array or a tensor; a single image ``(H, W, 3)`` / ``(3, H, W)`` is a one-frame video. When both
            layouts fit (``W == 3``), channels-last is assumed, since that is what decoders return.

    Returns:
        `torch.Tensor` of shape ``(T, 3, H, W)`` with the dtype of the input.
    """
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not isinstance(frames, torch.Tensor):
        raise TypeError(f"frames must be a NumPy array or a torch.Tensor, got {type(frames).__name__}")
    if frames.ndim == 3:
        frames = frames.unsqueeze(0)
    if frames.ndim != 4:
        raise ValueError(f"frames must have shape (T, H, W, 3) or (T, 3, H, W), got {tuple(frames.shape)}")
    if frames.shape[-1] == 3:
        return frames.permute(0, 3, 1, 2)
    if frames.shape[1] == 3:
        return frames
    raise ValueError(f"frames must have 3 (RGB) channels first or last, got shape {tuple(frames.shape)}")


# ---------------------------------------------------------------------------------------------------- geometry


def resize(video: torch.Tensor, size: Size) -> torch.Tensor:
    """Resize every frame to exactly ``size`` (aspect ratio not kept).

    Bilinear with antialiasing (so downscaling does not alias), computed in float32; uint8 input is rounded and
    clamped back to uint8.

    Args:
        video: ``(T, C, H, W)`` uint8 or float.
        size: ``int`` for a square output, or ``(height, width)``.

    Returns:
        ``(T, C, height, width)`` with the dtype of ``video``.
    """
    _check_video(video)
    height, width = _as_hw(size)
    if tuple(video.shape[-2:]) == (height, width):
        return video
    out = F.interpolate(video.float(), size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    if video.dtype == torch.uint8:
        return out.round_().clamp_(0, 255).to(torch.uint8)
    return out.to(video.dtype)


def resize_short_side(video: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so that the shorter side is ``size``, keeping the aspect ratio.

    The longer side becomes ``round(long * size / short)`` (at least 1).

    Args:
        video: ``(T, C, H, W)`` uint8 or float.
        size: target length of the shorter side.

    Returns:
        ``(T, C, H', W')`` with ``min(H', W') == size``.
    """
    _check_video(video)
    size = _as_hw(size)[0]
    height, width = video.shape[-2:]
    scale = size / min(height, width)
    if height <= width:
        return resize(video, (size, max(1, round(width * scale))))
    return resize(video, (max(1, round(height * scale)), size))


def resize_longer_side(video: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so that the longer side is ``size``, keeping the aspect ratio (shorter side ``round(short * scale)``)."""
    _check_video(video)
    size = _as_hw(size)[0]
    height, width = video.shape[-2:]
    scale = size / max(height, width)
    if height >= width:
        return resize(video, (size, max(1, round(width * scale))))
    return resize(video, (max(1, round(height * scale)), size))


def crop(video: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """Crop the box ``[top, top + height) x [left, left + width)`` from every frame (a view, no copy).

    Raises:
        ValueError: the box does not lie inside the frame.
    """
    _check_video(video)
    frame_h, frame_w = video.shape[-2:]
    if height < 1 or width < 1 or top < 0 or left < 0 or top + height > frame_h or left + width > frame_w:
        raise ValueError(
            f"crop box (top={top}, left={left}, height={height}, width={width}) does not fit in a "
            f"{frame_h}x{frame_w} frame"
        )
    return video[..., top : top + height, left : left + width]


def center_crop(video: torch.Tensor, size: Size) -> torch.Tensor:
    """Crop the central ``size`` box of every frame.

    When the margin is odd the extra pixel is left at the bottom/right: ``top = (H - height) // 2``.

    Args:
        video: ``(T, C, H, W)``.
        size: ``int`` for a square, or ``(height, width)``; must not exceed the frame.

    Returns:
        ``(T, C, height, width)``.
    """
    _check_video(video)
    height, width = _as_hw(size)
    frame_h, frame_w = video.shape[-2:]
    if height > frame_h or width > frame_w:
        raise ValueError(f"center_crop size {height}x{width} is larger than the {frame_h}x{frame_w} frame")
    return crop(video, (frame_h - height) // 2, (frame_w - width) // 2, height, width)


def _uniform(generator: torch.Generator | None, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def _randint(generator: torch.Generator | None, low: int, high: int) -> int:
    """An integer in ``[low, high]`` (inclusive)."""
    return int(torch.randint(low, high + 1, (), generator=generator).item())


def sample_crop_box(
    height: int,
    width: int,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
    num_attempts: int = 10,
) -> tuple[int, int, int, int]:
    """Draw the box of a random resized crop (the semantics of Inception-style ``RandomResizedCrop``).

    The box area is a uniform fraction ``scale`` of the frame area and its aspect ratio (width / height) is
    log-uniform in ``ratio``; its position is uniform among the positions where it fits. After ``num_attempts`` draws
    that do not fit, the largest central box whose aspect ratio is clamped into ``ratio`` is returned.

    Args:
        height, width: frame size.
        scale: range of the box area as a fraction of the frame area.
        ratio: range of the box aspect ratio (width / height).
        generator: source of randomness (``None``: the global torch RNG).
        num_attempts: draws before the deterministic fallback.

    Returns:
        ``(top, left, box_height, box_width)``.
    """
    scale_low, scale_high = _check_range(scale, "scale", positive=True)
    ratio_low, ratio_high = _check_range(ratio, "ratio", positive=True)
    area = height * width
    log_ratio = (math.log(ratio_low), math.log(ratio_high))
    for _ in range(num_attempts):
        target_area = area * _uniform(generator, scale_low, scale_high)
        aspect = math.exp(_uniform(generator, *log_ratio))
        box_w = round(math.sqrt(target_area * aspect))
        box_h = round(math.sqrt(target_area / aspect))
        if 0 < box_w <= width and 0 < box_h <= height:
            return _randint(generator, 0, height - box_h), _randint(generator, 0, width - box_w), box_h, box_w
    # Fallback: the whole frame, narrowed to the nearest allowed aspect ratio.
    frame_ratio = width / height
    if frame_ratio < ratio_low:
        box_w, box_h = width, round(width / ratio_low)
    elif frame_ratio > ratio_high:
        box_h, box_w = height, round(height * ratio_high)
    else:
        box_h, box_w = height, width
    box_h, box_w = max(1, min(box_h, height)), max(1, min(box_w, width))
    return (height - box_h) // 2, (width - box_w) // 2, box_h, box_w


def random_resized_crop(
    video: torch.Tensor,
    size: Size,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Crop one random box (see :func:`sample_crop_box`) from every frame and resize it to ``size``.

    The box is drawn once per call, so all frames of the video share it.

    Args:
        video: ``(T, C, H, W)``.
        size: output size (``int`` for a square, or ``(height, width)``).
        scale, ratio: see :func:`sample_crop_box`.
        generator: source of randomness; the same seed gives the same crop.

    Returns:
        ``(T, C, height, width)`` with the dtype of ``video``.
    """
    _check_video(video)
    top, left, box_h, box_w = sample_crop_box(video.shape[-2], video.shape[-1], scale, ratio, generator)
    return resize(crop(video, top, left, box_h, box_w), size)


def horizontal_flip(video: torch.Tensor) -> torch.Tensor:
    """Mirror every frame left-right: ``out[..., x] = video[..., W - 1 - x]``."""
    _check_video(video)
    return video.flip(-1)


def random_horizontal_flip(
    video: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Mirror the whole video (every frame) with probability ``p``; one draw per call.

    Note: a flip swaps "left" and "right", so disable it (``p=0``) for data whose text refers to directions.
    """
    _check_video(video)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"flip probability p must be in [0, 1], got {p}")
    # Always draw, so that the random stream (and hence later draws) does not depend on `p`.
    flip = torch.rand((), generator=generator).item() < p
    return horizontal_flip(video) if flip else video


def pad_bottom_right(video: torch.Tensor, size: Size, value: float = 0) -> torch.Tensor:
    """Pad every frame with ``value`` on the bottom and right to ``size``; the content stays in the top-left corner.

    Raises:
        ValueError: the frame is larger than ``size``.
    """
    _check_video(video)
    height, width = _as_hw(size)
    frame_h, frame_w = video.shape[-2:]
    if frame_h > height or frame_w > width:
        raise ValueError(f"cannot pad a {frame_h}x{frame_w} frame to the smaller size {height}x{width}")
    return F.pad(video, (0, width - frame_w, 0, height - frame_h), value=value)


def resize_longer_and_pad(video: torch.Tensor, size: int) -> torch.Tensor:
    """ClipBERT's input transform: longer side to ``size`` (aspect ratio kept), shorter side zero-padded to ``size``.

    ClipBERT §4.1 ("Weight Initialization and Pre-training"): "Input frames are resized to have a maximum longer side
    of L while keeping the aspect ratios, and the shorter side is zero-padded to be L as well". The padding goes on
    the bottom and right (as in the ClipBERT release, which keeps images in the upper-left corner), so the pixel at
    ``(y, x)`` of the resized frame keeps its row/column position and position embeddings of the content rows and
    columns do not depend on the aspect ratio. Padding is black (0) in pixel space, i.e. before normalization.

    Args:
        video: ``(T, C, H, W)``.
        size: ``L``, the side of the square output.

    Returns:
        ``(T, C, size, size)``.
    """
    return pad_bottom_right(resize_longer_side(video, size), size, value=0)


# ---------------------------------------------------------------------------------------------------- values


def normalize(video: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Per-channel standardization ``(x - mean) / std`` on the [0, 1] scale.

    Args:
        video: ``(T, C, H, W)``; uint8 is divided by 255 first, float is assumed to be in [0, 1] already.
        mean, std: ``C`` values each, on the [0, 1] scale (e.g. :data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`).

    Returns:
        float32 ``(T, C, H, W)`` (about [-2, 2.6] for ImageNet statistics).
    """
    _check_video(video)
    channels = video.shape[1]
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"mean and std need {channels} values (one per channel), got mean={mean} std={std}")
    if any(s <= 0 for s in std):
        raise ValueError(f"std must be positive, got {std}")
    out = video.to(torch.float32)
    if video.dtype == torch.uint8:
        out = out / 255.0
    mean_t = torch.tensor(mean, dtype=torch.float32, device=video.device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=video.device).view(1, -1, 1, 1)
    return (out - mean_t) / std_t


# ---------------------------------------------------------------------------------------------------- pipeline


class VideoTransform:
    r"""Decoded frames -> normalized, fixed-size float video, with optional training augmentation.

    Args:
        image_size (`int`):
            Side of the square output frames.
        mean (`Sequence[float]`, defaults to [`IMAGENET_MEAN`]), std (`Sequence[float]`, defaults to [`IMAGENET_STD`]):
            Normalization statistics on the [0, 1] scale.
        mode (`str`, defaults to `"crop"`):
            ``"crop"``: evaluation resizes the shorter side to ``image_size`` and crops the centre; training takes a
            random resized crop. ``"pad"``: ClipBERT's longer side to ``image_size`` + zero padding bottom/right (see
            :func:`resize_longer_and_pad`), in training and evaluation alike.
        train_augment (`bool`, defaults to `True`):
            Whether ``training=True`` applies the random crop (``"crop"`` mode) and the random horizontal flip.
        scale (`Sequence[float]`, defaults to `(0.5, 1.0)`):
            Area range of the random resized crop. The default keeps at least half the frame, as the video-text
            recipes (e.g. UMT stage 2) do, instead of the ImageNet ``(0.08, 1.0)``.
        ratio (`Sequence[float]`, defaults to `(3/4, 4/3)`):
            Aspect-ratio range (width / height) of the random resized crop.
        flip_prob (`float`, defaults to `0.5`):
            Probability of the horizontal flip in training (set 0 when captions mention left/right).

    Calling it: ``transform(frames, training=False, generator=None)`` with ``frames`` ``(T, H, W, 3)`` (NumPy or
    tensor) or ``(T, 3, H, W)`` uint8 returns float32 ``(T, 3, image_size, image_size)``. In training one crop and one
    flip are drawn per call and applied to all frames; the same ``generator`` seed gives the same output.
    """

    def __init__(
        self,
        image_size: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        mode: str = "crop",
        train_augment: bool = True,
        scale: Sequence[float] = (0.5, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip_prob: float = 0.5,
    ) -> None:
        self.image_size = _as_hw(image_size, "image_size")[0]
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got mean={tuple(mean)} std={tuple(std)}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std must be positive, got {tuple(std)}")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"flip_prob must be in [0, 1], got {flip_prob}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.mode = mode
        self.train_augment = bool(train_augment)
        self.scale = _check_range(scale, "scale", positive=True)
        if self.scale[1] > 1.0:
            raise ValueError(f"scale is a fraction of the frame area and must not exceed 1, got {tuple(scale)}")
        self.ratio = _check_range(ratio, "ratio", positive=True)
        self.flip_prob = float(flip_prob)

    def resize_and_crop(
        self, video: torch.Tensor, training: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The geometric part only: uint8 ``(T, 3, H, W)`` -> uint8 ``(T, 3, image_size, image_size)``."""
        augment = training and self.train_augment
        if self.mode == "pad":
            video = resize_longer_and_pad(video, self.image_size)
        elif augment:
            video = random_resized_crop(video, self.image_size, self.scale, self.ratio, generator)
        else:
            video = center_crop(resize_short_side(video, self.image_size), self.image_size)
        if augment and self.flip_prob > 0:
            video = random_horizontal_flip(video, self.flip_prob, generator)
        return video

    def __call__(
        self,
        frames: np.ndarray | torch.Tensor,
        training: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Transform one video.

        Args:
            frames: ``(T, H, W, 3)`` or ``(T, 3, H, W)`` uint8 (NumPy array or tensor).
            training: apply the random augmentation (when ``train_augment``); otherwise deterministic.
            generator: source of randomness in training (``None``: the global torch RNG).

        Returns:
            float32 ``(T, 3, image_size, image_size)``, normalized with ``mean`` / ``std``.
        """
        video = to_tchw(frames)
        if video.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8 (decoded pixels), got {video.dtype}")
        video = self.resize_and_crop(video, training=training, generator=generator)
        return normalize(video, self.mean, self.std).contiguous()

    def to_dict(self) -> dict[str, Any]:
        """The constructor arguments as JSON-serializable values: ``VideoTransform(**t.to_dict())`` rebuilds ``t``."""
        return {
            "image_size": self.image_size,
            "mean": list(self.mean),
            "std": list(self.std),
            "mode": self.mode,
            "train_augment": self.train_augment,
            "scale": list(self.scale),
            "ratio": list(self.ratio),
            "flip_prob": self.flip_prob,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.to_dict().items())
        return f"{type(self).__name__}({args})"
