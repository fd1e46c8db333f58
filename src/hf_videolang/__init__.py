"""hf-videolang: efficient video-language models for the Hugging Face ecosystem.

Importing the package registers every configuration, model, processor and the ``video-question-answering``
pipeline with transformers' Auto classes.
"""

__version__ = "0.1.0"

from .errors import EmptyTextError, VideoDecodeError, VideoError, VideoNotFoundError, VideoTooShortError
from .registration import register_all

register_all()

__all__ = [
    "EmptyTextError",
    "VideoDecodeError",
    "VideoError",
    "VideoNotFoundError",
    "VideoTooShortError",
    "__version__",
]
