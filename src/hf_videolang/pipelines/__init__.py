"""Pipelines registered with transformers' ``PIPELINE_REGISTRY`` on ``import hf_videolang``."""


def register_pipelines() -> None:
    try:
        from .video_question_answering import register_pipeline
    except ImportError:  # pipeline module not written yet
        return
    register_pipeline()
