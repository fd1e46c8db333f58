"""One place that registers hf-videolang with transformers (Auto classes and pipelines)."""

_REGISTERED = False


def _register_models() -> None:
    """Register the configs, models and processors of every method with transformers' Auto classes.

    ``exist_ok=True`` keeps this safe when another copy of a class (e.g. a ``trust_remote_code`` bundle) registered
    the same ``model_type`` first.
    """
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForPreTraining,
        AutoModelForVideoClassification,
        AutoModelForVisualQuestionAnswering,
        AutoProcessor,
    )

    from .models.clipbert import (
        ClipBertConfig,
        ClipBertForPreTraining,
        ClipBertForVideoQuestionAnswering,
        ClipBertModel,
        ClipBertProcessor,
    )
    from .models.mac import MacConfig, MacForVideoTextRetrieval, MacModel, MacProcessor, MacVisionConfig, MacVisionModel
    from .models.umt import (
        UmtConfig,
        UmtForPreTraining,
        UmtForVideoClassification,
        UmtForVideoQuestionAnswering,
        UmtModel,
        UmtProcessor,
        UmtVisionConfig,
        UmtVisionModel,
    )

    AutoConfig.register(UmtConfig.model_type, UmtConfig, exist_ok=True)
    AutoConfig.register(UmtVisionConfig.model_type, UmtVisionConfig, exist_ok=True)
    AutoModel.register(UmtConfig, UmtModel, exist_ok=True)
    AutoModel.register(UmtVisionConfig, UmtVisionModel, exist_ok=True)
    AutoModelForPreTraining.register(UmtConfig, UmtForPreTraining, exist_ok=True)
    AutoModelForVideoClassification.register(UmtConfig, UmtForVideoClassification, exist_ok=True)
    AutoModelForVisualQuestionAnswering.register(UmtConfig, UmtForVideoQuestionAnswering, exist_ok=True)
    AutoProcessor.register(UmtConfig, UmtProcessor, exist_ok=True)

    AutoConfig.register(MacConfig.model_type, MacConfig, exist_ok=True)
    AutoConfig.register(MacVisionConfig.model_type, MacVisionConfig, exist_ok=True)
    AutoModel.register(MacConfig, MacModel, exist_ok=True)
    AutoModel.register(MacVisionConfig, MacVisionModel, exist_ok=True)
    # MAC's pre-training model is its retrieval model (VTC only, MAC §3.3).
    AutoModelForPreTraining.register(MacConfig, MacForVideoTextRetrieval, exist_ok=True)
    AutoProcessor.register(MacConfig, MacProcessor, exist_ok=True)

    AutoConfig.register(ClipBertConfig.model_type, ClipBertConfig, exist_ok=True)
    AutoModel.register(ClipBertConfig, ClipBertModel, exist_ok=True)
    AutoModelForPreTraining.register(ClipBertConfig, ClipBertForPreTraining, exist_ok=True)
    AutoModelForVisualQuestionAnswering.register(ClipBertConfig, ClipBertForVideoQuestionAnswering, exist_ok=True)
    AutoProcessor.register(ClipBertConfig, ClipBertProcessor, exist_ok=True)


def register_all() -> None:
    """Register every config, model, processor and pipeline. Idempotent."""
    global _REGISTERED
    if _REGISTERED:
        return
    from .pipelines import register_pipelines

    _register_models()
    register_pipelines()
    _REGISTERED = True
