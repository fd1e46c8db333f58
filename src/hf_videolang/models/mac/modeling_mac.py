"""MAC, "Masked Contrastive Pre-Training for Efficient Video-Text Retrieval" (Shu et al., 2022).

A dual encoder (MAC §3.2): a divided space-time ViT encodes the *visible* patches of a randomly masked video (60 %
of every frame, MAC §3.1) and a BERT-like text encoder the whole-word-masked caption (15 %, [MASK] only); a symmetric
InfoNCE on the projected [CLS] embeddings aligns them (MAC §3.3, Eq. 2-3). There is no decoder and nothing is
reconstructed ("masked-then-alignment").

Random masking keeps the same number ``K`` of patches in every frame, at different places, so the visible tokens
form a ``(T, K)`` grid: temporal attention runs over the ``T`` tokens with the same index ``k`` (which sit at
different spatial positions in different frames, MAC Fig. 3) and spatial attention over the ``K`` tokens of a frame.
Without a mask this is exactly divided space-time attention over patch positions (TimeSformer, Frozen-in-Time).

The block follows a reading of Frozen-in-Time (m-bain/frozen-in-time@e1f13e1, ``model/video_transformer.py``,
``SpaceTimeBlock`` / ``VarAttention``): the [CLS] token attends to every token in both attentions, each patch
token to its group and the [CLS]; the temporal output feeds the spatial attention's input, and only the spatial
output is added to the residual stream. Written from scratch on the shared layers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial, wraps
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, logging
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from ...layers import Attention, DropPath, Mlp, PatchEmbed3d, pool_tokens
from ...layers.attention import eager_attention_forward
from ...losses import VideoTextContrastiveLoss
from .configuration_mac import MacConfig, MacVisionConfig

logger = logging.get_logger(__name__)

AttentionAxis = Literal["time", "space"]

# ---------------------------------------------------------------------------------------------------- outputs


@dataclass
class MacVisionModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, 1 + T * K, D)`): final-normed [CLS] and visible patch
            tokens, frame-major (`K = h * w` without a mask).
        pooler_output (`torch.FloatTensor` of shape `(B, D)`): the final-normed [CLS] token (MAC §3, `v_cls`).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): the embeddings and every block's output (before the
            final norm), `num_hidden_layers + 1` tensors of shape `(B, 1 + T * K, D)`, with `output_hidden_states=True`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): every block's spatial attention maps,
            `(B * T, H, K, 1 + K)` (the patches of one frame; key 0 is [CLS]), with `output_attentions=True`.
        temporal_attentions (`tuple(torch.FloatTensor)`, *optional*): every block's temporal attention maps,
            `(B * K, H, T, 1 + T)` (the tokens of one index across frames; key 0 is [CLS]), with
            `output_attentions=True`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    temporal_attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class MacOutput(ModelOutput):
    """
    Args:
        logits_per_video (`torch.FloatTensor` of shape `(B_v, B_t)`): `exp(logit_scale)` times cosine similarities.
        logits_per_text (`torch.FloatTensor` of shape `(B_t, B_v)`): their transpose.
        video_embeds (`torch.FloatTensor` of shape `(B_v, P)`), text_embeds (`torch.FloatTensor` of shape
            `(B_t, P)`): L2-normalized embeddings in the joint space.
        vision_model_output (`MacVisionModelOutput`): the video encoder's outputs.
        text_model_output (`BaseModelOutput`): the text encoder's outputs (`last_hidden_state` `(B_t, L, D_t)`, and
            its `hidden_states` / `attentions` when asked).
    """

    logits_per_video: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    vision_model_output: MacVisionModelOutput | None = None
    text_model_output: BaseModelOutput | None = None

    def to_tuple(self) -> tuple[Any, ...]:
        # as CLIPOutput: the nested outputs become tuples too, so return_dict=False gives plain tuples throughout
        return tuple(v.to_tuple() if isinstance(v, ModelOutput) else v for v in super().to_tuple())


@dataclass
class MacForVideoTextRetrievalOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): the training objective, equal to `loss_vtc` (MAC has
            no other term, §3.3 and Table 5).
        loss_vtc (`torch.FloatTensor` of shape `()`, *optional*): symmetric InfoNCE, the mean of its two directions
            (MAC Eq. 2-3; see `VideoTextContrastiveLoss`).
        logits_per_video (`torch.FloatTensor` of shape `(B, B)`), logits_per_text (`torch.FloatTensor` of shape
            `(B, B)`): scaled cosine similarities.
        video_embeds (`torch.FloatTensor` of shape `(B, P)`), text_embeds (`torch.FloatTensor` of shape `(B, P)`):
            L2-normalized embeddings.
        vision_hidden_states, vision_attentions, vision_temporal_attentions (*optional*): the video encoder's
            `hidden_states`, `attentions` and `temporal_attentions` (see `MacVisionModelOutput`), when asked.
        text_hidden_states, text_attentions (*optional*): the text encoder's, when asked.

    The encoders' full outputs are left out (unlike `MacOutput`) so that `Trainer.predict` gathers only the scores.
    """

    loss: torch.FloatTensor | None = None
    loss_vtc: torch.FloatTensor | None = None
    logits_per_video: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    vision_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    vision_attentions: tuple[torch.FloatTensor, ...] | None = None
    vision_temporal_attentions: tuple[torch.FloatTensor, ...] | None = None
    text_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    text_attentions: tuple[torch.FloatTensor, ...] | None = None


# ---------------------------------------------------------------------------------------------------- masking


def visible_patch_grid(patches: torch.Tensor, bool_masked_pos: torch.Tensor | None) -> torch.Tensor:
    """Keep the visible patches of every frame, in order: `(B, T, N, D)` -> `(B, T, K, D)`.

    Args:
        patches: `(B, T, N, D)` embedded patches (positions already added), `N = h * w`.
        bool_masked_pos: `(B, T * N)` bool, True = masked, frame-major; `None` keeps every patch (`K = N`).

    Raises:
        ValueError: the mask has the wrong shape or dtype, masks a different number of patches in different frames
            or samples (divided attention needs a `(T, K)` grid; `RandomMasker` masks equally per frame), or masks a
            whole frame.
    """
    if bool_masked_pos is None:
        return patches
    batch_size, num_frames, num_patches, dim = patches.shape
    expected = (batch_size, num_frames * num_patches)
    if bool_masked_pos.dtype != torch.bool or tuple(bool_masked_pos.shape) != expected:
        raise ValueError(
            f"bool_masked_pos must be a bool tensor of shape (B, T*h*w) = {expected}, got {bool_masked_pos.dtype} "
            f"{tuple(bool_masked_pos.shape)}."
        )
    visible = ~bool_masked_pos.view(batch_size, num_frames, num_patches)
    counts = visible.sum(dim=-1)  # (B, T)
    if not bool((counts == counts[0, 0]).all()):
        raise ValueError(
            f"bool_masked_pos leaves {counts.tolist()} visible patches per (sample, frame); MAC's divided attention "
            "needs the same number in every frame of every sample (use RandomMasker, MAC §3.1)."
        )
    num_visible = int(counts[0, 0])
    if num_visible == 0:
        raise ValueError("bool_masked_pos masks every patch of a frame; at least one per frame must stay visible.")
    return patches[visible].view(batch_size, num_frames, num_visible, dim)


def resize_temporal_embeddings(table: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Temporal position embeddings for `num_frames` frames from a `(M, D)` table.

    `num_frames <= M` takes the first rows (Frozen-in-Time feeds fewer frames through a prefix of its tiled table);
    `num_frames > M` interpolates the table linearly in time (Frozen-in-Time's ``load_temporal_fix="interp"``).

    Returns:
        `(num_frames, D)`.
    """
    if num_frames <= table.shape[0]:
        return table[:num_frames]
    resized = F.interpolate(table.T[None], size=num_frames, mode="linear", align_corners=True)
    return resized[0].T


# ---------------------------------------------------------------------------------------------------- attention


def _split_groups(tensor: torch.Tensor, num_frames: int, axis: AttentionAxis) -> torch.Tensor:
    """Patch tokens `(B, T * K, H, Dh)` -> attention groups `(G, H, L, Dh)`.

    `axis="time"`: `G = B * K` groups of the `L = T` tokens with the same index in every frame;
    `axis="space"`: `G = B * T` groups of the `L = K` tokens of one frame.
    """
    batch_size, num_tokens, num_heads, head_dim = tensor.shape
    grid = tensor.view(batch_size, num_frames, num_tokens // num_frames, num_heads, head_dim)
    if axis == "time":
        grid = grid.transpose(1, 2)  # (B, K, T, H, Dh)
    return grid.flatten(0, 1).transpose(1, 2)


def _merge_groups(tensor: torch.Tensor, batch_size: int, num_frames: int, axis: AttentionAxis) -> torch.Tensor:
    """Inverse of :func:`_split_groups` on an attention output `(G, L, H, Dh)` -> `(B, T * K, H * Dh)`."""
    num_groups, length, num_heads, head_dim = tensor.shape
    grid = tensor.view(batch_size, num_groups // batch_size, length, num_heads * head_dim)
    if axis == "time":
        grid = grid.transpose(1, 2)  # back to (B, T, K, H * Dh)
    return grid.reshape(batch_size, -1, num_heads * head_dim)


class DividedSpaceTimeAttention(Attention):
    """Self-attention along one axis of a `(T, K)` token grid with a global [CLS] (Frozen-in-Time's `VarAttention`).

    Input `(B, 1 + T * K, D)`: [CLS] then the patch tokens, frame-major. The [CLS] query attends to all `1 + T * K`
    tokens; each patch query attends to the [CLS] and to its group: the `T` tokens of the same index `k` in every
    frame (`axis="time"`) or the `K` tokens of its frame (`axis="space"`). Same parameters and backends
    (`config._attn_implementation`) as the shared :class:`~hf_videolang.layers.Attention`.
    """

    def _attention_function(self, implementation: str | None, output_attentions: bool):
        implementation = implementation or self.attn_implementation
        if output_attentions or implementation in (None, "eager"):
            return eager_attention_forward
        return ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)

    def forward(
        self,
        hidden_states: torch.Tensor,
        num_frames: int,
        axis: AttentionAxis,
        attn_implementation: str | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """
        Args:
            hidden_states: `(B, 1 + T * K, D)`.
            num_frames: `T`.
            axis: `"time"` or `"space"`.
            attn_implementation: backend for this call (default: the module's).
            output_attentions: also return the patch groups' attention probabilities (eager path).

        Returns:
            `(B, 1 + T * K, D)` and, with `output_attentions`, `(G, H, L, 1 + L)` (key 0 = [CLS]).
        """
        if axis not in ("time", "space"):
            raise ValueError(f"DividedSpaceTimeAttention: axis must be 'time' or 'space', got {axis!r}.")
        batch_size, num_tokens, _ = hidden_states.shape
        if (num_tokens - 1) % num_frames:
            raise ValueError(f"{num_tokens - 1} patch tokens do not split into {num_frames} frames of equal size.")
        qkv = F.linear(hidden_states, self.qkv.weight, self._qkv_bias())
        query, key, value = qkv.view(batch_size, num_tokens, 3, self.num_heads, self.head_dim).unbind(2)
        attention_fn = self._attention_function(attn_implementation, output_attentions)
        common = dict(scaling=self.scaling, dropout=self.attn_drop if self.training else 0.0)

        # [CLS] attends to every token.
        cls_out, _ = attention_fn(
            self, query[:, :1].transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), None, **common
        )
        # Patch tokens attend to the [CLS] and to their group.
        group_query = _split_groups(query[:, 1:], num_frames, axis)
        num_groups = group_query.shape[0]
        cls_key = key[:, :1].transpose(1, 2).repeat_interleave(num_groups // batch_size, dim=0)
        cls_value = value[:, :1].transpose(1, 2).repeat_interleave(num_groups // batch_size, dim=0)
        group_key = torch.cat([cls_key, _split_groups(key[:, 1:], num_frames, axis)], dim=2)
        group_value = torch.cat([cls_value, _split_groups(value[:, 1:], num_frames, axis)], dim=2)
        patch_out, weights = attention_fn(self, group_query, group_key, group_value, None, **common)

        output = torch.cat(
            [cls_out.reshape(batch_size, 1, -1), _merge_groups(patch_out, batch_size, num_frames, axis)], dim=1
        )
        return self.proj_drop(self.proj(output)), (weights if output_attentions else None)


class MacSpaceTimeBlock(GradientCheckpointingLayer):
    """Divided space-time block (MAC §3.2, "first performs attention in the temporal dimension, then in the spatial
    dimension"), with Frozen-in-Time's residual layout::

        t = x + temporal_attn(temporal_norm(x))
        x = x + drop_path(attn(norm1(t)))
        x = x + drop_path(mlp(norm2(x)))

    `attn`, `norm1`, `mlp` and `norm2` carry ViT's names, so an image ViT initializes the spatial part (MAC §4.3).
    """

    def __init__(self, config: MacVisionConfig, drop_path: float) -> None:
        super().__init__()
        dim, eps = config.hidden_size, config.layer_norm_eps
        attention = partial(
            DividedSpaceTimeAttention,
            dim,
            num_heads=config.num_attention_heads,
            qkv_bias="qkv" if config.qkv_bias else "none",
            attn_drop=config.attention_probs_dropout_prob,
            proj_drop=config.hidden_dropout_prob,
        )
        self.temporal_norm = nn.LayerNorm(dim, eps=eps)
        self.temporal_attn = attention()
        if config.temporal_attention_init == "zeros":
            # read by MacPreTrainedModel._init_weights, which transformers calls on each leaf module (the values of
            # zero_init_temporal_attention)
            self.temporal_attn.qkv.init_fill = 0.0
            self.temporal_attn.proj.init_fill = 1.0
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = attention()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(
            dim,
            hidden_features=config.intermediate_size,
            act_layer=partial(ACT2FN.__getitem__, config.hidden_act),
            drop=config.hidden_dropout_prob,
        )

    def forward(
        self,
        hidden_states: torch.Tensor,
        num_frames: int,
        attn_implementation: str | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor | None, torch.Tensor | None]]:
        """`(B, 1 + T * K, D) -> (B, 1 + T * K, D)`, plus the (temporal, spatial) attention maps when asked."""
        kwargs = dict(attn_implementation=attn_implementation, output_attentions=output_attentions)
        temporal, temporal_weights = self.temporal_attn(self.temporal_norm(hidden_states), num_frames, "time", **kwargs)
        spatial, spatial_weights = self.attn(self.norm1(hidden_states + temporal), num_frames, "space", **kwargs)
        hidden_states = hidden_states + self.drop_path(spatial)
        hidden_states = hidden_states + self.drop_path(self.mlp(self.norm2(hidden_states)))
        return hidden_states, (temporal_weights, spatial_weights)


# ---------------------------------------------------------------------------------------------------- base class


@torch.no_grad()
def zero_init_temporal_attention(attention: DividedSpaceTimeAttention) -> None:
    """Frozen-in-Time's ``VarAttention(initialize="zeros")``: qkv and the output bias at 0, the output weight at 1.

    The branch then outputs exactly 0 (every value is 0), so a block starts as its image-ViT spatial part; the ones
    (instead of zeros) let the first gradients reach the value projection.
    """
    attention.qkv.weight.zero_()
    if attention.qkv.bias is not None:
        attention.qkv.bias.zero_()
    attention.proj.weight.fill_(1.0)
    attention.proj.bias.zero_()


class MacPreTrainedModel(PreTrainedModel):
    """Weight initialization and shared settings of every MAC model."""

    config_class = MacConfig
    base_model_prefix = "mac"
    main_input_name = "pixel_values"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True
    _no_split_modules = ["MacSpaceTimeBlock", "TransformerBlock", "BertLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # ViT / Frozen-in-Time: truncated normal (std 0.02) for linears, [CLS] and the spatial positions; zero
        # temporal positions and, by default, a temporal attention that outputs zero (`temporal_attention_init`).
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv3d)):
            fill = getattr(module, "init_fill", None)  # set by MacSpaceTimeBlock on its temporal attention
            if fill is None:
                init.trunc_normal_(module.weight, std=std)
            else:
                init.constant_(module.weight, fill)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, MacVisionEmbeddings):
            init.trunc_normal_(module.cls_token, std=std)
            init.trunc_normal_(module.position_embeddings, std=std)
            init.zeros_(module.temporal_embeddings)
        elif isinstance(module, MacModel):
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)


# ---------------------------------------------------------------------------------------------------- video encoder


class MacVisionEmbeddings(nn.Module):
    """Patch embedding, [CLS] and the learnable spatial + temporal position embeddings (MAC §3.1 "Video Masking").

    `position_embeddings` `(1 + N, D)`: row 0 for [CLS] and one row per patch position, shared by all frames
    (`E_s`); `temporal_embeddings` `(M, D)`: one row per frame, shared by all positions (`E_t`). Both are added
    before masked patches are dropped, so every visible patch keeps its own space-time position.
    """

    def __init__(self, config: MacVisionConfig) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed3d(
            image_size=config.image_size,
            patch_size=config.patch_size,
            tubelet_size=1,
            in_channels=config.num_channels,
            embed_dim=config.hidden_size,
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.position_embeddings = nn.Parameter(torch.zeros(1 + config.num_patches_per_frame, config.hidden_size))
        self.temporal_embeddings = nn.Parameter(torch.zeros(config.num_frames, config.hidden_size))
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None) -> torch.Tensor:
        """`(B, T, C, H, W)` frames and an optional `(B, T * h * w)` mask -> `(B, 1 + T * K, D)` tokens."""
        batch_size, num_frames = pixel_values.shape[:2]
        patches = self.patch_embed(pixel_values)  # (B, T * N, D), frame-major
        patches = patches.view(batch_size, num_frames, -1, patches.shape[-1])
        temporal = resize_temporal_embeddings(self.temporal_embeddings, num_frames).to(patches.dtype)
        patches = patches + self.position_embeddings[1:].to(patches.dtype) + temporal[:, None]
        patches = visible_patch_grid(patches, bool_masked_pos).flatten(1, 2)
        cls_token = (self.cls_token + self.position_embeddings[:1]).to(patches.dtype).expand(batch_size, -1, -1)
        return self.dropout(torch.cat([cls_token, patches], dim=1))


def _temporal_attentions_follow_attentions(forward):
    """`output_attentions` asks for both attention kinds: `capture_outputs` reads one `output_<key>` flag per key."""

    @wraps(forward)
    def wrapper(self, *args, **kwargs):
        if "output_temporal_attentions" not in kwargs:
            kwargs["output_temporal_attentions"] = kwargs.get("output_attentions", self.config.output_attentions)
        return forward(self, *args, **kwargs)

    return wrapper


class MacVisionModel(MacPreTrainedModel):
    """MAC's video encoder: a divided space-time ViT over the visible patches (MAC §3.2 "Video Encoder").

    Images are 1-frame videos (MAC §4.1 / §5.1); the number of frames may differ from `config.num_frames` (see
    :func:`resize_temporal_embeddings`).
    """

    config_class = MacVisionConfig
    input_modalities = ("video",)
    # transformers' output recording (`capture_outputs`): hooks collect these outputs when asked for.
    _can_record_outputs = {
        "hidden_states": OutputRecorder(MacSpaceTimeBlock, index=0),
        "attentions": OutputRecorder(DividedSpaceTimeAttention, index=1, layer_name="attn"),
        "temporal_attentions": OutputRecorder(DividedSpaceTimeAttention, index=1, layer_name="temporal_attn"),
    }

    def __init__(self, config: MacVisionConfig) -> None:
        super().__init__(config)
        self.embeddings = MacVisionEmbeddings(config)
        depth = config.num_hidden_layers
        drop_path = [config.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(MacSpaceTimeBlock(config, drop_path[i]) for i in range(depth))
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embed

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embeddings.patch_embed = value

    def load_vit_weights(self, source: str | PreTrainedModel | Mapping[str, torch.Tensor], **kwargs: Any) -> list[str]:
        """Initialize the spatial part from an image ViT, as MAC does (§4.3: ViT-B/16, ImageNet-21k) after
        Frozen-in-Time (`FrozenInTime.__init__`: `load_state_dict(vit, strict=False)`).

        Patch embedding, [CLS], spatial positions, every block's spatial attention, norms and MLP and the final norm
        come from the ViT (see :func:`convert_vit_state_dict`). The temporal parts start as in Frozen-in-Time:
        temporal attention at zero (:func:`zero_init_temporal_attention`, whatever `temporal_attention_init` says),
        temporal norms at identity, temporal positions at zero, so a 1-frame forward equals the ViT's.

        Args:
            source: a transformers `ViTModel` (or `ViTForImageClassification`), a state dict in its layout, or a
                name/path for `AutoModel.from_pretrained` (e.g. `google/vit-base-patch16-224-in21k`).
            **kwargs: passed to `from_pretrained`.

        Returns:
            The ViT keys left out (pooler, classifier).

        Raises:
            ValueError: the ViT's width, depth, heads, patch or image size differ from this config, or its weights do
                not cover the spatial part.
        """
        if isinstance(source, (str, os.PathLike)):
            source = AutoModel.from_pretrained(source, **kwargs)
        if isinstance(source, PreTrainedModel):
            self._check_vit_config(source.config)
            source = source.state_dict()
        state, unused = convert_vit_state_dict(source)
        own = self.state_dict()
        spatial = {k for k in own if not (".temporal_" in k or k.startswith("embeddings.temporal_"))}
        missing = sorted(spatial - set(state))
        extra = sorted(set(state) - spatial)
        shapes = [f"{k}: {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
                  if k in own and v.shape != own[k].shape]  # fmt: skip
        if missing or extra or shapes:
            raise ValueError(
                f"load_vit_weights: the ViT does not fit this MacVisionConfig (missing {missing[:4]}, extra "
                f"{extra[:4]}, shape mismatches {shapes[:3]}); match hidden_size, num_hidden_layers, patch_size and "
                "image_size to the ViT's."
            )
        self.load_state_dict(state, strict=False)
        with torch.no_grad():
            self.embeddings.temporal_embeddings.zero_()
            for block in self.blocks:
                zero_init_temporal_attention(block.temporal_attn)
                block.temporal_norm.reset_parameters()
        return unused

    def _check_vit_config(self, vit_config: PreTrainedConfig) -> None:
        vit_config = getattr(vit_config, "vision_config", vit_config)
        names = ("hidden_size", "num_hidden_layers", "num_attention_heads", "patch_size", "image_size", "num_channels")
        differ = {n: (getattr(vit_config, n), getattr(self.config, n)) for n in names
                  if hasattr(vit_config, n) and getattr(vit_config, n) != getattr(self.config, n)}  # fmt: skip
        if differ:
            raise ValueError(f"load_vit_weights: ViT config differs from this MacVisionConfig (ViT, MAC): {differ}.")
        for name in ("layer_norm_eps", "hidden_act", "qkv_bias"):
            theirs, ours = getattr(vit_config, name, None), getattr(self.config, name)
            if theirs is not None and theirs != ours:
                logger.warning(f"load_vit_weights: the ViT's {name}={theirs!r} differs from MAC's {ours!r}.")

    @_temporal_attentions_follow_attentions
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        *,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        output_temporal_attentions: bool | None = None,
    ) -> MacVisionModelOutput:
        """
        Args:
            pixel_values: `(B, T, C, H, W)` normalized frames (`T == 1`: images).
            bool_masked_pos: `(B, T * h * w)` bool, True = masked, the same count in every frame; only the visible
                patches are encoded (MAC §3.1). `None` encodes every patch.
            output_attentions: also return every block's spatial (`attentions`) and temporal
                (`temporal_attentions`) maps; that call runs the eager kernel.
            output_hidden_states: also return the embeddings and every block's output (`hidden_states`).
            output_temporal_attentions: the temporal maps alone (default: `output_attentions`).
            return_dict: `False` returns a tuple.

        The `output_*` flags default to the config's; `capture_outputs` records the asked-for tensors with hooks.
        """
        del output_hidden_states, output_temporal_attentions  # read by capture_outputs
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        num_frames = pixel_values.shape[1]
        hidden_states = self.embeddings(pixel_values, bool_masked_pos)
        implementation = self.config._attn_implementation
        for block in self.blocks:
            hidden_states, _ = block(
                hidden_states, num_frames, attn_implementation=implementation, output_attentions=output_attentions
            )
        last_hidden_state = self.norm(hidden_states)
        return MacVisionModelOutput(last_hidden_state=last_hidden_state, pooler_output=last_hidden_state[:, 0])


# ---------------------------------------------------------------------------------------------------- ViT init

# transformers' ViTModel keys -> MAC keys, for both the layout of Hub checkpoints (google/vit-base-patch16-224-in21k:
# `encoder.layer.i.attention.attention.query`) and the one of transformers >= 5 in memory (`layers.i.attention.q_proj`).
# `{q,k,v}` are fused into MAC's `qkv` afterwards.
_VIT_KEY_RULES: tuple[tuple[re.Pattern, str], ...] = tuple(
    (re.compile(pattern), target)
    for pattern, target in (
        (r"embeddings\.cls_token", "embeddings.cls_token"),
        (r"embeddings\.position_embeddings", "embeddings.position_embeddings"),
        (r"embeddings\.patch_embeddings\.projection\.(weight|bias)", r"embeddings.patch_embed.proj.\1"),
        (r"(?:encoder\.layer|layers)\.(\d+)\.attention\.(?:attention\.query|q_proj)\.(weight|bias)",
         r"blocks.\1.attn.q.\2"),
        (r"(?:encoder\.layer|layers)\.(\d+)\.attention\.(?:attention\.key|k_proj)\.(weight|bias)",
         r"blocks.\1.attn.k.\2"),
        (r"(?:encoder\.layer|layers)\.(\d+)\.attention\.(?:attention\.value|v_proj)\.(weight|bias)",
         r"blocks.\1.attn.v.\2"),
        (r"(?:encoder\.layer|layers)\.(\d+)\.attention\.(?:output\.dense|o_proj)\.(weight|bias)",
         r"blocks.\1.attn.proj.\2"),
        (r"(?:encoder\.layer|layers)\.(\d+)\.layernorm_before\.(weight|bias)", r"blocks.\1.norm1.\2"),
        (r"(?:encoder\.layer|layers)\.(\d+)\.layernorm_after\.(weight|bias)", r"blocks.\1.norm2.\2"),
        (r"(?:encoder\.layer|layers)\.(\d+)\.(?:intermediate\.dense|mlp\.fc1)\.(weight|bias)", r"blocks.\1.mlp.fc1.\2"),
        (r"(?:encoder\.layer|layers)\.(\d+)\.(?:output\.dense|mlp\.fc2)\.(weight|bias)", r"blocks.\1.mlp.fc2.\2"),
        (r"layernorm\.(weight|bias)", r"norm.\1"),
    )
)
#: ViT keys with no counterpart in MAC's encoder: the pooler and an image-classification head.
_VIT_UNUSED = re.compile(r"(pooler|classifier)\..*")


def convert_vit_state_dict(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """transformers' `ViTModel` weights -> the spatial part of a `MacVisionModel` state dict (MAC §4.3).

    Patch embedding (a `Conv2d` becomes a 1-frame `Conv3d`), [CLS], spatial positions, and per block the attention
    (query/key/value fused into `qkv`), `norm1`, `norm2`, the MLP; the final norm. A `vit.` prefix
    (`ViTForImageClassification`) is stripped.

    Returns:
        The converted tensors and the ViT keys left out (pooler, classifier).

    Raises:
        ValueError: a key is not part of the ViT layout, or a block lacks one of query/key/value.
    """
    converted: dict[str, torch.Tensor] = {}
    unused, unknown = [], []
    for key, value in state_dict.items():
        name = key.removeprefix("vit.")
        if _VIT_UNUSED.fullmatch(name):
            unused.append(key)
            continue
        for pattern, target in _VIT_KEY_RULES:
            if pattern.fullmatch(name):
                converted[pattern.sub(target, name)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"convert_vit_state_dict: keys outside transformers' ViTModel layout: {unknown[:5]}.")
    out = {}
    for name, value in converted.items():
        block, _, rest = name.partition(".attn.")
        if rest[:2] in ("q.", "k.", "v."):
            if rest.startswith("q."):
                parts = [converted.get(f"{block}.attn.{p}.{rest[2:]}") for p in "qkv"]
                if any(part is None for part in parts):
                    raise ValueError(f"convert_vit_state_dict: {block} lacks one of query/key/value {rest[2:]}.")
                out[f"{block}.attn.qkv.{rest[2:]}"] = torch.cat(parts, dim=0)
            continue
        if name == "embeddings.position_embeddings":
            value = value.reshape(-1, value.shape[-1])  # (1, 1 + N, D) -> (1 + N, D)
        elif name == "embeddings.patch_embed.proj.weight":
            value = value.unsqueeze(2)  # (D, C, P, P) -> (D, C, 1, P, P)
        out[name] = value
    return out, unused


# ---------------------------------------------------------------------------------------------------- dual encoder


def _build_text_model(config: MacConfig) -> PreTrainedModel:
    """The text encoder from `config.text_config` (DistilBERT, BERT, ...), without BERT's unused pooler."""
    model = AutoModel.from_config(config.text_config)
    if getattr(model, "pooler", None) is not None:
        model.pooler = None  # MAC reads the [CLS] state through its own linear head (MAC §4.3)
    return model


class MacModel(MacPreTrainedModel):
    """MAC's dual encoder (MAC §3.2): video encoder, text encoder and linear heads to the joint space.

    `get_video_features` / `get_text_features` return the L2-normalized embeddings used for retrieval.
    """

    def __init__(self, config: MacConfig) -> None:
        super().__init__(config)
        self.vision_model = MacVisionModel._from_config(config.vision_config)
        self.text_model = _build_text_model(config)
        self.vision_projection = nn.Linear(config.vision_config.hidden_size, config.projection_dim)
        self.text_projection = nn.Linear(config.text_config.hidden_size, config.projection_dim)
        self.logit_scale = nn.Parameter(
            torch.tensor(float(config.logit_scale_init_value)), requires_grad=config.learnable_temperature
        )
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        """The text encoder's token embeddings (so that `resize_token_embeddings` works)."""
        return self.text_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.text_model.set_input_embeddings(value)

    def load_text_encoder(self, source: str | PreTrainedModel, **kwargs) -> None:
        """Copy pretrained text-encoder weights (a model, or a name/path for `AutoModel.from_pretrained`).

        The checkpoint must have the architecture of `config.text_config`; a BERT pooler is ignored.

        Raises:
            ValueError: a weight of the text encoder is missing from the checkpoint.
        """
        if not isinstance(source, PreTrainedModel):
            source = AutoModel.from_pretrained(source, **kwargs)
        state = {name: value for name, value in source.state_dict().items() if not name.startswith("pooler.")}
        missing, _ = self.text_model.load_state_dict(state, strict=False)
        if missing:
            raise ValueError(f"load_text_encoder: the checkpoint lacks {missing[:5]} (of {len(missing)} missing).")

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Text-encoder tokens `(B, L, D_t)`."""
        return self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def pool_text(self, text_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """`(B, L, D_t)` -> `(B, D_t)`: the [CLS] state (MAC §3.2) or the mean of the real tokens (`text_pooling`)."""
        return pool_tokens(text_states, attention_mask, self.config.text_pooling)

    def get_video_features(
        self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None
    ) -> torch.Tensor:
        """L2-normalized `(B, P)` video embeddings of `(B, T, C, H, W)` frames (optionally masked)."""
        pooled = self.vision_model(pixel_values, bool_masked_pos=bool_masked_pos).pooler_output
        return F.normalize(self.vision_projection(pooled), dim=-1)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalized `(B, P)` text embeddings of `(B, L)` token ids."""
        pooled = self.pool_text(self.encode_text(input_ids, attention_mask), attention_mask)
        return F.normalize(self.text_projection(pooled), dim=-1)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> MacOutput:
        """Encode both modalities and score every video against every text (`exp(logit_scale) * cos`).

        `output_attentions` / `output_hidden_states` reach both encoders (their outputs sit in `vision_model_output`
        and `text_model_output`); `return_dict=False` returns (nested) tuples.
        """
        flags = dict(output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        flags = {k: v for k, v in flags.items() if v is not None}
        vision_output = self.vision_model(pixel_values, bool_masked_pos=bool_masked_pos, **flags)
        video_embeds = F.normalize(self.vision_projection(vision_output.pooler_output), dim=-1)
        text_output = self.text_model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **flags)
        text_states = text_output.last_hidden_state
        text_embeds = F.normalize(self.text_projection(self.pool_text(text_states, attention_mask)), dim=-1)
        logits_per_video = self.logit_scale.exp() * video_embeds @ text_embeds.T
        return MacOutput(
            logits_per_video=logits_per_video,
            logits_per_text=logits_per_video.T,
            video_embeds=video_embeds,
            text_embeds=text_embeds,
            vision_model_output=vision_output,
            text_model_output=BaseModelOutput(
                last_hidden_state=text_states,
                hidden_states=text_output.get("hidden_states"),
                attentions=text_output.get("attentions"),
            ),
        )


class MacForVideoTextRetrieval(MacPreTrainedModel):
    """MAC pre-training and retrieval fine-tuning: the dual encoder trained with the masked contrastive objective.

    In training, the processor's collator passes the masked video (`bool_masked_pos`, 60 % per frame) and the
    whole-word-masked captions (`mlm_input_ids`, 15 %); the encoders see only those masked views and VTC aligns
    them (MAC §3.3). At evaluation, no mask is given and the plain `input_ids` are encoded. Implements the hooks of
    `hf_videolang.evaluation.retrieval` (`get_video_features`, `get_text_features`).
    """

    accepts_loss_kwargs = False

    def __init__(self, config: MacConfig) -> None:
        super().__init__(config)
        self.mac = MacModel(config)
        self.vtc_loss = VideoTextContrastiveLoss()
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.mac.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.mac.set_input_embeddings(value)

    def get_video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """L2-normalized `(B, P)` video embeddings (unmasked)."""
        return self.mac.get_video_features(pixel_values)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalized `(B, P)` text embeddings."""
        return self.mac.get_text_features(input_ids, attention_mask)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mlm_input_ids: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        video_ids: torch.Tensor | None = None,
        return_loss: bool = True,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> MacForVideoTextRetrievalOutput:
        """
        Args:
            pixel_values: `(B, T, C, H, W)` frames (`T == 1`: images).
            input_ids, attention_mask: `(B, L)` captions; row i describes video i.
            bool_masked_pos: `(B, T * h * w)` bool, True = masked, equal count per frame (MAC §3.1); `None` encodes
                the full video.
            mlm_input_ids: `(B, L)` the captions with whole words replaced by [MASK] (MAC §3.1 "Text Masking"; the
                collator's name for masked text). When given, the text encoder reads them instead of `input_ids`.
            mlm_labels: accepted so that collator batches pass through, and ignored: MAC predicts no tokens (§3).
            video_ids: `(B,)` ids; captions of the same video are not negatives of each other.
            return_loss: compute `loss` / `loss_vtc`.
            output_attentions, output_hidden_states: also return the encoders' maps / states (`vision_*`, `text_*`).
            return_dict: `False` returns a tuple.
        """
        del mlm_labels  # MAC aligns masked views, it reconstructs nothing (MAC §3, Table 5)
        text_ids = mlm_input_ids if mlm_input_ids is not None else input_ids
        if text_ids.shape != input_ids.shape:
            raise ValueError(
                f"mlm_input_ids {tuple(text_ids.shape)} must have the shape of input_ids {tuple(input_ids.shape)}."
            )
        if pixel_values.shape[0] != input_ids.shape[0]:
            raise ValueError(
                f"got {pixel_values.shape[0]} videos and {input_ids.shape[0]} captions; row i of each is one pair."
            )
        output = self.mac(
            pixel_values,
            text_ids,
            attention_mask,
            bool_masked_pos=bool_masked_pos,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        vision, text = output.vision_model_output, output.text_model_output
        loss = None
        if return_loss:
            loss = self.vtc_loss(output.video_embeds, output.text_embeds, self.mac.logit_scale, video_ids=video_ids)
        return MacForVideoTextRetrievalOutput(
            loss=loss,
            loss_vtc=loss,
            logits_per_video=output.logits_per_video,
            logits_per_text=output.logits_per_text,
            video_embeds=output.video_embeds,
            text_embeds=output.text_embeds,
            vision_hidden_states=vision.hidden_states,
            vision_attentions=vision.attentions,
            vision_temporal_attentions=vision.temporal_attentions,
            text_hidden_states=text.hidden_states,
            text_attentions=text.attentions,
        )


__all__ = [
    "DividedSpaceTimeAttention",
    "MacForVideoTextRetrieval",
    "MacForVideoTextRetrievalOutput",
    "MacModel",
    "MacOutput",
    "MacPreTrainedModel",
    "MacSpaceTimeBlock",
    "MacVisionModel",
    "MacVisionModelOutput",
    "convert_vit_state_dict",
    "resize_temporal_embeddings",
    "visible_patch_grid",
    "zero_init_temporal_attention",
]
