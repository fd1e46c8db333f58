"""MAC: Masked Contrastive Pre-Training for Efficient Video-Text Retrieval (Shu et al., 2022)."""

from .configuration_mac import MAC_PRESETS, MacConfig, MacVisionConfig
from .modeling_mac import (
    DividedSpaceTimeAttention,
    MacForVideoTextRetrieval,
    MacForVideoTextRetrievalOutput,
    MacModel,
    MacOutput,
    MacPreTrainedModel,
    MacSpaceTimeBlock,
    MacVisionModel,
    MacVisionModelOutput,
    convert_vit_state_dict,
    resize_temporal_embeddings,
    visible_patch_grid,
    zero_init_temporal_attention,
)
from .processing_mac import MacProcessor

__all__ = [
    "MAC_PRESETS",
    "DividedSpaceTimeAttention",
    "MacConfig",
    "MacForVideoTextRetrieval",
    "MacForVideoTextRetrievalOutput",
    "MacModel",
    "MacOutput",
    "MacPreTrainedModel",
    "MacProcessor",
    "MacSpaceTimeBlock",
    "MacVisionConfig",
    "MacVisionModel",
    "MacVisionModelOutput",
    "convert_vit_state_dict",
    "resize_temporal_embeddings",
    "visible_patch_grid",
    "zero_init_temporal_attention",
]
