"""Encoding frames to H.264 mp4 with PyAV (used by the built-in corpus, tests and benchmarks)."""

from __future__ import annotations

import os
from typing import Sequence

import av
import numpy as np


def write_video(path: str | os.PathLike, frames: np.ndarray | Sequence[np.ndarray], fps: int = 8,
                codec: str = "libx264", crf: int = 23, gop_size: int | None = None) -> str:
    """Write RGB uint8 frames ``(T, H, W, 3)`` to ``path`` as a playable H.264 mp4 (yuv420p).

    Width and height must be even (a yuv420p requirement); ``gop_size`` sets the keyframe interval
    (default: 2 seconds of video), which is what makes seeking in :func:`read_frames` cheap.
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
    with av.open(path, mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # One encoder thread: the output is then byte-identical on every machine, and no FFmpeg thread pool is
        # left for a forked DataLoader worker to tear down (which hangs or crashes the child).
        stream.options = {"crf": str(crf), "threads": "1"}
        stream.codec_context.thread_count = 1
        stream.codec_context.gop_size = gop_size or 2 * fps
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
