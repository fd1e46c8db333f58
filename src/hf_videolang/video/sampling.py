"""Which frames of a video to decode: the samplers of UMT, MAC, ClipBERT and friends.

Every sampler returns sorted frame indices inside ``[0, num_frames_total)`` (``sample_clips``: one sorted list per
clip, clips ordered by start). Randomness comes only from the ``generator`` argument (``None``: the global torch
RNG), so the same seed gives the same indices. :class:`FrameSampler` bundles a strategy and its settings; it is
deterministic in evaluation mode (``training=False``) whatever the generator.

Short videos (fewer frames than asked for) follow ``short_video``:

- ``"error"`` (default): raise :class:`~hf_videolang.errors.VideoTooShortError` with both counts and the source.
- ``"stretch"``: spread the available frames evenly over the requested positions (nearest frame in time, every
  frame used, order kept), e.g. 3 frames for 8 positions give ``[0, 0, 0, 1, 1, 2, 2, 2]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch

from ..errors import VideoTooShortError

__all__ = [
    "SAMPLING_STRATEGIES",
    "SHORT_VIDEO_POLICIES",
    "FrameSampler",
    "sample_clips",
    "sample_fps",
    "sample_random_segment",
    "sample_uniform",
]

ShortVideoPolicy = Literal["error", "stretch"]
SHORT_VIDEO_POLICIES: tuple[str, ...] = ("error", "stretch")
SAMPLING_STRATEGIES: tuple[str, ...] = ("uniform", "random_segment", "clips", "fps")


# ------------------------------------------------------------------------------------------------------- validation


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_positive_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _check_total(num_frames_total: Any, source: str | None) -> int:
    if isinstance(num_frames_total, bool) or not isinstance(num_frames_total, int) or num_frames_total < 0:
        raise ValueError(f"num_frames_total must be a non-negative integer, got {num_frames_total!r}")
    if num_frames_total == 0:
        raise VideoTooShortError(f"{source or 'the video'} has no frames")
    return num_frames_total


def _check_policy(short_video: Any) -> str:
    if short_video not in SHORT_VIDEO_POLICIES:
        raise ValueError(f"short_video must be one of {SHORT_VIDEO_POLICIES}, got {short_video!r}")
    return short_video


def _is_short(num_frames_total: int, needed: int, short_video: str, source: str | None, what: str) -> bool:
    """Whether the video is too short for ``needed`` distinct frames; raises under ``short_video="error"``."""
    if num_frames_total >= needed:
        return False
    if short_video == "error":
        raise VideoTooShortError(
            f"{source or 'the video'} has {num_frames_total} frames, fewer than the {needed} {what}; "
            "pass short_video='stretch' to spread the available frames over the requested positions"
        )
    return True


def _segment_middles(num_frames_total: int, num_frames: int, offset: int = 0) -> list[int]:
    """Middle frame of each of ``num_frames`` equal segments of ``[offset, offset + num_frames_total)``.

    Exact integer arithmetic: ``floor((k + 1/2) * total / n)``. When ``total < n`` this is the "stretch" policy:
    consecutive positions are less than a frame apart, so every frame is used, in order.
    """
    return [offset + (2 * k + 1) * num_frames_total // (2 * num_frames) for k in range(num_frames)]


# --------------------------------------------------------------------------------------------------------- samplers


def sample_uniform(
    num_frames_total: int, num_frames: int, *, short_video: ShortVideoPolicy = "error", source: str | None = None
) -> list[int]:
    """Middle frame of ``num_frames`` equal segments (TSN-style evaluation sampling of UMT / MAC).

    Args:
        num_frames_total: frames in the video.
        num_frames: frames to return.
        short_video: policy when ``num_frames_total < num_frames`` (see the module docstring).
        source: name of the video in error messages.

    Returns:
        ``num_frames`` sorted indices (distinct unless the video is short and stretched).
    """
    total = _check_total(num_frames_total, source)
    num_frames = _check_positive_int(num_frames, "num_frames")
    _is_short(total, num_frames, _check_policy(short_video), source, "frames asked for")
    return _segment_middles(total, num_frames)


def sample_random_segment(
    num_frames_total: int,
    num_frames: int,
    generator: torch.Generator | None = None,
    *,
    short_video: ShortVideoPolicy = "error",
    source: str | None = None,
) -> list[int]:
    """One random frame in each of ``num_frames`` equal segments: the sparse training sampling of UMT and MAC.

    Args:
        num_frames_total, num_frames, short_video, source: as in :func:`sample_uniform`.
        generator: source of randomness (``None``: global torch RNG).

    Returns:
        ``num_frames`` sorted, distinct indices; a short video under ``"stretch"`` gets the (deterministic) stretched
        indices, since every available frame must be used.
    """
    total = _check_total(num_frames_total, source)
    num_frames = _check_positive_int(num_frames, "num_frames")
    if _is_short(total, num_frames, _check_policy(short_video), source, "frames asked for"):
        return _segment_middles(total, num_frames)
    starts = torch.tensor([k * total // num_frames for k in range(num_frames + 1)])
    lengths = starts[1:] - starts[:-1]  # >= 1 since total >= num_frames
    offsets = (torch.rand(num_frames, generator=generator, dtype=torch.float64) * lengths).long()
    return (starts[:-1] + torch.minimum(offsets, lengths - 1)).tolist()


def sample_clips(
    num_frames_total: int,
    fps: float,
    num_clips: int,
    frames_per_clip: int,
    clip_duration: float = 1.0,
    training: bool = False,
    generator: torch.Generator | None = None,
    *,
    short_video: ShortVideoPolicy = "error",
    source: str | None = None,
) -> list[list[int]]:
    """ClipBERT's sparse sampling (ClipBERT §3.1, §4.2): ``num_clips`` short clips of ``frames_per_clip`` frames.

    Each clip is a window of ``clip_duration`` seconds (1 s in ClipBERT; at least ``frames_per_clip`` frames, at
    most the whole video) in which ``frames_per_clip`` frames are sampled evenly (middle of equal sub-segments;
    consecutive frames when the window holds exactly that many). Training draws ``N_train`` random windows;
    inference takes ``N_test`` windows evenly spaced over the video (centred on equal segments, so one clip is the
    middle clip). Windows may overlap when the video is shorter than ``num_clips`` windows.

    Args:
        num_frames_total: frames in the video.
        fps: frame rate of the video (turns ``clip_duration`` into frames).
        num_clips: ``N_train`` in training, ``N_test`` (16 in ClipBERT) at inference.
        frames_per_clip: ``T`` frames per clip.
        clip_duration: seconds per clip.
        training: random windows (``True``) or evenly spaced ones.
        generator: randomness of the training windows (``None``: global torch RNG).
        short_video: policy when the video has fewer than ``frames_per_clip`` frames.
        source: name of the video in error messages.

    Returns:
        ``num_clips`` lists of ``frames_per_clip`` sorted indices, ordered by window start.
    """
    total = _check_total(num_frames_total, source)
    fps = _check_positive_float(fps, "fps")
    num_clips = _check_positive_int(num_clips, "num_clips")
    frames_per_clip = _check_positive_int(frames_per_clip, "frames_per_clip")
    clip_duration = _check_positive_float(clip_duration, "clip_duration")
    if _is_short(total, frames_per_clip, _check_policy(short_video), source, "frames of one clip"):
        return [_segment_middles(total, frames_per_clip) for _ in range(num_clips)]
    window = min(total, max(frames_per_clip, round(clip_duration * fps)))
    last_start = total - window
    if training:
        draws = torch.rand(num_clips, generator=generator, dtype=torch.float64) * (last_start + 1)
        starts = sorted(min(int(d), last_start) for d in draws.tolist())
    else:
        # Window k centred on the middle of segment k: start = (k + 1/2) * total / N - window / 2, clamped.
        starts = [
            min(max(((2 * k + 1) * total - num_clips * window) // (2 * num_clips), 0), last_start)
            for k in range(num_clips)
        ]
    return [_segment_middles(window, frames_per_clip, offset=start) for start in starts]


def sample_fps(
    num_frames_total: int,
    fps: float,
    target_fps: float,
    max_frames: int | None = None,
    *,
    short_video: ShortVideoPolicy = "error",
    source: str | None = None,
) -> list[int]:
    """Frames at ``target_fps`` over the whole video (at least one); at most ``max_frames`` spread over it.

    The count is ``round(num_frames_total * target_fps / fps)``, capped by ``max_frames`` (a long video then gets a
    lower rate rather than being cut); frames are the middles of equal segments, as in :func:`sample_uniform`.
    A ``target_fps`` above ``fps`` asks for more frames than exist: the short-video policy decides.
    """
    total = _check_total(num_frames_total, source)
    fps = _check_positive_float(fps, "fps")
    target_fps = _check_positive_float(target_fps, "target_fps")
    count = max(1, round(total * target_fps / fps))
    if max_frames is not None:
        count = min(count, _check_positive_int(max_frames, "max_frames"))
    _is_short(total, count, _check_policy(short_video), source, f"frames asked for at {target_fps:g} fps")
    return _segment_middles(total, count)


# ---------------------------------------------------------------------------------------------------- FrameSampler


class FrameSampler:
    """A sampling strategy and its settings, serializable to JSON with the processor.

    Args:
        strategy: ``"uniform"``, ``"random_segment"`` (uniform in evaluation), ``"clips"`` (ClipBERT) or ``"fps"``.
        num_frames: frames per video (``"uniform"``, ``"random_segment"``); the cap on frames for ``"fps"``.
            Not used by ``"clips"``, which returns ``num_clips * frames_per_clip`` frames.
        num_clips, frames_per_clip, clip_duration: clip layout of ``"clips"``.
        target_fps: frame rate of ``"fps"`` (required there).
        short_video: ``"error"`` or ``"stretch"`` (see the module docstring).

    Calling it returns ``list[int]``, or ``list[list[int]]`` (one list per clip) for ``"clips"``.
    """

    def __init__(
        self,
        strategy: str,
        num_frames: int,
        num_clips: int = 1,
        frames_per_clip: int = 1,
        clip_duration: float = 1.0,
        target_fps: float | None = None,
        short_video: ShortVideoPolicy = "error",
    ) -> None:
        if strategy not in SAMPLING_STRATEGIES:
            raise ValueError(f"strategy must be one of {SAMPLING_STRATEGIES}, got {strategy!r}")
        self.strategy = strategy
        self.num_frames = _check_positive_int(num_frames, "num_frames")
        self.num_clips = _check_positive_int(num_clips, "num_clips")
        self.frames_per_clip = _check_positive_int(frames_per_clip, "frames_per_clip")
        self.clip_duration = _check_positive_float(clip_duration, "clip_duration")
        if strategy == "fps" and target_fps is None:
            raise ValueError("strategy='fps' needs target_fps (frames per second to sample)")
        self.target_fps = None if target_fps is None else _check_positive_float(target_fps, "target_fps")
        self.short_video = _check_policy(short_video)

    def __call__(
        self,
        metadata_or_num_frames: Any,
        fps: float | None = None,
        training: bool = False,
        generator: torch.Generator | None = None,
    ) -> list[int] | list[list[int]]:
        """Frame indices for one video.

        Args:
            metadata_or_num_frames: a :class:`~hf_videolang.video.io.VideoMetadata` (gives the frame count, fps
                and the source named in errors) or the frame count.
            fps: frame rate, overriding the metadata's (needed by ``"clips"`` / ``"fps"`` when it is unknown).
            training: random sampling (``"random_segment"``, ``"clips"``); ``False`` is deterministic.
            generator: randomness in training (``None``: global torch RNG).
        """
        total, fps, source = _unpack(metadata_or_num_frames, fps)
        policy = {"short_video": self.short_video, "source": source}
        if self.strategy == "uniform" or (self.strategy == "random_segment" and not training):
            return sample_uniform(total, self.num_frames, **policy)
        if self.strategy == "random_segment":
            return sample_random_segment(total, self.num_frames, generator, **policy)
        fps = _require_fps(fps, self.strategy, source)
        if self.strategy == "clips":
            return sample_clips(total, fps, self.num_clips, self.frames_per_clip, self.clip_duration, training,
                                generator, **policy)
        assert self.target_fps is not None
        return sample_fps(total, fps, self.target_fps, max_frames=self.num_frames, **policy)

    def to_dict(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serializable; ``FrameSampler.from_dict(s.to_dict()) == s``."""
        return {
            "strategy": self.strategy,
            "num_frames": self.num_frames,
            "num_clips": self.num_clips,
            "frames_per_clip": self.frames_per_clip,
            "clip_duration": self.clip_duration,
            "target_fps": self.target_fps,
            "short_video": self.short_video,
        }

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> FrameSampler:
        """Build a sampler from :meth:`to_dict` output; unknown keys are an error (a typo would be ignored)."""
        unknown = sorted(set(config) - set(cls(strategy="uniform", num_frames=1).to_dict()))
        if unknown:
            raise ValueError(f"unknown FrameSampler settings {unknown}")
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FrameSampler) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={value!r}" for key, value in self.to_dict().items())
        return f"{type(self).__name__}({settings})"


def _unpack(metadata_or_num_frames: Any, fps: float | None) -> tuple[int, float | None, str | None]:
    if isinstance(metadata_or_num_frames, bool):
        raise TypeError("expected VideoMetadata or a frame count, got a bool")
    if isinstance(metadata_or_num_frames, int):
        return metadata_or_num_frames, fps, None
    try:
        total = int(metadata_or_num_frames.num_frames)
        known_fps = float(metadata_or_num_frames.fps)
        source = str(metadata_or_num_frames.source)
    except AttributeError as error:
        raise TypeError(
            f"expected VideoMetadata or a frame count, got {type(metadata_or_num_frames).__name__}"
        ) from error
    return total, fps if fps is not None else (known_fps if known_fps > 0 else None), source


def _require_fps(fps: float | None, strategy: str, source: str | None) -> float:
    if fps is None:
        raise ValueError(
            f"strategy={strategy!r} needs the frame rate of {source or 'the video'}, which is unknown "
            "(decoded frames carry none): pass fps="
        )
    return fps
