"""E-ViLM: Efficient Video-Language Model via Masked Video Modeling with Semantic Vector-Quantized Tokenizer."""

from .configuration_evilm import EVILM_PRESETS, EvilmConfig
from .modeling_evilm import (
    EvilmForPreTraining,
    EvilmForPreTrainingOutput,
    EvilmForVideoClassification,
    EvilmForVideoClassificationOutput,
    EvilmForVideoQuestionAnswering,
    EvilmForVideoQuestionAnsweringOutput,
    EvilmForVideoTextRetrieval,
    EvilmForVideoTextRetrievalOutput,
    EvilmModel,
    EvilmModelOutput,
    EvilmPreTrainedModel,
    codes_on_video_grid,
    mismatched_caption_index,
    zero_masked_regions,
)
from .processing_evilm import EvilmProcessor, TruncatedVocabulary, truncate_vocabulary

__all__ = [
    "EVILM_PRESETS",
    "EvilmConfig",
    "EvilmForPreTraining",
    "EvilmForPreTrainingOutput",
    "EvilmForVideoClassification",
    "EvilmForVideoClassificationOutput",
    "EvilmForVideoQuestionAnswering",
    "EvilmForVideoQuestionAnsweringOutput",
    "EvilmForVideoTextRetrieval",
    "EvilmForVideoTextRetrievalOutput",
    "EvilmModel",
    "EvilmModelOutput",
    "EvilmPreTrainedModel",
    "EvilmProcessor",
    "TruncatedVocabulary",
    "truncate_vocabulary",
    "codes_on_video_grid",
    "mismatched_caption_index",
    "zero_masked_regions",
]
