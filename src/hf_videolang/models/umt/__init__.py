"""UMT: Unmasked Teacher (Li et al., ICCV 2023)."""

from .configuration_umt import UMT_PRESETS, UmtConfig, UmtVisionConfig
from .modeling_umt import (
    UmtForPreTraining,
    UmtForPreTrainingOutput,
    UmtForVideoClassification,
    UmtForVideoQuestionAnswering,
    UmtForVideoTextRetrieval,
    UmtModel,
    UmtOutput,
    UmtPreTrainedModel,
    UmtTeacher,
    UmtTeacherOutput,
    UmtVideoClassificationOutput,
    UmtVideoQuestionAnsweringOutput,
    UmtVideoTextRetrievalOutput,
    UmtVisionModel,
    UmtVisionModelOutput,
    gather_visible_tokens,
)
from .processing_umt import UmtProcessor

__all__ = [
    "UMT_PRESETS",
    "UmtConfig",
    "UmtForPreTraining",
    "UmtForPreTrainingOutput",
    "UmtForVideoClassification",
    "UmtForVideoQuestionAnswering",
    "UmtForVideoTextRetrieval",
    "UmtModel",
    "UmtOutput",
    "UmtPreTrainedModel",
    "UmtProcessor",
    "UmtTeacher",
    "UmtTeacherOutput",
    "UmtVisionConfig",
    "UmtVisionModel",
    "UmtVideoClassificationOutput",
    "UmtVideoQuestionAnsweringOutput",
    "UmtVideoTextRetrievalOutput",
    "UmtVisionModelOutput",
    "gather_visible_tokens",
]
