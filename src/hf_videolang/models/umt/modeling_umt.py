"""UMT, "Unmasked Teacher: Towards Training-Efficient Video Foundation Models" (Li et al., ICCV 2023).

A vanilla ViT student without class token runs only the *unmasked* video tokens (80 % of each frame masked,
semantically: tokens the CLIP teacher's class token attends to are kept more often) and aligns them, on its last 6
layers, with the frozen CLIP teacher's tokens at the same positions (Unmasked Token Alignment, UMT §3.1). Stage 2 adds
a BERT text encoder and a multimodal encoder (BERT's last layers with cross-attention) trained with VTC, VTM and MLM
next to UTA (UMT §3.2).

Written from the paper and a reading of OpenGVLab/unmasked_teacher@4fb4049 (``multi_modality/models/umt.py``,
``models/backbones/vit/{vit,clip}.py``, ``models/criterions.py``); module names follow the authors' so their
checkpoints map one to one (``patch_embed.proj``, ``blocks.N.attn.{qkv,q_bias,v_bias,proj}``, ``norm``, ``pool_norm``).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertLMHeadModel, BertModel, CLIPVisionConfig, CLIPVisionModelWithProjection
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import PreTrainedModel
from transformers.models.bert.configuration_bert import BertConfig
from transformers.models.bert.modeling_bert import (
    BertAttention,
    BertIntermediate,
    BertLMPredictionHead,
    BertOnlyMLMHead,
    BertOutput,
)
from transformers.utils import ModelOutput, can_return_tuple

from ...layers import AbsolutePositionEmbedding, Attention, Block, LayerScale, PatchEmbed3d, pool_tokens
from ...losses import (
    MaskedLanguageModelingLoss,
    UnmaskedTokenAlignmentLoss,
    VideoTextContrastiveLoss,
    VideoTextMatchingLoss,
    place_above,
    sample_hard_negatives,
)
from ...video.masking import SemanticMasker
from ..answer_decoder import AnswerDecoderMixin
from .configuration_umt import UmtConfig, UmtVisionConfig

# ---------------------------------------------------------------------------------------------------- outputs


@dataclass
class UmtVisionModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, N_vis, D)`): final-normed tokens of the visible
            positions (`N_vis = T * h * w` without a mask).
        pooler_output (`torch.FloatTensor` of shape `(B, D)`): mean over tokens, then `pool_norm`.
        alignment_hidden_states (`torch.FloatTensor` of shape `(K, B, N_vis, D)`, *optional*): the outputs of the
            requested layers (ascending), each passed through the final norm as in the authors' code; UTA reads them.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): with `output_hidden_states=True`, the embeddings of
            the visible tokens and the output of every layer (before the final norm), `num_hidden_layers + 1` tensors
            of shape `(B, N_vis, D)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): per layer `(B, H, N_vis, N_vis)` when
            `output_attentions=True`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    alignment_hidden_states: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class UmtTeacherOutput(ModelOutput):
    """
    Args:
        hidden_states (`torch.FloatTensor` of shape `(K, B, T * L, P)`): patch tokens (no class token) of the
            requested teacher layers, each through CLIP's post-layernorm and visual projection (UMT §3.1 "Target"),
            frame-major like `bool_masked_pos`.
        cls_attention (`torch.FloatTensor` of shape `(B, T, L)`): the last layer's class-token attention to the `L`
            patch tokens of each frame, averaged over heads (UMT §3.1 Eq. 1-2); the softmax runs over all tokens
            including the class token, as the authors' `nn.MultiheadAttention` weights do.
    """

    hidden_states: torch.FloatTensor | None = None
    cls_attention: torch.FloatTensor | None = None


@dataclass
class UmtOutput(ModelOutput):
    """
    Args:
        logits_per_video (`torch.FloatTensor` of shape `(B_v, B_t)`): `exp(logit_scale)` times cosine similarities.
        logits_per_text (`torch.FloatTensor` of shape `(B_t, B_v)`): its transpose.
        video_embeds (`torch.FloatTensor` of shape `(B_v, P)`): video embeddings whose dot product with `text_embeds`
            is the VTC cosine score (see `UmtModel.get_video_features`).
        text_embeds (`torch.FloatTensor` of shape `(B_t, P)`): L2-normalized text embeddings.
        vision_model_output (`UmtVisionModelOutput`): the student's outputs.
        text_last_hidden_state (`torch.FloatTensor` of shape `(B_t, L_t, D_t)`): the text encoder's tokens.
        text_hidden_states, text_attentions (`tuple(torch.FloatTensor)`, *optional*): the text encoder's, with
            `output_hidden_states` / `output_attentions`.
    """

    logits_per_video: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    vision_model_output: UmtVisionModelOutput | None = None
    text_last_hidden_state: torch.FloatTensor | None = None
    text_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    text_attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class UmtForPreTrainingOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`): weighted sum of the computed terms (weights from the config).
        loss_uta (`torch.FloatTensor` of shape `()`, *optional*): unmasked token alignment (UMT §3.1); None when
            `uta_loss_weight == 0`.
        loss_vtc (`torch.FloatTensor` of shape `()`, *optional*): video-text contrastive loss (stage 2).
        loss_vtm (`torch.FloatTensor` of shape `()`, *optional*): video-text matching with hard negatives (stage 2).
        loss_mlm (`torch.FloatTensor` of shape `()`, *optional*): masked language modeling (stage 2, needs
            `mlm_labels`).
        bool_masked_pos (`torch.BoolTensor` of shape `(B, T * h * w)`, *optional*): the mask used (passed or drawn).
        video_embeds (`torch.FloatTensor` of shape `(B, P)`, *optional*): video embeddings (stage 2; see
            `UmtModel.get_video_features`).
        text_embeds (`torch.FloatTensor` of shape `(B, P)`, *optional*): L2-normalized text embeddings (stage 2).
        hidden_states, attentions (`tuple(torch.FloatTensor)`, *optional*): the student's, with
            `output_hidden_states` / `output_attentions`.
    """

    loss: torch.FloatTensor | None = None
    loss_uta: torch.FloatTensor | None = None
    loss_vtc: torch.FloatTensor | None = None
    loss_vtm: torch.FloatTensor | None = None
    loss_mlm: torch.FloatTensor | None = None
    bool_masked_pos: torch.BoolTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ---------------------------------------------------------------------------------------------------- helpers


def gather_visible_tokens(tokens: torch.Tensor, bool_masked_pos: torch.Tensor) -> torch.Tensor:
    """Keep the unmasked tokens of each sample, in order.

    Shapes: `(B, N, D)` tokens and a `(B, N)` bool mask (True = masked) -> `(B, N_vis, D)`.

    Raises:
        ValueError: the mask has the wrong shape or dtype, or leaves a different number of visible tokens per sample
            (the batch must stay rectangular; the maskers of `hf_videolang.video.masking` mask equally per frame).
    """
    batch_size, num_tokens, dim = tokens.shape
    if bool_masked_pos.dtype != torch.bool or tuple(bool_masked_pos.shape) != (batch_size, num_tokens):
        raise ValueError(
            f"bool_masked_pos must be a bool tensor of shape (B, T*h*w) = ({batch_size}, {num_tokens}), got "
            f"{bool_masked_pos.dtype} {tuple(bool_masked_pos.shape)}."
        )
    visible = ~bool_masked_pos
    counts = visible.sum(dim=1)
    if not bool((counts == counts[0]).all()):
        raise ValueError(
            f"bool_masked_pos leaves {counts.tolist()} visible tokens per sample; UMT needs the same number in every "
            "sample (mask the same count per frame)."
        )
    if int(counts[0]) == 0:
        raise ValueError("bool_masked_pos masks every token; at least one must stay visible.")
    return tokens[visible].reshape(batch_size, int(counts[0]), dim)


def _activation(name: str) -> nn.Module:
    return ACT2FN[name]


def _mark_xavier(module: nn.Module) -> None:
    """Flag every nn.Linear under `module` for the authors' xavier-uniform init (see `_init_weights`)."""
    for child in module.modules():
        if isinstance(child, nn.Linear):
            child._xavier_init = True


# ---------------------------------------------------------------------------------------------------- base class


class UmtPreTrainedModel(PreTrainedModel):
    """Weight initialization and shared settings of every UMT model."""

    config_class = UmtConfig
    base_model_prefix = "umt"
    main_input_name = "pixel_values"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True
    _no_split_modules = ["Block", "UmtMultimodalLayer", "BertLayer", "CLIPEncoderLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The authors' ViT and UTA head: xavier-uniform linears, zero biases, Conv3d at PyTorch's default
        # (`PretrainVisionTransformer._init_weights` touches only nn.Linear and nn.LayerNorm). The linears of those
        # modules are marked `_xavier_init` when built; BERT-derived modules and the VTC/VTM heads use BERT's normal.
        std = getattr(self.config, "initializer_range", 0.02)
        if isinstance(module, nn.Linear):
            if getattr(module, "_xavier_init", False):
                init.xavier_uniform_(module.weight)
            else:
                init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Conv3d):
            # nn.Conv3d.reset_parameters, through transformers' guarded init functions.
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            if module.bias is not None:
                fan_in = module.weight[0].numel()
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, AbsolutePositionEmbedding):
            init.copy_(module.table, module.initial_table())
        elif isinstance(module, Attention) and module.q_bias is not None:
            init.zeros_(module.q_bias)
            init.zeros_(module.v_bias)
        elif isinstance(module, LayerScale):
            init.constant_(module.gamma, module.init_values)
        elif isinstance(module, UmtModel) and hasattr(module, "logit_scale"):
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)
        elif isinstance(module, BertLMPredictionHead):
            # On the module that owns the bias: `from_pretrained` initializes missing weights module by module, so
            # a rule on the parent `BertOnlyMLMHead` never ran there and left the bias uninitialized.
            init.zeros_(module.bias)


# ---------------------------------------------------------------------------------------------------- student


class UmtVisionModel(UmtPreTrainedModel):
    """The UMT student: ViT without class token, joint spatiotemporal attention over the *visible* tokens only.

    Tubelet/patch embedding and the position table are applied to all `T * h * w` positions, then the masked ones
    are dropped, so every visible token keeps its own position (UMT §3.1, as in MAE/VideoMAE).
    """

    config_class = UmtVisionConfig
    input_modalities = ("video",)

    def __init__(self, config: UmtVisionConfig) -> None:
        super().__init__(config)
        self.patch_embed = PatchEmbed3d(
            image_size=config.image_size,
            patch_size=config.patch_size,
            tubelet_size=config.tubelet_size,
            in_channels=config.num_channels,
            embed_dim=config.hidden_size,
        )
        self.pos_embed = AbsolutePositionEmbedding(
            config.num_positions,
            config.hidden_size,
            kind=config.position_embedding_type,
            init_std=config.initializer_range,
        )
        norm_layer = partial(nn.LayerNorm, eps=config.layer_norm_eps)
        # Stochastic depth grows linearly with depth (the authors' `dpr`).
        depth = config.num_hidden_layers
        drop_path = [config.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(
            Block(
                config.hidden_size,
                config.num_attention_heads,
                mlp_hidden_dim=config.intermediate_size,
                qkv_bias="qv" if config.qkv_bias else "none",
                drop_path=drop_path[i],
                proj_drop=config.hidden_dropout_prob,
                attn_drop=config.attention_probs_dropout_prob,
                norm_layer=norm_layer,
                act_layer=partial(_activation, config.hidden_act),
            )
            for i in range(config.num_hidden_layers)
        )
        # The authors' fine-tuned classifiers have no final norm (`use_mean_pooling`: `norm = Identity`).
        self.norm = norm_layer(config.hidden_size) if config.use_final_norm else nn.Identity()
        self.pool_norm = norm_layer(config.hidden_size) if config.use_pool_norm else nn.Identity()
        _mark_xavier(self)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.patch_embed

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Patch embedding plus positions: `(B, T, C, H, W) -> (B, T' * h * w, D)`."""
        return self.pos_embed(self.patch_embed(pixel_values))

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        output_layers: Sequence[int] | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> UmtVisionModelOutput:
        """
        Args:
            pixel_values: `(B, T, C, H, W)` normalized frames; `T` may be smaller than `config.num_frames` (an image
                is a 1-frame video) and uses a prefix of the position table.
            bool_masked_pos: `(B, T * h * w)` bool, True = masked; only the other tokens are encoded. Every sample
                must keep the same number of tokens.
            output_layers: 0-based layer indices whose (final-normed) outputs are returned as
                `alignment_hidden_states`, in ascending order.
            output_attentions: return each layer's attention maps (eager attention for that call).
            output_hidden_states: return the embeddings and every layer's output.
            return_dict: `False` returns a tuple of the non-None fields.
        """
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        hidden_states = self.embed(pixel_values)
        if bool_masked_pos is not None:
            hidden_states = gather_visible_tokens(hidden_states, bool_masked_pos)
        wanted = sorted(set(output_layers or ()))
        if wanted and not 0 <= wanted[0] <= wanted[-1] < len(self.blocks):
            raise ValueError(f"output_layers {wanted} out of range for {len(self.blocks)} layers.")

        selected, attentions = [], []
        all_hidden_states = [hidden_states] if output_hidden_states else None
        implementation = self.config._attn_implementation
        for index, block in enumerate(self.blocks):
            hidden_states, weights = block(
                hidden_states, attn_implementation=implementation, output_attentions=output_attentions
            )
            if output_attentions:
                attentions.append(weights)
            if output_hidden_states:
                all_hidden_states.append(hidden_states)
            if index in wanted:
                selected.append(hidden_states)

        last_hidden_state = self.norm(hidden_states)
        return UmtVisionModelOutput(
            last_hidden_state=last_hidden_state,
            pooler_output=self.pool_norm(last_hidden_state.mean(dim=1)),
            alignment_hidden_states=self.norm(torch.stack(selected)) if selected else None,
            hidden_states=tuple(all_hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )

    def pool_per_frame(self, last_hidden_state: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Per-frame pooling of an unmasked output, `(B, T * h * w, D) -> (B, T, D)` (the authors' `keep_temporal`)."""
        batch_size, num_tokens, dim = last_hidden_state.shape
        if num_tokens % num_frames:
            raise ValueError(f"{num_tokens} tokens cannot be split into {num_frames} frames (was the input masked?).")
        return self.pool_norm(last_hidden_state.view(batch_size, num_frames, -1, dim).mean(dim=2))


# ---------------------------------------------------------------------------------------------------- teacher


class UmtTeacher(nn.Module):
    """The frozen CLIP image teacher, run frame by frame (UMT §3.1 "Architecture").

    Wraps a transformers `CLIPVisionModelWithProjection`, so any CLIP checkpoint loads into `self.clip`. Its
    parameters never require gradients and it stays in eval mode whatever `train()` is called with.

    Args:
        config: the CLIP vision config.
        return_layers: 0-based layers whose patch tokens are returned (ascending).
        image_size: side the frames are resized to (bicubic) before CLIP, e.g. 196 for CLIP-L/14 (§4.1); the
            position embeddings are interpolated when it differs from `config.image_size`.
    """

    def __init__(self, config: CLIPVisionConfig, return_layers: Sequence[int], image_size: int | None = None) -> None:
        super().__init__()
        self.clip = CLIPVisionModelWithProjection._from_config(config)
        self.return_layers = sorted(return_layers)
        self.image_size = image_size or config.image_size
        self.clip.requires_grad_(False)
        self.clip.eval()

    def train(self, mode: bool = True) -> UmtTeacher:
        # Frozen teacher: dropout and any other train-time behaviour stay off.
        return super().train(False)

    def _resize(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.shape[-2:] == (self.image_size, self.image_size):
            return frames
        return F.interpolate(frames, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)

    @staticmethod
    def _cls_attention(layer: nn.Module, hidden_states: torch.Tensor) -> torch.Tensor:
        """Class-token attention of a CLIP layer, head-averaged: `(N, 1 + L, C) -> (N, L)` (Eq. 1-2)."""
        attn = layer.self_attn
        normed = layer.layer_norm1(hidden_states)
        batch, length, _ = normed.shape
        query = attn.q_proj(normed[:, :1]).view(batch, 1, attn.num_heads, attn.head_dim).transpose(1, 2)
        key = attn.k_proj(normed).view(batch, length, attn.num_heads, attn.head_dim).transpose(1, 2)
        probs = (torch.matmul(query, key.transpose(-2, -1)) * attn.scale).softmax(dim=-1)
        return probs.mean(dim=1)[:, 0, 1:]

    @torch.no_grad()
    def forward(self, pixel_values: torch.Tensor) -> UmtTeacherOutput:
        """`pixel_values` `(B, T, C, H, W)` (CLIP-normalized) -> :class:`UmtTeacherOutput`."""
        batch_size, num_frames = pixel_values.shape[:2]
        frames = self._resize(pixel_values.flatten(0, 1))
        vision = self.clip.vision_model
        interpolate = frames.shape[-1] != self.clip.config.image_size
        hidden_states = vision.pre_layrnorm(vision.embeddings(frames, interpolate_pos_encoding=interpolate))
        layers = vision.encoder.layers
        selected = []
        cls_attention = None
        for index, layer in enumerate(layers):
            if index == len(layers) - 1:
                cls_attention = self._cls_attention(layer, hidden_states)
            hidden_states = layer(hidden_states, None)
            if index in self.return_layers:
                selected.append(hidden_states[:, 1:])
        # Intermediate layers go through the same post-layernorm and projection as the final one (authors' clip.py).
        tokens = self.clip.visual_projection(vision.post_layernorm(torch.stack(selected)))
        num_layers, _, num_patches, dim = tokens.shape
        return UmtTeacherOutput(
            hidden_states=tokens.reshape(num_layers, batch_size, num_frames * num_patches, dim),
            cls_attention=cls_attention.reshape(batch_size, num_frames, num_patches),
        )


# ---------------------------------------------------------------------------------------------------- UTA head


class UmtAlignmentProjection(nn.Module):
    """Student-to-teacher projection of one aligned layer: `LayerNorm(Linear(x))` (the authors' `Linear_Decoder`)."""

    def __init__(self, hidden_size: int, teacher_dim: int, eps: float) -> None:
        super().__init__()
        self.head = nn.Linear(hidden_size, teacher_dim)
        self.norm = nn.LayerNorm(teacher_dim, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.head(x))


class UmtAlignmentHead(nn.Module):
    """Maps the student's K aligned layers to the teacher's width (UMT §3.1 "a simple linear projection").

    As in the authors' code, the fixed sinusoid position of every visible token is added before the projection.
    Shapes: `(K, B, N_vis, D)` -> `(K, B, N_vis, P)`.
    """

    def __init__(self, config: UmtConfig) -> None:
        super().__init__()
        vision = config.vision_config
        self.pos_embed = AbsolutePositionEmbedding(vision.num_positions, vision.hidden_size, kind="sincos")
        self.projections = nn.ModuleList(
            UmtAlignmentProjection(vision.hidden_size, config.teacher_config.projection_dim, config.uta_layer_norm_eps)
            for _ in range(config.uta_num_layers)
        )
        # The authors' `Linear_Decoder`: xavier-uniform linear, LayerNorm at (1, 0).
        _mark_xavier(self)

    def forward(self, layer_states: torch.Tensor, bool_masked_pos: torch.Tensor | None = None) -> torch.Tensor:
        num_layers, batch_size, num_visible, dim = layer_states.shape
        if num_layers != len(self.projections):
            raise ValueError(f"got {num_layers} aligned layers, the head projects {len(self.projections)}.")
        num_all = bool_masked_pos.shape[1] if bool_masked_pos is not None else num_visible
        positions = self.pos_embed.table[:num_all].to(layer_states.dtype).expand(batch_size, num_all, dim)
        if bool_masked_pos is not None:
            positions = gather_visible_tokens(positions, bool_masked_pos)
        return torch.stack([proj(states + positions) for proj, states in zip(self.projections, layer_states)])


# --------------------------------------------------------------------------------------------------- multimodal encoder


class UmtMultimodalLayer(GradientCheckpointingLayer):
    """A BERT layer with a cross-attention to the video tokens between its self-attention and its MLP.

    UMT's multimodal encoder is BERT's last layers so extended (the authors' `xbert` with `fusion_layer`); the
    self-attention is bidirectional. Parameter names match BERT's, so BERT checkpoints load into it.
    """

    def __init__(self, config: BertConfig, layer_idx: int | None = None) -> None:
        super().__init__()
        self.attention = BertAttention(config, is_causal=False, layer_idx=layer_idx)
        self.crossattention = BertAttention(config, is_causal=False, layer_idx=layer_idx, is_cross_attention=True)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        hidden_states, _ = self.attention(hidden_states, attention_mask)
        hidden_states, _ = self.crossattention(
            hidden_states,
            None,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
        )
        return self.output(self.intermediate(hidden_states), hidden_states)


class UmtMultimodalEncoder(UmtPreTrainedModel):
    """Stack of :class:`UmtMultimodalLayer`: text tokens `(B, L, D)` attend to video tokens `(B, N, D)`.

    A (sub-)model of its own so that transformers resolves its attention backend like the text encoder's.
    """

    config_class = BertConfig
    input_modalities = ("text",)

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.layer = nn.ModuleList(UmtMultimodalLayer(config, layer_idx=i) for i in range(config.num_hidden_layers))
        self.post_init()

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
    ) -> torch.Tensor:
        """
        Args:
            hidden_states: `(B, L, D)` text-encoder outputs.
            attention_mask: `(B, L)` 1 = token, 0 = padding.
            encoder_hidden_states: `(B, N, D)` visible video tokens (all attended).

        Returns:
            `(B, L, D)` fused text tokens.
        """
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask)
        for layer in self.layer:
            hidden_states = layer(hidden_states, mask, encoder_hidden_states)
        return hidden_states


# ---------------------------------------------------------------------------------------------------- UmtModel


class UmtModel(UmtPreTrainedModel):
    """UMT's encoders: the student, and in stage 2 the text encoder, the multimodal encoder and the VTC projections.

    `add_text_model=False` builds the student alone whatever the stage (video classification).

    VTC scoring follows the authors' `keep_temporal=True` (`criterions.get_sim`, all their configs) when
    `config.keep_temporal` is set and the clip is unmasked: each frame is mean-pooled, `pool_norm`-ed, projected and
    L2-normalized, and the video-text score is the mean over frames of the per-frame cosine similarities. With
    `keep_temporal=False`, or for a masked clip (the authors switch it off under their attention masks), one global
    mean-pooled embedding is projected and normalized.
    """

    # Loading the encoders out of a pre-training or task checkpoint drops its heads silently, as BertModel does.
    _keys_to_ignore_on_load_unexpected = [r"^(teacher|uta_head|mlm_head|vtm_head|answer_decoder|classifier)\."]

    def __init__(self, config: UmtConfig, add_text_model: bool = True) -> None:
        super().__init__(config)
        self.vision_model = UmtVisionModel._from_config(config.vision_config)
        # Video-only heads (classification) skip the text side even with a stage-2 config.
        self.has_text = config.text_config is not None and add_text_model
        if self.has_text:
            self.text_model = BertModel._from_config(config.text_config, add_pooling_layer=False)
            self.multimodal_encoder = UmtMultimodalEncoder._from_config(config.multimodal_config)
            self.vision_projection = nn.Linear(config.vision_config.hidden_size, config.projection_dim)
            self.text_projection = nn.Linear(config.text_config.hidden_size, config.projection_dim)
            # log(1 / temperature), temperature 0.07 at init and learnable (§3.2, authors' `temp`).
            self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))
        self.post_init()

    def _require_text(self, method: str) -> None:
        if not self.has_text:
            raise ValueError(f"UmtModel.{method} needs the text side; this model was built for stage 1 (video only).")

    def get_input_embeddings(self) -> nn.Module:
        """The text encoder's word embeddings (what `resize_token_embeddings` resizes)."""
        self._require_text("get_input_embeddings")
        return self.text_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self._require_text("set_input_embeddings")
        self.text_model.set_input_embeddings(value)

    # ------------------------------------------------------------------ video side
    def uses_per_frame_scoring(self, bool_masked_pos: torch.Tensor | None = None) -> bool:
        """Whether VTC scores per frame here: `config.keep_temporal` and an unmasked clip (the authors' rule)."""
        return bool(self.config.keep_temporal) and bool_masked_pos is None

    def project_video(self, video_states: torch.Tensor, num_frames: int | None = None) -> torch.Tensor:
        """VTC embeddings of the student's final tokens, the video counterpart of :meth:`project_text`.

        Args:
            video_states: `(B, N, D)` final-normed student tokens (`last_hidden_state`).
            num_frames: with it, each of the `num_frames` temporal slices is pooled on its own (the authors'
                `keep_temporal`; the clip must be unmasked); without it, all tokens are pooled together.

        Returns:
            `(B, T, P)` per-frame (or `(B, P)` global) L2-normalized embeddings.
        """
        self._require_text("project_video")
        if num_frames is None:
            pooled = self.vision_model.pool_norm(video_states.mean(dim=1))
        else:
            pooled = self.vision_model.pool_per_frame(video_states, num_frames)
        return F.normalize(self.vision_projection(pooled), dim=-1)

    def video_embeds_for_scoring(
        self, vision_output: UmtVisionModelOutput, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(embeds_for_loss, embeds_for_dot)` of one student output.

        Per frame: `(B, T, P)` normalized frames (what `VideoTextContrastiveLoss` averages) and their mean `(B, P)`,
        whose dot product with a unit text embedding is the mean per-frame cosine. Global: the same `(B, P)` twice.
        """
        if self.uses_per_frame_scoring(bool_masked_pos):
            frames = self.project_video(vision_output.last_hidden_state, self._temporal_slices(pixel_values))
            return frames, frames.mean(dim=1)
        video_embeds = self.project_video(vision_output.last_hidden_state)
        return video_embeds, video_embeds

    def _temporal_slices(self, pixel_values: torch.Tensor) -> int:
        return pixel_values.shape[1] // self.config.vision_config.tubelet_size

    def get_video_features(
        self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None, per_frame: bool = False
    ) -> torch.Tensor:
        """Video embeddings for retrieval: their dot product with `get_text_features` is the VTC cosine score.

        Args:
            pixel_values: `(B, T, C, H, W)`.
            bool_masked_pos: optional `(B, T * h * w)` mask (pretraining encodes masked videos); a masked clip is
                scored globally.
            per_frame: return the `(B, T, P)` normalized per-frame embeddings themselves (needs an unmasked input).

        Returns:
            `(B, P)`: with per-frame scoring (`config.keep_temporal`, unmasked) the mean of the normalized per-frame
            embeddings, which is *not* unit-norm (so that a plain dot product gives the authors' mean of per-frame
            cosines); otherwise the L2-normalized global embedding. `(B, T, P)` with `per_frame`.
        """
        self._require_text("get_video_features")
        output = self.vision_model(pixel_values, bool_masked_pos=bool_masked_pos)
        if per_frame:
            if bool_masked_pos is not None:
                raise ValueError("per_frame pooling needs an unmasked video; drop bool_masked_pos.")
            return self.project_video(output.last_hidden_state, self._temporal_slices(pixel_values))
        return self.video_embeds_for_scoring(output, pixel_values, bool_masked_pos)[1]

    # ------------------------------------------------------------------ text side
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Text-encoder tokens `(B, L, D_t)`."""
        self._require_text("encode_text")
        return self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalized `(B, P)` text embeddings (from `[CLS]`, or the token mean: `config.text_pooling`)."""
        self._require_text("get_text_features")
        return self.project_text(self.encode_text(input_ids, attention_mask), attention_mask)

    def pool_text(self, text_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`(B, L, D)` text or fused tokens -> `(B, D)`: the `[CLS]` token, or the masked token mean
        (`config.text_pooling`). VTC's projection and the VTM head both read it."""
        return pool_tokens(text_states, attention_mask, self.config.text_pooling)

    def project_text(self, text_states: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalized `(B, P)` VTC embeddings of `(B, L, D_t)` text-encoder tokens."""
        return F.normalize(self.text_projection(self.pool_text(text_states, attention_mask)), dim=-1)

    def encode_multimodal(
        self, text_states: torch.Tensor, attention_mask: torch.Tensor | None, video_states: torch.Tensor
    ) -> torch.Tensor:
        """Multimodal encoder: `(B, L, D)` text tokens attending to `(B, N, D)` video tokens -> `(B, L, D)`."""
        self._require_text("encode_multimodal")
        return self.multimodal_encoder(text_states, attention_mask, video_states)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> UmtOutput:
        """Encode both modalities and score every video against every text (`exp(logit_scale) * cos`, per frame
        by default; see the class docstring). `return_dict=False` returns a tuple."""
        self._require_text("forward")
        vision_output = self.vision_model(
            pixel_values,
            bool_masked_pos=bool_masked_pos,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        video_embeds = self.video_embeds_for_scoring(vision_output, pixel_values, bool_masked_pos)[1]
        text_output = self.text_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        text_states = text_output.last_hidden_state
        text_embeds = self.project_text(text_states, attention_mask)
        logits_per_video = self.logit_scale.exp() * video_embeds @ text_embeds.T
        return UmtOutput(
            logits_per_video=logits_per_video,
            logits_per_text=logits_per_video.T,
            video_embeds=video_embeds,
            text_embeds=text_embeds,
            vision_model_output=vision_output,
            text_last_hidden_state=text_states,
            text_hidden_states=text_output.hidden_states,
            text_attentions=text_output.attentions,
        )


# ---------------------------------------------------------------------------------------------------- pretraining


def _video_text_matching_loss(
    model: nn.Module,
    video_states: torch.Tensor,
    text_states: torch.Tensor,
    attention_mask: torch.Tensor | None,
    video_embeds: torch.Tensor,
    text_embeds: torch.Tensor,
    video_ids: torch.Tensor | None,
    generator: torch.Generator | None,
    negative_text_states: torch.Tensor | None = None,
    negative_attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """VTM with negatives mined from the VTC similarities (UMT §3.2, ALBEF): B positives + 2B negatives.

    `model` has `umt`, `vtm_head`, `vtm_loss` and `config` (pre-training and retrieval fine-tuning share it, as the
    authors' `VTC_VTM_Loss.vtm_loss`). `video_embeds` is the `(B, P)` scoring embedding of `get_video_features`.
    With `negative_text_states` `(B, K, L, D)` (given negative captions of each video, e.g. one attribute swapped),
    each video's negative text is one of its own K, drawn uniformly, instead of one mined from the batch.
    """
    if attention_mask is None:
        attention_mask = torch.ones(text_states.shape[:2], dtype=torch.long, device=text_states.device)
    with torch.no_grad():
        sim = model.umt.logit_scale.exp() * video_embeds @ text_embeds.T
        if not model.config.vtm_hard_negatives:
            sim = torch.zeros_like(sim)  # uniform over negatives
        neg_text, neg_video = sample_hard_negatives(sim, video_ids=video_ids, generator=generator)
    if negative_text_states is None:
        negative_texts, negative_mask = text_states[neg_text], attention_mask[neg_text]
    else:
        rows = torch.arange(text_states.shape[0], device=text_states.device)
        pick = torch.randint(negative_text_states.shape[1], (text_states.shape[0],), generator=generator,
                             device=text_states.device)  # fmt: skip
        negative_texts = negative_text_states[rows, pick]
        negative_mask = negative_attention_mask[rows, pick]
        length = max(text_states.shape[1], negative_texts.shape[1])
        text_states, negative_texts = _pad_tokens(text_states, length), _pad_tokens(negative_texts, length)
        attention_mask, negative_mask = _pad_tokens(attention_mask, length), _pad_tokens(negative_mask, length)
    fused_mask = torch.cat([attention_mask, attention_mask, negative_mask])
    fused = model.umt.encode_multimodal(
        torch.cat([text_states, text_states, negative_texts]),
        fused_mask,
        torch.cat([video_states, video_states[neg_video], video_states]),
    )
    logits = model.vtm_head(model.umt.pool_text(fused, fused_mask))
    batch_size = video_states.shape[0]
    return model.vtm_loss(logits[:batch_size], logits[batch_size:])


def _pad_tokens(tokens: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad dim 1 (tokens) of `(B, L, ...)` states or `(B, L)` masks to `length`."""
    if tokens.shape[1] == length:
        return tokens
    padding = [0, 0] * (tokens.ndim - 2) + [0, length - tokens.shape[1]]
    return F.pad(tokens, padding)


class UmtForPreTraining(UmtPreTrainedModel):
    """UMT progressive pre-training (UMT §3.2).

    Stage 1 (`config.pretraining_stage == 1`): videos only, loss = UTA. Stage 2: adds VTC, VTM (hard negatives) and
    MLM on video-text and image-text pairs; images are 1-frame videos masked at `image_mask_ratio`.
    When no `bool_masked_pos` is given, the mask is drawn from the teacher's class-token attention (semantic masking,
    §3.1) at the clip's ratio.
    """

    accepts_loss_kwargs = False

    def __init__(self, config: UmtConfig) -> None:
        super().__init__(config)
        self.umt = UmtModel(config)
        self.teacher = None
        self.uta_head = None
        if config.teacher_config is not None:
            self.teacher = UmtTeacher(config.teacher_config, config.uta_teacher_layers, config.teacher_image_size)
            self.uta_head = UmtAlignmentHead(config)
        if config.pretraining_stage == 2:
            self.vtm_head = nn.Linear(config.text_config.hidden_size, 2)
            self.mlm_head = BertOnlyMLMHead(config.text_config)
            # The MLM decoder shares the word embeddings, as BertForMaskedLM does.
            self._tied_weights_keys = {
                "mlm_head.predictions.decoder.weight": "umt.text_model.embeddings.word_embeddings.weight",
                "mlm_head.predictions.decoder.bias": "mlm_head.predictions.bias",
            }
        self.uta_loss = UnmaskedTokenAlignmentLoss()
        self.vtc_loss = VideoTextContrastiveLoss()
        self.vtm_loss = VideoTextMatchingLoss()
        self.mlm_loss = MaskedLanguageModelingLoss()
        self.post_init()

    def get_output_embeddings(self) -> nn.Module | None:
        return self.mlm_head.predictions.decoder if hasattr(self, "mlm_head") else None

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        self.mlm_head.predictions.decoder = new_embeddings
        self.mlm_head.predictions.bias = new_embeddings.bias

    def load_teacher(self, clip: str | os.PathLike | CLIPVisionModelWithProjection, **kwargs) -> None:
        """Copy a CLIP vision tower (a model, or a name/path for `CLIPVisionModelWithProjection.from_pretrained`)."""
        if self.teacher is None:
            raise ValueError("this UmtForPreTraining has no teacher (config.teacher_config is None).")
        if not isinstance(clip, CLIPVisionModelWithProjection):
            clip = CLIPVisionModelWithProjection.from_pretrained(clip, **kwargs)
        expected, given = self.config.teacher_config, clip.config
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "patch_size", "projection_dim"):
            if getattr(expected, name) != getattr(given, name):
                raise ValueError(
                    f"load_teacher: the CLIP checkpoint has {name}={getattr(given, name)}, the config expects "
                    f"{getattr(expected, name)}."
                )
        self.teacher.clip.load_state_dict(clip.state_dict())

    # ------------------------------------------------------------------ pieces
    def _draw_mask(
        self, teacher_output: UmtTeacherOutput | None, num_frames: int, generator: torch.Generator | None
    ) -> torch.Tensor | None:
        ratio = self.config.mask_ratio_for(num_frames)
        if teacher_output is None or ratio == 0:
            return None
        return SemanticMasker(ratio)(teacher_output.cls_attention, generator=generator)

    def _mlm_loss(
        self,
        mlm_input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        mlm_labels: torch.Tensor,
        video_states: torch.Tensor,
    ) -> torch.Tensor:
        """MLM: masked text through the text encoder, then the decoder attending to the video (UMT §3.2).

        The vocabulary head runs on the masked positions only: the loss is the same, and the `(tokens, vocab)`
        projection, the costliest matmul of a small model's step, shrinks to the masked share of the tokens.
        """
        text_states = self.umt.encode_text(mlm_input_ids, attention_mask)
        fused = self.umt.encode_multimodal(text_states, attention_mask, video_states)
        masked = mlm_labels != self.mlm_loss.ignore_index
        return self.mlm_loss(self.mlm_head(fused[masked]), mlm_labels[masked])

    def _encode_negative_captions(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(B, K, L)` negative captions -> text tokens `(B, K, L, D)`, VTC embeddings `(B, K, P)` and the mask."""
        if input_ids.ndim != 3:
            raise ValueError(f"`negative_input_ids` must be (batch, num_negatives, length), got "
                             f"{tuple(input_ids.shape)}")  # fmt: skip
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        batch_size, num_negatives, length = input_ids.shape
        flat_mask = attention_mask.reshape(-1, length)
        states = self.umt.encode_text(input_ids.reshape(-1, length), flat_mask)
        embeds = self.umt.project_text(states, flat_mask)
        return (states.view(batch_size, num_negatives, length, -1), embeds.view(batch_size, num_negatives, -1),
                attention_mask)  # fmt: skip

    # ------------------------------------------------------------------ forward
    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mlm_input_ids: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        video_ids: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        negative_input_ids: torch.Tensor | None = None,
        negative_attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> UmtForPreTrainingOutput:
        """
        Args:
            pixel_values: `(B, T, C, H, W)` frames (`T == 1`: images).
            input_ids, attention_mask: `(B, L)` captions (stage 2).
            bool_masked_pos: `(B, T * h * w)` bool, True = masked; drawn from the teacher when omitted.
            mlm_input_ids, mlm_labels: `(B, L)` masked captions and their labels (-100 where not masked), as made by
                `hf_videolang.video.masking.mask_tokens_mlm` at `config.text_mask_ratio`; MLM is skipped without them.
            video_ids: `(B,)` ids; captions of the same video are not negatives of each other in VTC/VTM.
            generator: seeds the semantic mask and the VTM negative sampling (on the input's device).
            negative_input_ids, negative_attention_mask: `(B, K, L)` optional negative captions of each video (e.g.
                its caption with one attribute swapped, as `NegativeCaptionCollator` adds them): extra VTC
                negatives of their video, and VTM's text-side negatives in place of the mined ones. Not in the UMT
                paper, which mines every negative from the batch.
            output_attentions, output_hidden_states: return the student's attention maps / layer outputs.
            return_dict: `False` returns a tuple of the non-None fields.
        """
        config = self.config
        stage2 = config.pretraining_stage == 2
        if stage2 and input_ids is None:
            raise ValueError("UmtForPreTraining: stage 2 needs `input_ids` (the captions).")
        use_uta = self.teacher is not None and config.uta_loss_weight > 0
        needs_teacher = self.teacher is not None and (use_uta or bool_masked_pos is None)
        teacher_output = self.teacher(pixel_values) if needs_teacher else None
        if bool_masked_pos is None:
            bool_masked_pos = self._draw_mask(teacher_output, pixel_values.shape[1], generator)

        vision_output = self.umt.vision_model(
            pixel_values,
            bool_masked_pos=bool_masked_pos,
            output_layers=config.uta_student_layers if use_uta else None,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        losses: dict[str, torch.Tensor | None] = dict.fromkeys(("uta", "vtc", "vtm", "mlm"))
        if use_uta:
            student = self.uta_head(vision_output.alignment_hidden_states, bool_masked_pos)
            losses["uta"] = self.uta_loss(student, teacher_output.hidden_states, bool_masked_pos)

        video_embeds = text_embeds = None
        if stage2:
            video_states = vision_output.last_hidden_state
            text_states = self.umt.encode_text(input_ids, attention_mask)
            vtc_video_embeds, video_embeds = self.umt.video_embeds_for_scoring(
                vision_output, pixel_values, bool_masked_pos
            )
            text_embeds = self.umt.project_text(text_states, attention_mask)
            negative_states = negative_embeds = None
            if negative_input_ids is not None:
                negative_states, negative_embeds, negative_attention_mask = self._encode_negative_captions(
                    negative_input_ids, negative_attention_mask
                )
            if config.vtc_loss_weight > 0:
                losses["vtc"] = self.vtc_loss(vtc_video_embeds, text_embeds, self.umt.logit_scale, video_ids=video_ids,
                                              negative_text_emb=negative_embeds)  # fmt: skip
            if config.vtm_loss_weight > 0:
                losses["vtm"] = _video_text_matching_loss(
                    self, video_states, text_states, attention_mask, video_embeds, text_embeds, video_ids, generator,
                    negative_states, negative_attention_mask,
                )  # fmt: skip
            if config.mlm_loss_weight > 0 and mlm_labels is not None:
                if mlm_input_ids is None:
                    raise ValueError("UmtForPreTraining: `mlm_labels` needs `mlm_input_ids` (the masked captions).")
                losses["mlm"] = self._mlm_loss(mlm_input_ids, attention_mask, mlm_labels, video_states)

        weights = {name: getattr(config, f"{name}_loss_weight") for name in losses}
        terms = [weights[name] * value for name, value in losses.items() if value is not None]
        return UmtForPreTrainingOutput(
            loss=torch.stack(terms).sum() if terms else None,
            loss_uta=losses["uta"],
            loss_vtc=losses["vtc"],
            loss_vtm=losses["vtm"],
            loss_mlm=losses["mlm"],
            bool_masked_pos=bool_masked_pos,
            video_embeds=video_embeds,
            text_embeds=text_embeds,
            hidden_states=vision_output.hidden_states,
            attentions=vision_output.attentions,
        )


# ---------------------------------------------------------------------------------------------------- task heads
#
# Adapted from a reading of OpenGVLab/unmasked_teacher@4fb4049 (`multi_modality/models/umt_qa.py`,
# `tasks/retrieval_utils.py`, `tasks/retrieval_mc.py`, `single_modality/models/modeling_finetune.py`). Head names
# (`umt`, `vtm_head`) match `UmtForPreTraining`, so a stage-2 pre-training checkpoint loads into every head.

# Weight of the VTM probability in the multiple-choice score, the rest going to the VTC softmax over the options
# (the authors' `retrieval_mc.py`: `0.7 * itm + 0.3 * sim`).
_MC_VTM_WEIGHT = 0.7
# Pre-training weights that the task heads do not use.
_PRETRAINING_ONLY_KEYS = [r"^teacher\.", r"^uta_head\.", r"^mlm_head\."]


@dataclass
class UmtVideoTextRetrievalOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): with `return_loss` (the default in training), the
            fine-tuning loss `vtc_loss_weight * loss_vtc + vtm_loss_weight * loss_vtm` (the authors' retrieval
            fine-tuning: VTC + VTM with hard negatives).
        loss_vtc, loss_vtm (`torch.FloatTensor` of shape `()`, *optional*): the unweighted terms (None at weight 0).
        logits_per_text (`torch.FloatTensor` of shape `(B_t, B_v)`): VTC scores, `exp(logit_scale)` times the
            (per-frame mean, see `UmtModel`) cosine.
        logits_per_video (`torch.FloatTensor` of shape `(B_v, B_t)`): their transpose.
        reranked_logits_per_text (`torch.FloatTensor` of shape `(B_t, B_v)`, *optional*): with `rerank_top_k`, the
            `k` best videos of each text re-scored by VTM (positive-class logit) and placed above all others, which
            keep their VTC order (UMT §3.3; the authors' `k_test`).
        reranked_logits_per_video (`torch.FloatTensor` of shape `(B_v, B_t)`, *optional*): the same for the `k`
            best texts of each video.
        video_embeds (`torch.FloatTensor` of shape `(B_v, P)`), text_embeds (`torch.FloatTensor` of shape
            `(B_t, P)`): the scoring embeddings (`UmtModel.get_video_features`, `get_text_features`).
        hidden_states, attentions (`tuple(torch.FloatTensor)`, *optional*): the student's.
    """

    loss: torch.FloatTensor | None = None
    loss_vtc: torch.FloatTensor | None = None
    loss_vtm: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    logits_per_video: torch.FloatTensor | None = None
    reranked_logits_per_text: torch.FloatTensor | None = None
    reranked_logits_per_video: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class UmtVideoQuestionAnsweringOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): mean negative log-likelihood of the target answers
            (`answer_input_ids`).
        logits (`torch.FloatTensor` of shape `(B, num_answers)`): answer scores over `config.answer_list`: the
            decoder's log-likelihood of each pre-selected answer, `-1e4` for the others (see
            `UmtForVideoQuestionAnswering.rank_answers`).
        question_states (`torch.FloatTensor` of shape `(B, L, D)`): the question tokens fused with the video.
        hidden_states, attentions (`tuple(torch.FloatTensor)`, *optional*): the student's.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    question_states: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class UmtVideoClassificationOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): cross-entropy with `labels`.
        logits (`torch.FloatTensor` of shape `(B, num_labels)`): class scores.
        pooler_output (`torch.FloatTensor` of shape `(B, D)`): the pooled video features the classifier reads.
        hidden_states, attentions (`tuple(torch.FloatTensor)`, *optional*): the student's.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def _flatten_candidates(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    if input_ids.ndim != 3:
        raise ValueError(f"score_candidates: input_ids must be (B, K, L), got shape {tuple(input_ids.shape)}.")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"score_candidates: attention_mask {tuple(attention_mask.shape)} does not match input_ids "
            f"{tuple(input_ids.shape)}."
        )
    return input_ids.flatten(0, 1), attention_mask.flatten(0, 1)


class _UmtMatchingMixin:
    """VTM scoring shared by the retrieval and QA heads; needs `self.umt` (a `UmtModel`) and `self.vtm_head`."""

    umt: UmtModel
    vtm_head: nn.Linear

    def get_video_states(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Video tokens the matching head attends to, `(B, T, C, H, W) -> (B, T * h * w, D)`."""
        return self.umt.vision_model(pixel_values).last_hidden_state

    def matching_logits(
        self, video_states: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """VTM logits `(K, 2)` (class 1 = match) of `K` aligned pairs: `(K, N, D)` video tokens, `(K, L)` texts."""
        if video_states.shape[0] != input_ids.shape[0]:
            raise ValueError(
                f"matching_logits: got {video_states.shape[0]} videos for {input_ids.shape[0]} texts; "
                "pairs must align."
            )
        text_states = self.umt.encode_text(input_ids, attention_mask)
        fused = self.umt.encode_multimodal(text_states, attention_mask, video_states)
        return self.vtm_head(self.umt.pool_text(fused, attention_mask))

    def rerank(self, video_states: torch.Tensor, text_inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Matching scores `(K,)` of `K` aligned pairs: the VTM positive-class logit, as the authors' `k_test`
        re-ranking (`itm_head(...)[:, 1]`). Hook of `hf_videolang.evaluation.retrieval.evaluate_retrieval`."""
        return self.matching_logits(video_states, text_inputs["input_ids"], text_inputs.get("attention_mask"))[:, 1]

    @torch.no_grad()
    def score_candidates(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Multiple-choice scores of `K` candidate texts per video.

        The score mixes the VTM match probability with the VTC softmax over the options, `0.7 * p_vtm + 0.3 *
        p_vtc`, as the authors' MSR-VTT MC evaluation (`tasks/retrieval_mc.py`), and is returned as a log so that
        a softmax over the candidates (the pipeline's) renormalizes that mixture.

        Args:
            pixel_values: `(B, T, C, H, W)`.
            input_ids, attention_mask: `(B, K, L)`; row `k` is candidate `k` (or the pair (question, candidate k)).
                Padded rows (attention mask all 0) score `-inf`.

        Returns:
            `(B, K)` log mixture scores (higher = better).
        """
        batch_size, num_candidates = input_ids.shape[:2]
        flat_ids, flat_mask = _flatten_candidates(input_ids, attention_mask)
        vision_output = self.umt.vision_model(pixel_values)
        video_embeds = self.umt.video_embeds_for_scoring(vision_output, pixel_values, None)[1]
        video_states = vision_output.last_hidden_state.repeat_interleave(num_candidates, dim=0)
        # Padded rows get a [CLS]-only mask so that attention stays defined; their score is masked below.
        padded = flat_mask.sum(dim=1) == 0
        flat_mask = flat_mask.clone()
        flat_mask[padded, 0] = 1
        text_states = self.umt.encode_text(flat_ids, flat_mask)
        text_embeds = self.umt.project_text(text_states, flat_mask)
        fused = self.umt.encode_multimodal(text_states, flat_mask, video_states)
        vtm = self.vtm_head(self.umt.pool_text(fused, flat_mask)).softmax(dim=-1)[:, 1]

        text_embeds = text_embeds.view(batch_size, num_candidates, -1)
        similarity = self.umt.logit_scale.exp() * (text_embeds @ video_embeds[..., None]).squeeze(-1)
        similarity = similarity.masked_fill(padded.view(batch_size, num_candidates), float("-inf"))
        mixture = _MC_VTM_WEIGHT * vtm.view(batch_size, num_candidates) + (1 - _MC_VTM_WEIGHT) * similarity.softmax(-1)
        return mixture.log().masked_fill(padded.view(batch_size, num_candidates), float("-inf"))


class UmtForVideoTextRetrieval(_UmtMatchingMixin, UmtPreTrainedModel):
    """UMT for text-video retrieval (UMT §3.3): VTC dual-encoder scores, VTM re-ranking of the top `k` candidates.

    Implements the hooks of `hf_videolang.evaluation.retrieval` (`get_video_features`, `get_text_features`,
    `get_video_states`, `rerank`) and `score_candidates` for multiple choice.
    """

    _keys_to_ignore_on_load_unexpected = _PRETRAINING_ONLY_KEYS

    def __init__(self, config: UmtConfig) -> None:
        super().__init__(config)
        if config.text_config is None:
            raise ValueError(
                "UmtForVideoTextRetrieval needs the text side: use a stage-2 config (pretraining_stage=2)."
            )
        self.umt = UmtModel(config)
        self.vtm_head = nn.Linear(config.text_config.hidden_size, 2)
        self.vtc_loss = VideoTextContrastiveLoss()
        self.vtm_loss = VideoTextMatchingLoss()
        self.post_init()

    def get_video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(B, P)` video embeddings whose dot product with `get_text_features` is the VTC score."""
        return self.umt.get_video_features(pixel_values)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalized `(B, P)` text embeddings."""
        return self.umt.get_text_features(input_ids, attention_mask)

    def _rerank_rows(
        self,
        scores: torch.Tensor,
        video_states: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        top_k: int,
        rows_are_texts: bool,
    ) -> torch.Tensor:
        """Re-score the `top_k` columns of each row of `scores` with VTM and put them above the rest."""
        num_rows, num_cols = scores.shape
        top = scores.topk(min(top_k, num_cols), dim=1).indices  # (R, k)
        rows = torch.arange(num_rows, device=scores.device)[:, None].expand_as(top)
        video_index, text_index = (top, rows) if rows_are_texts else (rows, top)
        video_index, text_index = video_index.flatten(), text_index.flatten()
        mask = attention_mask[text_index] if attention_mask is not None else None
        vtm = self.matching_logits(video_states[video_index], input_ids[text_index], mask)[:, 1]
        return place_above(scores, top, vtm.view_as(top).to(scores.dtype))

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        video_ids: torch.Tensor | None = None,
        rerank_top_k: int | None = None,
        return_loss: bool | None = None,
        generator: torch.Generator | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> UmtVideoTextRetrievalOutput:
        """Score every video against every text; in training, also the fine-tuning loss.

        Args:
            pixel_values: `(B_v, T, C, H, W)`.
            input_ids, attention_mask: `(B_t, L)`.
            video_ids: `(B,)` ids of the videos; captions of one video are not negatives of each other.
            rerank_top_k: re-rank the `k` best candidates of each query with VTM (both directions); `None` keeps
                the VTC scores only. The authors use `k_test = 128`.
            return_loss: compute VTC + VTM (row `i` of the videos pairs with row `i` of the texts); defaults to
                `self.training`, so a plain `Trainer` trains it and inference pays nothing.
            generator: seeds the VTM negative sampling.
            return_dict: `False` returns a tuple of the non-None fields.
        """
        vision_output = self.umt.vision_model(
            pixel_values, output_attentions=output_attentions, output_hidden_states=output_hidden_states
        )
        vtc_video_embeds, video_embeds = self.umt.video_embeds_for_scoring(vision_output, pixel_values, None)
        text_states = self.umt.encode_text(input_ids, attention_mask)
        text_embeds = self.umt.project_text(text_states, attention_mask)
        logits_per_text = self.umt.logit_scale.exp() * text_embeds @ video_embeds.T
        states = vision_output.last_hidden_state

        loss = loss_vtc = loss_vtm = None
        if self.training if return_loss is None else return_loss:
            if states.shape[0] != input_ids.shape[0]:
                raise ValueError(
                    f"UmtForVideoTextRetrieval: the loss pairs video i with text i, got {states.shape[0]} videos and "
                    f"{input_ids.shape[0]} texts; pass return_loss=False to only score."
                )
            config = self.config
            if config.vtc_loss_weight > 0:
                loss_vtc = self.vtc_loss(vtc_video_embeds, text_embeds, self.umt.logit_scale, video_ids=video_ids)
            if config.vtm_loss_weight > 0:
                loss_vtm = _video_text_matching_loss(
                    self, states, text_states, attention_mask, video_embeds, text_embeds, video_ids, generator
                )
            terms = [w * t for w, t in ((config.vtc_loss_weight, loss_vtc), (config.vtm_loss_weight, loss_vtm))
                     if t is not None]  # fmt: skip
            loss = torch.stack(terms).sum() if terms else None

        reranked_t2v = reranked_v2t = None
        if rerank_top_k is not None:
            if rerank_top_k < 1:
                raise ValueError(f"rerank_top_k must be at least 1, got {rerank_top_k}.")
            reranked_t2v = self._rerank_rows(logits_per_text, states, input_ids, attention_mask, rerank_top_k, True)
            reranked_v2t = self._rerank_rows(
                logits_per_text.T, states, input_ids, attention_mask, rerank_top_k, False
            )
        return UmtVideoTextRetrievalOutput(
            loss=loss,
            loss_vtc=loss_vtc,
            loss_vtm=loss_vtm,
            logits_per_text=logits_per_text,
            logits_per_video=logits_per_text.T,
            reranked_logits_per_text=reranked_t2v,
            reranked_logits_per_video=reranked_v2t,
            video_embeds=video_embeds,
            text_embeds=text_embeds,
            hidden_states=vision_output.hidden_states,
            attentions=vision_output.attentions,
        )


def _answer_decoder_config(config: BertConfig) -> BertConfig:
    """The answer decoder: a causal BERT with cross-attention, as deep as the multimodal encoder (the authors'
    `build_bert_decoder`: `num_hidden_layers - fusion_layer` layers, initialized from the multimodal layers)."""
    decoder = copy.deepcopy(config)
    decoder.is_decoder = True
    decoder.add_cross_attention = True
    return decoder


def tokenize_answers(tokenizer, answers: Sequence[str], max_length: int = 5):
    """Tokenize QA answers as the authors do (`qa_dataset.py`, `vqa.py`): `answer + " [SEP]"` (their `eos`), with
    the tokenizer's own special tokens, truncated to `max_length` tokens (`max_a_len = 5`). A BERT tokenizer gives
    `[CLS] answer [SEP] [SEP]`; the answer decoder learns and scores every token after `[CLS]`.

    Returns the tokenizer's encoding (unpadded lists unless `kwargs` ask otherwise)."""
    eos = tokenizer.sep_token or ""
    return tokenizer(
        [f"{answer} {eos}".strip() for answer in answers],
        truncation=True,
        max_length=max_length,
        add_special_tokens=True,
    )


class UmtForVideoQuestionAnswering(AnswerDecoderMixin, _UmtMatchingMixin, UmtPreTrainedModel):
    """UMT for video question answering, as the authors' `UMT_QA` (ALBEF-style, UMT §4.3 "Video QA").

    The question runs through the text encoder and the multimodal encoder (attending to the video); a BERT answer
    decoder then reads those fused question states and scores each candidate of `config.answer_list` by the
    log-likelihood of its tokens. `forward(pixel_values, input_ids, attention_mask).logits` is `(B, num_answers)`,
    the contract of the `video-question-answering` pipeline; `score_candidates` ranks multiple-choice options with
    VTM (pre-trained `vtm_head`).

    The candidates come from `config.answer_token_ids`; set them with :meth:`set_answer_list`.
    """

    _keys_to_ignore_on_load_unexpected = _PRETRAINING_ONLY_KEYS
    count_first_token_twice = True  # the authors' rank_answer score (see `AnswerDecoderMixin.rank_answers`)

    def __init__(self, config: UmtConfig) -> None:
        super().__init__(config)
        if config.text_config is None:
            raise ValueError(
                "UmtForVideoQuestionAnswering needs the text side: use a stage-2 config (pretraining_stage=2)."
            )
        self.umt = UmtModel(config)
        self.vtm_head = nn.Linear(config.text_config.hidden_size, 2)
        self.answer_decoder = BertLMHeadModel._from_config(_answer_decoder_config(config.multimodal_config))
        self.post_init()

    def _answer_decoder_sources(self) -> tuple[nn.Module, nn.ModuleList]:
        # The authors start the decoder from the multimodal encoder and the text embeddings (tasks/shared_utils.py).
        return self.umt.text_model.embeddings, self.umt.multimodal_encoder.layer

    def tokenize_answer_list(self, tokenizer, answers: Sequence[str], max_length: int):
        return tokenize_answers(tokenizer, answers, max_length=max_length)  # `[CLS] answer [SEP] [SEP]`

    def encode_question(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Question tokens fused with the video: `(B, L, D)`."""
        video_states = self.umt.vision_model(pixel_values).last_hidden_state
        return self._fuse_question(video_states, input_ids, attention_mask)

    def _fuse_question(
        self, video_states: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        return self.umt.encode_multimodal(self.umt.encode_text(input_ids, attention_mask), attention_mask, video_states)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        answer_input_ids: torch.Tensor | None = None,
        answer_attention_mask: torch.Tensor | None = None,
        answer_weights: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        video_ids: torch.Tensor | None = None,
        top_k: int = 128,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> UmtVideoQuestionAnsweringOutput:
        """
        Args:
            pixel_values: `(B, T, C, H, W)`.
            input_ids, attention_mask: `(B, L_q)` questions.
            answer_input_ids, answer_attention_mask: `(B, L_a)` target answers (:func:`tokenize_answers`) for
                training; when given, `loss` is their negative log-likelihood and the answer list is not ranked.
            answer_weights: `(B,)` weight of each target (the authors weight the answers of one question by their
                frequency); the loss is `sum(weight * nll) / B`, a plain mean without weights.
            labels: `(B,)` indices into `config.answer_list` (-100: no target), the `VideoTextCollator(task="qa")`
                batch; used as targets (their tokens from `config.answer_token_ids`) when `answer_input_ids` is None.
            video_ids: accepted for the collator's batches; unused.
            top_k: answers pre-selected by their first token before full scoring (the authors' `k_test`).
            return_dict: `False` returns a tuple of the non-None fields.
        """
        vision_output = self.umt.vision_model(
            pixel_values, output_attentions=output_attentions, output_hidden_states=output_hidden_states
        )
        question_states = self._fuse_question(vision_output.last_hidden_state, input_ids, attention_mask)
        extras = dict(hidden_states=vision_output.hidden_states, attentions=vision_output.attentions)
        if answer_input_ids is None and labels is not None:
            answer_input_ids, answer_attention_mask, known = self._answer_targets(labels)
            answer_weights = known if answer_weights is None else answer_weights * known
        if answer_input_ids is None:
            return UmtVideoQuestionAnsweringOutput(
                logits=self.rank_answers(question_states, attention_mask, top_k),
                question_states=question_states,
                **extras,
            )
        loss = self.answer_nll(question_states, attention_mask, answer_input_ids, answer_attention_mask, answer_weights)
        return UmtVideoQuestionAnsweringOutput(loss=loss, question_states=question_states, **extras)


class UmtForVideoClassification(UmtPreTrainedModel):
    """UMT student with a linear classifier on the pooled tokens (the authors' single-modality fine-tuning:
    mean pooling, norm, dropout, linear head). With `vision_config.use_final_norm=False` the layout is exactly the
    authors' fine-tuned one (no final norm on the tokens, `fc_norm` after the mean = `pool_norm` here), which
    the converter selects for their classification checkpoints. Registered with `AutoModelForVideoClassification`, so
    transformers' `video-classification` pipeline runs it; `config.num_labels` / `id2label` name the classes."""

    accepts_loss_kwargs = False
    _keys_to_ignore_on_load_unexpected = [
        *_PRETRAINING_ONLY_KEYS,
        r"^vtm_head\.",
        r"^umt\.(text_model|multimodal_encoder|vision_projection|text_projection|logit_scale)",
    ]

    def __init__(self, config: UmtConfig) -> None:
        super().__init__(config)
        self.umt = UmtModel(config, add_text_model=False)
        # The authors' `fc_dropout` (0 unless set) and `head`.
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.vision_config.hidden_size, config.num_labels)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> UmtVideoClassificationOutput:
        """`pixel_values` `(B, T, C, H, W)`, optional `labels` `(B,)` class indices; `return_dict=False` returns a
        tuple."""
        vision_output = self.umt.vision_model(
            pixel_values, output_attentions=output_attentions, output_hidden_states=output_hidden_states
        )
        pooled = vision_output.pooler_output
        logits = self.classifier(self.dropout(pooled))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return UmtVideoClassificationOutput(
            loss=loss,
            logits=logits,
            pooler_output=pooled,
            hidden_states=vision_output.hidden_states,
            attentions=vision_output.attentions,
        )


__all__ = [
    "UmtForPreTraining",
    "UmtForVideoClassification",
    "UmtForVideoQuestionAnswering",
    "UmtForVideoTextRetrieval",
    "UmtModel",
    "UmtPreTrainedModel",
    "UmtTeacher",
    "UmtVisionModel",
    "gather_visible_tokens",
    "tokenize_answers",
]
