"""Encoding frames to H.264 mp4 with PyAV (used by the built-in corpus, tests and benchmarks), byte-reproducibly.

The same frames give the same bytes on every run, with the same FFmpeg / x264 build:

- RGB -> YUV 4:2:0 is computed here in integer arithmetic (BT.601, limited range, chroma the mean of each 2x2
  block), not by FFmpeg's scaler, whose SIMD paths differ between CPUs.
- One encoder thread, and x264's macroblock-tree rate control off (``mbtree=0``): with it on, x264 gave different
  bitstreams for the same input from one process to the next (2 of 12 corpus videos, 8 runs; with ``mbtree=0`` or
  ``rc-lookahead=0`` all runs were identical). Quality at the same ``crf`` is a little lower.
- ``bitexact`` flags on the container and the codec: no library version string and no creation time in the file.

A different x264 or FFmpeg build may still encode differently (other versions make other decisions); the decoded
frames of such files then differ by compression noise, not by content.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import av
import numpy as np

__all__ = ["rgb_to_yuv420p", "write_video"]


def rgb_to_yuv420p(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(H, W, 3)`` uint8 RGB -> Y ``(H, W)``, U and V ``(H/2, W/2)`` uint8: BT.601 limited range, in integers."""
    rgb = frame.astype(np.int32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    # The 8-bit fixed-point BT.601 matrix (ITU-R BT.601, as in FFmpeg's reference C code), rounded.
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128

    def subsample(plane: np.ndarray) -> np.ndarray:
        height, width = plane.shape
        blocks = plane.reshape(height // 2, 2, width // 2, 2).sum(axis=(1, 3))
        return ((blocks + 2) >> 2).astype(np.uint8)

    return y.astype(np.uint8), subsample(u), subsample(v)


def _yuv_frame(frame: np.ndarray) -> av.VideoFrame:
    height, width, _ = frame.shape
    out = av.VideoFrame(width, height, "yuv420p")
    for plane, values in zip(out.planes, rgb_to_yuv420p(frame)):
        rows, columns = values.shape
        buffer = np.frombuffer(plane, dtype=np.uint8).reshape(-1, plane.line_size)
        buffer[:rows, :columns] = values
        buffer[:rows, columns:] = values[:, -1:]  # the padding too, so no uninitialized byte reaches the encoder
    return out


def write_video(path: str | os.PathLike, frames: np.ndarray | Sequence[np.ndarray], fps: int = 8,
                codec: str = "libx264", crf: int = 23, gop_size: int | None = None) -> str:
    """Write RGB uint8 frames ``(T, H, W, 3)`` to ``path`` as a playable H.264 mp4 (yuv420p), byte-reproducibly.

    Width and height must be even (a yuv420p requirement); ``gop_size`` sets the keyframe interval
    (default: 2 seconds of video), which is what makes seeking in :func:`~hf_videolang.video.io.read_frames` cheap.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    num_frames, height, width, _ = frames.shape
    if num_frames == 0:
        raise ValueError("cannot write a video with no frames")
    if height % 2 or width % 2:
        raise ValueError(f"H.264 yuv420p needs even sizes, got {width}x{height}")
    path = os.fspath(path)
    with av.open(path, mode="w", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # One encoder thread: also, no FFmpeg thread pool is left for a forked DataLoader worker to tear down
        # (which hangs or crashes the child).
        options = {"crf": str(crf), "threads": "1", "flags": "+bitexact"}
        if codec == "libx264":
            options["x264-params"] = "mbtree=0"
        stream.options = options
        stream.codec_context.thread_count = 1
        stream.codec_context.gop_size = gop_size or 2 * fps
        for frame in frames:
            for packet in stream.encode(_yuv_frame(frame)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
