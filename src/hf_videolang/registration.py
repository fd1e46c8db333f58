"""One place that registers hf-videolang with transformers (Auto classes and pipelines)."""

_REGISTERED = False


def register_all() -> None:
    """Register every config, model, processor and pipeline. Idempotent."""
    global _REGISTERED
    if _REGISTERED:
        return
    from .pipelines import register_pipelines

    register_pipelines()
    _REGISTERED = True
