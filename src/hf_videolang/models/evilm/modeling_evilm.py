"""E-ViLM, "Efficient Video-Language Model via Masked Video Modeling with Semantic Vector-Quantized Tokenizer"
(Fang et al., 2023).

A 16 M-parameter single-stream model (E-ViLM §3.1, Fig. 3, Eq. 1-2): EdgeNeXt-S encodes each frame, whose final
grid is flattened and projected (``ENC_V``); a tiny BERT encodes the caption and a linear layer brings it to the
decoder's width (``ENC_L``); a small Transformer decoder reads ``[CLS, text + t^L, video + t^V]`` (``DEC_VL``).
Pre-training sums MLM, VTM and MVM (Eq. 8); MVM predicts, at block-masked video regions whose pixels are set to
zero, the code the semantic VQ tokenizer (``hf_videolang.models.evilm_tokenizer``) gives the unmasked frames (Eq. 3).
Retrieval encodes each modality alone (§4.2, after all-in-one and UFO) and ranks, and answers multiple choice, by
a dot product; the pre-trained VTM head can re-rank the top candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertModel, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from ...layers import Block
from ...losses import MaskedLanguageModelingLoss, TokenMaskedVideoLoss, VideoTextContrastiveLoss, VideoTextMatchingLoss
from ..edgenext import EdgeNextModel
from .configuration_evilm import EvilmConfig

# ---------------------------------------------------------------------------------------------------- outputs


@dataclass
class EvilmModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, 1 + L + T * N, D)`): the decoder's `[CLS]`, text and
            video states (Eq. 2), final-normed.
        pooler_output (`torch.FloatTensor` of shape `(B, D)`): the `[CLS]` state, read by every head.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): decoder input and every block's output.
        attentions (`tuple(torch.FloatTensor)`, *optional*): every decoder block's `(B, heads, S, S)` attention.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class EvilmForPreTrainingOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor`): the weighted sum of the terms below that were computed (Eq. 8).
        loss_mlm, loss_vtm, loss_mvm (`torch.FloatTensor`): the unweighted terms (None when a weight is 0 or its
            inputs are missing).
        mlm_logits (`torch.FloatTensor` of shape `(B, L, V)`), mvm_logits (`(B, T * N, codebook_size)`),
        vtm_logits (`(B + M, 2)`: B matched pairs, then M <= B mismatched ones, see `mismatched_caption_index`).
        hidden_states, attentions (*optional*): the decoder's, over the masked inputs (see `EvilmModelOutput`).
    """

    loss: torch.FloatTensor | None = None
    loss_mlm: torch.FloatTensor | None = None
    loss_vtm: torch.FloatTensor | None = None
    loss_mvm: torch.FloatTensor | None = None
    mlm_logits: torch.FloatTensor | None = None
    mvm_logits: torch.FloatTensor | None = None
    vtm_logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class EvilmForVideoQuestionAnsweringOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor`, *optional*): cross-entropy over `config.answer_list`, given `labels`.
        logits (`torch.FloatTensor` of shape `(B, len(answer_list))`).
        hidden_states, attentions (*optional*): the decoder's (see `EvilmModelOutput`).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class EvilmForVideoTextRetrievalOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor`, *optional*): with `return_loss=True` (default in training), the contrastive loss of
            the unimodal embeddings (§4.2: unimodal encoding in fine-tuning, no pairwise matching).
        loss_vtc (`torch.FloatTensor`, *optional*): the same value, named for the trainer's per-term logs.
        logits_per_text (`torch.FloatTensor` of shape `(B, B)`): scaled dot products of the unimodal embeddings.
        text_embeds, video_embeds (`torch.FloatTensor` of shape `(B, D)`): l2-normalized unimodal embeddings.
        text_hidden_states, text_attentions (*optional*): the language encoder's (retrieval never fuses the pair).
    """

    loss: torch.FloatTensor | None = None
    loss_vtc: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    text_attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class EvilmForVideoClassificationOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor`, *optional*), logits (`torch.FloatTensor` of shape `(B, num_labels)`).
        hidden_states, attentions (*optional*): the video encoder's (EdgeNeXt stages and channel attentions).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ---------------------------------------------------------------------------------------------------- pieces


def zero_masked_regions(pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor, stride: int) -> torch.Tensor:
    """Set the pixels of masked regions to zero (E-ViLM §3.2: "replacing them with zero-value pixels").

    Args:
        pixel_values: `(B, T, C, H, W)` frames.
        bool_masked_pos: `(B, T * (H / stride) * (W / stride))`, True = masked.
        stride: pixels per region side.
    """
    batch, frames, _, height, width = pixel_values.shape
    grid_h, grid_w = height // stride, width // stride
    if bool_masked_pos.shape != (batch, frames * grid_h * grid_w):
        raise ValueError(
            f"bool_masked_pos must be (B, T * h * w) = ({batch}, {frames * grid_h * grid_w}) for {frames} frames "
            f"of {height}x{width} px with {stride} px regions; got {tuple(bool_masked_pos.shape)}."
        )
    mask = bool_masked_pos.reshape(batch, frames, 1, grid_h, 1, grid_w, 1)
    pixels = pixel_values.reshape(batch, frames, -1, grid_h, stride, grid_w, stride)
    return pixels.masked_fill(mask, 0.0).reshape(pixel_values.shape)


class EvilmPredictionHead(nn.Module):
    """Dense -> GELU -> LayerNorm -> linear classifier (BERT's MLM head shape), used for MLM and MVM."""

    def __init__(self, hidden_size: int, num_classes: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, eps=eps)
        self.decoder = nn.Linear(hidden_size, num_classes)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.norm(F.gelu(self.dense(hidden))))


# ---------------------------------------------------------------------------------------------------- models


class EvilmPreTrainedModel(PreTrainedModel):
    """Weight initialization and shared settings of every E-ViLM model."""

    config_class = EvilmConfig
    base_model_prefix = "evilm"
    main_input_name = "pixel_values"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["Block", "BertLayer", "EdgeNextConvEncoder", "EdgeNextSdtaEncoder"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, EvilmModel):
            init.trunc_normal_(module.cls_token, std=std)
        elif isinstance(module, EvilmForVideoTextRetrieval):
            init.constant_(module.logit_scale, 2.6592)  # log(1 / 0.07), CLIP's initial temperature
        # EdgeNeXt's layer scale and temperatures
        elif hasattr(module, "gamma") and isinstance(module.gamma, nn.Parameter):
            init.constant_(module.gamma, self.config.vision_config.layer_scale_init_value)
            if hasattr(module, "gamma_xca"):
                init.constant_(module.gamma_xca, self.config.vision_config.layer_scale_init_value)
        elif hasattr(module, "temperature") and isinstance(module.temperature, nn.Parameter):
            init.ones_(module.temperature)

    # Every head holds the base model as `self.evilm` and reads its word embeddings (EvilmModel overrides these).
    def get_input_embeddings(self) -> nn.Module:
        return self.evilm.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.evilm.set_input_embeddings(value)


class EvilmModel(EvilmPreTrainedModel):
    """E-ViLM's encoders and multi-modal decoder (Eq. 1-2)."""

    def __init__(self, config: EvilmConfig) -> None:
        super().__init__(config)
        width = config.hidden_size
        self.vision_model = EdgeNextModel(config.vision_config, add_pooling_layer=False)
        self.video_projection = nn.Linear(config.vision_config.hidden_sizes[-1], width)
        self.text_model = BertModel(config.text_config, add_pooling_layer=False)
        self.text_projection = nn.Linear(config.text_config.hidden_size, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.token_type_embeddings = nn.Embedding(2, width)  # t^L (0) and t^V (1), Eq. 2
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        norm = partial(nn.LayerNorm, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(
            Block(width, config.num_attention_heads, mlp_ratio=config.intermediate_size / width, norm_layer=norm,
                  proj_drop=config.hidden_dropout_prob, attn_drop=config.attention_probs_dropout_prob,
                  attn_implementation=config._attn_implementation)  # fmt: skip
            for _ in range(config.num_hidden_layers)
        )
        self.norm = norm(width)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.text_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.text_model.set_input_embeddings(value)

    def encode_video(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None) -> torch.Tensor:
        """``ENC_V``: `(B, T, C, H, W)` -> `(B, T * N, D)`, each frame's final grid flattened and projected."""
        if pixel_values.ndim != 5:
            raise ValueError(f"EvilmModel: pixel_values must be (B, T, C, H, W), got {tuple(pixel_values.shape)}.")
        if bool_masked_pos is not None:
            pixel_values = zero_masked_regions(pixel_values, bool_masked_pos, self.config.video_stride)
        batch, frames = pixel_values.shape[:2]
        grid = self.vision_model(pixel_values.flatten(0, 1)).last_hidden_state  # (B*T, C, h, w)
        tokens = grid.flatten(2).transpose(1, 2).reshape(batch, -1, grid.shape[1])
        return self.video_projection(tokens)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``ENC_L``: `(B, L)` -> `(B, L, D)`."""
        hidden = self.text_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.text_projection(hidden)

    def _flags(self, output_attentions: bool | None, output_hidden_states: bool | None) -> dict[str, bool]:
        return {
            "output_attentions": bool(
                self.config.output_attentions if output_attentions is None else output_attentions
            ),
            "output_hidden_states": bool(
                self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
            ),
        }

    def fuse(
        self,
        video_tokens: torch.Tensor,
        text_tokens: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> EvilmModelOutput:
        """``DEC_VL`` over `[CLS, e^L + t^L, e^V + t^V]` (Eq. 2)."""
        batch = video_tokens.shape[0]
        text = text_tokens + self.token_type_embeddings.weight[0]
        video = video_tokens + self.token_type_embeddings.weight[1]
        keys = None
        if attention_mask is not None:
            ones = attention_mask.new_ones(batch, 1)
            keys = torch.cat([ones, attention_mask, ones.expand(batch, video.shape[1])], dim=1)
        return self._decode(torch.cat([self.cls_token.expand(batch, -1, -1), text, video], dim=1), keys,
                            output_attentions, output_hidden_states)  # fmt: skip

    def _decode(
        self, tokens: torch.Tensor, key_mask: torch.Tensor | None, output_attentions: bool, output_hidden_states: bool
    ) -> EvilmModelOutput:
        hidden = self.dropout(tokens)
        mask = None if key_mask is None else key_mask.bool()[:, None, None, :]
        states, maps = (hidden,) if output_hidden_states else None, () if output_attentions else None
        for layer in self.layers:
            hidden, weights = layer(hidden, attention_mask=mask, output_attentions=output_attentions)
            if output_hidden_states:
                states += (hidden,)
            if output_attentions:
                maps += (weights,)
        hidden = self.norm(hidden)
        return EvilmModelOutput(last_hidden_state=hidden, pooler_output=hidden[:, 0], hidden_states=states,
                                attentions=maps)  # fmt: skip

    def fuse_matched_and_shifted(
        self,
        video_tokens: torch.Tensor,
        text_tokens: torch.Tensor,
        attention_mask: torch.Tensor | None,
        video_ids: torch.Tensor | None = None,
        **flags,
    ) -> tuple[EvilmModelOutput, torch.Tensor]:
        """VTM's pairs: the decoder over each video with its own caption, and the [CLS] state of each video with the
        caption of the nearest earlier sample (cyclically) that shows another video: with `video_ids` a second caption
        of the same video is never taken for a mismatch; a video with no other video in the batch gets no negative,
        so the mismatched states are `(M, D)`, `M <= B`."""
        index, keep = mismatched_caption_index(video_tokens.shape[0], video_ids, video_tokens.device)
        matched = self.fuse(video_tokens, text_tokens, attention_mask, **flags)
        if not keep.any():
            return matched, matched.pooler_output[:0]
        mask = None if attention_mask is None else attention_mask[index[keep]]
        mismatched = self.fuse(video_tokens[keep], text_tokens[index[keep]], mask).pooler_output
        return matched, mismatched

    def encode_alone(
        self, tokens: torch.Tensor, token_type: int, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Unimodal encoding for retrieval (§4.2, following all-in-one [76] and UFO [78]: each modality encoded
        alone, never fused): `(B, D)` from the projected encoder tokens of one modality (`token_type` 0 = text, the
        [CLS] of ``ENC_L``; 1 = video, the element-wise max over the `T * N` tokens of ``ENC_V``).

        Why max for video: the caption is about a small object in a few regions; a mean averages it away with the
        background (on the demo corpus a linear probe reads the shape's colour from the max of the video tokens at
        48 %, from their mean at 18 %, chance 14 %; retrieval fine-tuned on the mean stayed at chance). Running the
        decoder over each modality alone, as all-in-one does with its shared backbone, collapsed to one embedding in
        the demo's short fine-tuning."""
        del attention_mask  # the text encoder already masked the padding
        return tokens.amax(dim=1) if token_type == 1 else tokens[:, 0]

    def get_video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Unimodal video embedding `(B, D)`, l2-normalized: the max over the projected video tokens."""
        return F.normalize(self.encode_alone(self.encode_video(pixel_values), 1), dim=-1)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Unimodal text embedding `(B, D)`, l2-normalized: the projected [CLS] of the language encoder."""
        return F.normalize(self.encode_alone(self.encode_text(input_ids, attention_mask), 0, attention_mask), dim=-1)

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> EvilmModelOutput | tuple:
        output = self.fuse(
            self.encode_video(pixel_values, bool_masked_pos),
            self.encode_text(input_ids, attention_mask),
            attention_mask,
            **self._flags(output_attentions, output_hidden_states),
        )
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


class EvilmForPreTraining(EvilmPreTrainedModel):
    """E-ViLM pre-training: MLM + VTM + MVM (Eq. 8).

    The video encoder runs once, on the block-masked frames (pixels zeroed) when MVM runs. MLM and MVM are read from
    the decoder over that video and the masked caption; VTM pairs the same video with its clean caption and with the
    next sample's caption.
    """

    def __init__(self, config: EvilmConfig) -> None:
        super().__init__(config)
        self.evilm = EvilmModel(config)
        eps = config.layer_norm_eps
        self.mlm_head = EvilmPredictionHead(config.hidden_size, config.text_config.vocab_size, eps)
        self.mvm_head = EvilmPredictionHead(config.hidden_size, config.codebook_size, eps)
        self.vtm_head = nn.Linear(config.hidden_size, 2)
        self.mlm_loss = MaskedLanguageModelingLoss()
        self.mvm_loss = TokenMaskedVideoLoss()
        self.vtm_loss = VideoTextMatchingLoss()
        self.post_init()

    def set_video_tokenizer(self, tokenizer: nn.Module | None) -> None:
        """Tag the masked regions online with a frozen `EvilmVideoTokenizer` (§4.1: the tokenizer "escorts" the
        pre-training in evaluation mode) when a batch brings no `video_code_ids`. It is kept outside the module
        tree, so it is neither trained nor saved with this model."""
        if tokenizer is not None:
            tokenizer.eval().requires_grad_(False)
        self.__dict__["_video_tokenizer"] = tokenizer

    @torch.no_grad()
    def _tag_regions(self, pixel_values: torch.Tensor) -> torch.Tensor:
        tokenizer = self.__dict__["_video_tokenizer"]
        size = tokenizer.config.vision_config.image_size
        frames = pixel_values.flatten(0, 1)
        if frames.shape[-1] != size or frames.shape[-2] != size:
            frames = F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False)
        tokenizer.to(pixel_values.device)
        codes = tokenizer.get_codebook_indices(frames.reshape(*pixel_values.shape[:3], size, size))
        return codes_on_video_grid(codes, self.config.video_grid)

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        mlm_input_ids: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        video_code_ids: torch.Tensor | None = None,
        video_ids: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> EvilmForPreTrainingOutput | tuple:
        r"""
        mlm_input_ids, mlm_labels (`torch.LongTensor` of shape `(B, L)`, *optional*): the masked caption and its
            targets (-100 where not masked), from the processor's `return_mlm=True`.
        bool_masked_pos (`torch.BoolTensor` of shape `(B, T * N)`, *optional*): block-masked regions (§4.1).
        video_code_ids (`torch.LongTensor` of shape `(B, T * N)`, *optional*): the tokenizer's code of each region
            of the unmasked frames (`EvilmVideoTokenizer.get_codebook_indices`, resized to the video grid with
            :func:`codes_on_video_grid`).
        video_ids (`torch.LongTensor` of shape `(B,)`, *optional*): equal for rows of the same video, so that VTM
            never takes a second caption of a video for its mismatch (the collator's `video_ids`).
        """
        config, terms = self.config, {}
        mlm_logits = mvm_logits = vtm_logits = None
        flags = self.evilm._flags(output_attentions, output_hidden_states)
        recorded = None
        if video_code_ids is None and bool_masked_pos is not None and self.__dict__.get("_video_tokenizer"):
            video_code_ids = self._tag_regions(pixel_values)
        text_length = input_ids.shape[1]

        want_mlm = config.mlm_weight > 0 and mlm_labels is not None
        want_mvm = config.mvm_weight > 0 and video_code_ids is not None and bool_masked_pos is not None
        want_vtm = config.vtm_weight > 0 and input_ids.shape[0] > 1
        # One pass of the video encoder serves the three losses: the block-masked frames when MVM runs (VTM then
        # matches masked videos, as MLM reads masked captions), the clean frames otherwise.
        video = self.evilm.encode_video(pixel_values, bool_masked_pos if want_mvm else None)
        if want_mlm or want_mvm:
            masked_text = mlm_input_ids if (want_mlm and mlm_input_ids is not None) else input_ids
            recorded = self.evilm.fuse(video, self.evilm.encode_text(masked_text, attention_mask), attention_mask,
                                       **flags)  # fmt: skip
            masked = recorded.last_hidden_state
            if want_mlm:
                mlm_logits = self.mlm_head(masked[:, 1 : 1 + text_length])
                terms["mlm"] = self.mlm_loss(mlm_logits, mlm_labels)
            if want_mvm:
                mvm_logits = self.mvm_head(masked[:, 1 + text_length :])
                terms["mvm"] = self.mvm_loss(mvm_logits, video_code_ids, bool_masked_pos)

        if want_vtm:
            text = self.evilm.encode_text(input_ids, attention_mask)
            fused, neg = self.evilm.fuse_matched_and_shifted(video, text, attention_mask, video_ids,
                                                             **(flags if recorded is None else {}))  # fmt: skip
            recorded = recorded if recorded is not None else fused
            pos = fused.pooler_output
            vtm_logits = self.vtm_head(torch.cat([pos, neg]))
            terms["vtm"] = self.vtm_loss(vtm_logits[: len(pos)], vtm_logits[len(pos) :])

        weights = {"mlm": config.mlm_weight, "vtm": config.vtm_weight, "mvm": config.mvm_weight}
        loss = sum(weights[name] * value for name, value in terms.items()) if terms else None
        output = EvilmForPreTrainingOutput(
            loss=loss,
            loss_mlm=terms.get("mlm"),
            loss_vtm=terms.get("vtm"),
            loss_mvm=terms.get("mvm"),
            mlm_logits=mlm_logits,
            mvm_logits=mvm_logits,
            vtm_logits=vtm_logits,
            hidden_states=None if recorded is None else recorded.hidden_states,
            attentions=None if recorded is None else recorded.attentions,
        )
        return output if (return_dict if return_dict is not None else config.return_dict) else output.to_tuple()


class EvilmForVideoQuestionAnswering(EvilmPreTrainedModel):
    """Open-ended QA as classification over `config.answer_list`, an MLP on the decoder's [CLS]."""

    def __init__(self, config: EvilmConfig) -> None:
        super().__init__(config)
        if not config.answer_list:
            raise ValueError(
                "EvilmForVideoQuestionAnswering needs config.answer_list, the answers it classifies over, e.g. "
                "EvilmConfig(..., answer_list=['left', 'right'])."
            )
        self.evilm = EvilmModel(config)
        width = config.hidden_size
        self.qa_head = nn.Sequential(
            nn.Linear(width, 2 * width), nn.GELU(), nn.LayerNorm(2 * width, eps=config.layer_norm_eps),
            nn.Linear(2 * width, len(config.answer_list)),
        )  # fmt: skip
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> EvilmForVideoQuestionAnsweringOutput | tuple:
        r"""labels (`torch.LongTensor` of shape `(B,)`, *optional*): index of the answer in `config.answer_list`."""
        fused = self.evilm(pixel_values, input_ids, attention_mask, output_attentions=output_attentions,
                           output_hidden_states=output_hidden_states, return_dict=True)  # fmt: skip
        logits = self.qa_head(fused.pooler_output)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        output = EvilmForVideoQuestionAnsweringOutput(loss=loss, logits=logits, hidden_states=fused.hidden_states,
                                                      attentions=fused.attentions)  # fmt: skip
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


class EvilmForVideoTextRetrieval(EvilmPreTrainedModel):
    """Retrieval by unimodal encoding and a dot product (E-ViLM §4.2 and appendix), plus VTM re-ranking.

    Each modality is encoded alone by its encoder and pooled (see :meth:`EvilmModel.encode_alone`), then goes through
    a linear contrastive head per modality. Fine-tuning
    trains a contrastive loss on these embeddings alone (§4.2: unimodal encoding "during fine-tuning and inference"
    replaces the one-to-one matching); at inference the dot product ranks the whole gallery and scores multiple
    choice. :meth:`match_scores` keeps the pre-trained VTM head for re-ranking the top candidates.
    """

    def __init__(self, config: EvilmConfig) -> None:
        super().__init__(config)
        self.evilm = EvilmModel(config)
        # Contrastive heads as in all-in-one's retrieval [76] (ALBEF's vision_proj / text_proj): one linear map per
        # modality, fresh at fine-tuning.
        self.video_embed_head = nn.Linear(config.hidden_size, config.hidden_size)
        self.text_embed_head = nn.Linear(config.hidden_size, config.hidden_size)
        self.vtm_head = nn.Linear(config.hidden_size, 2)
        self.logit_scale = nn.Parameter(torch.tensor(2.6592))
        self.vtc_loss = VideoTextContrastiveLoss()
        self.post_init()

    def get_video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(B, D)` l2-normalized: the max over the projected video tokens, through the contrastive head."""
        video = self.evilm.encode_alone(self.evilm.encode_video(pixel_values), 1)
        return F.normalize(self.video_embed_head(video), dim=-1)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`(B, D)` l2-normalized: the projected text [CLS], through the contrastive head."""
        text = self.evilm.encode_alone(self.evilm.encode_text(input_ids, attention_mask), 0, attention_mask)
        return F.normalize(self.text_embed_head(text), dim=-1)

    def match_scores(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """VTM score `(B,)` of each (video, text) pair: the log-odds of "matched" (for re-ranking)."""
        video = self.evilm.encode_video(pixel_values)
        text = self.evilm.encode_text(input_ids, attention_mask)
        logits = self.vtm_head(self.evilm.fuse(video, text, attention_mask).pooler_output)
        return logits[:, 1] - logits[:, 0]

    def score_candidates(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Multiple choice: scores `(B, K)` of `K` candidate texts `(B, K, L)` per video (the pipeline's
        `candidates=`), the scaled dot products of the unimodal embeddings, i.e. the scores retrieval ranks by and
        fine-tuning trains (§4.2: unimodal encoding "during fine-tuning and inference"). The video is encoded once.
        (The VTM head, :meth:`match_scores`, only learns to tell a caption from a random other one, never from the
        near-duplicates that make up a multiple-choice question.)"""
        batch, options, length = input_ids.shape
        video = self.get_video_features(pixel_values)
        flat_mask = None if attention_mask is None else attention_mask.reshape(batch * options, length)
        text = self.get_text_features(input_ids.reshape(batch * options, length), flat_mask)
        return self.logit_scale.exp() * torch.einsum("bd,bkd->bk", video, text.reshape(batch, options, -1))

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        video_ids: torch.Tensor | None = None,
        return_loss: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> EvilmForVideoTextRetrievalOutput | tuple:
        video_tokens = self.evilm.encode_video(pixel_values)
        text_output = self.evilm.text_model(input_ids=input_ids, attention_mask=attention_mask,
                                            **self.evilm._flags(output_attentions, output_hidden_states))  # fmt: skip
        text_tokens = self.evilm.text_projection(text_output.last_hidden_state)
        video_embeds = F.normalize(self.video_embed_head(self.evilm.encode_alone(video_tokens, 1)), dim=-1)
        text_embeds = F.normalize(self.text_embed_head(self.evilm.encode_alone(text_tokens, 0, attention_mask)),
                                  dim=-1)  # fmt: skip
        logits_per_text = self.logit_scale.exp() * text_embeds @ video_embeds.t()
        loss = None
        if return_loss if return_loss is not None else self.training:
            # §4.2: fine-tuning replaces the pairwise matching by the unimodal encodings, so the loss is VTC alone.
            loss = self.vtc_loss(video_embeds, text_embeds, self.logit_scale, video_ids=video_ids)
        output = EvilmForVideoTextRetrievalOutput(loss=loss, loss_vtc=loss, logits_per_text=logits_per_text,
                                                  text_embeds=text_embeds, video_embeds=video_embeds,
                                                  text_hidden_states=text_output.hidden_states,
                                                  text_attentions=text_output.attentions)  # fmt: skip
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


class EvilmForVideoClassification(EvilmPreTrainedModel):
    """Linear probe (E-ViLM Table 3): a linear classifier on the mean video token of the frozen encoder.

    `freeze_backbone()` makes it a linear probe; without it the whole video side fine-tunes.
    """

    def __init__(self, config: EvilmConfig) -> None:
        super().__init__(config)
        self.evilm = EvilmModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def freeze_backbone(self) -> None:
        self.evilm.requires_grad_(False)

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.LongTensor | None = None,
        output_attentions: bool | None = None, output_hidden_states: bool | None = None,
        return_dict: bool | None = None, **kwargs,
    ) -> EvilmForVideoClassificationOutput | tuple:  # fmt: skip
        batch, frames = pixel_values.shape[:2]
        vision = self.evilm.vision_model(pixel_values.flatten(0, 1),
                                         **self.evilm._flags(output_attentions, output_hidden_states))  # fmt: skip
        grid = vision.last_hidden_state
        tokens = grid.flatten(2).transpose(1, 2).reshape(batch, -1, grid.shape[1])
        logits = self.classifier(self.evilm.video_projection(tokens).mean(dim=1))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        output = EvilmForVideoClassificationOutput(loss=loss, logits=logits, hidden_states=vision.hidden_states,
                                                   attentions=vision.attentions)  # fmt: skip
        return output if (return_dict if return_dict is not None else self.config.return_dict) else output.to_tuple()


def mismatched_caption_index(
    batch: int, video_ids: torch.Tensor | None = None, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each sample, the batch index of the caption VTM pairs it with as a mismatch: the previous sample's
    (`i - 1`, cyclically), or with `video_ids` the nearest earlier one of another video. Returns `(index, keep)`,
    both `(B,)`; `keep` is False where every sample shows the same video (`index` is then meaningless)."""
    rows = torch.arange(batch, device=device)
    if video_ids is None:
        return (rows - 1) % batch, rows.new_ones(batch, dtype=torch.bool) & (batch > 1)
    video_ids = video_ids.to(rows.device)
    index = torch.full_like(rows, -1)
    for step in range(1, batch):
        candidate = (rows - step) % batch
        found = (index < 0) & (video_ids[candidate] != video_ids)
        index = torch.where(found, candidate, index)
    keep = index >= 0
    return index.clamp(min=0), keep


def codes_on_video_grid(codes: torch.Tensor, grid: int) -> torch.Tensor:
    """Resample the tokenizer's `(B, T, n)` codes (an `s x s` grid per frame, `n = s^2`) to the video encoder's
    `grid x grid` regions by nearest neighbour, flattened to `(B, T * grid^2)` as `video_code_ids` expects."""
    batch, frames, regions = codes.shape
    side = int(round(regions**0.5))
    if side * side != regions:
        raise ValueError(f"codes_on_video_grid: {regions} codes per frame do not form a square grid.")
    maps = codes.reshape(batch * frames, 1, side, side).float()
    resized = F.interpolate(maps, size=(grid, grid), mode="nearest").long()
    return resized.reshape(batch, frames * grid * grid)


__all__ = [
    "EvilmForPreTraining",
    "EvilmForPreTrainingOutput",
    "EvilmForVideoClassification",
    "EvilmForVideoClassificationOutput",
    "EvilmForVideoQuestionAnswering",
    "EvilmForVideoQuestionAnsweringOutput",
    "EvilmForVideoTextRetrieval",
    "EvilmForVideoTextRetrievalOutput",
    "EvilmModel",
    "EvilmModelOutput",
    "EvilmPreTrainedModel",
    "codes_on_video_grid",
    "mismatched_caption_index",
    "zero_masked_regions",
]
