"""Configurations of UMT, "Unmasked Teacher: Towards Training-Efficient Video Foundation Models" (Li et al., ICCV 2023).

Defaults are the paper's UMT-B/16 setting. Numbers that the paper leaves out are taken from the authors' configs
(OpenGVLab/unmasked_teacher@4fb4049: ``multi_modality/exp/pretraining/{b16,l16}_25m.py``,
``single_modality/exp/pretraining/{b16,l16}_ptk710_f8_res224.sh``, ``multi_modality/configs/config_bert*.json``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import BertConfig, CLIPVisionConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec

from ...configuration_utils import PresetMixin


@strict
class UmtVisionConfig(PreTrainedConfig):
    r"""The UMT student: a vanilla ViT *without* class token and with joint spatiotemporal attention (UMT §3.1).

    Args:
        image_size (`int`, defaults to 224): frame side in pixels.
        patch_size (`int`, defaults to 16): spatial patch size (ViT-B/16, ViT-L/16).
        tubelet_size (`int`, defaults to 1): temporal patch size. UMT uses 1 ("no temporal downsampling", §3.1,
            Table 2) so student tokens align with the frame-wise teacher.
        num_frames (`int`, defaults to 8): longest clip, sizes the position table (8 frames in stage 1, §4.1; stage 2
            feeds 4, which use the table's prefix exactly as the authors' 4-frame encoder does).
        num_channels (`int`, defaults to 3): input channels.
        hidden_size (`int`, defaults to 768), num_hidden_layers (`int`, defaults to 12),
        num_attention_heads (`int`, defaults to 12), intermediate_size (`int`, defaults to 3072): ViT-B.
        hidden_act (`str`, defaults to `"gelu"`): MLP activation.
        qkv_bias (`bool`, defaults to `True`): learn a query and a value bias (no key bias), as the authors' ViT.
        layer_norm_eps (`float`, defaults to 1e-6): LayerNorm epsilon (authors: ``partial(nn.LayerNorm, eps=1e-6)``).
        hidden_dropout_prob (`float`, defaults to 0.0), attention_probs_dropout_prob (`float`, defaults to 0.0).
        drop_path_rate (`float`, defaults to 0.1): stochastic depth, linearly increasing over depth (0.1 for B,
            0.2 for L in the authors' scripts).
        position_embedding_type (`str`, defaults to `"sincos"`): `"sincos"` (fixed 1D sinusoid over the frame-major
            token index, the authors' default) or `"learnable"`.
        use_pool_norm (`bool`, defaults to `True`): LayerNorm after mean pooling (the authors' ``pool_norm``; their
            fine-tuned classifiers' ``fc_norm``).
        use_final_norm (`bool`, defaults to `True`): LayerNorm on the last layer's tokens (the authors' ``norm``).
            Their fine-tuned classification checkpoints have none (``use_mean_pooling``: ``norm = Identity``).
        initializer_range (`float`, defaults to 0.02): std of a learnable position table.
    """

    model_type = "hfvl_umt_vision"
    base_config_key = "vision_config"

    image_size: int = 224
    patch_size: int = 16
    tubelet_size: int = 1
    num_frames: int = 8
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
    drop_path_rate: float | int = 0.1
    position_embedding_type: str = "sincos"
    use_pool_norm: bool = True
    use_final_norm: bool = True
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        self._check()

    def _check(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"UmtVisionConfig: hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}."
            )
        if self.image_size % self.patch_size:
            raise ValueError(
                f"UmtVisionConfig: image_size={self.image_size} is not divisible by patch_size={self.patch_size}."
            )
        if self.num_frames % self.tubelet_size:
            raise ValueError(
                f"UmtVisionConfig: num_frames={self.num_frames} is not divisible by tubelet_size={self.tubelet_size}."
            )
        if self.position_embedding_type not in ("sincos", "learnable"):
            raise ValueError(
                "UmtVisionConfig: position_embedding_type must be 'sincos' or 'learnable', "
                f"got {self.position_embedding_type!r}."
            )
        if not 0.0 <= self.drop_path_rate < 1.0:
            raise ValueError(f"UmtVisionConfig: drop_path_rate must be in [0, 1), got {self.drop_path_rate}.")

    @property
    def grid_size(self) -> int:
        """Tokens per side of one frame, ``image_size // patch_size``."""
        return self.image_size // self.patch_size

    @property
    def num_patches_per_frame(self) -> int:
        return self.grid_size**2

    @property
    def num_positions(self) -> int:
        """Length of the position table: ``(num_frames / tubelet_size) * grid_size**2``."""
        return (self.num_frames // self.tubelet_size) * self.num_patches_per_frame


def _bert_split(hidden: int, heads: int, layers: int, multimodal_layers: int) -> tuple[dict, dict]:
    """Split a BERT into the text encoder (first layers) and the multimodal encoder (last ``multimodal_layers``)."""
    common = dict(hidden_size=hidden, num_attention_heads=heads, intermediate_size=4 * hidden)
    text = dict(num_hidden_layers=layers - multimodal_layers, **common)
    return text, dict(num_hidden_layers=multimodal_layers, **common)


_TEXT_B, _MULTIMODAL_B = _bert_split(768, 12, 12, 3)  # config_bert.json: fusion_layer=9 of 12
_TEXT_L, _MULTIMODAL_L = _bert_split(1024, 16, 24, 5)  # config_bert_large.json: fusion_layer=19 of 24
_CLIP_B16 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 patch_size=16, image_size=224, projection_dim=512)  # fmt: skip
_CLIP_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                 patch_size=14, image_size=224, projection_dim=768)  # fmt: skip

# The authors' fine-tuning stochastic depth (MSR-VTT retrieval and multiple choice, most QA sets).
_FINETUNING_DROP_PATH_B = 0.2
_FINETUNING_DROP_PATH_L = 0.3

#: Presets of the paper (§4.1 "Settings"). ``UmtConfig.from_preset(name, **overrides)`` builds them.
UMT_PRESETS: dict[str, dict[str, Any]] = {
    "umt-b16": dict(
        vision_config=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                           drop_path_rate=0.1),
        text_config=_TEXT_B,
        multimodal_config=_MULTIMODAL_B,
        teacher_config=_CLIP_B16,
        teacher_image_size=224,
        projection_dim=512,
    ),
    "umt-l16": dict(
        vision_config=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                           drop_path_rate=0.2),
        text_config=_TEXT_L,
        multimodal_config=_MULTIMODAL_L,
        teacher_config=_CLIP_L14,
        # CLIP-L/14 sees 196 px so its 14x14 grid matches the student's 224/16 (§4.1).
        teacher_image_size=196,
        projection_dim=768,
    ),
}  # fmt: skip


@strict
class UmtConfig(PresetMixin, PreTrainedConfig):
    r"""Composite configuration of UMT: student ViT, BERT text encoder, multimodal encoder and CLIP teacher.

    Args:
        vision_config (`dict` or `UmtVisionConfig`): the student (UMT §3.1).
        text_config (`dict` or `BertConfig`, *optional*): the text encoder, BERT's first layers (BERT-base: 9 of 12,
            the authors' ``fusion_layer=9``). None for stage 1.
        multimodal_config (`dict` or `BertConfig`, *optional*): the multimodal encoder, BERT's last layers with an
            added cross-attention to the video tokens (BERT-base: 3; BERT-large: 5 of 24). None for stage 1. (The
            authors' `multimodal_encoder`; not `fusion_config`, which transformers reserves.)
        teacher_config (`dict` or `CLIPVisionConfig`, *optional*): the frozen CLIP vision tower (CLIP-ViT-B/16 by
            default). None (with ``uta_loss_weight=0``) trains without a teacher.
        pretraining_stage (`int`, defaults to 2): 1 = video-only masked modeling with UTA; 2 = adds VTC, VTM and MLM
            on video/image-text pairs (UMT §3.2 "Progressive pre-training").
        teacher_image_size (`int`, *optional*): side the teacher sees; frames are resized to it (196 for CLIP-L/14,
            §4.1). Defaults to ``vision_config.image_size``.
        uta_num_layers (`int`, defaults to 6): align the last 6 student layers with the last 6 teacher layers (§4.2,
            Fig. 3; the authors' ``clip_return_layer``).
        uta_layer_interval (`int`, defaults to 1): stride between aligned layers (``clip_return_interval``).
        video_mask_ratio (`float`, defaults to 0.8): masked fraction of each frame's tokens for videos (§4.1).
        image_mask_ratio (`float`, defaults to 0.5): the same for images (1-frame videos) in stage 2 (§4.1, Table 5).
        text_mask_ratio (`float`, defaults to 0.5): MLM masking probability (§3.2, Table 5), read by the processor.
        projection_dim (`int`, defaults to 512): VTC embedding width (the authors' ``embed_dim``: 512 for B, 768 for L).
        logit_scale_init_value (`float`, defaults to log(1/0.07)): initial log inverse temperature; the temperature
            0.07 is learnable (the authors' ``temp``).
        text_pooling (`str`, defaults to `"cls"`): which text state the VTC projection and the VTM head read: `"cls"`
            (the authors' ``text_proj(CLS)`` and ``itm_head(CLS)``, §3.2) or `"mean"` (the attention-masked mean of
            the tokens), for text encoders trained with mean pooling, such as sentence-transformers' MiniLM, whose
            `[CLS]` state barely varies between sentences (the built-in demo uses it; see the model card's
            Deviations).
        vtm_hard_negatives (`bool`, defaults to `True`): sample VTM negatives from the VTC similarities (§3.2).
        keep_temporal (`bool`, defaults to `True`): score video-text pairs per frame, as the authors'
            ``keep_temporal=True`` (every config of theirs; ``criterions.get_sim``): each frame is pooled, normed,
            projected and normalized, and the similarity is the mean of the per-frame cosines. Masked clips
            (pre-training) are pooled globally, as theirs under attention masking. False: one global embedding.
        uta_layer_norm_eps (`float`, *optional*): LayerNorm epsilon of the UTA head; defaults to 1e-6 in stage 1
            (the authors' single-modality ``Linear_Decoder`` gets the model's ``eps=1e-6`` norm) and 1e-5 in stage 2
            (the multi-modality ``Linear_Decoder`` uses a bare ``nn.LayerNorm``).
        classifier_dropout_prob (`float`, defaults to 0.0): dropout before the classification head (the authors'
            ``fc_drop_rate``).
        uta_loss_weight, vtc_loss_weight, vtm_loss_weight, mlm_loss_weight (`float`, default 1.0): loss weights
            (Table 6: all 1); 0 disables a term.
        answer_list (`list[str]`, defaults to `[]`): candidate answers for video question answering heads.
        answer_token_ids (`list[list[int]]`, defaults to `[]`): the tokenized answers (``[CLS] answer [SEP]``, no
            padding) that the QA answer decoder ranks, one per ``answer_list`` entry; the pipeline calls the model
            without a tokenizer, so they live here (``UmtForVideoQuestionAnswering.set_answer_list`` fills both).
        initializer_range (`float`, defaults to 0.02): std for new linear layers where xavier is not used.
    """

    model_type = "hfvl_umt"
    #: ``UmtConfig.from_preset(name, **overrides)`` builds these (see :class:`PresetMixin`).
    presets = UMT_PRESETS
    sub_configs_defaults: ClassVar[dict] = {
        "vision_config": UmtVisionConfig,
        "text_config": SubConfigSpec(BertConfig, optional=True),
        "multimodal_config": SubConfigSpec(BertConfig, optional=True),
        "teacher_config": SubConfigSpec(CLIPVisionConfig, optional=True),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    multimodal_config: dict | PreTrainedConfig | None = None
    teacher_config: dict | PreTrainedConfig | None = None
    pretraining_stage: int = 2
    teacher_image_size: int | None = None
    uta_num_layers: int = 6
    uta_layer_interval: int = 1
    video_mask_ratio: float = 0.8
    image_mask_ratio: float = 0.5
    text_mask_ratio: float = 0.5
    projection_dim: int = 512
    logit_scale_init_value: float = math.log(1 / 0.07)
    text_pooling: str = "cls"
    vtm_hard_negatives: bool = True
    keep_temporal: bool = True
    uta_layer_norm_eps: float | None = None
    classifier_dropout_prob: float | int = 0.0
    uta_loss_weight: float | int = 1.0
    vtc_loss_weight: float | int = 1.0
    vtm_loss_weight: float | int = 1.0
    mlm_loss_weight: float | int = 1.0
    answer_list: list[str] | None = None
    answer_token_ids: list[list[int]] | None = None
    initializer_range: float = 0.02
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs: Any) -> None:
        if self.pretraining_stage not in (1, 2):
            raise ValueError(f"UmtConfig: pretraining_stage must be 1 or 2, got {self.pretraining_stage!r}.")
        if self.pretraining_stage == 2:
            # Stage 2 always has a text side; build BERT-base's split when none is given.
            if self.text_config is None:
                self.text_config = dict(_TEXT_B)
            if self.multimodal_config is None:
                self.multimodal_config = dict(_MULTIMODAL_B)
        elif self.text_config is not None or self.multimodal_config is not None:
            raise ValueError(
                "UmtConfig: pretraining_stage=1 is video-only (UMT §3.2); drop text_config/multimodal_config "
                "or use pretraining_stage=2."
            )
        if self.teacher_config is None and self.uta_loss_weight > 0:
            self.teacher_config = dict(_CLIP_B16)
        if self.answer_list is None:
            self.answer_list = []
        if self.answer_token_ids is None:
            self.answer_token_ids = []
        super().__post_init__(**kwargs)
        if self.teacher_image_size is None:
            self.teacher_image_size = self.vision_config.image_size
        if self.uta_layer_norm_eps is None:
            self.uta_layer_norm_eps = 1e-6 if self.pretraining_stage == 1 else 1e-5
        self._check()

    # ------------------------------------------------------------------ validation
    def _check(self) -> None:
        for name in ("video_mask_ratio", "image_mask_ratio", "text_mask_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"UmtConfig: {name} must be in [0, 1), got {value}.")
        for name in ("uta_loss_weight", "vtc_loss_weight", "vtm_loss_weight", "mlm_loss_weight"):
            value = getattr(self, name)
            if value < 0 or not math.isfinite(value):
                raise ValueError(f"UmtConfig: {name} must be a finite number >= 0, got {value}.")
        if self.answer_token_ids and len(self.answer_token_ids) != len(self.answer_list):
            raise ValueError(
                f"UmtConfig: answer_token_ids has {len(self.answer_token_ids)} entries but answer_list has "
                f"{len(self.answer_list)}; tokenize every answer (UmtForVideoQuestionAnswering.set_answer_list)."
            )
        if any(len(ids) < 2 for ids in self.answer_token_ids):
            raise ValueError("UmtConfig: every entry of answer_token_ids needs a start token and at least one more.")
        if self.text_pooling not in ("cls", "mean"):
            raise ValueError(f"UmtConfig: text_pooling must be 'cls' or 'mean', got {self.text_pooling!r}.")
        if self.projection_dim <= 0:
            raise ValueError(f"UmtConfig: projection_dim must be positive, got {self.projection_dim}.")
        if self.pretraining_stage == 1 and self.uta_loss_weight == 0:
            raise ValueError("UmtConfig: stage 1 trains only with UTA, so uta_loss_weight must be > 0.")
        if self.uta_loss_weight > 0 and self.teacher_config is None:
            raise ValueError("UmtConfig: uta_loss_weight > 0 needs a teacher_config.")
        if self.teacher_config is not None:
            self._check_teacher()
        if self.text_config is not None:
            self._check_text()

    def _check_teacher(self) -> None:
        vision, teacher = self.vision_config, self.teacher_config
        if self.uta_num_layers < 1 or self.uta_layer_interval < 1:
            raise ValueError(
                f"UmtConfig: uta_num_layers ({self.uta_num_layers}) and uta_layer_interval ({self.uta_layer_interval}) "
                "must be >= 1."
            )
        span = (self.uta_num_layers - 1) * self.uta_layer_interval + 1
        for name, depth in (("vision_config", vision.num_hidden_layers), ("teacher_config", teacher.num_hidden_layers)):
            if span > depth:
                raise ValueError(
                    f"UmtConfig: aligning {self.uta_num_layers} layers every {self.uta_layer_interval} needs {span} "
                    f"layers but {name} has {depth}."
                )
        teacher_grid = self.teacher_image_size // teacher.patch_size
        if teacher_grid != vision.grid_size or self.teacher_image_size % teacher.patch_size:
            raise ValueError(
                f"UmtConfig: the teacher sees a {teacher_grid}x{teacher_grid} grid (teacher_image_size="
                f"{self.teacher_image_size}, patch {teacher.patch_size}) but the student a {vision.grid_size}x"
                f"{vision.grid_size} grid; UTA aligns tokens one to one, so pick teacher_image_size = "
                f"{vision.grid_size * teacher.patch_size}."
            )
        if vision.tubelet_size != 1:
            raise ValueError(
                f"UmtConfig: the frame-wise teacher needs tubelet_size=1 (UMT §3.1), got {vision.tubelet_size}."
            )

    def _check_text(self) -> None:
        if self.multimodal_config is None:
            raise ValueError("UmtConfig: text_config is set but multimodal_config is None; stage 2 needs both.")
        widths = {
            "vision_config.hidden_size": self.vision_config.hidden_size,
            "text_config.hidden_size": self.text_config.hidden_size,
            "multimodal_config.hidden_size": self.multimodal_config.hidden_size,
        }
        if len(set(widths.values())) != 1:
            raise ValueError(
                f"UmtConfig: the multimodal encoder attends from text to video tokens of the same width; got {widths}."
            )

    # ------------------------------------------------------------------ helpers
    @property
    def uta_student_layers(self) -> list[int]:
        """0-based student layers aligned by UTA, ascending (the authors' ``return_index``, sorted)."""
        depth = self.vision_config.num_hidden_layers
        return sorted(depth - 1 - i * self.uta_layer_interval for i in range(self.uta_num_layers))

    @property
    def uta_teacher_layers(self) -> list[int]:
        """0-based teacher layers paired one to one with :attr:`uta_student_layers`."""
        if self.teacher_config is None:
            return []
        depth = self.teacher_config.num_hidden_layers
        return sorted(depth - 1 - i * self.uta_layer_interval for i in range(self.uta_num_layers))

    @property
    def num_frames(self) -> int:
        """Frames per clip of the student (``vision_config.num_frames``); transformers'
        ``pipeline("video-classification")`` reads ``config.num_frames``."""
        return self.vision_config.num_frames

    def mask_ratio_for(self, num_frames: int) -> float:
        """Mask ratio of a clip: images (1 frame) use ``image_mask_ratio``, videos ``video_mask_ratio`` (§4.1)."""
        return self.image_mask_ratio if num_frames == 1 else self.video_mask_ratio

    def with_overrides(self, **overrides: Any) -> UmtConfig:
        """A copy with ``overrides`` replacing top-level fields, built and validated again like a new config (setting
        attributes on a loaded config would skip the sub-config conversion and the checks)."""
        kwargs = self.to_dict()
        for key in ("model_type", "transformers_version", "architectures"):
            kwargs.pop(key, None)
        kwargs.update(overrides)
        return type(self)(**kwargs)

    def for_finetuning(self, **overrides: Any) -> UmtConfig:
        """A copy of this stage-2 config for fine-tuning (UMT §4.1; the authors' fine-tuning configs): no teacher, no
        UTA, whole clips (both mask ratios 0), and their fine-tuning stochastic depth: ``drop_path_rate`` 0.2 for
        ViT-B, 0.3 for ViT-L (``exp/finetuning/{ret,mc}_msrvtt``; some sets use 0.1 or 0.4: override
        ``vision_config``). ``overrides`` set other top-level fields (e.g. ``mlm_loss_weight=0`` for retrieval); a
        ``vision_config`` dict is merged into this config's."""
        if self.pretraining_stage != 2:
            raise ValueError(
                f"UmtConfig.for_finetuning: this is a stage-{self.pretraining_stage} config; fine-tuning needs the "
                "text side of a stage-2 config."
            )
        vision = self.vision_config.to_dict()
        vision["drop_path_rate"] = _FINETUNING_DROP_PATH_L if vision["hidden_size"] >= 1024 else _FINETUNING_DROP_PATH_B
        vision_override = overrides.pop("vision_config", None)
        if isinstance(vision_override, dict):
            vision.update(vision_override)
        elif vision_override is not None:
            vision = vision_override
        finetuning = dict(
            teacher_config=None, uta_loss_weight=0.0, video_mask_ratio=0.0, image_mask_ratio=0.0, vision_config=vision
        )
        return self.with_overrides(**{**finetuning, **overrides})

    @classmethod
    def _preset_kwargs(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        # A stage-1 preset is video-only: drop the preset's text side.
        if kwargs.get("pretraining_stage") == 1:
            kwargs.pop("text_config", None)
            kwargs.pop("multimodal_config", None)
        return kwargs

__all__ = ["UMT_PRESETS", "UmtConfig", "UmtVisionConfig"]
