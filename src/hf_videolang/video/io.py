"""Reading video: container metadata and random access to frames with bounded memory and time.

:func:`read_frames` never decodes a whole video to pick a few frames. It seeks to the keyframe before the first
wanted frame, decodes forward only as far as the last wanted one, keeps only the wanted frames, and seeks again
when the next wanted frame lies past the next keyframe (decoding a GOP is cheaper than decoding the gap). Decoded
frames are mapped to indices through their presentation timestamps (``pts``), so the result is bit-for-bit the
frame a full sequential decode gives at that index.

Sources: a path (``str`` / ``os.PathLike``), ``bytes``, a binary file-like object, or frames that are already
decoded (``np.ndarray`` / ``torch.Tensor`` ``(T, H, W, 3)`` or ``(T, 3, H, W)`` uint8, a list of PIL images or of
arrays). Every problem raises a :class:`~hf_videolang.errors.VideoError` that names the source and the problem.
"""

from __future__ import annotations

import io
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, BinaryIO, Union

import av
import numpy as np
import torch
from PIL import Image

from ..errors import VideoDecodeError, VideoError, VideoNotFoundError

__all__ = [
    "DEFAULT_TIMEOUT",
    "FrameIndexError",
    "VideoMetadata",
    "VideoSource",
    "describe_source",
    "read_frames",
    "read_video_metadata",
]

VideoSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, np.ndarray, torch.Tensor,
                    Sequence[Image.Image], Sequence[np.ndarray]]

DEFAULT_TIMEOUT = 60.0
"""Seconds one :func:`read_video_metadata` / :func:`read_frames` call may take before it raises."""

# When no two keyframes have been seen yet, a wanted frame further than this many seconds ahead is reached by a new
# seek rather than by decoding forward (encoders put keyframes every 1-10 s). A seek that turns out useless raises
# the threshold for the rest of the call, so at most one GOP is decoded twice.
_RESEEK_GAP_SECONDS = 1.0
# Frames decoded after the deadline is checked; small enough to stop a slow decode promptly.
_DEADLINE_CHECK_EVERY = 8


@dataclass(frozen=True)
class VideoMetadata:
    """What the container says about the (first) video stream.

    Attributes:
        num_frames: number of frames; valid indices are ``0 .. num_frames - 1``.
        fps: average frame rate; ``0.0`` when unknown (frames given already decoded).
        duration: seconds; ``0.0`` when unknown.
        width, height: frame size in pixels.
        source: how the source is named in messages (a path, ``<bytes>``, ``<file-like>``, ``<array>``, ...).
    """

    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    source: str


class FrameIndexError(VideoError, IndexError):
    """A requested frame index is outside ``[0, num_frames)`` of the video."""


# ----------------------------------------------------------------------------------------------------------- sources


def describe_source(src: Any) -> str:
    """The name of ``src`` in messages: the path, or ``<bytes>``, ``<file-like ...>``, ``<array>``, ..."""
    if isinstance(src, (str, os.PathLike)):
        return os.fsdecode(src)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return "<bytes>"
    if isinstance(src, np.ndarray):
        return "<array>"
    if isinstance(src, torch.Tensor):
        return "<tensor>"
    if hasattr(src, "read"):
        name = getattr(src, "name", None)
        return f"<file-like {name!r}>" if isinstance(name, str) else "<file-like>"
    if isinstance(src, (list, tuple)):
        return "<list of PIL images>" if src and isinstance(src[0], Image.Image) else "<list of frames>"
    return f"<{type(src).__name__}>"


class _DecodedFrames:
    """Frames given already decoded, viewed as ``(T, H, W, 3)`` uint8 without copying the whole video."""

    def __init__(self, src: Any, name: str) -> None:
        self.name = name
        self._images: list[Image.Image] | None = None
        self._array: np.ndarray | None = None
        if isinstance(src, (list, tuple)):
            if not src:
                raise VideoError(f"{name}: the list of frames is empty")
            if all(isinstance(item, Image.Image) for item in src):
                self._images = list(src)
                sizes = {image.size for image in self._images}
                if len(sizes) > 1:
                    raise VideoError(f"{name}: the images have different sizes {sorted(sizes)}")
                self.width, self.height = self._images[0].size
                self.num_frames = len(self._images)
                return
            try:
                src = np.stack([_to_numpy(item) for item in src])
            except ValueError as error:
                raise VideoError(f"{name}: cannot stack the frames into one array ({error})") from error
        self._array = _as_thwc(_to_numpy(src), name)
        self.num_frames, self.height, self.width = self._array.shape[:3]
        if self.num_frames == 0:
            raise VideoError(f"{name}: the video has no frames (shape {tuple(self._array.shape)})")

    def metadata(self) -> VideoMetadata:
        return VideoMetadata(self.num_frames, 0.0, 0.0, self.width, self.height, self.name)

    def take(self, indices: Sequence[int]) -> np.ndarray:
        """Frames at ``indices`` as a new uint8 array ``(len(indices), H, W, 3)``."""
        if self._array is not None:
            return np.ascontiguousarray(self._array[list(indices)])
        assert self._images is not None
        out = np.empty((len(indices), self.height, self.width, 3), dtype=np.uint8)
        for slot, index in enumerate(indices):
            out[slot] = np.asarray(self._images[index].convert("RGB"))
        return out


def _to_numpy(item: Any) -> np.ndarray:
    if isinstance(item, torch.Tensor):
        return item.detach().cpu().numpy()
    if isinstance(item, Image.Image):
        return np.asarray(item.convert("RGB"))
    return np.asarray(item)


def _as_thwc(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype != np.uint8:
        raise VideoError(f"{name}: decoded frames must be uint8, got {array.dtype}")
    if array.ndim == 4 and array.shape[-1] == 3:
        return array
    if array.ndim == 4 and array.shape[1] == 3:  # (T, 3, H, W)
        return array.transpose(0, 2, 3, 1)
    raise VideoError(f"{name}: decoded frames must have shape (T, H, W, 3) or (T, 3, H, W), got {array.shape}")


def _is_decoded(src: Any) -> bool:
    return isinstance(src, (np.ndarray, torch.Tensor, list, tuple))


# --------------------------------------------------------------------------------------------------------- container


class _Deadline:
    """Wall-clock limit of one call; ``check`` raises :class:`VideoDecodeError` once it has passed."""

    def __init__(self, timeout: float | None, name: str) -> None:
        if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds or None, got {timeout!r}")
        self.timeout = timeout
        self.name = name
        self._end = math.inf if timeout is None else time.monotonic() + timeout

    def check(self) -> None:
        if time.monotonic() > self._end:
            raise VideoDecodeError(f"{self.name}: decoding timed out after {self.timeout} s")


@contextmanager
def _open_video(src: Any, name: str, deadline: _Deadline) -> Iterator[tuple[Any, Any]]:
    """Open ``src`` with PyAV and yield ``(container, first video stream)``; PyAV errors become VideoDecodeError."""
    file: Any
    restore: int | None = None
    if isinstance(src, (str, os.PathLike)):
        file = os.fspath(src)
        if not os.path.exists(file):
            raise VideoNotFoundError(f"{name}: no such file")
        if os.path.isdir(file):
            raise VideoDecodeError(f"{name}: is a directory, not a video file")
        if os.path.getsize(file) == 0:
            raise VideoDecodeError(f"{name}: the file is empty (0 bytes)")
    elif isinstance(src, (bytes, bytearray, memoryview)):
        if len(src) == 0:
            raise VideoDecodeError(f"{name}: the video is empty (0 bytes)")
        file = io.BytesIO(bytes(src))
    elif hasattr(src, "read"):
        file = src
        # read_video_metadata and read_frames are often called on the same object: give it back where it was.
        restore = src.tell() if _seekable(src) else None
    else:
        raise TypeError(
            f"cannot read a video from {type(src).__name__}: pass a path, bytes, a binary file-like object, "
            "an array/tensor (T, H, W, 3) uint8, or a list of PIL images"
        )
    try:
        # `timeout` bounds each blocking FFmpeg call; the deadline bounds the whole call between them.
        with av.open(file, mode="r", timeout=deadline.timeout) as container:
            streams = container.streams.video
            if not streams:
                found = ", ".join(f"{s.type}" for s in container.streams) or "no streams"
                raise VideoDecodeError(f"{name}: has no video stream (found: {found})")
            stream = streams[0]
            # One decoding thread: the clips decoded here are short, and FFmpeg's slice threads break fork-based
            # DataLoader workers (a child that frees a parent's codec context waits forever on the parent's threads).
            stream.codec_context.thread_count = 1
            yield container, stream
    except av.ExitError as error:
        raise VideoDecodeError(f"{name}: decoding timed out after {deadline.timeout} s") from error
    except av.FFmpegError as error:
        raise VideoDecodeError(
            f"{name}: cannot be read as a video: not a media container, or truncated or corrupt "
            f"(FFmpeg: {_ffmpeg_reason(error)})"
        ) from error
    finally:
        if restore is not None:
            src.seek(restore)


def _seekable(file: Any) -> bool:
    try:
        return bool(file.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _ffmpeg_reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


def _frame_rate(stream: Any, name: str) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    raise VideoDecodeError(f"{name}: the video stream has no frame rate")


def _count_packets(container: Any, stream: Any, deadline: _Deadline) -> int:
    """Number of frames by demuxing (no decoding), for containers that do not store it (e.g. some mkv / webm)."""
    count = 0
    for packet in container.demux(stream):
        if packet.size:  # the flush packet at the end is empty
            count += 1
        if count % 256 == 0:
            deadline.check()
    if count:
        container.seek(0, stream=stream)  # rewind for the decoding that may follow
    return count


def _container_metadata(container: Any, stream: Any, name: str, deadline: _Deadline) -> VideoMetadata:
    rate = _frame_rate(stream, name)
    num_frames = int(stream.frames or 0)
    if num_frames <= 0:
        num_frames = _count_packets(container, stream, deadline)
    if num_frames <= 0:
        raise VideoDecodeError(f"{name}: the video stream has no frames")
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / av.time_base
    else:
        duration = num_frames / float(rate)
    context = stream.codec_context
    return VideoMetadata(num_frames, float(rate), duration, int(context.width), int(context.height), name)


def read_video_metadata(src: VideoSource, *, timeout: float | None = DEFAULT_TIMEOUT) -> VideoMetadata:
    """Frame count, fps, duration and size of a video, from the container header (nothing is decoded).

    Frames are counted by demuxing packets only when the container does not store the count.

    Args:
        src: path, bytes, binary file-like object (read, then put back at its position), or decoded frames
            (``fps`` and ``duration`` are then ``0.0``: unknown).
        timeout: seconds before a :class:`VideoDecodeError` is raised; ``None`` for no limit.

    Raises:
        VideoNotFoundError: the path does not exist.
        VideoDecodeError: empty, corrupt, not a media container, no video stream, or timed out.
    """
    name = describe_source(src)
    if _is_decoded(src):
        return _DecodedFrames(src, name).metadata()
    deadline = _Deadline(timeout, name)
    with _open_video(src, name, deadline) as (container, stream):
        return _container_metadata(container, stream, name, deadline)


# ---------------------------------------------------------------------------------------------------------- decoding


def _check_indices(indices: Sequence[int], num_frames: int, name: str) -> list[int]:
    if isinstance(indices, (str, bytes)) or not isinstance(indices, (Sequence, np.ndarray, torch.Tensor)):
        raise TypeError(f"indices must be a sequence of ints, got {type(indices).__name__}")
    checked: list[int] = []
    for index in (indices.tolist() if isinstance(indices, (np.ndarray, torch.Tensor)) else indices):
        try:
            index = int(index.__index__())
        except (AttributeError, TypeError) as error:
            raise TypeError(f"frame indices must be integers, got {index!r}") from error
        if not 0 <= index < num_frames:
            raise FrameIndexError(
                f"{name}: frame index {index} is out of range: the video has {num_frames} frames "
                f"(valid indices 0..{num_frames - 1})"
            )
        checked.append(index)
    return checked


class _FrameClock:
    """Frame index <-> pts of a stream, from its ``time_base``, average frame rate and ``start_time``."""

    def __init__(self, stream: Any, rate: Fraction) -> None:
        self.time_base = Fraction(stream.time_base)
        self.start = int(stream.start_time or 0)
        self.ticks_per_frame = 1 / (rate * self.time_base)  # pts units per frame, exact

    def index(self, pts: int) -> int:
        return round((pts - self.start) / self.ticks_per_frame)

    def seek_pts(self, index: int) -> int:
        """A pts half a frame before frame ``index``, so rounding in the muxer cannot put the target past it."""
        return max(self.start, self.start + math.floor((index - Fraction(1, 2)) * self.ticks_per_frame))


class _ForwardDecoder:
    """Decodes one stream forward from seek points, mapping every frame to its index."""

    def __init__(self, container: Any, stream: Any, metadata: VideoMetadata, deadline: _Deadline) -> None:
        self.container, self.stream, self.deadline, self.name = container, stream, deadline, metadata.source
        self.clock = _FrameClock(stream, _frame_rate(stream, metadata.source))
        self._frames: Iterator[Any] | None = None
        self._pending: list[tuple[int, Any]] = []  # frames decoded while locating a seek, not yet consumed
        self.last_index = -1  # index of the last frame handed out since the last seek (-1: nothing decoded yet)
        self.last_keyframe = -1  # index of the last keyframe decoded since the last seek
        self.keyframe_interval: int | None = None  # distance between two keyframes decoded in one run
        # Do not seek for gaps shorter than this (frames); raised when a seek lands on a keyframe already passed.
        self.min_seek_gap = max(1, round(_RESEEK_GAP_SECONDS * metadata.fps))
        self.decoded = 0  # frames decoded in total (for tests and benchmarks)
        self.seeks = 0

    @property
    def started(self) -> bool:
        return self._frames is not None

    def worth_seeking(self, target: int) -> bool:
        """Whether a new seek reaches ``target`` with less decoding than going on from ``last_index``."""
        if self.keyframe_interval is not None and self.last_keyframe >= 0:
            return target >= self.last_keyframe + self.keyframe_interval  # past the next keyframe
        return target - self.last_index > self.min_seek_gap

    def seek(self, target: int) -> None:
        """Seek so that the next frame handed out has index ``<= target`` (backing off if the demuxer overshoots)."""
        previous = self.last_index
        back = 0
        while True:
            seek_index = max(0, target - back)
            self.container.seek(self.clock.seek_pts(seek_index), stream=self.stream, backward=True)
            self.seeks += 1
            self._frames = self._decode()
            self._pending = []
            self.last_index = -1
            first = next(self._frames, None)
            if first is None:
                return  # nothing after this point: the caller reports the missing frames
            self._pending = [first]
            # Demuxers seek on decode timestamps; a keyframe whose dts <= target < pts overshoots (B-frames).
            if first[0] <= target or seek_index == 0:
                break
            back = max(1, 2 * back)
        if previous >= 0 and self._pending[0][0] <= previous and self.keyframe_interval is None:
            # Landed on a keyframe already passed: the GOP is longer than this gap, do not try such gaps again.
            self.min_seek_gap = max(self.min_seek_gap, target - self._pending[0][0] + 1)

    def frames(self) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, av.VideoFrame)`` forward from the current position."""
        if self._frames is None:
            raise RuntimeError("seek() before decoding")
        while self._pending or self._frames is not None:
            if self._pending:
                item = self._pending.pop(0)
            else:
                item = next(self._frames, None)
                if item is None:
                    return
            self.last_index = item[0]
            yield item

    def _decode(self) -> Iterator[tuple[int, Any]]:
        index = -1
        self.last_keyframe = -1
        try:
            for frame in self.container.decode(self.stream):
                self.decoded += 1
                if self.decoded % _DEADLINE_CHECK_EVERY == 0:
                    self.deadline.check()
                # pts can be missing in raw streams: the frame after the previous one then.
                index = self.clock.index(frame.pts) if frame.pts is not None else index + 1
                if frame.key_frame:
                    if 0 <= self.last_keyframe < index:
                        self.keyframe_interval = index - self.last_keyframe
                    self.last_keyframe = index
                yield index, frame
        except av.ExitError as error:
            raise VideoDecodeError(f"{self.name}: decoding timed out after {self.deadline.timeout} s") from error
        except av.FFmpegError as error:
            where = f"after frame {index}" if index >= 0 else "at the first frame after a seek"
            raise VideoDecodeError(
                f"{self.name}: decoding failed {where} (FFmpeg: {_ffmpeg_reason(error)}); "
                "the file may be truncated or corrupt"
            ) from error


def _to_rgb(frame: Any) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def _decode_wanted(decoder: _ForwardDecoder, wanted: list[int], reseek: bool) -> dict[int, np.ndarray]:
    """Decode the sorted, distinct ``wanted`` frames; returns ``{index: (H, W, 3) uint8}`` (missing ones absent)."""
    found: dict[int, np.ndarray] = {}
    position = 0
    while position < len(wanted):
        target = wanted[position]
        if not decoder.started or (reseek and decoder.worth_seeking(target)):
            decoder.seek(target)
        previous: tuple[int, Any] | None = None
        reached = False
        for index, frame in decoder.frames():
            # Keep every wanted frame decoded on the way (consecutive targets need no new seek).
            while position < len(wanted) and wanted[position] < index:
                # The stream skipped this index (variable frame rate): the frame on screen then is the previous one.
                found[wanted[position]] = _to_rgb(previous[1] if previous is not None else frame)
                position += 1
            if position < len(wanted) and wanted[position] == index:
                found[index] = _to_rgb(frame)
                position += 1
            previous = (index, frame)
            if position >= len(wanted) or wanted[position] > target:
                reached = True
                break
        if not reached:
            break  # end of stream: the remaining frames cannot be decoded
    return found


def read_frames(
    src: VideoSource,
    indices: Sequence[int],
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    reseek: bool = True,
) -> np.ndarray:
    """Decode the frames at ``indices``: the same pixels as a full sequential decode, at a fraction of its cost.

    Seeks to the keyframe before the first wanted frame and decodes forward only up to the last wanted one, holding
    just the wanted frames; when the next wanted frame lies past the next keyframe it seeks again.

    Args:
        src: path, bytes, binary file-like object (put back at its position afterwards), or decoded frames:
            ``np.ndarray`` / ``torch.Tensor`` ``(T, H, W, 3)`` or ``(T, 3, H, W)`` uint8, list of PIL images.
        indices: frame indices in ``[0, num_frames)``, in any order, duplicates allowed.
        timeout: seconds before a :class:`VideoDecodeError` is raised; ``None`` for no limit.
        reseek: seek again for distant frames (``False`` decodes forward from the first seek; for benchmarks).

    Returns:
        `np.ndarray` uint8 of shape ``(len(indices), H, W, 3)``, RGB, row ``i`` the frame at ``indices[i]``.

    Raises:
        VideoNotFoundError: the path does not exist.
        FrameIndexError: an index is outside ``[0, num_frames)`` (the message gives the frame count).
        VideoDecodeError: empty, corrupt or truncated (a wanted frame cannot be decoded), no video stream, timeout.
    """
    name = describe_source(src)
    if _is_decoded(src):
        decoded = _DecodedFrames(src, name)
        return decoded.take(_check_indices(indices, decoded.num_frames, name))
    deadline = _Deadline(timeout, name)
    with _open_video(src, name, deadline) as (container, stream):
        metadata = _container_metadata(container, stream, name, deadline)
        checked = _check_indices(indices, metadata.num_frames, name)
        if not checked:
            return np.empty((0, metadata.height, metadata.width, 3), dtype=np.uint8)
        wanted = sorted(set(checked))
        decoder = _ForwardDecoder(container, stream, metadata, deadline)
        found = _decode_wanted(decoder, wanted, reseek)
    missing = [index for index in wanted if index not in found]
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise VideoDecodeError(
            f"{name}: frames [{shown}] cannot be decoded: the data ends before them although the container lists "
            f"{metadata.num_frames} frames (truncated or corrupt file?)"
        )
    return np.stack([found[index] for index in checked])
