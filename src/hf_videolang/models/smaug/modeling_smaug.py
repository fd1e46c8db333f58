"""SMAUG, "SMAUG: Sparse Masked Autoencoder for Efficient Video-Language Pre-training" (Lin et al., ICCV 2023).

A masked autoencoder runs a CLIP-shaped ViT on each frame's *visible* patches (tube masking, 50 %, SMAUG §3.1.1)
and a light decoder reconstructs the normalized pixels of the masked ones (MVM). Inside the encoder, visual token
sparsification (VTS, §3.2) keeps, at layers 4, 7 and 10, the 80 % of each frame's tokens that the [CLS] attends to
most and fuses the rest into one token weighted by that attention (EViT). A temporal encoder mixes the frames
(Eq. 3); a text-guided selector keeps the kappa most relevant frames (Eq. 5: Gumbel-softmax top-k in training, hard
top-k at inference) for the multimodal encoder, BERT's last 3 layers with a new cross-attention (§3.1.2, §3.5).
Pre-training sums VTC, VTM, MLM and MVM (Eq. 6).

No code was released. Written from the paper and a reading of the code it builds on: Singularity
(jayleicn/singularity@HEAD, ``models/model_retrieval_base.py``: 9 + 3 BERT split, temporal embeddings and encoder,
VTC on frame-averaged [CLS], VTM with hard negatives), EViT (youweiliang/evit@HEAD, ``evit.py``: [CLS]-attention
top-k with ``ceil(keep_rate * p)`` kept and the unnormalized attention-weighted fused token) and MAE / VideoMAE (the
decoder layout, ``norm_pix_loss``).
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertLMHeadModel, BertModel, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.models.bert.configuration_bert import BertConfig
from transformers.models.bert.modeling_bert import (
    BertAttention,
    BertIntermediate,
    BertLMPredictionHead,
    BertOnlyMLMHead,
    BertOutput,
)
from transformers.utils import ModelOutput

from ...layers import AbsolutePositionEmbedding, Attention, Block, PatchEmbed3d, pool_tokens
from ...layers.attention import eager_attention_forward
from ...losses import (
    MaskedLanguageModelingLoss,
    PixelMaskedVideoLoss,
    VideoTextContrastiveLoss,
    VideoTextMatchingLoss,
    sample_hard_negatives,
)
from ..answer_decoder import AnswerDecoderMixin
from .configuration_smaug import SmaugConfig, SmaugVisionConfig

# ---------------------------------------------------------------------------------------------------- outputs


@dataclass
class SmaugVisionModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, T, L', D)`): per-frame tokens after the encoder, the
            output LayerNorm and (K > 1) the temporal encoder: [CLS], the tokens VTS kept, and the fused token of
            each sparsification layer (SMAUG Eq. 1-3). `L' = 1 + K_vis` without VTS.
        pooler_output (`torch.FloatTensor` of shape `(B, T, D)`): the frames' [CLS] tokens (`f_cls^k`, Eq. 2).
        num_visual_tokens (`torch.LongTensor` of shape `(num_hidden_layers + 1,)`): tokens per frame ([CLS]
            included) entering each encoder layer, then leaving the last one: how many tokens VTS kept.
        kept_patch_positions (`tuple(torch.LongTensor)`): per sparsification layer, `(B, T, k)` grid positions
            (`row * w + col`) of the patch tokens it kept; `-1` marks a fused token kept from an earlier layer.
        decoder_inputs (`torch.FloatTensor` of shape `(B * T, N, D)`, *optional*): for the MAE decoder, the normed
            encoder state of every visible patch at its grid position (a token VTS dropped keeps its state at the
            layer that dropped it); zeros at masked positions. Only when asked for.
        frame_tokens_before_temporal (`torch.FloatTensor`, *optional*): the `(B, T, L', D)` tokens before the
            temporal encoder, with `decoder_inputs`.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): `(B * T, L_l, D)` input of every layer and the
            output of the last, with `output_hidden_states=True`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): `(B * T, H, L_l, L_l)` per layer, with
            `output_attentions=True`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    num_visual_tokens: torch.LongTensor | None = None
    kept_patch_positions: tuple[torch.LongTensor, ...] | None = None
    decoder_inputs: torch.FloatTensor | None = None
    frame_tokens_before_temporal: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class SmaugOutput(ModelOutput):
    """
    Args:
        logits_per_video (`torch.FloatTensor` of shape `(B_v, B_t)`): `exp(logit_scale)` times cosine similarities.
        logits_per_text (`torch.FloatTensor` of shape `(B_t, B_v)`): their transpose.
        video_embeds (`torch.FloatTensor` of shape `(B_v, P)`), text_embeds (`torch.FloatTensor` of shape
            `(B_t, P)`): L2-normalized VTC embeddings.
        multimodal_last_hidden_state (`torch.FloatTensor` of shape `(B, L, D_t)`, *optional*): the multimodal
            encoder's tokens of the pairs (video i, text i), when `B_v == B_t`.
        selected_frame_indices (`torch.LongTensor` of shape `(B, kappa)`, *optional*): frames the selector kept for
            each pair, in temporal order (all frames when selection is off or the clip has at most kappa).
        num_visual_tokens (`torch.LongTensor` of shape `(num_hidden_layers + 1,)`): see `SmaugVisionModelOutput`.
        vision_model_output (`SmaugVisionModelOutput`): the video encoder's outputs.
        text_last_hidden_state (`torch.FloatTensor` of shape `(B_t, L, D_t)`): the text encoder's tokens.
    """

    logits_per_video: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    multimodal_last_hidden_state: torch.FloatTensor | None = None
    selected_frame_indices: torch.LongTensor | None = None
    num_visual_tokens: torch.LongTensor | None = None
    vision_model_output: SmaugVisionModelOutput | None = None
    text_last_hidden_state: torch.FloatTensor | None = None


@dataclass
class SmaugForPreTrainingOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`): weighted sum of the terms below (SMAUG Eq. 6).
        loss_vtc, loss_vtm, loss_mlm, loss_mvm (`torch.FloatTensor` of shape `()`, *optional*): the unweighted terms
            (None when a term's weight is 0 or its inputs are missing: no `mlm_labels`, no mask for MVM).
        mvm_logits (`torch.FloatTensor` of shape `(B, T * N, P)`, *optional*): the MAE decoder's pixel predictions
            of every patch (normalized per patch when `norm_pix_loss`).
        video_embeds (`torch.FloatTensor` of shape `(B, P)`), text_embeds (`torch.FloatTensor` of shape `(B, P)`).
        selected_frame_indices (`torch.LongTensor` of shape `(B, kappa)`): frames kept for the positive pairs.
        num_visual_tokens (`torch.LongTensor` of shape `(num_hidden_layers + 1,)`): tokens per frame per layer.
        num_selected_frames (`torch.LongTensor` of shape `()`): frames the multimodal encoder read.
    """

    loss: torch.FloatTensor | None = None
    loss_vtc: torch.FloatTensor | None = None
    loss_vtm: torch.FloatTensor | None = None
    loss_mlm: torch.FloatTensor | None = None
    loss_mvm: torch.FloatTensor | None = None
    mvm_logits: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    selected_frame_indices: torch.LongTensor | None = None
    num_visual_tokens: torch.LongTensor | None = None
    num_selected_frames: torch.LongTensor | None = None


@dataclass
class SmaugVideoTextRetrievalOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): with `return_loss`, `loss_vtc + loss_vtm` (SMAUG §4.1:
            fine-tuning keeps the architecture and drops MLM and MVM).
        loss_vtc, loss_vtm (`torch.FloatTensor` of shape `()`, *optional*): the terms.
        logits_per_text (`torch.FloatTensor` of shape `(B_t, B_v)`), logits_per_video (`(B_v, B_t)`): VTC scores.
        reranked_logits_per_text (`torch.FloatTensor` of shape `(B_t, B_v)`, *optional*): with `rerank_top_k`, the
            `k` best videos of each text re-scored by VTM and placed above the others (Singularity's `k_test`).
        video_embeds (`torch.FloatTensor` of shape `(B_v, P)`), text_embeds (`torch.FloatTensor` of shape `(B_t, P)`).
        num_visual_tokens (`torch.LongTensor` of shape `(num_hidden_layers + 1,)`): tokens per frame per layer.
        num_selected_frames (`torch.LongTensor` of shape `()`): frames the multimodal encoder reads per pair.
    """

    loss: torch.FloatTensor | None = None
    loss_vtc: torch.FloatTensor | None = None
    loss_vtm: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    logits_per_video: torch.FloatTensor | None = None
    reranked_logits_per_text: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    num_visual_tokens: torch.LongTensor | None = None
    num_selected_frames: torch.LongTensor | None = None


@dataclass
class SmaugVideoQuestionAnsweringOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): mean negative log-likelihood of the target answers.
        logits (`torch.FloatTensor` of shape `(B, num_answers)`): scores of `config.answer_list` (log-likelihood of
            each answer pre-selected by its first token, `-1e4` for the others).
        question_states (`torch.FloatTensor` of shape `(B, L, D_t)`): the question fused with the video.
        selected_frame_indices (`torch.LongTensor` of shape `(B, kappa)`): frames the question selected.
        num_visual_tokens (`torch.LongTensor` of shape `(num_hidden_layers + 1,)`): tokens per frame per layer.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    question_states: torch.FloatTensor | None = None
    selected_frame_indices: torch.LongTensor | None = None
    num_visual_tokens: torch.LongTensor | None = None


# ---------------------------------------------------------------------------------------------------- token ops


def visible_patch_tokens(
    patches: torch.Tensor, bool_masked_pos: torch.Tensor | None, num_frames: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep each frame's visible patches: `(B * T, N, D)` -> `(B * T, K, D)` and their grid positions `(B * T, K)`.

    Args:
        patches: `(B * T, N, D)` embedded patches of every frame (positions added).
        bool_masked_pos: `(B, T * N)` bool, True = masked, frame-major; `None` keeps all (`K = N`).
        num_frames: `T`.

    Raises:
        ValueError: wrong shape or dtype, or a different number of visible patches in different frames (tube
            masking keeps the same positions in every frame, SMAUG §3.1.1), or a frame without a visible patch.
    """
    frames, num_patches, dim = patches.shape
    positions = torch.arange(num_patches, device=patches.device).expand(frames, num_patches)
    if bool_masked_pos is None:
        return patches, positions
    batch_size = frames // num_frames
    expected = (batch_size, num_frames * num_patches)
    if bool_masked_pos.dtype != torch.bool or tuple(bool_masked_pos.shape) != expected:
        raise ValueError(
            f"bool_masked_pos must be a bool tensor of shape (B, T*h*w) = {expected}, got {bool_masked_pos.dtype} "
            f"{tuple(bool_masked_pos.shape)}."
        )
    visible = ~bool_masked_pos.view(frames, num_patches)
    counts = visible.sum(dim=1)
    if not bool((counts == counts[0]).all()):
        raise ValueError(
            f"bool_masked_pos leaves {counts.view(batch_size, num_frames).tolist()} visible patches per (sample, "
            "frame); SMAUG needs the same number in every frame (use TubeMasker, SMAUG §3.1.1)."
        )
    num_visible = int(counts[0])
    if num_visible == 0:
        raise ValueError("bool_masked_pos masks every patch of a frame; at least one per frame must stay visible.")
    return patches[visible].view(frames, num_visible, dim), positions[visible].view(frames, num_visible)


def sparsify_tokens(
    hidden_states: torch.Tensor, cls_attention: torch.Tensor, keep_rate: float, fuse: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Visual token sparsification (SMAUG §3.2, EViT): keep the attentive tokens, fuse the inattentive ones.

    Of the `p` non-[CLS] tokens, the `k = ceil(keep_rate * p)` with the largest head-averaged [CLS] attention `a`
    are kept (in decreasing attention, EViT's ``topk(sorted=True)``); the others are replaced by one token
    :math:`\sum_{j \in \text{dropped}} a_j x_j` appended at the end (EViT's unnormalized weighted sum).

    Args:
        hidden_states: `(F, 1 + p, D)`, [CLS] first.
        cls_attention: `(F, p)` [CLS]-to-token attention averaged over heads.
        keep_rate: gamma in (0, 1].
        fuse: append the fused token (else the inattentive tokens are dropped).

    Returns:
        The new tokens `(F, 1 + k (+1), D)`, the kept indices `(F, k)` and the dropped indices `(F, p - k)`
        (indices into the `p` non-[CLS] tokens).
    """
    frames, length, dim = hidden_states.shape
    num_tokens = length - 1
    num_keep = math.ceil(keep_rate * num_tokens)
    if num_keep >= num_tokens:  # too few tokens to drop one: unchanged, in their order
        keep_index = torch.arange(num_tokens, device=hidden_states.device).expand(frames, num_tokens)
        return hidden_states, keep_index, keep_index[:, :0]
    order = cls_attention.argsort(dim=1, descending=True)
    keep_index, drop_index = order[:, :num_keep], order[:, num_keep:]
    tokens = hidden_states[:, 1:]
    kept = tokens.gather(1, keep_index[..., None].expand(-1, -1, dim))
    parts = [hidden_states[:, :1], kept]
    if fuse:
        dropped = tokens.gather(1, drop_index[..., None].expand(-1, -1, dim))
        weights = cls_attention.gather(1, drop_index).to(dropped.dtype)
        parts.append((dropped * weights[..., None]).sum(dim=1, keepdim=True))
    return torch.cat(parts, dim=1), keep_index, drop_index


def gumbel_top_k(
    scores: torch.Tensor, k: int, temperature: float = 1.0, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable top-k selection by successive Gumbel-softmax draws (SMAUG §3.2, Jang et al. [18]).

    Gumbel noise perturbs the scores once; the `k` largest perturbed scores are picked (sampling `k` items without
    replacement with probabilities `softmax(scores)`), and draw `j` gets the relaxed weights
    `softmax((perturbed + log(not yet picked)) / temperature)`.

    Args:
        scores: `(P, K)` logits.
        k: items to pick, `1 <= k <= K`.
        temperature: softmax temperature of the relaxation.
        generator: for reproducible noise.

    Returns:
        `(P, k)` picked indices in increasing order, and `(P, k, K)` relaxed weights of each pick (rows sum to 1),
        in the same order.
    """
    uniform = torch.rand(scores.shape, generator=generator, device=scores.device, dtype=torch.float32)
    gumbel = -torch.log(-torch.log(uniform.clamp(1e-10, 1.0 - 1e-7)))
    perturbed = scores.float() + gumbel.to(scores.device)
    picked = perturbed.topk(k, dim=1).indices  # the j-th pick of the successive draws
    available = torch.zeros_like(perturbed)
    weights = []
    for j in range(k):
        weights.append(((perturbed + available) / temperature).softmax(dim=1))
        available = available.scatter(1, picked[:, j : j + 1], float("-inf"))
    weights = torch.stack(weights, dim=1)
    order = picked.argsort(dim=1)
    picked = picked.gather(1, order)
    weights = weights.gather(1, order[..., None].expand_as(weights))
    return picked, weights.to(scores.dtype)


def select_frames(
    frame_states: torch.Tensor,
    scores: torch.Tensor,
    num_selected: int,
    training: bool,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep `num_selected` frames by their selector scores (SMAUG Eq. 5).

    At inference: the hard top-k (in temporal order). In training: Gumbel top-k whose forward value is exactly the
    picked frames and whose gradient flows to the scores through the relaxed weights (straight-through).

    Args:
        frame_states: `(P, K, L, D)`.
        scores: `(P, K)`.

    Returns:
        `(P, kappa, L, D)` selected frames and `(P, kappa)` their indices.
    """
    if training:
        index, weights = gumbel_top_k(scores, num_selected, temperature, generator)
    else:
        index = scores.topk(num_selected, dim=1).indices.sort(dim=1).values
        weights = None
    _, _, length, dim = frame_states.shape
    hard = frame_states.gather(1, index[:, :, None, None].expand(-1, -1, length, dim))
    if weights is None:
        return hard, index
    # Straight-through: the value is the hard pick; the selector's gradient comes through the relaxed weights
    # (the frames get theirs through the pick only).
    soft = torch.einsum("pjk,pkld->pjld", weights.to(frame_states.dtype), frame_states.detach())
    return hard + (soft - soft.detach()), index


# ---------------------------------------------------------------------------------------------------- attention


class SmaugAttention(Attention):
    """The shared self-attention, also returning the head-averaged [CLS]-to-token attention that VTS ranks by.

    With a fused backend (SDPA, ...) the maps are never materialized, so the [CLS] row is recomputed from the same
    query and keys, `softmax(q_cls k^T * scale)`: one query row, negligible next to the attention itself.
    """

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        attn_implementation: str | None = None,
        output_attentions: bool = False,
        return_cls_attention: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """`(F, L, D)` -> output `(F, L, D)`, attention maps `(F, H, L, L)` or None, and the `(F, L - 1)` [CLS]
        attention to the other tokens averaged over heads (with `return_cls_attention`)."""
        batch_size, num_tokens, _ = hidden_states.shape
        qkv = F.linear(hidden_states, self.qkv.weight, self._qkv_bias())
        query, key, value = qkv.view(batch_size, num_tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        implementation = attn_implementation or self.attn_implementation
        eager = output_attentions or implementation in (None, "eager")
        if eager:
            attention_fn = eager_attention_forward
        else:
            from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

            attention_fn = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        output, weights = attention_fn(
            self,
            query,
            key,
            value,
            attention_mask,
            scaling=self.scaling,
            dropout=self.attn_drop if self.training else 0.0,
        )
        output = self.proj_drop(self.proj(output.reshape(batch_size, num_tokens, -1)))
        cls_attention = None
        if return_cls_attention:
            if weights is not None and weights.dim() == 4:
                cls_row = weights[:, :, 0]
            else:
                cls_row = (torch.matmul(query[:, :, :1], key.transpose(-2, -1)) * self.scaling).softmax(-1)[:, :, 0]
            cls_attention = cls_row[:, :, 1:].float().mean(dim=1)
        return output, (weights if output_attentions else None), cls_attention


class SmaugEncoderLayer(Block):
    """A ViT block that can sparsify its tokens between the attention and the MLP (SMAUG Fig. 2(b), EViT's Block).

    ``x = x + attn(norm1(x))``; at a sparsification layer the tokens are then reduced by :func:`sparsify_tokens`
    using this attention's [CLS] row; ``x = x + mlp(norm2(x))`` runs on the reduced set.
    """

    def forward(
        self,
        hidden_states: torch.Tensor,
        keep_rate: float | None = None,
        fuse: bool = True,
        attn_implementation: str | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """
        Returns:
            The new tokens, the attention maps (or None), the kept and dropped indices into the non-[CLS] tokens
            (None when this call does not sparsify), and the tokens before the reduction (for the dropped ones'
            states), None when not sparsifying.
        """
        attn_out, weights, cls_attention = self.attn(
            self.norm1(hidden_states),
            attn_implementation=attn_implementation,
            output_attentions=output_attentions,
            return_cls_attention=keep_rate is not None,
        )
        hidden_states = hidden_states + self.drop_path1(self.ls1(attn_out))
        keep_index = drop_index = before = None
        if keep_rate is not None:
            before = hidden_states
            hidden_states, keep_index, drop_index = sparsify_tokens(hidden_states, cls_attention, keep_rate, fuse)
        hidden_states = hidden_states + self.drop_path2(self.ls2(self.mlp(self.norm2(hidden_states))))
        return hidden_states, weights, keep_index, drop_index, before


def _vit_block(
    dim: int, heads: int, mlp_dim: int, act: str, eps: float, drop_path: float = 0.0, attn_drop: float = 0.0,
    block: type[Block] = Block, attn_layer: type[Attention] = Attention,
) -> Block:  # fmt: skip
    return block(
        dim,
        num_heads=heads,
        qkv_bias="qkv",
        drop_path=drop_path,
        attn_drop=attn_drop,
        attn_layer=attn_layer,
        norm_layer=partial(nn.LayerNorm, eps=eps),
        act_layer=partial(ACT2FN.__getitem__, act),
        mlp_hidden_dim=mlp_dim,
    )


# ---------------------------------------------------------------------------------------------------- base class


class SmaugPreTrainedModel(PreTrainedModel):
    """Weight initialization and shared settings of every SMAUG model."""

    config_class = SmaugConfig
    base_model_prefix = "smaug"
    main_input_name = "pixel_values"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True
    _no_split_modules = ["Block", "SmaugEncoderLayer", "SmaugFusionLayer", "BertLayer"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # ViT / MAE: truncated normal linears; BERT-derived modules: BERT's normal (the text side loads BERT).
        std = getattr(self.config, "initializer_range", 0.02)
        if isinstance(module, (nn.Linear, nn.Conv3d)):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, AbsolutePositionEmbedding):
            init.copy_(module.table, module.initial_table())
        elif isinstance(module, SmaugVisionEmbeddings):
            init.trunc_normal_(module.class_embedding, std=std)
            init.trunc_normal_(module.position_embedding, std=std)
        elif isinstance(module, SmaugVisionModel):
            init.trunc_normal_(module.temporal_embedding, std=std)
        elif isinstance(module, SmaugMaeDecoder):
            init.trunc_normal_(module.mask_token, std=std)
        elif isinstance(module, SmaugModel):
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)
        elif isinstance(module, BertLMPredictionHead):
            init.zeros_(module.bias)


# ---------------------------------------------------------------------------------------------------- video encoder


class SmaugVisionEmbeddings(nn.Module):
    """CLIP-style per-frame patch embedding (SMAUG §3.1.1 "Patch embedding"): a bias-free patch convolution, a
    learnable [CLS] and one learnable position per patch position (row 0 for [CLS]), added before masking."""

    def __init__(self, config: SmaugVisionConfig) -> None:
        super().__init__()
        self.patch_embedding = PatchEmbed3d(
            image_size=config.image_size,
            patch_size=config.patch_size,
            tubelet_size=1,
            in_channels=config.num_channels,
            embed_dim=config.hidden_size,
            bias=False,
        )
        self.class_embedding = nn.Parameter(torch.zeros(config.hidden_size))
        self.position_embedding = nn.Parameter(torch.zeros(1 + config.num_patches_per_frame, config.hidden_size))

    def forward(
        self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, T, C, H, W)` -> `(B * T, 1 + K, D)` tokens of each frame's visible patches and `(B * T, K)`
        positions."""
        batch_size, num_frames = pixel_values.shape[:2]
        frames = pixel_values.flatten(0, 1)[:, None]  # each frame alone (SMAUG §3.1.1)
        patches = self.patch_embedding(frames) + self.position_embedding[1:].to(pixel_values.dtype)
        patches, positions = visible_patch_tokens(patches, bool_masked_pos, num_frames)
        cls_token = (self.class_embedding + self.position_embedding[0]).to(patches.dtype)
        cls_token = cls_token.expand(batch_size * num_frames, 1, -1)
        return torch.cat([cls_token, patches], dim=1), positions


def _resize_temporal(table: torch.Tensor, num_frames: int) -> torch.Tensor:
    """`(M, D)` -> `(num_frames, D)`: a prefix, or a linear interpolation when longer (Singularity's
    ``interpolate_temporal_pos_embed``)."""
    if num_frames <= table.shape[0]:
        return table[:num_frames]
    return F.interpolate(table.T[None], size=num_frames, mode="linear", align_corners=True)[0].T


class SmaugVisionModel(SmaugPreTrainedModel):
    """The MAE encoder Q_v with VTS, and the temporal encoder Q_t (SMAUG §3.1.1, §3.2, Eq. 1-3).

    Frames are encoded independently (per-frame ViT) on their visible patches; with `use_token_sparsification`
    each sparsification layer keeps `ceil(keep_rate * p)` of a frame's `p` non-[CLS] tokens and fuses the rest.
    With K > 1 frames, temporal embeddings are added and `temporal_num_hidden_layers` blocks attend over the
    concatenated frame tokens (Eq. 3), followed by a LayerNorm.
    """

    config_class = SmaugVisionConfig
    input_modalities = ("video",)

    def __init__(self, config: SmaugVisionConfig) -> None:
        super().__init__(config)
        dim, eps = config.hidden_size, config.layer_norm_eps
        self.embeddings = SmaugVisionEmbeddings(config)
        self.pre_layernorm = nn.LayerNorm(dim, eps=eps)
        depth = config.num_hidden_layers
        rates = [config.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        layer = partial(
            _vit_block, dim, config.num_attention_heads, config.intermediate_size, config.hidden_act, eps,
            attn_drop=config.attention_probs_dropout_prob, block=SmaugEncoderLayer, attn_layer=SmaugAttention,
        )  # fmt: skip
        self.layers = nn.ModuleList(layer(drop_path=rates[i]) for i in range(depth))
        self.post_layernorm = nn.LayerNorm(dim, eps=eps)
        self.temporal_embedding = nn.Parameter(torch.zeros(config.num_frames, dim))
        self.temporal_layers = nn.ModuleList(
            _vit_block(dim, config.num_attention_heads, config.intermediate_size, "gelu", eps)
            for _ in range(config.temporal_num_hidden_layers)
        )
        self.temporal_layernorm = nn.LayerNorm(dim, eps=eps)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.patch_embedding

    def _keep_rate(self, layer_index: int, use_token_sparsification: bool | None) -> float | None:
        enabled = self.config.use_token_sparsification if use_token_sparsification is None else use_token_sparsification
        if enabled and layer_index + 1 in self.config.sparsification_layers and self.config.keep_rate < 1:
            return self.config.keep_rate
        return None

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        use_token_sparsification: bool | None = None,
        return_decoder_inputs: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool | None = None,
    ) -> SmaugVisionModelOutput | tuple:
        """
        Args:
            pixel_values: `(B, T, C, H, W)` normalized frames (`T == 1`: images or single-frame pre-training).
            bool_masked_pos: `(B, T * h * w)` bool, True = masked, the same count in every frame (tube masking);
                only the visible patches are encoded (SMAUG §3.1.1). `None` encodes every patch.
            use_token_sparsification: override `config.use_token_sparsification` for this call.
            return_decoder_inputs: also return what the MAE decoder reads (`decoder_inputs`).
            output_attentions, output_hidden_states, return_dict: as in transformers.
        """
        if pixel_values.ndim != 5:
            raise ValueError(f"pixel_values must be (B, T, C, H, W), got shape {tuple(pixel_values.shape)}.")
        return_dict = self.config.return_dict if return_dict is None else return_dict
        batch_size, num_frames = pixel_values.shape[:2]
        hidden_states, positions = self.embeddings(pixel_values, bool_masked_pos)
        hidden_states = self.pre_layernorm(hidden_states)
        frames, dim = hidden_states.shape[0], hidden_states.shape[-1]
        num_patches = self.config.num_patches_per_frame
        # One slot per grid position plus a sink (index N) for fused tokens, which have no position.
        dropped = hidden_states.new_zeros(frames, num_patches + 1, dim) if return_decoder_inputs else None
        implementation = self.config._attn_implementation
        counts, kept_positions, all_hidden, all_attentions = [], [], [], []
        for index, layer in enumerate(self.layers):
            counts.append(hidden_states.shape[1])
            if output_hidden_states:
                all_hidden.append(hidden_states)
            keep_rate = self._keep_rate(index, use_token_sparsification)
            hidden_states, weights, keep_index, drop_index, before = layer(
                hidden_states,
                keep_rate=keep_rate,
                fuse=self.config.fuse_inattentive_tokens,
                attn_implementation=implementation,
                output_attentions=output_attentions,
            )
            if output_attentions:
                all_attentions.append(weights)
            if keep_index is None:
                continue
            if dropped is not None and drop_index.shape[1]:
                dropped_positions = positions.gather(1, drop_index)
                states = before[:, 1:].gather(1, drop_index[..., None].expand(-1, -1, dim))
                slots = torch.where(dropped_positions < 0, num_patches, dropped_positions)
                dropped = dropped.scatter(1, slots[..., None].expand(-1, -1, dim), states)
            kept = positions.gather(1, keep_index)
            if drop_index.shape[1] and self.config.fuse_inattentive_tokens:
                kept = torch.cat([kept, kept.new_full((frames, 1), -1)], dim=1)
            positions = kept
            kept_positions.append(positions.view(batch_size, num_frames, -1))
        counts.append(hidden_states.shape[1])
        if output_hidden_states:
            all_hidden.append(hidden_states)
        hidden_states = self.post_layernorm(hidden_states)

        decoder_inputs = None
        if dropped is not None:
            slots = torch.where(positions < 0, num_patches, positions)
            decoder_inputs = dropped.scatter(1, slots[..., None].expand(-1, -1, dim), hidden_states[:, 1:])
            dropped_rows = decoder_inputs[:, :num_patches]
            # Dropped tokens were stored before the output LayerNorm; survivors after it.
            survived = torch.zeros(frames, num_patches + 1, dtype=torch.bool, device=slots.device)
            survived = survived.scatter(1, slots, True)[:, :num_patches]
            decoder_inputs = torch.where(survived[..., None], dropped_rows, self.post_layernorm(dropped_rows))
            if bool_masked_pos is not None:
                masked = bool_masked_pos.view(frames, num_patches)
                decoder_inputs = decoder_inputs.masked_fill(masked[..., None], 0.0)
            decoder_inputs = torch.cat([hidden_states[:, :1], decoder_inputs], dim=1)  # [CLS] first, as MAE

        frame_tokens = hidden_states.view(batch_size, num_frames, -1, dim)
        before_temporal = frame_tokens if return_decoder_inputs else None
        if num_frames > 1 and len(self.temporal_layers):
            temporal = _resize_temporal(self.temporal_embedding, num_frames).to(frame_tokens.dtype)
            sequence = (frame_tokens + temporal[None, :, None]).flatten(1, 2)
            for layer in self.temporal_layers:
                sequence, _ = layer(sequence, attn_implementation=implementation)
            frame_tokens = self.temporal_layernorm(sequence).view(batch_size, num_frames, -1, dim)

        output = SmaugVisionModelOutput(
            last_hidden_state=frame_tokens,
            pooler_output=frame_tokens[:, :, 0],
            num_visual_tokens=torch.tensor(counts, dtype=torch.long, device=frame_tokens.device),
            kept_patch_positions=tuple(kept_positions),
            decoder_inputs=decoder_inputs,
            frame_tokens_before_temporal=before_temporal,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
        )
        return output if return_dict else output.to_tuple()


class SmaugMaeDecoder(nn.Module):
    """The MAE decoder D_v (SMAUG §3.5): "one linear layer, three Transformer blocks, and one linear layer".

    Per frame (the encoder's unit, §3.1.1), the encoder's [CLS] and visible tokens are projected to the decoder
    width, a shared learnable mask token fills the masked positions, fixed sinusoid positions are added (MAE), and
    the blocks and a LayerNorm run before the pixel head predicts `patch_size ** 2 * C` values per patch.
    """

    def __init__(self, config: SmaugVisionConfig) -> None:
        super().__init__()
        width = config.decoder_hidden_size
        self.decoder_embed = nn.Linear(config.hidden_size, width)
        self.mask_token = nn.Parameter(torch.zeros(width))
        self.position_embedding = AbsolutePositionEmbedding(1 + config.num_patches_per_frame, width, "sincos")
        self.layers = nn.ModuleList(
            _vit_block(width, config.decoder_num_attention_heads, config.decoder_intermediate_size, "gelu", 1e-6)
            for _ in range(config.decoder_num_hidden_layers)
        )
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.decoder_pred = nn.Linear(width, config.patch_dim)

    def forward(
        self, decoder_inputs: torch.Tensor, bool_masked_pos: torch.Tensor, attn_implementation: str | None = None
    ) -> torch.Tensor:
        """`(B * T, 1 + N, D)` encoder states ([CLS] first) and the `(B, T * N)` mask -> `(B, T * N, P)` pixels."""
        frames, length, _ = decoder_inputs.shape
        hidden = self.decoder_embed(decoder_inputs)
        masked = bool_masked_pos.reshape(frames, length - 1)
        patches = torch.where(masked[..., None], self.mask_token.to(hidden.dtype), hidden[:, 1:])
        hidden = self.position_embedding(torch.cat([hidden[:, :1], patches], dim=1))
        for layer in self.layers:
            hidden, _ = layer(hidden, attn_implementation=attn_implementation)
        pred = self.decoder_pred(self.norm(hidden))[:, 1:]
        return pred.reshape(bool_masked_pos.shape[0], -1, pred.shape[-1])


# ---------------------------------------------------------------------------------------------------- selector


class SmaugFrameSelector(nn.Module):
    """Text-guided frame selector S (SMAUG §3.2 Fig. 2(c), §3.5): two linear layers and two Transformer blocks.

    Each frame's [CLS] is concatenated with the text vector and projected (linear 1); the blocks (2 heads,
    feed-forward 2048) attend across the frames; linear 2 gives one score per frame.
    """

    def __init__(self, config: SmaugConfig) -> None:
        super().__init__()
        width = config.selector_hidden_size
        vision, text = config.vision_config.hidden_size, config.text_config.hidden_size
        self.input_proj = nn.Linear(vision + text, width)
        self.layers = nn.ModuleList(
            _vit_block(width, config.selector_num_attention_heads, config.selector_intermediate_size, "gelu", 1e-6)
            for _ in range(config.selector_num_hidden_layers)
        )
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.score = nn.Linear(width, 1)

    def forward(self, frame_cls: torch.Tensor, text_vector: torch.Tensor) -> torch.Tensor:
        """`(P, K, D_v)` frame [CLS] tokens and `(P, D_t)` text vectors -> `(P, K)` frame scores."""
        text = text_vector[:, None].expand(-1, frame_cls.shape[1], -1).to(frame_cls.dtype)
        hidden = self.input_proj(torch.cat([frame_cls, text], dim=-1))
        for layer in self.layers:
            hidden, _ = layer(hidden)
        return self.score(self.norm(hidden)).squeeze(-1)


# ---------------------------------------------------------------------------------------------------- multimodal


class SmaugFusionLayer(GradientCheckpointingLayer):
    """A BERT layer with a cross-attention to the video between its self-attention and its feed-forward part
    (SMAUG §3.1.2, Singularity's ``xbert`` fusion layers). Parameter names are BERT's (``attention``,
    ``crossattention``, ``intermediate``, ``output``), so BERT-base's last layers load into it and it loads into a
    BERT decoder."""

    def __init__(self, config: BertConfig, layer_idx: int | None = None) -> None:
        super().__init__()
        self.attention = BertAttention(config, is_causal=False, layer_idx=layer_idx)
        self.crossattention = BertAttention(config, is_causal=False, layer_idx=layer_idx, is_cross_attention=True)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, encoder_hidden_states: torch.Tensor
    ) -> torch.Tensor:
        hidden_states, _ = self.attention(hidden_states, attention_mask)
        hidden_states, _ = self.crossattention(hidden_states, None, encoder_hidden_states=encoder_hidden_states)
        return self.output(self.intermediate(hidden_states), hidden_states)


class SmaugMultimodalEncoder(SmaugPreTrainedModel):
    """The multimodal encoder Q_m: BERT's last layers, each with a cross-attention to the video tokens.

    A (sub-)model of its own so that transformers resolves its attention backend like the text encoder's.
    """

    config_class = BertConfig
    input_modalities = ("text",)

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self.layer = nn.ModuleList(SmaugFusionLayer(config, layer_idx=i) for i in range(config.num_hidden_layers))
        self.post_init()

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None, encoder_hidden_states: torch.Tensor
    ) -> torch.Tensor:
        """`(P, L, D_t)` text tokens, `(P, L)` mask, `(P, M, D_t)` video tokens -> `(P, L, D_t)` fused tokens."""
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask)
        for layer in self.layer:
            hidden_states = layer(hidden_states, mask, encoder_hidden_states)
        return hidden_states


# ---------------------------------------------------------------------------------------------------- SmaugModel


class SmaugModel(SmaugPreTrainedModel):
    """SMAUG's encoders (SMAUG §3.1): the masked autoencoder's encoder with VTS and the temporal encoder, the text
    encoder (BERT's first `num_text_layers` layers), the frame selector, the multimodal encoder and the VTC heads.

    The video embedding of VTC is the mean of the frames' [CLS] tokens, projected (Singularity averages per-frame
    similarities); it does not depend on the text, so a video index serves every query. The selector reads the
    text, so it runs per (video, text) pair, in front of the multimodal encoder.
    """

    _keys_to_ignore_on_load_unexpected = [r"^(mae_decoder|mlm_head|vtm_head|answer_decoder)\."]

    def __init__(self, config: SmaugConfig) -> None:
        super().__init__(config)
        self.vision_model = SmaugVisionModel._from_config(config.vision_config)
        self.text_model = BertModel._from_config(config.text_encoder_config(), add_pooling_layer=False)
        self.multimodal_encoder = SmaugMultimodalEncoder._from_config(config.multimodal_config())
        vision, text = config.vision_config.hidden_size, config.text_config.hidden_size
        # The cross-attention keys are the video tokens; a width change needs a projection (none for ViT-B + BERT-base).
        self.video_to_text = nn.Linear(vision, text) if vision != text else nn.Identity()
        self.frame_selector = SmaugFrameSelector(config) if config.use_frame_selection else None
        self.vision_projection = nn.Linear(vision, config.projection_dim)
        self.text_projection = nn.Linear(text, config.projection_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.text_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.text_model.set_input_embeddings(value)

    # ------------------------------------------------------------------ loading
    @torch.no_grad()
    def load_text_encoder(self, source: str | os.PathLike | PreTrainedModel, **kwargs) -> None:
        """Split a pretrained BERT (a `BertModel`-like model, or a name/path) into the text encoder (its first
        `num_text_layers` layers and the embeddings) and the multimodal encoder (its last layers; the
        cross-attentions stay new), SMAUG §3.5.

        Raises:
            ValueError: the checkpoint's depth or a weight does not fit.
        """
        if not isinstance(source, PreTrainedModel):
            source = BertModel.from_pretrained(source, add_pooling_layer=False, **kwargs)
        bert = getattr(source, "bert", source)
        depth = len(bert.encoder.layer)
        if depth != self.config.text_config.num_hidden_layers:
            raise ValueError(
                f"load_text_encoder: the checkpoint has {depth} layers, text_config.num_hidden_layers is "
                f"{self.config.text_config.num_hidden_layers}."
            )
        split = self.config.num_text_layers
        self.text_model.embeddings.load_state_dict(bert.embeddings.state_dict())
        for index in range(depth):
            state = bert.encoder.layer[index].state_dict()
            if index < split:
                self.text_model.encoder.layer[index].load_state_dict(state)
            else:
                missing, unexpected = self.multimodal_encoder.layer[index - split].load_state_dict(state, strict=False)
                if unexpected or any(not key.startswith("crossattention.") for key in missing):
                    raise ValueError(f"load_text_encoder: layer {index} misses {missing}, unexpected {unexpected}.")

    @torch.no_grad()
    def load_vision_encoder_from_clip(self, clip: str | os.PathLike | PreTrainedModel, **kwargs) -> None:
        """Initialize the encoder from a CLIP vision tower (transformers' `CLIPVisionModel` layout), the paper's
        initialization (SMAUG §3.5, CLIP-B/16). The temporal encoder and the decoder stay new.

        Raises:
            ValueError: the CLIP tower's shape differs from `vision_config`.
        """
        from transformers import CLIPVisionModel

        if not isinstance(clip, PreTrainedModel):
            clip = CLIPVisionModel.from_pretrained(clip, **kwargs)
        source = getattr(clip, "vision_model", clip)
        given, expected = clip.config, self.config.vision_config
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "patch_size", "image_size",
                     "intermediate_size"):  # fmt: skip
            if getattr(given, name) != getattr(expected, name):
                raise ValueError(
                    f"load_vision_encoder_from_clip: CLIP has {name}={getattr(given, name)}, vision_config has "
                    f"{getattr(expected, name)}."
                )
        vision = self.vision_model
        embeddings = source.embeddings
        vision.embeddings.class_embedding.copy_(embeddings.class_embedding)
        vision.embeddings.patch_embedding.proj.weight.copy_(embeddings.patch_embedding.weight[:, :, None])
        vision.embeddings.position_embedding.copy_(embeddings.position_embedding.weight)
        vision.pre_layernorm.load_state_dict(source.pre_layrnorm.state_dict())
        vision.post_layernorm.load_state_dict(source.post_layernorm.state_dict())
        for ours, theirs in zip(vision.layers, source.encoder.layers):
            attn = theirs.self_attn
            ours.attn.qkv.weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
            ours.attn.qkv.bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
            ours.attn.proj.load_state_dict(attn.out_proj.state_dict())
            ours.norm1.load_state_dict(theirs.layer_norm1.state_dict())
            ours.norm2.load_state_dict(theirs.layer_norm2.state_dict())
            ours.mlp.fc1.load_state_dict(theirs.mlp.fc1.state_dict())
            ours.mlp.fc2.load_state_dict(theirs.mlp.fc2.state_dict())

    # ------------------------------------------------------------------ pieces
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Text-encoder tokens `(B, L, D_t)` (Eq. 4)."""
        return self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def pool_text(self, text_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """`(B, L, D)` -> `(B, D)`: [CLS] (Eq. 4, `h_cls`) or the mean of the real tokens (`config.text_pooling`)."""
        return pool_tokens(text_states, attention_mask, self.config.text_pooling)

    def project_video(self, frame_cls: torch.Tensor) -> torch.Tensor:
        """`(B, T, D_v)` frame [CLS] tokens -> `(B, P)` L2-normalized VTC embedding of their mean."""
        return F.normalize(self.vision_projection(frame_cls.mean(dim=1)), dim=-1)

    def project_text(self, text_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """`(B, L, D_t)` -> `(B, P)` L2-normalized VTC embedding."""
        return F.normalize(self.text_projection(self.pool_text(text_states, attention_mask)), dim=-1)

    def get_video_features(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        use_token_sparsification: bool | None = None,
    ) -> torch.Tensor:
        """L2-normalized `(B, P)` video embeddings of `(B, T, C, H, W)` frames (VTS as configured)."""
        output = self.vision_model(
            pixel_values, bool_masked_pos=bool_masked_pos, use_token_sparsification=use_token_sparsification
        )
        return self.project_video(output.pooler_output)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalized `(B, P)` text embeddings of `(B, L)` token ids."""
        return self.project_text(self.encode_text(input_ids, attention_mask), attention_mask)

    def num_frames_after_selection(self, num_frames: int) -> int:
        """Frames the multimodal encoder reads of a `num_frames` clip (kappa when the selector is on and K > kappa)."""
        if self.frame_selector is None or num_frames <= self.config.num_selected_frames:
            return num_frames
        return self.config.num_selected_frames

    def fuse(
        self,
        frame_tokens: torch.Tensor,
        text_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Select frames for each pair with its text (Eq. 5), then run the multimodal encoder.

        Args:
            frame_tokens: `(P, T, L', D_v)` video tokens of each pair (`last_hidden_state`).
            text_states: `(P, L, D_t)` text-encoder tokens of each pair; attention_mask: `(P, L)`.
            generator: Gumbel noise in training.

        Returns:
            `(P, L, D_t)` fused text tokens and the `(P, kappa)` selected frame indices.
        """
        pairs, num_frames = frame_tokens.shape[:2]
        kappa = self.num_frames_after_selection(num_frames)
        if kappa < num_frames:
            scores = self.frame_selector(frame_tokens[:, :, 0], self.pool_text(text_states, attention_mask))
            frame_tokens, index = select_frames(
                frame_tokens, scores, kappa, self.training, self.config.gumbel_temperature, generator
            )
        else:
            index = torch.arange(num_frames, device=frame_tokens.device).expand(pairs, num_frames)
        video = self.video_to_text(frame_tokens.flatten(1, 2))
        return self.multimodal_encoder(text_states, attention_mask, video), index

    def frame_scores(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The selector's `(B, T)` scores of each video's frames for its caption (row i with text i)."""
        if self.frame_selector is None:
            raise ValueError("frame_scores: this model has no frame selector (config.use_frame_selection=False).")
        frame_cls = self.vision_model(pixel_values).pooler_output
        text = self.pool_text(self.encode_text(input_ids, attention_mask), attention_mask)
        return self.frame_selector(frame_cls, text)

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool | None = None,
    ) -> SmaugOutput | tuple:
        """Encode both modalities, score every video against every text (`exp(logit_scale) * cos`), and, when
        there are as many videos as texts, fuse each pair (video i, text i) in the multimodal encoder."""
        return_dict = self.config.return_dict if return_dict is None else return_dict
        vision_output = self.vision_model(
            pixel_values,
            bool_masked_pos=bool_masked_pos,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        video_embeds = self.project_video(vision_output.pooler_output)
        text_states = self.encode_text(input_ids, attention_mask)
        text_embeds = self.project_text(text_states, attention_mask)
        logits_per_video = self.logit_scale.exp() * video_embeds @ text_embeds.T
        fused = selected = None
        if pixel_values.shape[0] == input_ids.shape[0]:
            fused, selected = self.fuse(vision_output.last_hidden_state, text_states, attention_mask)
        output = SmaugOutput(
            logits_per_video=logits_per_video,
            logits_per_text=logits_per_video.T,
            video_embeds=video_embeds,
            text_embeds=text_embeds,
            multimodal_last_hidden_state=fused,
            selected_frame_indices=selected,
            num_visual_tokens=vision_output.num_visual_tokens,
            vision_model_output=vision_output,
            text_last_hidden_state=text_states,
        )
        return output if return_dict else output.to_tuple()


# ---------------------------------------------------------------------------------------------------- heads


class _SmaugMatchingMixin:
    """VTM scoring shared by the pre-training, retrieval and QA models; needs `self.smaug` and `self.vtm_head`."""

    smaug: SmaugModel
    vtm_head: nn.Linear

    def matching_logits(
        self,
        frame_tokens: torch.Tensor,
        text_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """VTM logits `(P, 2)` (class 1 = match) of `P` aligned pairs and their selected frames `(P, kappa)`."""
        fused, index = self.smaug.fuse(frame_tokens, text_states, attention_mask, generator)
        return self.vtm_head(self.smaug.pool_text(fused, attention_mask)), index

    def get_video_states(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Video tokens the multimodal encoder reads, `(B, T, L', D)`. Hook of `evaluation.retrieval`."""
        return self.smaug.vision_model(pixel_values).last_hidden_state

    def rerank(self, video_states: torch.Tensor, text_inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """VTM positive-class logits `(P,)` of `P` aligned pairs. Hook of `evaluation.retrieval`."""
        mask = text_inputs.get("attention_mask")
        text_states = self.smaug.encode_text(text_inputs["input_ids"], mask)
        return self.matching_logits(video_states, text_states, mask)[0][:, 1]

    @torch.no_grad()
    def score_candidates(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Multiple-choice scores `(B, K)` of `K` candidate texts per video: the log VTM match probability, the
        retrieval model's score (SMAUG §4.1, MSRVTT-MC "with the highest retrieval scores", ClipBERT's protocol).
        Each candidate selects its own frames. Padded candidates (mask all 0) score `-inf`."""
        if input_ids.ndim != 3:
            raise ValueError(f"score_candidates: input_ids must be (B, K, L), got shape {tuple(input_ids.shape)}.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        batch_size, num_candidates = input_ids.shape[:2]
        flat_ids, flat_mask = input_ids.flatten(0, 1), attention_mask.flatten(0, 1).clone()
        padded = flat_mask.sum(dim=1) == 0
        flat_mask[padded, 0] = 1
        frames = self.get_video_states(pixel_values).repeat_interleave(num_candidates, dim=0)
        logits, _ = self.matching_logits(frames, self.smaug.encode_text(flat_ids, flat_mask), flat_mask)
        scores = logits.float().log_softmax(dim=-1)[:, 1].masked_fill(padded, float("-inf"))
        return scores.view(batch_size, num_candidates)


def _vtm_pairs(
    sim_v2t: torch.Tensor, video_ids: torch.Tensor | None, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Video and text indices of the `B` positive pairs, then the `B` (video, hard negative text) and the `B`
    (hard negative video, text) pairs (ALBEF / Singularity ``itm_hard_neg``)."""
    batch_size = sim_v2t.shape[0]
    neg_text, neg_video = sample_hard_negatives(sim_v2t, video_ids=video_ids, generator=generator)
    rows = torch.arange(batch_size, device=sim_v2t.device)
    return torch.cat([rows, rows, neg_video]), torch.cat([rows, neg_text, rows])


class SmaugForPreTraining(_SmaugMatchingMixin, SmaugPreTrainedModel):
    """SMAUG pre-training (SMAUG §3.3, Eq. 6): `L = L_vtm + L_mlm + L_vtc + L_mvm` on the masked video.

    The encoder sees the visible patches only (`bool_masked_pos` from `SmaugProcessor`, tube masking 50 %); the MAE
    decoder reconstructs the normalized pixels of the masked ones (MVM); VTC aligns the frame-averaged [CLS] with
    the text [CLS]; VTM scores the positives and hard negatives mined from the VTC similarities; MLM predicts the
    15 % masked words from the multimodal encoder. VTS and frame selection run as configured.
    """

    accepts_loss_kwargs = False
    _keys_to_ignore_on_load_unexpected = [r"^answer_decoder\."]

    def __init__(self, config: SmaugConfig) -> None:
        super().__init__(config)
        self.smaug = SmaugModel(config)
        self.mae_decoder = SmaugMaeDecoder(config.vision_config)
        self.vtm_head = nn.Linear(config.text_config.hidden_size, 2)
        self.mlm_head = BertOnlyMLMHead(config.text_config)
        # The MLM decoder shares the word embeddings, as BertForMaskedLM does.
        self._tied_weights_keys = {
            "mlm_head.predictions.decoder.weight": "smaug.text_model.embeddings.word_embeddings.weight",
            "mlm_head.predictions.decoder.bias": "mlm_head.predictions.bias",
        }
        vision = config.vision_config
        self.vtc_loss = VideoTextContrastiveLoss()
        self.vtm_loss = VideoTextMatchingLoss()
        self.mlm_loss = MaskedLanguageModelingLoss()
        self.mvm_loss = PixelMaskedVideoLoss(vision.patch_size, tubelet_size=1, norm_pix=vision.norm_pix_loss)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.smaug.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.smaug.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.mlm_head.predictions.decoder

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.mlm_head.predictions.decoder = value

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mlm_input_ids: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        video_ids: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool | None = None,
    ) -> SmaugForPreTrainingOutput | tuple:
        """
        Args:
            pixel_values: `(B, T, C, H, W)` frames; row i pairs with caption i.
            input_ids, attention_mask: `(B, L)` captions.
            bool_masked_pos: `(B, T * h * w)` tube mask, True = masked; `None` encodes every patch (no MVM).
            mlm_input_ids, mlm_labels: `(B, L)` masked captions and their targets (-100 elsewhere) for MLM.
            video_ids: `(B,)` ids; captions of the same video are not negatives of each other (VTC, VTM).
            generator: seeds the hard-negative sampling and the Gumbel noise.
        """
        config = self.config
        return_dict = config.return_dict if return_dict is None else return_dict
        if pixel_values.shape[0] != input_ids.shape[0]:
            raise ValueError(
                f"got {pixel_values.shape[0]} videos and {input_ids.shape[0]} captions; row i of each is one pair."
            )
        use_mvm = config.mvm_loss_weight > 0 and bool_masked_pos is not None
        vision_output = self.smaug.vision_model(
            pixel_values,
            bool_masked_pos=bool_masked_pos,
            return_decoder_inputs=use_mvm,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        frame_tokens = vision_output.last_hidden_state
        text_states = self.smaug.encode_text(input_ids, attention_mask)
        video_embeds = self.smaug.project_video(vision_output.pooler_output)
        text_embeds = self.smaug.project_text(text_states, attention_mask)
        losses: dict[str, torch.Tensor | None] = dict.fromkeys(("vtc", "vtm", "mlm", "mvm"))
        if config.vtc_loss_weight > 0:
            losses["vtc"] = self.vtc_loss(video_embeds, text_embeds, self.smaug.logit_scale, video_ids=video_ids)

        selected = None
        if config.vtm_loss_weight > 0:
            with torch.no_grad():
                sim = self.smaug.logit_scale.exp() * video_embeds @ text_embeds.T
            video_index, text_index = _vtm_pairs(sim, video_ids, generator)
            mask = attention_mask[text_index] if attention_mask is not None else None
            logits, index = self.matching_logits(frame_tokens[video_index], text_states[text_index], mask, generator)
            batch_size = pixel_values.shape[0]
            losses["vtm"] = self.vtm_loss(logits[:batch_size], logits[batch_size:])
            selected = index[:batch_size]

        if config.mlm_loss_weight > 0 and mlm_labels is not None:
            if mlm_input_ids is None:
                raise ValueError("SmaugForPreTraining: `mlm_labels` needs `mlm_input_ids` (the masked captions).")
            masked_states = self.smaug.encode_text(mlm_input_ids, attention_mask)
            fused, index = self.smaug.fuse(frame_tokens, masked_states, attention_mask, generator)
            # The vocabulary head runs on the masked positions only (the others carry no target).
            targets = mlm_labels != self.mlm_loss.ignore_index
            losses["mlm"] = self.mlm_loss(self.mlm_head(fused[targets]), mlm_labels[targets])
            selected = index if selected is None else selected

        mvm_logits = None
        if use_mvm:
            mvm_logits = self.mae_decoder(
                vision_output.decoder_inputs, bool_masked_pos, attn_implementation=config._attn_implementation
            )
            losses["mvm"] = self.mvm_loss(mvm_logits, pixel_values, bool_masked_pos)

        weights = {name: getattr(config, f"{name}_loss_weight") for name in losses}
        terms = [weights[name] * value for name, value in losses.items() if value is not None]
        num_frames = pixel_values.shape[1]
        output = SmaugForPreTrainingOutput(
            loss=torch.stack(terms).sum() if terms else None,
            loss_vtc=losses["vtc"],
            loss_vtm=losses["vtm"],
            loss_mlm=losses["mlm"],
            loss_mvm=losses["mvm"],
            mvm_logits=mvm_logits,
            video_embeds=video_embeds,
            text_embeds=text_embeds,
            selected_frame_indices=selected,
            num_visual_tokens=vision_output.num_visual_tokens,
            num_selected_frames=torch.tensor(
                self.smaug.num_frames_after_selection(num_frames), device=pixel_values.device
            ),
        )
        return output if return_dict else output.to_tuple()


def _place_above(scores: torch.Tensor, top_index: torch.Tensor, top_scores: torch.Tensor) -> torch.Tensor:
    """`scores` `(R, C)` with the columns `top_index` `(R, k)` re-scored by `top_scores` and ranked above all the
    others, which keep their order."""
    below = scores - scores.max(dim=1, keepdim=True).values - 1.0  # every other column < -1
    above = top_scores - top_scores.min(dim=1, keepdim=True).values  # >= 0
    return below.scatter(1, top_index, above)


class SmaugForVideoTextRetrieval(_SmaugMatchingMixin, SmaugPreTrainedModel):
    """SMAUG for text-to-video retrieval (SMAUG §4.1): VTC dual-encoder scores, VTM re-ranking of the top `k`.

    Fine-tuning keeps the architecture and the VTC + VTM objectives and drops MLM and MVM (§4.1). Implements the
    hooks of `hf_videolang.evaluation.retrieval` and `score_candidates` (multiple choice).
    """

    accepts_loss_kwargs = False
    _keys_to_ignore_on_load_unexpected = [r"^(mae_decoder|mlm_head|answer_decoder)\."]

    def __init__(self, config: SmaugConfig) -> None:
        super().__init__(config)
        self.smaug = SmaugModel(config)
        self.vtm_head = nn.Linear(config.text_config.hidden_size, 2)
        self.vtc_loss = VideoTextContrastiveLoss()
        self.vtm_loss = VideoTextMatchingLoss()
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.smaug.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.smaug.set_input_embeddings(value)

    def get_video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """L2-normalized `(B, P)` video embeddings."""
        return self.smaug.get_video_features(pixel_values)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalized `(B, P)` text embeddings."""
        return self.smaug.get_text_features(input_ids, attention_mask)

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        video_ids: torch.Tensor | None = None,
        return_loss: bool | None = None,
        rerank_top_k: int | None = None,
        generator: torch.Generator | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SmaugVideoTextRetrievalOutput | tuple:
        """
        Args:
            pixel_values: `(B_v, T, C, H, W)`; input_ids, attention_mask: `(B_t, L)`.
            bool_masked_pos: optional tube mask (the encoder then reads visible patches only).
            video_ids: `(B,)` ids for duplicate-aware VTC / VTM.
            return_loss: compute `loss = loss_vtc + loss_vtm` (needs `B_v == B_t`, row i a pair); default: in
                training mode.
            rerank_top_k: re-rank the `k` best videos of each text with VTM (Singularity's `k_test`).
            kwargs: collator fields SMAUG's retrieval does not read (`mlm_input_ids`, `mlm_labels`).
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        return_loss = self.training if return_loss is None else return_loss
        vision_output = self.smaug.vision_model(pixel_values, bool_masked_pos=bool_masked_pos)
        video_embeds = self.smaug.project_video(vision_output.pooler_output)
        text_states = self.smaug.encode_text(input_ids, attention_mask)
        text_embeds = self.smaug.project_text(text_states, attention_mask)
        logits_per_text = self.smaug.logit_scale.exp() * text_embeds @ video_embeds.T
        frame_tokens = vision_output.last_hidden_state

        loss = loss_vtc = loss_vtm = None
        if return_loss:
            if pixel_values.shape[0] != input_ids.shape[0]:
                raise ValueError("return_loss needs as many videos as captions (row i of each is one pair).")
            loss_vtc = self.vtc_loss(video_embeds, text_embeds, self.smaug.logit_scale, video_ids=video_ids)
            video_index, text_index = _vtm_pairs(logits_per_text.T.detach(), video_ids, generator)
            mask = attention_mask[text_index] if attention_mask is not None else None
            logits, _ = self.matching_logits(frame_tokens[video_index], text_states[text_index], mask, generator)
            batch_size = pixel_values.shape[0]
            loss_vtm = self.vtm_loss(logits[:batch_size], logits[batch_size:])
            loss = loss_vtc + loss_vtm

        reranked = None
        if rerank_top_k is not None:
            if rerank_top_k < 1:
                raise ValueError(f"rerank_top_k must be at least 1, got {rerank_top_k}.")
            num_texts, num_videos = logits_per_text.shape
            top = logits_per_text.topk(min(rerank_top_k, num_videos), dim=1).indices
            texts = torch.arange(num_texts, device=top.device)[:, None].expand_as(top).flatten()
            mask = attention_mask[texts] if attention_mask is not None else None
            vtm, _ = self.matching_logits(frame_tokens[top.flatten()], text_states[texts], mask)
            reranked = _place_above(logits_per_text, top, vtm[:, 1].view_as(top).to(logits_per_text.dtype))

        output = SmaugVideoTextRetrievalOutput(
            loss=loss,
            loss_vtc=loss_vtc,
            loss_vtm=loss_vtm,
            logits_per_text=logits_per_text,
            logits_per_video=logits_per_text.T,
            reranked_logits_per_text=reranked,
            video_embeds=video_embeds,
            text_embeds=text_embeds,
            num_visual_tokens=vision_output.num_visual_tokens,
            num_selected_frames=torch.tensor(
                self.smaug.num_frames_after_selection(pixel_values.shape[1]), device=pixel_values.device
            ),
        )
        return output if return_dict else output.to_tuple()


class SmaugForVideoQuestionAnswering(AnswerDecoderMixin, _SmaugMatchingMixin, SmaugPreTrainedModel):
    """SMAUG for open-ended video QA (SMAUG §4.1): "an extra decoder is added after the multi-encoder, which
    generates the answers by taking the outputs from the multi-modal encoder" (Singularity's ``model_vqa``, ALBEF).

    The question selects frames and is fused with them; a BERT decoder with cross-attention to the fused question
    (as deep as the multimodal encoder, initialized from it by :meth:`init_answer_decoder`) scores each answer of
    `config.answer_list` by its log-likelihood, so `forward(...).logits` is `(B, num_answers)` and the pipeline
    names the answers. Multiple choice goes through `score_candidates` (VTM, the retrieval scores, §4.1).
    """

    accepts_loss_kwargs = False
    _keys_to_ignore_on_load_unexpected = [r"^(mae_decoder|mlm_head)\."]

    def __init__(self, config: SmaugConfig) -> None:
        super().__init__(config)
        self.smaug = SmaugModel(config)
        self.vtm_head = nn.Linear(config.text_config.hidden_size, 2)
        decoder_config = copy.deepcopy(config.multimodal_config())
        decoder_config.is_decoder = True
        self.answer_decoder = BertLMHeadModel._from_config(decoder_config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.smaug.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.smaug.set_input_embeddings(value)

    def _answer_decoder_sources(self) -> tuple[nn.Module, nn.ModuleList]:
        # Singularity initializes its decoder from BERT's last layers: here the multimodal encoder's.
        return self.smaug.text_model.embeddings, self.smaug.multimodal_encoder.layer

    def encode_question(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Question tokens fused with the frames the question selected: `(B, L, D)`, the `(B, kappa)` indices and
        the token counts of the encoder."""
        vision_output = self.smaug.vision_model(pixel_values)
        text_states = self.smaug.encode_text(input_ids, attention_mask)
        fused, index = self.smaug.fuse(vision_output.last_hidden_state, text_states, attention_mask)
        return fused, index, vision_output.num_visual_tokens

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        answer_input_ids: torch.Tensor | None = None,
        answer_attention_mask: torch.Tensor | None = None,
        answer_weights: torch.Tensor | None = None,
        top_k: int = 128,
        return_dict: bool | None = None,
    ) -> SmaugVideoQuestionAnsweringOutput | tuple:
        """
        Args:
            pixel_values: `(B, T, C, H, W)`; input_ids, attention_mask: `(B, L_q)` questions.
            labels: `(B,)` index of the target answer in `config.answer_list` (its tokens become the targets; -100:
                no target).
            answer_input_ids, answer_attention_mask: `(B, L_a)` target answers (`[CLS] answer [SEP]`) instead.
            answer_weights: `(B,)` weight of each target; the loss is `sum(weight * nll) / B`.
            top_k: answers pre-selected by their first token when ranking.
        With targets, `loss` is their negative log-likelihood and the answer list is not ranked.
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        question_states, index, counts = self.encode_question(pixel_values, input_ids, attention_mask)
        if labels is not None and answer_input_ids is None:
            answer_input_ids, answer_attention_mask, known = self._answer_targets(labels)
            answer_weights = known if answer_weights is None else answer_weights * known
        loss = logits = None
        if answer_input_ids is None:
            logits = self.rank_answers(question_states, attention_mask, top_k)
        else:
            loss = self.answer_nll(question_states, attention_mask, answer_input_ids, answer_attention_mask,
                                   answer_weights)  # fmt: skip
        output = SmaugVideoQuestionAnsweringOutput(
            loss=loss,
            logits=logits,
            question_states=question_states,
            selected_frame_indices=index,
            num_visual_tokens=counts,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "SmaugAttention",
    "SmaugEncoderLayer",
    "SmaugForPreTraining",
    "SmaugForPreTrainingOutput",
    "SmaugForVideoQuestionAnswering",
    "SmaugForVideoTextRetrieval",
    "SmaugFrameSelector",
    "SmaugMaeDecoder",
    "SmaugModel",
    "SmaugOutput",
    "SmaugPreTrainedModel",
    "SmaugVideoQuestionAnsweringOutput",
    "SmaugVideoTextRetrievalOutput",
    "SmaugVisionModel",
    "SmaugVisionModelOutput",
    "gumbel_top_k",
    "select_frames",
    "sparsify_tokens",
    "visible_patch_tokens",
]
