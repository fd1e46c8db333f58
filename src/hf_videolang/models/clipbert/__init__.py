"""ClipBERT: Less is More: ClipBERT for Video-and-Language Learning via Sparse Sampling (Lei et al., 2021)."""

from .configuration_clipbert import CLIP_AGGREGATIONS, CLIPBERT_PRESETS, ClipBertConfig
from .modeling_clipbert import (
    ClipBertClipScoresOutput,
    ClipBertForPreTraining,
    ClipBertForPreTrainingOutput,
    ClipBertForVideoQuestionAnswering,
    ClipBertForVideoQuestionAnsweringOutput,
    ClipBertForVideoTextRetrieval,
    ClipBertForVideoTextRetrievalOutput,
    ClipBertGridEncoder,
    ClipBertModel,
    ClipBertModelOutput,
    ClipBertPreTrainedModel,
    ClipBertVisualEmbeddings,
    aggregate_clip_scores,
    sample_feature_pixels,
    split_clips,
)
from .processing_clipbert import ClipBertProcessor

__all__ = [
    "CLIPBERT_PRESETS",
    "CLIP_AGGREGATIONS",
    "ClipBertClipScoresOutput",
    "ClipBertConfig",
    "ClipBertForPreTraining",
    "ClipBertForPreTrainingOutput",
    "ClipBertForVideoQuestionAnswering",
    "ClipBertForVideoQuestionAnsweringOutput",
    "ClipBertForVideoTextRetrieval",
    "ClipBertForVideoTextRetrievalOutput",
    "ClipBertGridEncoder",
    "ClipBertModel",
    "ClipBertModelOutput",
    "ClipBertPreTrainedModel",
    "ClipBertProcessor",
    "ClipBertVisualEmbeddings",
    "aggregate_clip_scores",
    "sample_feature_pixels",
    "split_clips",
]
