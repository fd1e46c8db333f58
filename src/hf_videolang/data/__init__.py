"""The built-in synthetic corpus and annotation loading (lazy: videos are decoded on access)."""

from .annotations import LazyFrameDecoder, load_annotations, load_answer_list, load_corpus, with_lazy_frames
from .corpus import ShapeVideoSpec, corpus_paths, make_corpus, render_video

__all__ = [
    "LazyFrameDecoder",
    "ShapeVideoSpec",
    "corpus_paths",
    "load_annotations",
    "load_answer_list",
    "load_corpus",
    "make_corpus",
    "render_video",
    "with_lazy_frames",
]
