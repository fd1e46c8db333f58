"""E-ViLM's semantic vector-quantized video tokenizer (E-ViLM §3.3, Eq. 4-7).

Each frame's patches are encoded by a CLIP-ViT (``E``), projected to the 32-d code space and l2-normalized; each
region takes the nearest of ``M`` l2-normalized codes (Eq. 4). A Transformer decoder (``D``) reads the codes of
all frames, and its mean output feeds a multi-label head over the caption's words (Eq. 5), trained with the focal
loss of Eq. 6. The codebook learns through Eq. 7's stop-gradient terms and the encoder through the
straight-through copy of the gradient at the codes. After training only ``E`` and the codebook are kept: they give
the labels of E-ViLM's masked video modeling (:meth:`EvilmVideoTokenizer.get_codebook_indices`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionModel, PreTrainedModel
from transformers import initialization as init
from transformers.models.clip.modeling_clip import CLIPVisionEmbeddings
from transformers.utils import ModelOutput

from ...layers import Block
from ...losses import MultiLabelFocalLoss
from .configuration_evilm_tokenizer import EvilmTokenizerConfig

# ---------------------------------------------------------------------------------------------------- outputs


@dataclass
class EvilmVectorQuantizerOutput(ModelOutput):
    """
    Args:
        quantized (`torch.FloatTensor` of shape `(..., D)`): the chosen codes, with the straight-through gradient
            to the encoder (forward value: the codes; backward: the identity to `embeddings`).
        indices (`torch.LongTensor` of shape `(...)`): the code of every region.
        embeddings (`torch.FloatTensor` of shape `(..., D)`): the l2-normalized encoder output `E(x)`.
        loss_codebook (`torch.FloatTensor`): `||sg[E(x)] - C_q||^2`, averaged over regions (Eq. 7).
        loss_commitment (`torch.FloatTensor`): `||E(x) - sg[C_q]||^2`, averaged over regions (Eq. 7).
    """

    quantized: torch.FloatTensor | None = None
    indices: torch.LongTensor | None = None
    embeddings: torch.FloatTensor | None = None
    loss_codebook: torch.FloatTensor | None = None
    loss_commitment: torch.FloatTensor | None = None


@dataclass
class EvilmVideoTokenizerOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor`, *optional*): `L_SVQ` of Eq. 7, the weighted sum of the three terms, when
            `labels` are given.
        loss_token (`torch.FloatTensor`, *optional*): the focal loss of Eq. 6.
        loss_codebook, loss_commitment (`torch.FloatTensor`): Eq. 7's stop-gradient terms.
        logits (`torch.FloatTensor` of shape `(B, vocab_size)`): word logits of the head (Eq. 5).
        codebook_indices (`torch.LongTensor` of shape `(B, T, N)`): the code of every region of every frame.
        codebook_utilization (`torch.FloatTensor`): fraction of the codebook used by this batch.
        hidden_states, attentions (*optional*): the CLIP encoder's, over the `B * T` frames.
    """

    loss: torch.FloatTensor | None = None
    loss_token: torch.FloatTensor | None = None
    loss_codebook: torch.FloatTensor | None = None
    loss_commitment: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    codebook_indices: torch.LongTensor | None = None
    codebook_utilization: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ---------------------------------------------------------------------------------------------------- quantizer


class EvilmVectorQuantizer(nn.Module):
    """Nearest-code look-up in an l2-normalized codebook (Eq. 4), with Eq. 7's two terms and straight-through.

    Both the embeddings and the codes are l2-normalized before the look-up ("The embedding before/after look-up
    have all been l2-normalized for Euclidean distance computation", §4.1), so the nearest code is the one of
    highest cosine similarity.
    """

    def __init__(self, codebook_size: int, codebook_dim: int, dead_code_threshold: float = 0.0) -> None:
        super().__init__()
        self.codebook = nn.Parameter(torch.randn(codebook_size, codebook_dim))
        self.dead_code_threshold = dead_code_threshold
        # EMA (decay 0.9) of how often each code is chosen per batch; codes that fall below the threshold are
        # restarted at random encoder outputs of the batch, and the first training batch initializes them all so.
        self.register_buffer("code_usage", torch.ones(codebook_size), persistent=False)
        self.register_buffer("codes_from_data", torch.tensor(False))

    @torch.no_grad()
    def _restart_dead_codes(self, embeddings: torch.Tensor) -> None:
        # Runs before the look-up (never between a forward and its backward, which read the codebook), with the
        # usage of the previous batches.
        pool = embeddings.reshape(-1, embeddings.shape[-1])
        if not bool(self.codes_from_data):
            dead = torch.arange(self.codebook.shape[0], device=pool.device)
            self.codes_from_data.fill_(True)
        else:
            dead = torch.nonzero(self.code_usage < self.dead_code_threshold).squeeze(1)
        if dead.numel():
            picks = torch.randint(0, pool.shape[0], (dead.numel(),), device=pool.device)
            self.codebook[dead] = pool[picks].to(self.codebook.dtype)
            self.code_usage[dead] = 1.0

    def normalized_codebook(self) -> torch.Tensor:
        return F.normalize(self.codebook, dim=-1)

    def forward(self, embeddings: torch.Tensor) -> EvilmVectorQuantizerOutput:
        embeddings = F.normalize(embeddings, dim=-1)
        restarts = self.training and self.dead_code_threshold > 0
        if restarts:
            self._restart_dead_codes(embeddings.detach())
        codebook = self.normalized_codebook()
        # ||e - c||^2 = 2 - 2 e.c for unit vectors: the argmin distance is the argmax similarity.
        indices = (embeddings.detach() @ codebook.detach().t()).argmax(dim=-1)
        codes = codebook[indices]
        loss_codebook = (embeddings.detach() - codes).pow(2).sum(-1).mean()
        loss_commitment = (embeddings - codes.detach()).pow(2).sum(-1).mean()
        quantized = embeddings + (codes - embeddings).detach()
        if restarts:
            with torch.no_grad():
                counts = torch.bincount(indices.reshape(-1), minlength=codebook.shape[0]).to(self.code_usage.dtype)
                self.code_usage.mul_(0.9).add_(counts, alpha=0.1)
        return EvilmVectorQuantizerOutput(
            quantized=quantized,
            indices=indices,
            embeddings=embeddings,
            loss_codebook=loss_codebook,
            loss_commitment=loss_commitment,
        )


def codebook_utilization(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Fraction of the `codebook_size` codes that occur in `indices` at least once (E-ViLM Table 6's "vocabulary
    rate"; its tokenizer uses 92 % of the codebook). Pass the indices of a whole split for the dataset figure."""
    used = torch.zeros(codebook_size, dtype=torch.bool, device=indices.device)
    used[indices.reshape(-1)] = True
    return used.float().mean()


def caption_word_targets(input_ids: torch.Tensor, vocab_size: int, ignore_ids: list[int]) -> torch.Tensor:
    """Multi-hot `(B, vocab_size)` targets of Eq. 6 from tokenized captions `(B, L)`: a word is positive when it
    occurs in the caption. `ignore_ids` (padding and special tokens) are never positive."""
    targets = torch.zeros(input_ids.shape[0], vocab_size, device=input_ids.device)
    targets.scatter_(1, input_ids.long(), 1.0)
    if ignore_ids:
        targets[:, torch.tensor(ignore_ids, device=input_ids.device)] = 0.0
    return targets


# ---------------------------------------------------------------------------------------------------- models


class EvilmTokenizerPreTrainedModel(PreTrainedModel):
    """Weight initialization and shared settings of the tokenizer."""

    config_class = EvilmTokenizerConfig
    base_model_prefix = "tokenizer"
    main_input_name = "pixel_values"
    input_modalities = ("video",)
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["CLIPEncoderLayer", "Block"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=std)
        elif isinstance(module, CLIPVisionEmbeddings):
            init.normal_(module.class_embedding, std=std)
        elif isinstance(module, EvilmVectorQuantizer):
            init.normal_(module.codebook)  # random codes, "initialized randomly" (§4.1)
        elif isinstance(module, EvilmVideoTokenizer):
            init.trunc_normal_(module.decoder_position_embeddings, std=std)


class EvilmVideoTokenizer(EvilmTokenizerPreTrainedModel):
    """The semantic VQ tokenizer with its training-time decoder and word head (E-ViLM §3.3, Fig. 4)."""

    def __init__(self, config: EvilmTokenizerConfig) -> None:
        super().__init__(config)
        vision = config.vision_config
        self.encoder = CLIPVisionModel(vision)
        self.quant_projection = nn.Linear(vision.hidden_size, config.codebook_dim)
        self.quantizer = EvilmVectorQuantizer(config.codebook_size, config.codebook_dim, config.dead_code_threshold)
        width = config.decoder_hidden_size
        self.decoder_embedding = nn.Linear(config.codebook_dim, width)
        self.decoder_position_embeddings = nn.Parameter(
            torch.zeros(config.max_frames * config.regions_per_frame, width)
        )
        norm = partial(nn.LayerNorm, eps=config.layer_norm_eps)
        self.decoder = nn.ModuleList(
            Block(width, config.decoder_num_heads, mlp_ratio=config.decoder_mlp_ratio, norm_layer=norm,
                  attn_implementation=config._attn_implementation)  # fmt: skip
            for _ in range(config.decoder_num_layers)
        )
        self.decoder_norm = norm(width)
        self.word_head = nn.Linear(width, config.vocab_size)
        self.token_loss = MultiLabelFocalLoss(gamma=config.focal_gamma, gamma_negative=config.focal_gamma_negative)
        self.post_init()

    @classmethod
    def from_clip_vision(cls, config: EvilmTokenizerConfig, clip_vision_path: str, **kwargs) -> EvilmVideoTokenizer:
        """A tokenizer whose encoder starts from a `CLIPVisionModel` checkpoint (E-ViLM §4.1); the rest is new."""
        model = cls(config)
        clip = CLIPVisionModel.from_pretrained(clip_vision_path, **kwargs)
        model.encoder.load_state_dict(clip.state_dict())
        return model

    def encode(self, pixel_values: torch.Tensor, **encoder_kwargs) -> EvilmVectorQuantizerOutput:
        """`(B, T, C, H, W)` frames -> the quantizer's output over `(B, T, N)` regions (the ViT's patch tokens).
        `encoder_kwargs` (`output_hidden_states`, `output_attentions`) go to the CLIP encoder, whose output is kept
        as `self._last_encoder_output` for the caller."""
        if pixel_values.ndim != 5:
            raise ValueError(
                f"EvilmVideoTokenizer: pixel_values must be (B, T, C, H, W), got shape {tuple(pixel_values.shape)}."
            )
        batch, frames = pixel_values.shape[:2]
        encoded = self.encoder(pixel_values.flatten(0, 1), **encoder_kwargs)
        self.__dict__["_last_encoder_output"] = encoded
        tokens = encoded.last_hidden_state
        patches = self.encoder.post_layernorm(tokens[:, 1:])  # CLIP's final norm, on the patch tokens ([CLS] dropped)
        embeddings = self.quant_projection(patches).reshape(batch, frames, patches.shape[1], -1)
        return self.quantizer(embeddings)

    @torch.no_grad()
    def get_codebook_indices(self, pixel_values: torch.Tensor) -> torch.LongTensor:
        """The `(B, T, N)` code of every region: the labels of E-ViLM's masked video modeling (Eq. 3)."""
        return self.encode(pixel_values).indices

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> EvilmVideoTokenizerOutput | tuple:
        r"""
        labels (`torch.FloatTensor` of shape `(B, vocab_size)`, *optional*): multi-hot caption words (see
            :func:`caption_word_targets`); with them the output holds `L_SVQ` (Eq. 7).
        """
        flags = {k: v for k, v in (("output_attentions", output_attentions),
                                   ("output_hidden_states", output_hidden_states)) if v is not None}  # fmt: skip
        quantized = self.encode(pixel_values, **flags)
        encoded = self.__dict__.pop("_last_encoder_output")
        batch, frames, regions, _ = quantized.quantized.shape
        if frames * regions > self.decoder_position_embeddings.shape[0]:
            raise ValueError(
                f"EvilmVideoTokenizer: {frames} frames exceed the decoder's max_frames={self.config.max_frames}."
            )
        hidden = self.decoder_embedding(quantized.quantized.reshape(batch, frames * regions, -1))
        hidden = hidden + self.decoder_position_embeddings[: frames * regions]
        for block in self.decoder:
            hidden, _ = block(hidden)
        logits = self.word_head(self.decoder_norm(hidden).mean(dim=1))  # Eq. 5: the decoder's mean output

        loss = loss_token = None
        if labels is not None:
            loss_token = self.token_loss(logits, labels)
            loss = (
                loss_token
                + self.config.codebook_weight * quantized.loss_codebook
                + self.config.commitment_weight * quantized.loss_commitment
            )
        output = EvilmVideoTokenizerOutput(
            loss=loss,
            loss_token=loss_token,
            loss_codebook=quantized.loss_codebook,
            loss_commitment=quantized.loss_commitment,
            logits=logits,
            codebook_indices=quantized.indices,
            codebook_utilization=codebook_utilization(quantized.indices, self.config.codebook_size),
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


__all__ = [
    "EvilmTokenizerPreTrainedModel",
    "EvilmVectorQuantizer",
    "EvilmVectorQuantizerOutput",
    "EvilmVideoTokenizer",
    "EvilmVideoTokenizerOutput",
    "caption_word_targets",
    "codebook_utilization",
]
