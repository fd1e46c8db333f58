"""EdgeNeXt (Maaz et al., 2022): the mobile CNN-Transformer that E-ViLM encodes each frame with."""

from .configuration_edgenext import EDGENEXT_PRESETS, EdgeNextConfig
from .modeling_edgenext import (
    EdgeNextConversionReport,
    EdgeNextForImageClassification,
    EdgeNextImageClassifierOutput,
    EdgeNextModel,
    EdgeNextModelOutput,
    EdgeNextPreTrainedModel,
    convert_edgenext_state_dict,
)

__all__ = [
    "EDGENEXT_PRESETS",
    "EdgeNextConfig",
    "EdgeNextConversionReport",
    "EdgeNextForImageClassification",
    "EdgeNextImageClassifierOutput",
    "EdgeNextModel",
    "EdgeNextModelOutput",
    "EdgeNextPreTrainedModel",
    "convert_edgenext_state_dict",
]
