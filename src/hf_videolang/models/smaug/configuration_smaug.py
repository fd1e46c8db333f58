"""Configurations of SMAUG, "SMAUG: Sparse Masked Autoencoder for Efficient Video-Language Pre-training" (Lin et al.,
ICCV 2023).

Defaults are the paper's setting (SMAUG §3.5, §4.2): a CLIP-B/16-shaped ViT encoder run per frame on the visible 50 %
of the patches (tube masking), visual token sparsification at layers 4, 7 and 10 (keep rate 0.8), a temporal encoder
over the frames, a text-guided frame selector (4 -> 2 frames), an MAE decoder (linear, 3 blocks, linear) and
BERT-base split into 9 text and 3 multimodal layers. No code was released; numbers the paper leaves out come from
the code it builds on: Singularity (jayleicn/singularity, ``models/model_retrieval_base.py``, ``configs/*.yaml``),
MAE (facebookresearch/mae) and EViT (youweiliang/evit, ``evit.py``).
"""

from __future__ import annotations

import copy
import math
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import BertConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec

_TEXT_POOLINGS = ("cls", "mean")


@strict
class SmaugVisionConfig(PreTrainedConfig):
    r"""SMAUG's masked autoencoder: a ViT encoder with a [CLS] token, run on each frame (SMAUG §3.1.1), its token
    sparsification (§3.2), the temporal encoder and the MAE decoder (§3.5).

    The encoder has the layout of CLIP's vision tower (the paper initializes it from CLIP-B/16, §3.5): a patch
    convolution without bias, a learnable [CLS] and position table, a LayerNorm before the blocks
    (``pre_layernorm``), pre-norm blocks with QuickGELU, and a LayerNorm on the output tokens (``post_layernorm``).

    Args:
        image_size (`int`, defaults to 224): frame side (SMAUG §3.5, "224x224").
        patch_size (`int`, defaults to 16): patch side (ViT-B/16, §3.5).
        num_frames (`int`, defaults to 4): frames of the temporal table (§3.5: 1 or 4 frames in pre-training);
            fewer frames use its first rows, more a linear interpolation (Singularity's ``temporal_embeddings``).
        num_channels (`int`, defaults to 3): input channels.
        hidden_size (`int`, defaults to 768), num_hidden_layers (`int`, defaults to 12),
        num_attention_heads (`int`, defaults to 12), intermediate_size (`int`, defaults to 3072): ViT-B (§3.5).
        hidden_act (`str`, defaults to `"quick_gelu"`): CLIP's activation.
        layer_norm_eps (`float`, defaults to 1e-5): CLIP's LayerNorm epsilon.
        attention_probs_dropout_prob (`float`, defaults to 0.0), drop_path_rate (`float`, defaults to 0.0): CLIP
            trains without either.
        use_token_sparsification (`bool`, defaults to `True`): visual token sparsification (VTS, §3.2), also at
            inference (Table 9).
        sparsification_layers (`list[int]`, defaults to `[4, 7, 10]`): 1-based layers that sparsify ("the 4th, 7th
            and 10th layers", §3.2; EViT's ``drop_loc=(3, 6, 9)``, 0-based).
        keep_rate (`float`, defaults to 0.8): gamma of §3.2: the fraction of a frame's non-[CLS] tokens kept at
            each sparsification layer, ``ceil(gamma * p)`` (EViT); §4.2 / Table 5 default 0.8.
        fuse_inattentive_tokens (`bool`, defaults to `True`): fuse the dropped tokens into one token weighted by
            their [CLS] attention (§3.2, EViT's ``fuse_token``).
        temporal_num_hidden_layers (`int`, defaults to 2): blocks of the temporal encoder Q_t over the concatenated
            frame tokens when K > 1 (§3.1.1, Eq. 3; depth from Singularity's ``temporal_vision_encoder.num_layers``).
        decoder_hidden_size (`int`, defaults to 512), decoder_num_attention_heads (`int`, defaults to 16),
        decoder_intermediate_size (`int`, defaults to 2048): the MAE decoder's width (MAE's defaults; SMAUG gives
            only its depth).
        decoder_num_hidden_layers (`int`, defaults to 3): "one linear layer, three Transformer blocks, and one linear
            layer" (§3.5).
        norm_pix_loss (`bool`, defaults to `True`): reconstruct each masked patch normalized by its own mean and
            variance (MAE's ``norm_pix_loss``).
        initializer_range (`float`, defaults to 0.02): std of the truncated-normal init.
    """

    model_type = "hfvl_smaug_vision"
    base_config_key = "vision_config"

    image_size: int = 224
    patch_size: int = 16
    num_frames: int = 4
    num_channels: int = 3
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    attention_probs_dropout_prob: float | int = 0.0
    drop_path_rate: float | int = 0.0
    use_token_sparsification: bool = True
    sparsification_layers: list[int] | tuple[int, ...] | None = None
    keep_rate: float | int = 0.8
    fuse_inattentive_tokens: bool = True
    temporal_num_hidden_layers: int = 2
    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 3
    decoder_num_attention_heads: int = 16
    decoder_intermediate_size: int = 2048
    norm_pix_loss: bool = True
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs: Any) -> None:
        if self.sparsification_layers is None:
            self.sparsification_layers = [4, 7, 10]
        self.sparsification_layers = [int(layer) for layer in self.sparsification_layers]
        super().__post_init__(**kwargs)
        self._check()

    def _check(self) -> None:
        name = "SmaugVisionConfig"
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"{name}: hidden_size={self.hidden_size} is not divisible by num_attention_heads="
                f"{self.num_attention_heads}."
            )
        if self.decoder_hidden_size % self.decoder_num_attention_heads:
            raise ValueError(
                f"{name}: decoder_hidden_size={self.decoder_hidden_size} is not divisible by "
                f"decoder_num_attention_heads={self.decoder_num_attention_heads}."
            )
        if self.image_size % self.patch_size:
            raise ValueError(f"{name}: image_size={self.image_size} is not divisible by patch_size={self.patch_size}.")
        if self.num_frames < 1:
            raise ValueError(f"{name}: num_frames must be >= 1, got {self.num_frames}.")
        if not 0.0 < self.keep_rate <= 1.0:
            raise ValueError(f"{name}: keep_rate must be in (0, 1] (SMAUG §3.2 uses 0.8), got {self.keep_rate}.")
        bad = [layer for layer in self.sparsification_layers if not 1 <= layer <= self.num_hidden_layers]
        if bad or len(set(self.sparsification_layers)) != len(self.sparsification_layers):
            raise ValueError(
                f"{name}: sparsification_layers must be distinct 1-based layer numbers in [1, "
                f"{self.num_hidden_layers}], got {self.sparsification_layers}."
            )
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"{name}: drop_path_rate must be in [0, 1), got {self.drop_path_rate}.")
        if self.temporal_num_hidden_layers < 0 or self.decoder_num_hidden_layers < 0:
            raise ValueError(f"{name}: temporal_num_hidden_layers and decoder_num_hidden_layers must be >= 0.")

    @property
    def grid_size(self) -> int:
        """Patches per side of one frame."""
        return self.image_size // self.patch_size

    @property
    def num_patches_per_frame(self) -> int:
        """Patches of one frame, ``grid_size ** 2``."""
        return self.grid_size**2

    @property
    def patch_dim(self) -> int:
        """Pixels the MAE decoder predicts per patch, ``patch_size ** 2 * num_channels``."""
        return self.patch_size**2 * self.num_channels


# BERT-base-uncased (SMAUG §3.5, "We adopt BERT_BASE"); the split into 9 + 3 layers is SmaugConfig.num_text_layers.
_BERT_BASE: dict[str, Any] = dict(
    vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072
)

#: Presets. ``SmaugConfig.from_preset(name, **overrides)`` builds them.
SMAUG_PRESETS: dict[str, dict[str, Any]] = {
    # CLIP-B/16-shaped encoder + BERT-base 9 + 3, 4 -> 2 frames (SMAUG §3.5, Table 10).
    "smaug-b16": dict(vision_config=dict(), text_config=dict(_BERT_BASE)),
}


@strict
class SmaugConfig(PreTrainedConfig):
    r"""Composite configuration of SMAUG: masked autoencoder, text encoder, multimodal encoder, frame selector, heads
    and the pre-training objective.

    Args:
        vision_config (`dict` or `SmaugVisionConfig`): encoder, VTS, temporal encoder and MAE decoder.
        text_config (`dict` or `BertConfig`): the whole BERT (BERT-base, §3.5); its first ``num_text_layers`` layers
            are the text encoder Q_l, the others, with a new cross-attention to the video, the multimodal encoder
            Q_m (§3.1.2, §3.5).
        num_text_layers (`int`, defaults to 9): "the first 9 layers and the last three layers of BERT_BASE are
            initialized as Q_l and Q_m" (§3.5; Singularity's ``fusion_layer=9``).
        projection_dim (`int`, defaults to 256): width of the VTC space (Singularity's ``embed_dim``).
        logit_scale_init_value (`float`, defaults to log(1/0.07)): initial ``log(1 / temperature)`` of VTC,
            learnable (Singularity's ``temp: 0.07``).
        text_pooling (`str`, defaults to `"cls"`): text vector of VTC, the selector and VTM: the [CLS] state
            (§3.1.2, Eq. 4) or the mean of the real tokens (for mean-pooled encoders such as MiniLM).
        use_frame_selection (`bool`, defaults to `True`): text-guided frame selection before the multimodal encoder
            (§3.2), also at inference.
        num_selected_frames (`int`, defaults to 2): kappa of Eq. 5, frames kept of K (Table 10's "4 -> 2", the
            setting of the 1.9x speed-up; Table 1 reports "4 -> 1"). Clips of at most kappa frames are not selected.
        selector_hidden_size (`int`, defaults to 768), selector_num_attention_heads (`int`, defaults to 2),
            selector_intermediate_size (`int`, defaults to 2048), selector_num_hidden_layers (`int`, defaults to 2):
            the selector S: "two linear layers and two Transformer blocks [with] two heads and a hidden size of
            2048" (§3.5). 2048 is read as the feed-forward width (PyTorch's ``TransformerEncoderLayer`` default),
            the width as the video's.
        gumbel_temperature (`float`, defaults to 1.0): temperature of the Gumbel-softmax relaxation (§3.2, [18]).
        video_mask_ratio (`float`, defaults to 0.5): tube-mask ratio of MAE (§4.2, Table 4). Read by the processor.
        text_mask_ratio (`float`, defaults to 0.15): MLM probability (§4.2). Read by the processor.
        max_text_length (`int`, defaults to 32): caption length (Singularity's ``max_txt_l``).
        vtc_loss_weight, vtm_loss_weight, mlm_loss_weight, mvm_loss_weight (`float`, default 1.0): Eq. 6, "the
            simple addition of these four objectives".
        answer_list (`list[str]`): candidate answers of `SmaugForVideoQuestionAnswering`.
        answer_token_ids (`list[list[int]]`): their tokens (``[CLS] answer [SEP]``), set by ``set_answer_list``.
        initializer_range (`float`, defaults to 0.02): std of the truncated-normal init of new layers.
        tie_word_embeddings (`bool`, defaults to `True`): the MLM decoder reads the word embeddings (BERT).
    """

    model_type = "hfvl_smaug"
    sub_configs_defaults: ClassVar[dict] = {
        "vision_config": SmaugVisionConfig,
        "text_config": SubConfigSpec(BertConfig),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    num_text_layers: int = 9
    projection_dim: int = 256
    logit_scale_init_value: float = math.log(1 / 0.07)
    text_pooling: str = "cls"
    use_frame_selection: bool = True
    num_selected_frames: int = 2
    selector_hidden_size: int = 768
    selector_num_attention_heads: int = 2
    selector_intermediate_size: int = 2048
    selector_num_hidden_layers: int = 2
    gumbel_temperature: float | int = 1.0
    video_mask_ratio: float | int = 0.5
    text_mask_ratio: float | int = 0.15
    max_text_length: int = 32
    vtc_loss_weight: float | int = 1.0
    vtm_loss_weight: float | int = 1.0
    mlm_loss_weight: float | int = 1.0
    mvm_loss_weight: float | int = 1.0
    answer_list: list[str] | None = None
    answer_token_ids: list[list[int]] | None = None
    initializer_range: float = 0.02
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs: Any) -> None:
        if self.answer_list is None:
            self.answer_list = []
        if self.answer_token_ids is None:
            self.answer_token_ids = []
        super().__post_init__(**kwargs)
        self._check()

    def _check(self) -> None:
        name = "SmaugConfig"
        total = self.text_config.num_hidden_layers
        if not 1 <= self.num_text_layers < total:
            raise ValueError(
                f"{name}: num_text_layers={self.num_text_layers} must leave at least one of the text_config's "
                f"{total} BERT layers for the multimodal encoder (SMAUG §3.5 splits 12 into 9 + 3)."
            )
        if self.text_pooling not in _TEXT_POOLINGS:
            raise ValueError(f"{name}: text_pooling must be one of {_TEXT_POOLINGS}, got {self.text_pooling!r}.")
        if self.num_selected_frames < 1:
            raise ValueError(f"{name}: num_selected_frames must be >= 1, got {self.num_selected_frames}.")
        if self.selector_hidden_size % self.selector_num_attention_heads:
            raise ValueError(
                f"{name}: selector_hidden_size={self.selector_hidden_size} is not divisible by "
                f"selector_num_attention_heads={self.selector_num_attention_heads}."
            )
        if self.gumbel_temperature <= 0:
            raise ValueError(f"{name}: gumbel_temperature must be positive, got {self.gumbel_temperature}.")
        for field in ("video_mask_ratio", "text_mask_ratio"):
            value = getattr(self, field)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name}: {field} must be in [0, 1), got {value}.")
        for field in ("vtc_loss_weight", "vtm_loss_weight", "mlm_loss_weight", "mvm_loss_weight"):
            value = getattr(self, field)
            if value < 0 or not math.isfinite(value):
                raise ValueError(f"{name}: {field} must be a finite number >= 0, got {value}.")
        if self.max_text_length < 2:
            raise ValueError(
                f"{name}: max_text_length must leave room for [CLS] and [SEP], got {self.max_text_length}."
            )
        if self.answer_token_ids and len(self.answer_token_ids) != len(self.answer_list):
            raise ValueError(
                f"{name}: answer_token_ids has {len(self.answer_token_ids)} entries but answer_list has "
                f"{len(self.answer_list)}; use SmaugForVideoQuestionAnswering.set_answer_list(answers, tokenizer)."
            )

    @property
    def num_multimodal_layers(self) -> int:
        """Layers of the multimodal encoder Q_m (3 for BERT-base, SMAUG §3.5)."""
        return self.text_config.num_hidden_layers - self.num_text_layers

    def text_encoder_config(self) -> BertConfig:
        """BERT config of the text encoder Q_l: the first ``num_text_layers`` layers."""
        config = copy.deepcopy(self.text_config)
        config.num_hidden_layers = self.num_text_layers
        return config

    def multimodal_config(self) -> BertConfig:
        """BERT config of the multimodal encoder Q_m: the last layers, bidirectional, with cross-attention."""
        config = copy.deepcopy(self.text_config)
        config.num_hidden_layers = self.num_multimodal_layers
        config.is_decoder = False
        config.add_cross_attention = True
        return config

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> SmaugConfig:
        """Build a preset (``"smaug-b16"``, SMAUG §3.5). Keyword overrides replace top-level fields; sub-config
        dicts are merged into the preset's."""
        if name not in SMAUG_PRESETS:
            raise ValueError(
                f"SmaugConfig.from_preset: unknown preset {name!r}; choose one of {sorted(SMAUG_PRESETS)}."
            )
        kwargs = copy.deepcopy(SMAUG_PRESETS[name])
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(kwargs.get(key), dict):
                kwargs[key].update(value)
            else:
                kwargs[key] = value
        return cls(**kwargs)


__all__ = ["SMAUG_PRESETS", "SmaugConfig", "SmaugVisionConfig"]
