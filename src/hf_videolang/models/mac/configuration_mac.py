"""Configurations of MAC, "Masked Contrastive Pre-Training for Efficient Video-Text Retrieval" (Shu et al., 2022).

Defaults are the paper's setting (MAC §3, §4.3): a divided space-time ViT-B/16 video encoder (Frozen-in-Time /
TimeSformer layout) on 4 frames of 224 px, a DistilBERT text encoder, linear heads to a 256-d joint space, 60 % of
each frame's patches and 15 % of the words masked. Numbers the paper leaves out come from Frozen-in-Time
(m-bain/frozen-in-time@e1f13e1, ``model/video_transformer.py``, ``model/loss.py``), the encoder MAC reproduces as its
baseline with "the same configuration" (MAC §5).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec

from ...configuration_utils import PresetMixin

_TEXT_POOLINGS = ("cls", "mean")
_TEMPORAL_INITS = ("zeros", "random")


@strict
class MacVisionConfig(PreTrainedConfig):
    r"""MAC's video encoder: a ViT with a [CLS] token and divided space-time attention (MAC §3.2, "Video Encoder").

    Every block runs temporal attention, then spatial attention, then the MLP (Frozen-in-Time's ``SpaceTimeBlock``).
    Learnable spatial (per patch position, plus one row for [CLS]) and temporal (per frame) position embeddings are
    added before masked patches are dropped (MAC §3.1, "Video Masking").

    Args:
        image_size (`int`, defaults to 224): frame side in pixels (MAC §4.3, "resized to 224x224").
        patch_size (`int`, defaults to 16): patch side (MAC §4.3, "patch size P=16").
        num_frames (`int`, defaults to 4): frames the temporal table is sized for (MAC §4.3: 4 frames in
            pre-training; the "maximum number of input video frames" M of §3.1). Fewer frames use its first rows,
            more frames a linear interpolation of it (as Frozen-in-Time does when it loads a checkpoint).
        num_channels (`int`, defaults to 3): input channels.
        hidden_size (`int`, defaults to 768), num_hidden_layers (`int`, defaults to 12),
        num_attention_heads (`int`, defaults to 12), intermediate_size (`int`, defaults to 3072): ViT-B with "12
            space-time attention blocks" (MAC §4.3).
        hidden_act (`str`, defaults to `"gelu"`): MLP activation.
        qkv_bias (`bool`, defaults to `True`): bias on the fused query/key/value projection (ViT-B/16, which MAC
            initializes the spatial blocks from, §4.3).
        layer_norm_eps (`float`, defaults to 1e-6): LayerNorm epsilon (timm's ViT, used by Frozen-in-Time).
        hidden_dropout_prob (`float`, defaults to 0.0), attention_probs_dropout_prob (`float`, defaults to 0.0).
        drop_path_rate (`float`, defaults to 0.0): stochastic depth, linearly increasing over depth. MAC gives none;
            Frozen-in-Time's ``SpaceTimeTransformer`` defaults to 0 and its ``FrozenInTime`` never sets it.
        initializer_range (`float`, defaults to 0.02): std of the truncated-normal init of linears, [CLS] and the
            spatial position table. The temporal position table starts at zero (Frozen-in-Time's ``temporal_embed``).
        temporal_attention_init (`str`, defaults to `"zeros"`): Frozen-in-Time's ``time_init``. ``"zeros"``: the
            temporal attention's qkv weight and bias and its output bias are 0 and its output weight is 1, so the
            temporal branch adds nothing at first and the encoder starts as the image ViT it is initialized from
            (MAC §4.3, ViT-B/16); the ones let gradients reach the value projection. ``"random"``: truncated normal
            like every other linear.
    """

    model_type = "hfvl_mac_vision"
    base_config_key = "vision_config"

    image_size: int = 224
    patch_size: int = 16
    num_frames: int = 4
    num_channels: int = 3
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    qkv_bias: bool = True
    layer_norm_eps: float = 1e-6
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    drop_path_rate: float | int = 0.0
    initializer_range: float = 0.02
    temporal_attention_init: str = "zeros"

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self._check()

    def _check(self) -> None:
        if self.temporal_attention_init not in _TEMPORAL_INITS:
            raise ValueError(
                f"MacVisionConfig: temporal_attention_init must be one of {_TEMPORAL_INITS}, got "
                f"{self.temporal_attention_init!r}."
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"MacVisionConfig: hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}."
            )
        if self.image_size % self.patch_size:
            raise ValueError(
                f"MacVisionConfig: image_size={self.image_size} is not divisible by patch_size={self.patch_size}."
            )
        if self.num_frames < 1:
            raise ValueError(f"MacVisionConfig: num_frames must be >= 1, got {self.num_frames}.")
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"MacVisionConfig: drop_path_rate must be in [0, 1), got {self.drop_path_rate}.")

    @property
    def grid_size(self) -> int:
        """Patches per side of one frame, ``image_size // patch_size``."""
        return self.image_size // self.patch_size

    @property
    def num_patches_per_frame(self) -> int:
        """``N`` of MAC §3.1: patches of one frame."""
        return self.grid_size**2


# DistilBERT-base-uncased (MAC §3.2 / §4.3 "we use DistilBERT"), the defaults of transformers' DistilBertConfig.
_DISTILBERT_BASE: dict[str, Any] = dict(model_type="distilbert")

#: Presets. ``MacConfig.from_preset(name, **overrides)`` builds them.
MAC_PRESETS: dict[str, dict[str, Any]] = {
    # ViT-B/16 divided space-time video encoder + DistilBERT, 256-d joint space (MAC §4.3).
    "mac-b16": dict(vision_config=dict(), text_config=dict(_DISTILBERT_BASE), projection_dim=256),
}


@strict
class MacConfig(PresetMixin, PreTrainedConfig):
    r"""Composite configuration of MAC: video encoder, text encoder, linear heads and the contrastive temperature.

    Args:
        vision_config (`dict` or `MacVisionConfig`): the divided space-time video encoder (MAC §3.2).
        text_config (`dict` or `PreTrainedConfig`): the text encoder, any BERT-like config that `AutoModel` builds
            (DistilBERT by default, MAC §4.3; a BERT config loads BERT checkpoints). A dict is resolved by its
            ``model_type`` (``"distilbert"`` when absent).
        projection_dim (`int`, defaults to 256): width of the joint space of the linear heads (MAC §4.3, "a
            feature space of 256 dimensions").
        logit_scale_init_value (`float`, defaults to log(1/0.05)): initial ``log(1 / temperature)`` of the InfoNCE
            (MAC Eq. 3). MAC gives no value; 0.05 is Frozen-in-Time's ``NormSoftmaxLoss`` temperature.
        learnable_temperature (`bool`, defaults to `False`): train ``logit_scale`` (CLIP) or keep it fixed (MAC's
            "temperature hyperparameter" τ, Eq. 3; fixed in Frozen-in-Time).
        text_pooling (`str`, defaults to `"cls"`): text embedding read by the head: ``"cls"``, the [CLS] token
            (MAC §3.2, "serving as the final representation of the whole text"), or ``"mean"``, the mean of the
            non-padding tokens (for text encoders trained with mean pooling, such as sentence-transformers' MiniLM).
        video_mask_ratio (`float`, defaults to 0.6): fraction of each frame's patches masked at random in
            pre-training (MAC §3.1, §4.3). Read by `MacProcessor`.
        text_mask_ratio (`float`, defaults to 0.15): probability that a word is replaced, whole, by [MASK] (MAC
            §3.1 "Text Masking", §4.3). Read by `MacProcessor`.
        max_text_length (`int`, defaults to 128): longest caption in tokens, special tokens included (MAC Table 4,
            "128 of text length"). Read by `MacProcessor`.
        initializer_range (`float`, defaults to 0.02): std of the truncated-normal init of the heads.
    """

    model_type = "hfvl_mac"
    presets = MAC_PRESETS
    sub_configs_defaults: ClassVar[dict] = {
        "vision_config": MacVisionConfig,
        "text_config": SubConfigSpec(AutoConfig, model_type="distilbert"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    projection_dim: int = 256
    logit_scale_init_value: float = math.log(1 / 0.05)
    learnable_temperature: bool = False
    text_pooling: str = "cls"
    video_mask_ratio: float = 0.6
    text_mask_ratio: float = 0.15
    max_text_length: int = 128
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self._check()

    def _check(self) -> None:
        if self.projection_dim <= 0:
            raise ValueError(f"MacConfig: projection_dim must be positive, got {self.projection_dim}.")
        if not math.isfinite(self.logit_scale_init_value):
            raise ValueError(f"MacConfig: logit_scale_init_value must be finite, got {self.logit_scale_init_value}.")
        if self.text_pooling not in _TEXT_POOLINGS:
            raise ValueError(f"MacConfig: text_pooling must be one of {_TEXT_POOLINGS}, got {self.text_pooling!r}.")
        for name in ("video_mask_ratio", "text_mask_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"MacConfig: {name} must be in [0, 1), got {value}.")
        if self.max_text_length < 2:
            raise ValueError(
                f"MacConfig: max_text_length must leave room for [CLS] and [SEP], got {self.max_text_length}."
            )
        if not hasattr(self.text_config, "hidden_size"):
            raise ValueError(
                f"MacConfig: text_config ({type(self.text_config).__name__}) has no hidden_size; use a BERT-like "
                "text encoder config."
            )


__all__ = ["MAC_PRESETS", "MacConfig", "MacVisionConfig"]
