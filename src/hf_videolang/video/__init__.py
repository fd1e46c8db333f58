"""Video decoding, frame sampling, transforms and masking: the input path shared by every method.

:func:`to_transformers_video_metadata` / :func:`from_transformers_video_metadata` convert
:class:`~hf_videolang.video.io.VideoMetadata` to and from ``transformers.video_utils.VideoMetadata``.
"""

import gc
import os

# PyAV objects caught in reference cycles (frames, reformatters, codec contexts) own FFmpeg thread pools. If a
# DataLoader worker forks before the cycle collector frees them, the child frees them instead, waits on threads that
# do not exist in the child, and hangs or crashes. Collecting before every fork frees them in the parent.
os.register_at_fork(before=gc.collect)

_IN_MEMORY_SOURCES = ("<array>", "<tensor>", "<list")


def to_transformers_video_metadata(metadata, frames_indices=None):
    """Our :class:`~hf_videolang.video.io.VideoMetadata` as a ``transformers.video_utils.VideoMetadata``.

    Unknown values (``fps`` / ``duration`` of 0 for decoded frames) become None, transformers' "unknown";
    ``video_backend`` is ``"pyav"`` for decoded containers, None for frames given in memory. ``frames_indices``
    (optional) records the frames a sampler picked.
    """
    from transformers.video_utils import VideoMetadata as TransformersVideoMetadata

    in_memory = metadata.source.startswith(_IN_MEMORY_SOURCES)
    return TransformersVideoMetadata(
        total_num_frames=metadata.num_frames,
        fps=metadata.fps or None,
        width=metadata.width,
        height=metadata.height,
        duration=metadata.duration or None,
        video_backend=None if in_memory else "pyav",
        frames_indices=None if frames_indices is None else [int(index) for index in frames_indices],
    )


def from_transformers_video_metadata(metadata, source: str = "<transformers metadata>"):
    """A ``transformers.video_utils.VideoMetadata`` as our :class:`~hf_videolang.video.io.VideoMetadata`.

    transformers' None (unknown) reads as 0, as our metadata of decoded frames writes it; ``source`` names the
    video in error messages. The duration is derived from the frame count and rate when only those are known.
    """
    from .io import VideoMetadata

    if metadata.total_num_frames is None:
        raise ValueError("transformers VideoMetadata has no total_num_frames; the frame samplers need it")
    fps = float(metadata.fps or 0.0)
    duration = float(metadata.duration or (metadata.total_num_frames / fps if fps else 0.0))
    return VideoMetadata(
        num_frames=int(metadata.total_num_frames),
        fps=fps,
        duration=duration,
        width=int(metadata.width or 0),
        height=int(metadata.height or 0),
        source=source,
    )


__all__ = ["from_transformers_video_metadata", "to_transformers_video_metadata"]
