"""Backward-compatible home of :func:`minilm_path`; the resolver lives in :mod:`hf_videolang.demos.minilm`.

Kept because tests and scripts outside the demos load the offline MiniLM BERT as
``hf_videolang.pretrained.minilm_path()``.
"""

from .demos.minilm import MINILM_HUB_ID, minilm_path

__all__ = ["MINILM_HUB_ID", "minilm_path"]
