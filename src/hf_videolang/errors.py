"""Exceptions raised on bad input. Every message names the source and the problem."""


class VideoError(ValueError):
    """Base class of every problem with a video input."""


class VideoNotFoundError(VideoError, FileNotFoundError):
    """The video path does not exist."""


class VideoDecodeError(VideoError):
    """The source is empty, truncated, corrupt, not a media container, or has no video stream."""


class VideoTooShortError(VideoError):
    """The video has fewer frames than asked for and the short-video policy is ``"error"``."""


class EmptyTextError(ValueError):
    """A caption or question is empty or only whitespace."""


class VideoTooLargeError(VideoError):
    """The frames have more pixels than the configured limit (``max_pixels`` of ``read_frames``)."""


class IncompleteCorpusError(ValueError):
    """A corpus folder lacks its completeness marker or files (an interrupted ``make-corpus`` run)."""
