"""Evaluation: retrieval / QA / multiple-choice metrics and `compute_metrics` builders for `transformers.Trainer`."""

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

__all__ = [
    "build_mc_compute_metrics",
    "build_qa_compute_metrics",
    "build_retrieval_compute_metrics",
    "chance_retrieval_metrics",
    "mc_accuracy",
    "normalize_answer",
    "qa_accuracy",
    "retrieval_metrics",
]
