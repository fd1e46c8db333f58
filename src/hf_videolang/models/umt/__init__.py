"""UMT: Unmasked Teacher (Li et al., ICCV 2023)."""

from .configuration_umt import UMT_PRESETS, UmtConfig, UmtVisionConfig
from .modeling_umt import (
    UmtForPreTraining,
    UmtForPreTrainingOutput,
    UmtModel,
    UmtOutput,
    UmtPreTrainedModel,
    UmtTeacher,
    UmtTeacherOutput,
    UmtVisionModel,
    UmtVisionModelOutput,
    gather_visible_tokens,
)

__all__ = [
    "UMT_PRESETS",
    "UmtConfig",
    "UmtForPreTraining",
    "UmtForPreTrainingOutput",
    "UmtModel",
    "UmtOutput",
    "UmtPreTrainedModel",
    "UmtTeacher",
    "UmtTeacherOutput",
    "UmtVisionConfig",
    "UmtVisionModel",
    "UmtVisionModelOutput",
    "gather_visible_tokens",
]
