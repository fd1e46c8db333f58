"""Configuration of E-ViLM, "Efficient Video-Language Model via Masked Video Modeling with Semantic
Vector-Quantized Tokenizer" (Fang et al., 2023).

Defaults are the paper's ``evilm-s`` (E-ViLM §3.1, §4.1 "Architectural Details" and "Training"): EdgeNeXt-S per
frame, a tiny BERT (hidden 128, 4 heads) over a vocabulary cut to the most frequent 30 %, a 4-block multi-modal
decoder of width 384, 4 frames of 256 px, block-wise masking of 40 % of the video and 15 % of the words. No code
was released: what the paper leaves open is marked "not stated" and listed in the model card's Deviations.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import BertConfig
from transformers.configuration_utils import PreTrainedConfig

from ..edgenext import EdgeNextConfig

# 30 % of BERT-base-uncased's 30,522 WordPieces (§4.1 keeps "the top 30% most frequent words"); a vocabulary cut
# from real captions with `truncate_vocabulary` sets its own size.
_TRUNCATED_VOCAB = int(0.3 * 30522)

# §4.1: "a tiny BERT variation with decreased hidden size (128) and fewer attention heads per layer (4)", "only
# 2.4M learnable parameters": 6 layers of width 128 over the truncated vocabulary give 2.43 M (layers not stated).
_TINY_BERT = dict(
    model_type="bert", vocab_size=_TRUNCATED_VOCAB, hidden_size=128, num_attention_heads=4, num_hidden_layers=6,
    intermediate_size=512, max_position_embeddings=512,
)  # fmt: skip


@strict
class EvilmConfig(PreTrainedConfig):
    r"""E-ViLM: video encoder, language encoder and the multi-modal decoder over their concatenation (Eq. 1-2).

    Args:
        vision_config (`dict` or `EdgeNextConfig`): the per-frame video encoder, EdgeNeXt-S (§4.1).
        text_config (`dict` or `BertConfig`): the language encoder, a tiny BERT (§4.1).
        hidden_size (`int`, defaults to 384): width of the multi-modal decoder, "decreased hidden size (384)".
        num_hidden_layers (`int`, defaults to 4): "4 transformer blocks" (§4.1).
        num_attention_heads (`int`, defaults to 6), intermediate_size (`int`, defaults to 1536): not stated
            (64-d heads and a 4x MLP, as BERT).
        hidden_dropout_prob (`float`, defaults to 0.1), attention_probs_dropout_prob (`float`, defaults to 0.1),
            layer_norm_eps (`float`, defaults to 1e-6): not stated (BERT's dropout; pre-norm blocks as in ViT).
        num_frames (`int`, defaults to 4): "we sparsely sample 4 video frames" (§4.1).
        image_size (`int`, defaults to 256): frames resized "into 256x256" (§4.1).
        video_mask_ratio (`float`, defaults to 0.4): "block-wise masking with masking ratio 40%" (§4.1), on the
            video encoder's output grid (one region per stride-32 cell); masked pixels are set to zero (§3.2).
        text_mask_ratio (`float`, defaults to 0.15): "we randomly mask 15% of the words" (§4.1).
        codebook_size (`int`, defaults to 9420): classes of the MVM head, the tokenizer's codebook (§4.1).
        mlm_weight, vtm_weight, mvm_weight (`float`, default 1.0): Eq. 8 sums the three losses.
        answer_list (`list[str]`): answers of the QA head, in order, so the pipeline names them.
        max_text_length (`int`, defaults to 40): longest caption in tokens (not stated; WebVid captions average 20
            words, §4.1).
        initializer_range (`float`, defaults to 0.02).
    """

    model_type = "hfvl_evilm"
    sub_configs: ClassVar[dict] = {"vision_config": EdgeNextConfig, "text_config": BertConfig}

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    hidden_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 6
    intermediate_size: int = 1536
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    layer_norm_eps: float = 1e-6
    num_frames: int = 4
    image_size: int = 256
    video_mask_ratio: float = 0.4
    text_mask_ratio: float = 0.15
    codebook_size: int = 9420
    mlm_weight: float | int = 1.0
    vtm_weight: float | int = 1.0
    mvm_weight: float | int = 1.0
    answer_list: list[str] | None = None
    max_text_length: int = 40
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs: Any) -> None:
        if self.vision_config is None:
            self.vision_config = EdgeNextConfig()
        elif isinstance(self.vision_config, dict):
            self.vision_config = EdgeNextConfig(**self.vision_config)
        if self.text_config is None:
            self.text_config = BertConfig(**{k: v for k, v in _TINY_BERT.items() if k != "model_type"})
        elif isinstance(self.text_config, dict):
            self.text_config = BertConfig(**{k: v for k, v in self.text_config.items() if k != "model_type"})
        self.answer_list = list(self.answer_list or [])
        super().__post_init__(**kwargs)
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"EvilmConfig: hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}."
            )
        for name in ("video_mask_ratio", "text_mask_ratio"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"EvilmConfig: {name} must be in [0, 1), got {getattr(self, name)}.")
        for name in ("mlm_weight", "vtm_weight", "mvm_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"EvilmConfig: {name} must be >= 0, got {getattr(self, name)}.")
        if self.image_size % self.video_stride:
            raise ValueError(
                f"EvilmConfig: image_size={self.image_size} must be a multiple of the video encoder's stride "
                f"{self.video_stride}."
            )

    @property
    def video_stride(self) -> int:
        """Pixels per cell of the video encoder's output grid (EdgeNeXt: stem 4, then three stride-2 stages)."""
        return 4 * 2 ** (len(self.vision_config.depths) - 1)

    @property
    def video_grid(self) -> int:
        """Side of each frame's output grid: its regions are the video tokens and the masking units."""
        return self.image_size // self.video_stride

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> EvilmConfig:
        """One of :data:`EVILM_PRESETS`, with keyword overrides (sub-config dicts are merged into the preset's)."""
        if name not in EVILM_PRESETS:
            raise ValueError(
                f"EvilmConfig.from_preset: unknown preset {name!r}; choose one of {sorted(EVILM_PRESETS)}."
            )
        kwargs = copy.deepcopy(EVILM_PRESETS[name])
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(kwargs.get(key), dict):
                kwargs[key].update(value)
            else:
                kwargs[key] = value
        return cls(**kwargs)


EVILM_PRESETS: dict[str, dict[str, Any]] = {
    # §4.1: EdgeNeXt-S, tiny BERT 128/4, 4 decoder blocks of 384, 4 frames of 256 px.
    "evilm-s": dict(vision_config=dict(), text_config=dict(_TINY_BERT)),
}

__all__ = ["EVILM_PRESETS", "EvilmConfig"]
