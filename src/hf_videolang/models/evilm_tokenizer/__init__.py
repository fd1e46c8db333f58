"""E-ViLM's semantic vector-quantized video tokenizer (E-ViLM §3.3): its own config, trained, saved and loaded alone."""

from .configuration_evilm_tokenizer import EvilmTokenizerConfig
from .modeling_evilm_tokenizer import (
    EvilmTokenizerPreTrainedModel,
    EvilmVectorQuantizer,
    EvilmVectorQuantizerOutput,
    EvilmVideoTokenizer,
    EvilmVideoTokenizerOutput,
    caption_word_targets,
    codebook_utilization,
)

__all__ = [
    "EvilmTokenizerConfig",
    "EvilmTokenizerPreTrainedModel",
    "EvilmVectorQuantizer",
    "EvilmVectorQuantizerOutput",
    "EvilmVideoTokenizer",
    "EvilmVideoTokenizerOutput",
    "caption_word_targets",
    "codebook_utilization",
]
