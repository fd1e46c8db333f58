"""Evaluation: retrieval / QA / multiple-choice metrics and `compute_metrics` builders for `transformers.Trainer`."""

import os as _os

from .metrics import (
    build_mc_compute_metrics,
    build_qa_compute_metrics,
    build_retrieval_compute_metrics,
    chance_retrieval_metrics,
    mc_accuracy,
    normalize_answer,
    qa_accuracy,
    retrieval_metrics,
)

#: Path of the `evaluate` metric module of retrieval: `evaluate.load(VIDEO_TEXT_RETRIEVAL_METRIC_PATH)` (offline).
VIDEO_TEXT_RETRIEVAL_METRIC_PATH = _os.path.join(
    _os.path.dirname(__file__), "evaluate_metrics", "video_text_retrieval", "video_text_retrieval.py"
)

__all__ = [
    "VIDEO_TEXT_RETRIEVAL_METRIC_PATH",
    "build_mc_compute_metrics",
    "build_qa_compute_metrics",
    "build_retrieval_compute_metrics",
    "chance_retrieval_metrics",
    "mc_accuracy",
    "normalize_answer",
    "qa_accuracy",
    "retrieval_metrics",
]
