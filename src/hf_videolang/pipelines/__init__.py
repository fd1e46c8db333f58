"""Pipelines registered with transformers' ``PIPELINE_REGISTRY`` on ``import hf_videolang``."""

from .video_question_answering import VideoQuestionAnsweringPipeline, register_pipeline


def register_pipelines() -> None:
    """Register every hf-videolang pipeline with transformers (idempotent)."""
    register_pipeline()


__all__ = ["VideoQuestionAnsweringPipeline", "register_pipelines"]
