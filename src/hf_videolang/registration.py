"""One place that registers hf-videolang with transformers (Auto classes and pipelines)."""

_REGISTERED = False


def _register_models() -> None:
    """Register the configs, models and processors of every method with transformers' Auto classes.

    ``exist_ok=True`` keeps this safe when another copy of a class (e.g. a ``trust_remote_code`` bundle) registered
    the same ``model_type`` first.
    """
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoModel,
        AutoModelForImageClassification,
        AutoModelForPreTraining,
        AutoModelForVideoClassification,
        AutoModelForVisualQuestionAnswering,
        AutoProcessor,
    )

    from .image_processing_utils import VideoFramesImageProcessor
    from .models.clipbert import (
        ClipBertConfig,
        ClipBertForPreTraining,
        ClipBertForVideoQuestionAnswering,
        ClipBertModel,
        ClipBertProcessor,
    )
    from .models.edgenext import EdgeNextConfig, EdgeNextForImageClassification, EdgeNextModel
    from .models.evilm import (
        EvilmConfig,
        EvilmForPreTraining,
        EvilmForVideoClassification,
        EvilmForVideoQuestionAnswering,
        EvilmModel,
        EvilmProcessor,
    )
    from .models.evilm_tokenizer import EvilmTokenizerConfig, EvilmVideoTokenizer
    from .models.mac import MacConfig, MacForVideoTextRetrieval, MacModel, MacProcessor, MacVisionConfig, MacVisionModel
    from .models.smaug import (
        SmaugConfig,
        SmaugForPreTraining,
        SmaugForVideoQuestionAnswering,
        SmaugModel,
        SmaugProcessor,
        SmaugVisionConfig,
        SmaugVisionModel,
    )
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
    # transformers' video-classification pipeline decodes frames itself and asks AutoImageProcessor for the transform.
    AutoImageProcessor.register(UmtConfig, image_processor_classes={"pil": VideoFramesImageProcessor}, exist_ok=True)

    AutoConfig.register(MacConfig.model_type, MacConfig, exist_ok=True)
    AutoConfig.register(MacVisionConfig.model_type, MacVisionConfig, exist_ok=True)
    AutoModel.register(MacConfig, MacModel, exist_ok=True)
    AutoModel.register(MacVisionConfig, MacVisionModel, exist_ok=True)
    # MAC's pre-training model is its retrieval model (VTC only, MAC §3.3).
    AutoModelForPreTraining.register(MacConfig, MacForVideoTextRetrieval, exist_ok=True)
    AutoProcessor.register(MacConfig, MacProcessor, exist_ok=True)

    AutoConfig.register(EdgeNextConfig.model_type, EdgeNextConfig, exist_ok=True)
    AutoModel.register(EdgeNextConfig, EdgeNextModel, exist_ok=True)
    AutoModelForImageClassification.register(EdgeNextConfig, EdgeNextForImageClassification, exist_ok=True)

    AutoConfig.register(EvilmTokenizerConfig.model_type, EvilmTokenizerConfig, exist_ok=True)
    AutoModel.register(EvilmTokenizerConfig, EvilmVideoTokenizer, exist_ok=True)

    AutoConfig.register(EvilmConfig.model_type, EvilmConfig, exist_ok=True)
    AutoModel.register(EvilmConfig, EvilmModel, exist_ok=True)
    AutoModelForPreTraining.register(EvilmConfig, EvilmForPreTraining, exist_ok=True)
    AutoModelForVideoClassification.register(EvilmConfig, EvilmForVideoClassification, exist_ok=True)
    AutoModelForVisualQuestionAnswering.register(EvilmConfig, EvilmForVideoQuestionAnswering, exist_ok=True)
    AutoProcessor.register(EvilmConfig, EvilmProcessor, exist_ok=True)
    AutoImageProcessor.register(EvilmConfig, image_processor_classes={"pil": VideoFramesImageProcessor}, exist_ok=True)

    AutoConfig.register(SmaugConfig.model_type, SmaugConfig, exist_ok=True)
    AutoConfig.register(SmaugVisionConfig.model_type, SmaugVisionConfig, exist_ok=True)
    AutoModel.register(SmaugConfig, SmaugModel, exist_ok=True)
    AutoModel.register(SmaugVisionConfig, SmaugVisionModel, exist_ok=True)
    AutoModelForPreTraining.register(SmaugConfig, SmaugForPreTraining, exist_ok=True)
    AutoModelForVisualQuestionAnswering.register(SmaugConfig, SmaugForVideoQuestionAnswering, exist_ok=True)
    AutoProcessor.register(SmaugConfig, SmaugProcessor, exist_ok=True)

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
