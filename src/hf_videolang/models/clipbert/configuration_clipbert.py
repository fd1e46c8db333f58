"""Configuration of ClipBERT, "Less is More: ClipBERT for Video-and-Language Learning via Sparse Sampling" (Lei et al.,
CVPR 2021).

Defaults are the paper's setting (ClipBERT §3 "Model Architecture", "Implementation Details", §4.4 and appendix B):
ResNet-50's five conv blocks, an extra 3x3 conv down to the transformer width and a 2x2 max-pool (Pixel-BERT), T frames
of a clip mean-pooled, 2D (row + column) position embeddings and a type embedding, a 12-layer BERT-base over
``[CLS] text [SEP]`` followed by the visual tokens, frames of longer side L=448 zero-padded to L x L, 1-second clips,
LogSumExp aggregation of the clip scores. Numbers the paper leaves out come from the authors' code
(jayleicn/ClipBERT, ``src/configs/*.json``, ``src/modeling/grid_feat.py``, ``src/modeling/modeling.py``).
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, ResNetConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec

#: Ways to combine the clip logits (ClipBERT §4.2, Table 3; appendix Eq. 5); the same names as the QA pipeline's.
CLIP_AGGREGATIONS = ("mean", "max", "logsumexp")

# ResNet-50 as detectron2 builds it for grid-feat (ClipBERT §3 "Weight Initialization": ResNet-50 from grid-feat; the
# authors' ``R-50-grid.yaml``): the MSRA layout puts a stage's stride in the first 1x1 conv of the bottleneck
# (detectron2's ``STRIDE_IN_1X1=True``), and ClipBERT forces ``RES5_DILATION=1`` (``grid_feat.py``), so res5 strides.
_RESNET50_GRID_FEAT: dict[str, Any] = dict(
    model_type="resnet",
    embedding_size=64,
    hidden_sizes=[256, 512, 1024, 2048],
    depths=[3, 4, 6, 3],
    layer_type="bottleneck",
    hidden_act="relu",
    downsample_in_first_stage=False,
    downsample_in_bottleneck=True,
)

# BERT-base-uncased (ClipBERT §3: "a 12-layer transformer", initialized from BERT-base; ``base_model.json``).
_BERT_BASE: dict[str, Any] = dict(model_type="bert")

#: Presets. ``ClipBertConfig.from_preset(name, **overrides)`` builds them.
CLIPBERT_PRESETS: dict[str, dict[str, Any]] = {
    # ResNet-50 (grid-feat) + BERT-base, L=448, 8x2 training clips, 16 test clips, LogSumExp (ClipBERT §4.4, Table 7/8).
    # The authors' CNN is detectron2's: FrozenBN everywhere (``NORM="FrozenBN"``) and the stem + res2 frozen
    # (detectron2's default ``FREEZE_AT=2``), in pre-training and fine-tuning alike.
    "clipbert-base": dict(
        vision_config=dict(_RESNET50_GRID_FEAT), text_config=dict(_BERT_BASE), frozen_batch_norm=True,
        num_frozen_stages=2,
    ),  # fmt: skip
}


@strict
class ClipBertConfig(PreTrainedConfig):
    r"""Composite configuration of ClipBERT: the 2D-CNN grid encoder, the BERT fusion transformer and the clip layout.

    Args:
        vision_config (`dict` or `ResNetConfig`): the CNN (ClipBERT §3 "Model Architecture": "the first 5 Conv blocks
            of ResNet-50"), built by transformers' `ResNetModel`. Defaults to ResNet-50 with the stride in the first
            1x1 conv of each bottleneck (``downsample_in_bottleneck=True``, detectron2's MSRA layout of grid-feat).
        text_config (`dict` or `BertConfig`): the word embeddings and the 12-layer cross-modal transformer (ClipBERT §3:
            "a 12-layer transformer [...] for cross-modal fusion", from BERT-base). Its width is the grid encoder's
            output depth.
        max_grid_row_position_embeddings (`int`, defaults to 100), max_grid_col_position_embeddings (`int`, defaults
            to 100): rows of the trainable row-wise and column-wise position tables (ClipBERT §3, "2D position
            embedding"; sizes from the authors' ``base_model.json``).
        image_size (`int`, defaults to 448): the longer side L of a frame, the shorter side zero-padded to L
            (ClipBERT §3 "Implementation Details": 448 for downstream tasks, 768 for pre-training; Table 1).
        frames_per_clip (`int`, defaults to 2): T, frames uniformly sampled inside each clip and mean-pooled after
            the CNN (ClipBERT §3 "Model Architecture"; §4.4 "ClipBERT 8x2"; Table 2).
        num_train_clips (`int`, defaults to 8): N_train, clips randomly sampled per video in training (ClipBERT §3
            "Sparse Sampling for Training"; §4.4 "ClipBERT 8x2").
        num_test_clips (`int`, defaults to 16): N_test, clips uniformly sampled at inference (ClipBERT §4.4).
        clip_duration (`float`, defaults to 1.0): seconds per clip (ClipBERT §4.4, "1-second clips").
        clip_aggregation (`str`, defaults to `"logsumexp"`): G, the aggregation of the N clip logits, in training
            (multiple-instance learning, §3 Eq. 4) and at inference: ``"mean"``, ``"max"`` or ``"logsumexp"`` (Table 3;
            appendix Eq. 5, the default of §4.4).
        pixel_random_sampling_size (`int`, defaults to 100): feature pixels kept, at random, in pre-training only
            (ClipBERT §3 "Implementation Details", following Pixel-BERT); 0 keeps them all. Downstream models never
            sample ("to avoid misalignment in training and inference").
        mlm_probability (`float`, defaults to 0.15): tokens masked for MLM in pre-training (ClipBERT §3).
        itm_negative_probability (`float`, defaults to 0.5): probability that a caption is replaced by another one
            for image-text matching (ClipBERT §3).
        mlm_loss_weight (`float`, defaults to 1.0), itm_loss_weight (`float`, defaults to 1.0): weights of the two
            pre-training losses (the authors' ``run_pretrain.py`` sums them).
        max_text_length (`int`, defaults to 20): caption tokens kept (ClipBERT §3, "keep at most 20 tokens").
        classifier_hidden_scale (`int`, defaults to 2): hidden width of the two-layer MLP heads, in multiples of the
            transformer width (appendix B "two-layer MLP"; ``cls_hidden_scale=2`` in the authors' code).
        answer_list (`list[str]`, *optional*): the open-ended QA answer vocabulary; answer ``i`` is logit ``i``, and
            `pipeline("video-question-answering")` names its answers with it.
        frozen_batch_norm (`bool`, defaults to `False`): keep the ResNet's BatchNorm layers fixed in training, as
            detectron2's ``FrozenBatchNorm2d`` of the authors' grid-feat backbone (their running statistics are used
            and their scale / shift get no gradient). The ``clipbert-base`` preset and converted checkpoints set it;
            the default trains them, for a CNN trained from scratch (a frozen BN at its identity init normalizes
            nothing).
        num_frozen_stages (`int`, defaults to 0): ResNet stages whose weights get no gradient, counting the stem as
            the first (detectron2's ``FREEZE_AT``: 2 freezes the stem and res2, its default, which the authors'
            grid-feat config keeps). The ``clipbert-base`` preset and converted checkpoints set 2.
        initializer_range (`float`, defaults to 0.02): std of the normal init of the new layers (BERT's).
        tie_word_embeddings (`bool`, defaults to `True`): share the MLM decoder with the word embeddings (BERT's
            pre-training heads, as in the authors' code).
    """

    model_type = "hfvl_clipbert"
    sub_configs_defaults: ClassVar[dict] = {
        "vision_config": SubConfigSpec(
            ResNetConfig, init_kwargs={k: v for k, v in _RESNET50_GRID_FEAT.items() if k != "model_type"}
        ),
        "text_config": SubConfigSpec(AutoConfig, model_type="bert"),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    max_grid_row_position_embeddings: int = 100
    max_grid_col_position_embeddings: int = 100
    image_size: int = 448
    frames_per_clip: int = 2
    num_train_clips: int = 8
    num_test_clips: int = 16
    clip_duration: float = 1.0
    clip_aggregation: str = "logsumexp"
    pixel_random_sampling_size: int = 100
    mlm_probability: float = 0.15
    itm_negative_probability: float = 0.5
    mlm_loss_weight: float = 1.0
    itm_loss_weight: float = 1.0
    max_text_length: int = 20
    classifier_hidden_scale: int = 2
    answer_list: list[str] | None = None
    frozen_batch_norm: bool = False
    num_frozen_stages: int = 0
    initializer_range: float = 0.02
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs: Any) -> None:
        # A partial vision dict keeps grid-feat's layout for the keys it leaves out (the stride in the 1x1 conv).
        if isinstance(self.vision_config, dict):
            self.vision_config = {**_RESNET50_GRID_FEAT, **self.vision_config}
        super().__post_init__(**kwargs)
        self._check()

    def _check(self) -> None:
        name = type(self).__name__
        if self.clip_aggregation not in CLIP_AGGREGATIONS:
            raise ValueError(
                f"{name}: clip_aggregation must be one of {CLIP_AGGREGATIONS}, got {self.clip_aggregation!r}."
            )
        for field in ("frames_per_clip", "num_train_clips", "num_test_clips", "classifier_hidden_scale"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: {field} must be a positive integer, got {value!r}.")
        max_frozen = 1 + len(self.vision_config.depths) if hasattr(self.vision_config, "depths") else 5
        if not isinstance(self.num_frozen_stages, int) or not 0 <= self.num_frozen_stages <= max_frozen:
            raise ValueError(
                f"{name}: num_frozen_stages must be an integer in [0, {max_frozen}] (the stem, then the residual "
                f"stages; detectron2's FREEZE_AT), got {self.num_frozen_stages!r}."
            )
        if self.clip_duration <= 0:
            raise ValueError(f"{name}: clip_duration must be positive (seconds), got {self.clip_duration}.")
        if self.pixel_random_sampling_size < 0:
            raise ValueError(
                f"{name}: pixel_random_sampling_size must be >= 0 (0 keeps every feature pixel), "
                f"got {self.pixel_random_sampling_size}."
            )
        for field in ("mlm_probability", "itm_negative_probability"):
            value = getattr(self, field)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: {field} must be in [0, 1], got {value}.")
        for field in ("mlm_loss_weight", "itm_loss_weight"):
            if getattr(self, field) < 0:
                raise ValueError(f"{name}: {field} must be >= 0 (0 switches the loss off), got {getattr(self, field)}.")
        if self.max_text_length < 2:
            raise ValueError(
                f"{name}: max_text_length must leave room for [CLS] and [SEP], got {self.max_text_length}."
            )
        stride = 32  # the stem (4) and three strided stages (8): every frame side shrinks by 32, then the max-pool
        if self.image_size % (2 * stride):
            raise ValueError(
                f"{name}: image_size={self.image_size} must be a multiple of 64 (ResNet stride 32, then the 2x2 "
                "max-pool), e.g. 448 (ClipBERT's downstream L) or 768 (pre-training)."
            )
        side = self.grid_size
        if side > min(self.max_grid_row_position_embeddings, self.max_grid_col_position_embeddings):
            raise ValueError(
                f"{name}: image_size={self.image_size} gives a {side}x{side} feature map, more than the 2D position "
                "tables hold; raise max_grid_row/col_position_embeddings."
            )
        if not hasattr(self.text_config, "hidden_size") or not hasattr(self.vision_config, "hidden_sizes"):
            raise ValueError(f"{name}: text_config must be BERT-like and vision_config a ResNetConfig.")
        if self.answer_list is not None and len(set(self.answer_list)) != len(self.answer_list):
            raise ValueError(f"{name}: answer_list has duplicate answers; each answer must name one logit.")

    @property
    def hidden_size(self) -> int:
        """Width of the visual tokens and of the transformer (the text config's ``hidden_size``)."""
        return self.text_config.hidden_size

    @property
    def grid_size(self) -> int:
        """Feature pixels per side of one clip: ``image_size / 32`` (ResNet), halved by the 2x2 max-pool."""
        return self.image_size // 64

    @property
    def num_visual_tokens(self) -> int:
        """Visual tokens per clip, ``grid_size ** 2`` (49 at L=448, 144 at L=768, ClipBERT §3)."""
        return self.grid_size**2

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ClipBertConfig:
        """Build a preset (``"clipbert-base"``: ResNet-50 grid-feat + BERT-base, ClipBERT §3 / §4.4). Keyword
        overrides replace top-level fields; sub-config dicts are merged into the preset's."""
        if name not in CLIPBERT_PRESETS:
            raise ValueError(
                f"ClipBertConfig.from_preset: unknown preset {name!r}; choose one of {sorted(CLIPBERT_PRESETS)}."
            )
        kwargs = copy.deepcopy(CLIPBERT_PRESETS[name])
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(kwargs.get(key), dict):
                kwargs[key].update(value)
            else:
                kwargs[key] = value
        return cls(**kwargs)


__all__ = ["CLIPBERT_PRESETS", "CLIP_AGGREGATIONS", "ClipBertConfig"]
