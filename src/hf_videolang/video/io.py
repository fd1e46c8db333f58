"""Reading video: container metadata and random access to frames with bounded memory and time.

Frames are addressed by presentation timestamp (``pts``), never through the average frame rate. Once per file
(cached by path, size and modification time) :func:`read_frames` demuxes every packet of the video stream without
decoding it, which gives the presentation order of all frames, the decode position of each and the keyframes. Frame
``i`` is the frame with the ``i``-th smallest ``pts``: exactly the ``i``-th frame of a full sequential decode, for
constant or variable frame rate, B-frames, open GOPs, MPEG-TS and timestamp gaps alike.

To decode frame ``i`` the reader starts at the last keyframe (in decode order) at or before its packet whose own
``pts`` is not after it, seeks there (stepping back when a demuxer lands late, e.g. MPEG-TS, which seeks on bytes),
drops packets until that very keyframe and decodes forward only until the wanted frames of that run have come out.
Frames that are not returned are not converted to RGB, and non-reference frames that are not returned are not
decoded at all. Runs of far-apart frames (different GOPs) decode in parallel threads, each on its own container.
Every decoded frame is matched by its ``pts``; a wanted frame that does not come out is decoded again from the start
of the stream, and if it still does not, a :class:`~hf_videolang.errors.VideoDecodeError` naming the file is raised.
No frame is ever substituted by a neighbour.

Files whose timestamps cannot address frames (raw elementary streams such as ``.h264``, missing or repeated
timestamps) are read sequentially from the start, frames counted in decoding order. Files that do not start on a
keyframe, or whose container frame count disagrees with the packets, are indexed once by a full decode (cached).

Rotation metadata (the display matrix of phone videos) is applied, so frames come out as they are shown. JPEG and
PNG images read as 1-frame videos (EXIF orientation applied).

Memory: frames larger than ``max_pixels`` are refused before anything is decoded; ``downscale_to`` decodes large
frames at a reduced size with FFmpeg's scaler (before any float conversion happens downstream); at most
``max_frames`` frames are returned by one call.

Sources: a path (``str`` / ``os.PathLike``; colons in names are fine), ``bytes``, a binary file-like object
(seekable or not), or frames that are already decoded (``np.ndarray`` / ``torch.Tensor`` ``(T, H, W, 3)`` or
``(T, 3, H, W)`` uint8, a list of PIL images or of arrays). Every problem raises a
:class:`~hf_videolang.errors.VideoError` that names the source and the problem.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import math
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, BinaryIO

import av
import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import VideoDecodeError, VideoError, VideoNotFoundError, VideoTooLargeError

__all__ = [
    "DEFAULT_MAX_FRAMES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_TIMEOUT",
    "DecodeStats",
    "FrameIndexError",
    "VideoMetadata",
    "VideoSource",
    "clear_index_cache",
    "describe_source",
    "last_decode_stats",
    "read_frames",
    "read_video_metadata",
]

VideoSource = (
    str | os.PathLike | bytes | bytearray | memoryview | BinaryIO | np.ndarray | torch.Tensor
    | Sequence[Image.Image] | Sequence[np.ndarray]
)

DEFAULT_TIMEOUT = 60.0
"""Seconds one :func:`read_video_metadata` / :func:`read_frames` call may take before it raises."""

DEFAULT_MAX_PIXELS = 8192 * 8192
"""Largest frame (width x height, as stored) decoded by default; larger ones raise :class:`VideoTooLargeError`."""

DEFAULT_MAX_FRAMES = 4096
"""Most frames one :func:`read_frames` call returns by default (4096 frames of 640x360 RGB are 2.8 GB)."""

# Frames decoded between two deadline checks; small enough to stop a slow decode promptly.
_DEADLINE_CHECK_EVERY = 8
# A run of wanted frames goes on decoding into the next GOP rather than seeking when the next keyframe is at most
# this many packets past where the run already decodes (a seek and a fresh container cost about that much).
_MERGE_PACKETS = 2
# Parallel decoding threads for runs in different GOPs (each one decoder thread, its own container).
_MAX_THREADS = 4
_INDEX_CACHE_SIZE = 256
_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")


@dataclass(frozen=True)
class VideoMetadata:
    """What the stream holds, from its packets (nothing decoded but the first frame).

    Attributes:
        num_frames: number of frames; valid indices are ``0 .. num_frames - 1``.
        fps: mean frame rate over the presentation timestamps (the nominal rate for one frame); ``0.0`` when
            unknown (images, frames given already decoded).
        duration: seconds; ``0.0`` when unknown.
        width, height: frame size in pixels as displayed (after rotation metadata), before any ``downscale_to``.
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



# Non-seekable file objects are read once; the bytes are kept while the object lives, so that metadata and frames
# can both be read from it (the processor and the pipeline make two calls).
_UNSEEKABLE_BYTES: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()


def _seekable(file: Any) -> bool:
    try:
        return bool(file.seekable())
    except (AttributeError, OSError, ValueError):
        return False


class _Source:
    """A compressed source that can be opened any number of times (one demuxing pass each)."""

    def __init__(self, src: Any, name: str) -> None:
        self.name = name
        self._path: str | None = None
        self._data: bytes | None = None
        self._file: Any = None
        self._file_start = 0
        if isinstance(src, (str, os.PathLike)):
            path = os.fspath(src)
            if not os.path.exists(path):
                raise VideoNotFoundError(f"{name}: no such file")
            if os.path.isdir(path):
                raise VideoDecodeError(f"{name}: is a directory, not a video file")
            stat = os.stat(path)
            if stat.st_size == 0:
                raise VideoDecodeError(f"{name}: the file is empty (0 bytes)")
            # An absolute path never reads as an FFmpeg protocol ("10:00.mp4" would be protocol "10").
            self._path = os.path.abspath(path)
            self.cache_key: Any = ("path", self._path, stat.st_size, stat.st_mtime_ns, stat.st_ino)
        elif isinstance(src, (bytes, bytearray, memoryview)):
            self._set_data(bytes(src), "the video is empty (0 bytes)")
        elif hasattr(src, "read"):
            if _seekable(src):
                self._file, self._file_start = src, src.tell()
                self.cache_key = None
            else:
                data = _UNSEEKABLE_BYTES.get(src) if _weakrefable(src) else None
                if data is None:
                    data = src.read()
                    if not isinstance(data, bytes):
                        raise TypeError(f"{name}: the file object must be opened in binary mode")
                    if _weakrefable(src):
                        _UNSEEKABLE_BYTES[src] = data
                self._set_data(data, "the stream gives no bytes (empty, or already read to the end)")
        else:
            raise TypeError(
                f"cannot read a video from {type(src).__name__}: pass a path, bytes, a binary file-like object, "
                "an array/tensor (T, H, W, 3) uint8, or a list of PIL images"
            )

    def _set_data(self, data: bytes, empty_message: str) -> None:
        if not data:
            raise VideoDecodeError(f"{self.name}: {empty_message}")
        self._data = data
        self.cache_key = ("bytes", len(data), hashlib.blake2b(data, digest_size=16).digest())

    @property
    def parallel(self) -> bool:
        """Whether several containers may read it at once (a shared file object cannot)."""
        return self._file is None

    def head(self, size: int) -> bytes:
        if self._path is not None:
            with open(self._path, "rb") as file:
                return file.read(size)
        if self._data is not None:
            return self._data[:size]
        self._file.seek(self._file_start)
        head = self._file.read(size)
        self._file.seek(self._file_start)
        return head

    def binary(self) -> Any:
        """A fresh binary file object (images)."""
        if self._path is not None:
            return open(self._path, "rb")
        if self._data is not None:
            return io.BytesIO(self._data)
        self._file.seek(self._file_start)
        return self._file

    def restore(self) -> None:
        if self._file is not None:
            self._file.seek(self._file_start)

    @contextmanager
    def open(self, deadline: _Deadline) -> Iterator[tuple[Any, Any]]:
        """A fresh container at the start of the stream and its first video stream; FFmpeg errors become
        :class:`VideoDecodeError`."""
        if self._path is not None:
            file: Any = self._path
        elif self._data is not None:
            file = io.BytesIO(self._data)
        else:
            self._file.seek(self._file_start)
            file = self._file
        try:
            # `timeout` bounds each blocking FFmpeg call; the deadline bounds the whole call between them.
            with av.open(file, mode="r", timeout=deadline.timeout) as container:
                streams = container.streams.video
                if not streams:
                    found = ", ".join(f"{s.type}" for s in container.streams) or "no streams"
                    raise VideoDecodeError(f"{self.name}: has no video stream (found: {found})")
                stream = streams[0]
                # One decoding thread: FFmpeg's thread pools break fork-based DataLoader workers (a child that
                # frees a parent's codec context waits forever on the parent's threads).
                stream.codec_context.thread_count = 1
                yield container, stream
        except av.ExitError as error:
            raise VideoDecodeError(f"{self.name}: decoding timed out after {deadline.timeout} s") from error
        except av.FFmpegError as error:
            raise VideoDecodeError(
                f"{self.name}: cannot be read as a video: not a media container, or truncated or corrupt "
                f"(FFmpeg: {_ffmpeg_reason(error)})"
            ) from error


def _weakrefable(obj: Any) -> bool:
    try:
        weakref.ref(obj)
        return True
    except TypeError:
        return False


def _ffmpeg_reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


# ------------------------------------------------------------------------------------------------------ frame index


@dataclass
class _FrameIndex:
    """Where every frame of one stream is: built once per file from its packets, cached.

    ``mode`` is ``"pts"`` (frames addressed by timestamp, seeking allowed) or ``"sequential"`` (decode from the
    start, frames counted in output order: raw streams, missing or repeated timestamps).
    """

    mode: str
    num_frames: int
    fps: float
    duration: float
    width: int  # as stored (before rotation)
    height: int
    rotation: int  # counter-clockwise degrees, a multiple of 90
    header_frames: int = 0
    frame_pts: list[int] = field(default_factory=list)  # presentation order ("pts" mode)
    packet_pos: dict[int, int] = field(default_factory=dict)  # pts -> decode position
    key_pos: list[int] = field(default_factory=list)  # decode positions of keyframes, increasing
    key_pts: list[int] = field(default_factory=list)
    key_ts: list[int] = field(default_factory=list)  # the timestamp to seek to (dts when known)
    first_ts: int = 0

    @property
    def displayed_size(self) -> tuple[int, int]:
        """(width, height) as shown."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)

    def metadata(self, name: str) -> VideoMetadata:
        width, height = self.displayed_size
        return VideoMetadata(self.num_frames, self.fps, self.duration, width, height, name)

    def start_key(self, pts: int) -> int:
        """Index into ``key_*`` of the keyframe a decode must start from to output the frame at ``pts``."""
        position = self.packet_pos[pts]
        k = bisect.bisect_right(self.key_pos, position) - 1
        # Leading pictures of an open GOP (pts before their keyframe's) need the previous GOP's references.
        while k > 0 and self.key_pts[k] > pts:
            k -= 1
        return max(k, 0)


_INDEX_CACHE: OrderedDict[Any, _FrameIndex] = OrderedDict()
_INDEX_LOCK = threading.Lock()


def clear_index_cache() -> None:
    """Forget every cached frame index (they are keyed by path, size, mtime and inode, so this is rarely needed)."""
    with _INDEX_LOCK:
        _INDEX_CACHE.clear()


def _frame_index(source: _Source, deadline: _Deadline) -> _FrameIndex:
    key = source.cache_key
    if key is not None:
        with _INDEX_LOCK:
            cached = _INDEX_CACHE.get(key)
            if cached is not None:
                _INDEX_CACHE.move_to_end(key)
                return cached
    index = _build_index(source, deadline)
    if key is not None:
        with _INDEX_LOCK:
            _INDEX_CACHE[key] = index
            while len(_INDEX_CACHE) > _INDEX_CACHE_SIZE:
                _INDEX_CACHE.popitem(last=False)
    return index


def _rotation(frame: Any) -> int:
    try:
        degrees = float(frame.rotation or 0)
    except (AttributeError, TypeError, ValueError):
        return 0
    return int(round(degrees / 90.0)) % 4 * 90


def _rate_and_duration(pts: list[int], time_base: Fraction, stream: Any, container: Any) -> tuple[float, float]:
    if len(pts) >= 2:
        span = (pts[-1] - pts[0]) * time_base
        if span > 0:
            rate = Fraction(len(pts) - 1) / span
            return float(rate), float(span + span / (len(pts) - 1))
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate), float(len(pts) / Fraction(rate)) if pts else 0.0
    if container.duration:
        return 0.0, container.duration / av.time_base
    return 0.0, 0.0


def _build_index(source: _Source, deadline: _Deadline) -> _FrameIndex:
    packets: list[tuple[int | None, int | None, bool]] = []  # (pts, dts, keyframe) in decode order
    rotation: int | None = None
    with source.open(deadline) as (container, stream):
        context = stream.codec_context
        width, height = int(context.width), int(context.height)
        time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90000)
        header_frames = int(stream.frames or 0)
        for packet in container.demux(stream):
            if packet.size == 0:  # the flush packet at the end
                continue
            packets.append((packet.pts, packet.dts, bool(packet.is_keyframe)))
            if len(packets) % 256 == 0:
                deadline.check()
            if rotation is None:  # decode up to the first frame: its display matrix, its true size
                try:
                    for frame in context.decode(packet):
                        rotation, width, height = _rotation(frame), frame.width, frame.height
                        context.skip_frame = "ALL"  # nothing else is decoded
                        break
                except av.FFmpegError:
                    pass  # a damaged first packet: the decode proper reports what cannot be decoded
        if not packets:
            raise VideoDecodeError(f"{source.name}: the video stream has no frames")
        rate_stream = stream
        pts = [p for p, _, _ in packets]
        timestamps_usable = all(p is not None for p in pts) and len(set(pts)) == len(pts)
        if not timestamps_usable:
            rate, duration = _rate_and_duration([], time_base, rate_stream, container)
            if rate and not duration:
                duration = len(packets) / rate
            return _FrameIndex("sequential", len(packets), rate, duration, width, height, rotation or 0,
                               header_frames)
        ordered = sorted(pts)
        rate, duration = _rate_and_duration(ordered, time_base, rate_stream, container)
    index = _FrameIndex("pts", len(packets), rate, duration, width, height, rotation or 0, header_frames)
    index.frame_pts = ordered
    index.packet_pos = {p: position for position, p in enumerate(pts)}
    for position, (p, d, key) in enumerate(packets):
        if key:
            index.key_pos.append(position)
            index.key_pts.append(p)
            index.key_ts.append(d if d is not None else p)
    first = packets[0]
    index.first_ts = min(t for t in (first[0], first[1]) if t is not None)
    trusted = (
        index.key_pos[:1] == [0]  # starts on a keyframe
        and ordered[0] >= index.key_pts[0]  # no leading pictures without references
        and (header_frames in (0, len(packets)))  # the container's count agrees (edit lists, truncation)
    )
    if not trusted:
        _index_by_decoding(source, index, deadline)
    return index


def _index_by_decoding(source: _Source, index: _FrameIndex, deadline: _Deadline) -> None:
    """Replace the frame list by the timestamps a full decode outputs (files that do not start on a keyframe...)."""
    output: list[int | None] = []
    with source.open(deadline) as (container, stream):
        try:
            for frame in container.decode(stream):
                output.append(frame.pts)
                if len(output) % _DEADLINE_CHECK_EVERY == 0:
                    deadline.check()
        except av.FFmpegError:
            pass  # the frames before the damage are the ones a full decode gives
    if not output:
        raise VideoDecodeError(f"{source.name}: no frame of the video can be decoded (truncated or corrupt?)")
    if any(p is None or p not in index.packet_pos for p in output) or len(set(output)) != len(output):
        index.mode, index.frame_pts = "sequential", []
    else:
        index.frame_pts = sorted(output)  # type: ignore[arg-type]
    index.num_frames = len(output)


# ---------------------------------------------------------------------------------------------------------- images


def _is_image(source: _Source) -> bool:
    head = source.head(8)
    return any(head.startswith(magic) for magic in _IMAGE_MAGIC)


def _read_image(source: _Source, count: int, max_pixels: int, downscale_to: int | None) -> np.ndarray:
    try:
        image = Image.open(source.binary())
        _check_pixels(source.name, image.width, image.height, max_pixels)
        if downscale_to is not None and image.format == "JPEG":
            image.draft("RGB", _scaled_size(image.width, image.height, downscale_to))  # DCT scaling: less memory
        image = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise VideoDecodeError(f"{source.name}: cannot be read as an image ({error})") from error
    finally:
        source.restore()
    if downscale_to is not None:
        size = _scaled_size(image.width, image.height, downscale_to)
        if size != image.size:
            image = image.resize(size, Image.Resampling.BOX)
    frame = np.asarray(image)
    return np.repeat(frame[None], count, axis=0)


def _image_metadata(source: _Source) -> VideoMetadata:
    try:
        image = Image.open(source.binary())
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
    except (OSError, ValueError) as error:
        raise VideoDecodeError(f"{source.name}: cannot be read as an image ({error})") from error
    finally:
        source.restore()
    if orientation in (5, 6, 7, 8):  # EXIF orientations that swap the axes
        width, height = height, width
    return VideoMetadata(1, 0.0, 0.0, width, height, source.name)


# ---------------------------------------------------------------------------------------------------------- limits


def _check_pixels(name: str, width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise VideoTooLargeError(
            f"{name}: frames are {width}x{height} = {width * height} pixels, more than the limit of {max_pixels}; "
            "pass max_pixels=None (or a larger number) to read_frames to decode them anyway"
        )


def _scaled_size(width: int, height: int, downscale_to: int | None) -> tuple[int, int]:
    """(width, height) with the short side at most ``downscale_to``, aspect ratio kept."""
    short = min(width, height)
    if downscale_to is None or short <= downscale_to:
        return width, height
    scale = downscale_to / short
    return max(1, round(width * scale)), max(1, round(height * scale))


def read_video_metadata(src: VideoSource, *, timeout: float | None = DEFAULT_TIMEOUT) -> VideoMetadata:
    """Frame count, fps, duration and size of a video, from its packets (only the first frame is decoded).

    The frame index built here is cached per file, so the :func:`read_frames` that usually follows does not demux
    again. JPEG and PNG images are 1-frame videos (``fps`` and ``duration`` ``0.0``).

    Args:
        src: path, bytes, binary file-like object (read, then put back at its position; a non-seekable one is read
            once and kept while it lives), or decoded frames (``fps`` and ``duration`` are then ``0.0``: unknown).
        timeout: seconds before a :class:`VideoDecodeError` is raised; ``None`` for no limit.

    Raises:
        VideoNotFoundError: the path does not exist.
        VideoDecodeError: empty, corrupt, not a media container, no video stream, or timed out.
    """
    name = describe_source(src)
    if _is_decoded(src):
        return _DecodedFrames(src, name).metadata()
    deadline = _Deadline(timeout, name)
    source = _Source(src, name)
    try:
        if _is_image(source):
            return _image_metadata(source)
        return _frame_index(source, deadline).metadata(name)
    finally:
        source.restore()


# ---------------------------------------------------------------------------------------------------------- decoding


def _check_indices(indices: Sequence[int], index: _FrameIndex | int, name: str) -> list[int]:
    num_frames = index if isinstance(index, int) else index.num_frames
    if isinstance(indices, (str, bytes)) or not isinstance(indices, (Sequence, np.ndarray, torch.Tensor)):
        raise TypeError(f"indices must be a sequence of ints, got {type(indices).__name__}")
    checked: list[int] = []
    for value in (indices.tolist() if isinstance(indices, (np.ndarray, torch.Tensor)) else indices):
        try:
            value = int(value.__index__())
        except (AttributeError, TypeError) as error:
            raise TypeError(f"frame indices must be integers, got {value!r}") from error
        if not 0 <= value < num_frames:
            hint = ""
            if not isinstance(index, int) and index.header_frames > num_frames:
                if 0 <= value < index.header_frames:
                    raise VideoDecodeError(
                        f"{name}: frame {value} cannot be decoded: the file holds {num_frames} of the "
                        f"{index.header_frames} frames its container lists (truncated or corrupt file?)"
                    )
                hint = f"; the container lists {index.header_frames}: the file is probably truncated"
            raise FrameIndexError(
                f"{name}: frame index {value} is out of range: the video has {num_frames} frames "
                f"(valid indices 0..{num_frames - 1}){hint}"
            )
        checked.append(value)
    return checked


@dataclass
class DecodeStats:
    """What one :func:`read_frames` call did (read back with :func:`last_decode_stats`; tests and benchmarks)."""

    decoded: int = 0  # frames that came out of the decoder
    runs: int = 0  # independent decode runs (one seek each)
    retries: int = 0  # runs decoded again from the start because a frame did not come out

    def add(self, other: DecodeStats) -> None:
        self.decoded += other.decoded
        self.runs += other.runs
        self.retries += other.retries


_LAST_STATS = threading.local()


def last_decode_stats() -> DecodeStats:
    """The :class:`DecodeStats` of the last :func:`read_frames` call in this thread."""
    return getattr(_LAST_STATS, "value", DecodeStats())


class _Converter:
    """Decoded frame -> RGB uint8 ``(H, W, 3)``: scaled by FFmpeg (area) when asked, then rotated as displayed."""

    def __init__(self, index: _FrameIndex, downscale_to: int | None, name: str) -> None:
        self.name = name
        self.size = (index.width, index.height)
        self.out_size = _scaled_size(index.width, index.height, downscale_to)
        self.turns = index.rotation // 90

    def __call__(self, frame: Any) -> np.ndarray:
        if (frame.width, frame.height) != self.size:
            raise VideoDecodeError(
                f"{self.name}: the frame size changes inside the stream ({self.size[0]}x{self.size[1]} at the "
                f"start, {frame.width}x{frame.height} at pts {frame.pts}); such videos are not supported"
            )
        if self.out_size != self.size:
            width, height = self.out_size
            array = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
        else:
            array = frame.to_ndarray(format="rgb24")
        if self.turns:
            array = np.ascontiguousarray(np.rot90(array, k=self.turns))
        return array


class _Rewind(Exception):
    """Seeking cannot reach the keyframe: decode from the start of the stream instead."""


def _packets_from_key(container: Any, stream: Any, index: _FrameIndex, k: int, deadline: _Deadline) -> Iterator[Any]:
    """Packets in decode order starting exactly at keyframe ``k`` (seek, step back if late, drop until it)."""
    key_pts, key_pos = index.key_pts[k], index.key_pos[k]
    if key_pos == 0:
        yield from container.demux(stream)
        return
    offset = index.key_ts[k]
    step = max(1, round(1 / stream.time_base)) if stream.time_base else 90000  # one second, doubling
    for _ in range(8):
        try:
            container.seek(offset, stream=stream, backward=True)
        except av.FFmpegError as error:
            raise _Rewind from error
        stream.codec_context.flush_buffers()
        demux = container.demux(stream)
        first = next((p for p in demux if p.size), None)
        position = index.packet_pos.get(first.pts) if first is not None else None
        if position is not None and position <= key_pos:
            packet = first
            while packet.pts != key_pts:
                packet = next(demux, None)
                if packet is None or index.packet_pos.get(packet.pts, -1) > key_pos:
                    raise _Rewind  # the keyframe packet is not where the index says
                deadline.check()
            yield packet
            yield from demux
            return
        offset -= step
        step *= 2
        if offset < index.first_ts:
            break
    raise _Rewind


def _decode_run(source: _Source, index: _FrameIndex, k: int, targets: list[int], convert: _Converter,
                deadline: _Deadline, from_start: bool = False) -> tuple[dict[int, np.ndarray], DecodeStats]:
    """Decode the frames at ``targets`` (pts), starting at keyframe ``k``; returns ``{pts: frame}``."""
    stats = DecodeStats(runs=1)
    wanted = set(targets)
    found: dict[int, np.ndarray] = {}
    with source.open(deadline) as (container, stream):
        context = stream.codec_context
        try:
            packets = container.demux(stream) if from_start else _packets_from_key(container, stream, index, k,
                                                                                  deadline)
            # Peek the first packet here so that a failed seek rewinds before anything is decoded.
            packets = iter(packets)
            first = next(packets, None)
        except _Rewind:
            return _decode_run(source, index, k, targets, convert, deadline, from_start=True) if not from_start \
                else (found, stats)
        skip_allowed = not from_start  # the retry from the start decodes everything, to rule the skipping out
        pending: Iterator[Any] = _chain_first(first, packets)
        try:
            for packet in pending:
                data = packet if packet.size else None
                if skip_allowed:
                    # Frames that are not returned and that nothing references need not be decoded at all.
                    context.skip_frame = "DEFAULT" if packet.pts in wanted else "NONREF"
                for frame in context.decode(data):
                    stats.decoded += 1
                    if stats.decoded % _DEADLINE_CHECK_EVERY == 0:
                        deadline.check()
                    if frame.pts in wanted and frame.pts not in found:
                        found[frame.pts] = convert(frame)
                if len(found) == len(wanted):
                    break
            else:
                context.skip_frame = "DEFAULT"
                for frame in context.decode(None):  # drain the decoder's delay at the end of the stream
                    stats.decoded += 1
                    if frame.pts in wanted and frame.pts not in found:
                        found[frame.pts] = convert(frame)
        except av.ExitError as error:
            raise VideoDecodeError(f"{source.name}: decoding timed out after {deadline.timeout} s") from error
        except av.FFmpegError:
            pass  # what decoded before the damage is kept; the caller reports the frames that did not come out
    return found, stats


def _chain_first(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    if first is not None:
        yield first
        yield from rest


def _plan_runs(index: _FrameIndex, wanted: list[int], reseek: bool) -> list[tuple[int, list[int]]]:
    """Group the sorted wanted frame indices into runs: ``(keyframe k, [pts, ...])``, one seek per run."""
    runs: list[tuple[int, list[int]]] = []
    run_end = -1  # last decode position a run reaches
    for frame in wanted:
        pts = index.frame_pts[frame]
        k = index.start_key(pts)
        position = index.packet_pos[pts]
        if runs and (not reseek or index.key_pos[k] <= run_end + _MERGE_PACKETS or k == runs[-1][0]):
            runs[-1][1].append(pts)
            run_end = max(run_end, position)
        else:
            runs.append((k, [pts]))
            run_end = position
    return runs


def _decode_pts_mode(source: _Source, index: _FrameIndex, wanted: list[int], convert: _Converter,
                     deadline: _Deadline, reseek: bool, stats: DecodeStats, threads: int) -> dict[int, np.ndarray]:
    runs = _plan_runs(index, wanted, reseek)
    by_pts: dict[int, np.ndarray] = {}

    def one(run: tuple[int, list[int]]) -> tuple[dict[int, np.ndarray], DecodeStats]:
        k, targets = run
        found, run_stats = _decode_run(source, index, k, targets, convert, deadline)
        if len(found) < len(set(targets)):
            # A wanted frame did not come out (a decoder that skips differently, a seek gone wrong): decode again
            # from the very start, skipping nothing. What still does not come out is reported, never replaced.
            missing = [p for p in targets if p not in found]
            again, retry_stats = _decode_run(source, index, 0, missing, convert, deadline, from_start=True)
            found.update(again)
            run_stats.add(retry_stats)
            run_stats.retries += 1
        return found, run_stats

    workers = min(threads, len(runs)) if source.parallel else 1
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, runs))
    else:
        results = [one(run) for run in runs]
    for found, run_stats in results:
        by_pts.update(found)
        stats.add(run_stats)
    return {frame: by_pts[index.frame_pts[frame]] for frame in wanted if index.frame_pts[frame] in by_pts}


def _decode_sequential(source: _Source, wanted: list[int], convert: _Converter, deadline: _Deadline,
                       stats: DecodeStats) -> dict[int, np.ndarray]:
    """Decode from the start, frame ``i`` being the ``i``-th frame out of the decoder; stop after the last wanted."""
    targets = set(wanted)
    last = wanted[-1]
    found: dict[int, np.ndarray] = {}
    stats.runs += 1
    with source.open(deadline) as (container, stream):
        try:
            for position, frame in enumerate(container.decode(stream)):
                stats.decoded += 1
                if stats.decoded % _DEADLINE_CHECK_EVERY == 0:
                    deadline.check()
                if position in targets:
                    found[position] = convert(frame)
                if position >= last:
                    break
        except av.ExitError as error:
            raise VideoDecodeError(f"{source.name}: decoding timed out after {deadline.timeout} s") from error
        except av.FFmpegError:
            pass
    return found


def read_frames(
    src: VideoSource,
    indices: Sequence[int],
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    reseek: bool = True,
    downscale_to: int | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_frames: int | None = DEFAULT_MAX_FRAMES,
    threads: int | None = None,
) -> np.ndarray:
    """Decode the frames at ``indices``: the same pixels as a full sequential decode, at a fraction of its cost.

    Frame ``i`` is the ``i``-th frame in presentation order (see the module docstring for how it is found).

    Args:
        src: path, bytes, binary file-like object (put back at its position afterwards), a JPEG / PNG image (a
            1-frame video), or decoded frames: ``np.ndarray`` / ``torch.Tensor`` ``(T, H, W, 3)`` or
            ``(T, 3, H, W)`` uint8, list of PIL images.
        indices: frame indices in ``[0, num_frames)``, in any order, duplicates allowed.
        timeout: seconds before a :class:`VideoDecodeError` is raised; ``None`` for no limit.
        reseek: seek again for frames in later GOPs (``False`` decodes forward from the first seek; for benchmarks).
        downscale_to: decode frames whose shorter side is longer than this with that shorter side (aspect kept,
            FFmpeg's area scaler), for callers that resize to a small size anyway; ``None`` keeps the full size.
        max_pixels: refuse (:class:`~hf_videolang.errors.VideoTooLargeError`) frames of more pixels than this, as
            stored, before decoding any; ``None`` for no limit.
        max_frames: refuse calls asking for more frames than this (duplicates count); ``None`` for no limit.
        threads: decoding threads for frames in different GOPs (default: up to 4, at most the CPU count).

    Returns:
        `np.ndarray` uint8 of shape ``(len(indices), H, W, 3)``, RGB, row ``i`` the frame at ``indices[i]``.

    Raises:
        VideoNotFoundError: the path does not exist.
        FrameIndexError: an index is outside ``[0, num_frames)`` (the message gives the frame count).
        VideoTooLargeError: the frames have more than ``max_pixels`` pixels.
        VideoDecodeError: empty, corrupt or truncated (a wanted frame cannot be decoded), no video stream, timeout.
    """
    name = describe_source(src)
    if downscale_to is not None and (isinstance(downscale_to, bool) or not isinstance(downscale_to, int)
                                     or downscale_to < 1):
        raise ValueError(f"downscale_to must be a positive number of pixels or None, got {downscale_to!r}")
    if max_frames is not None and hasattr(indices, "__len__") and len(indices) > max_frames:
        raise VideoError(
            f"{name}: {len(indices)} frames requested, more than max_frames={max_frames}; ask for fewer frames "
            "(duplicates count) or pass a larger max_frames"
        )
    if _is_decoded(src):
        decoded = _DecodedFrames(src, name)
        return decoded.take(_check_indices(indices, decoded.num_frames, name))
    deadline = _Deadline(timeout, name)
    source = _Source(src, name)
    stats = DecodeStats()
    _LAST_STATS.value = stats
    try:
        if _is_image(source):
            checked = _check_indices(indices, 1, name)
            return _read_image(source, len(checked), max_pixels if max_pixels is not None else 2**62, downscale_to)
        index = _frame_index(source, deadline)
        checked = _check_indices(indices, index, name)
        _check_pixels(name, index.width, index.height, max_pixels)
        convert = _Converter(index, downscale_to, name)
        if not checked:
            width, height = convert.out_size
            if convert.turns % 2:
                width, height = height, width
            return np.empty((0, height, width, 3), dtype=np.uint8)
        wanted = sorted(set(checked))
        if threads is None:
            threads = min(_MAX_THREADS, os.cpu_count() or 1)
        if index.mode == "pts":
            found = _decode_pts_mode(source, index, wanted, convert, deadline, reseek, stats, max(1, threads))
        else:
            found = _decode_sequential(source, wanted, convert, deadline, stats)
    finally:
        source.restore()
    missing = [frame for frame in wanted if frame not in found]
    if missing:
        shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        raise VideoDecodeError(
            f"{name}: frames [{shown}] cannot be decoded: the stream lists {index.num_frames} frames but these do "
            "not come out of the decoder (truncated or corrupt file?)"
        )
    return np.stack([found[frame] for frame in checked])
