"""ClipBERT (Lei et al., CVPR 2021): sparsely sampled clips, a 2D-CNN grid encoder and BERT fusion, multi-clip scores.

Layout (ClipBERT §3, Fig. 2): every clip of ``T`` frames goes through ResNet-50 (transformers' `ResNetModel`), a 3x3
conv down to the transformer width, a 2x2 max-pool and a ReLU (in the authors' order, ``grid_feat.py``); the ``T``
feature maps are mean-pooled into one, row-wise and column-wise position embeddings and a type embedding are added,
and the flattened map follows ``[CLS] text [SEP]`` into a 12-layer BERT. Task heads read the last [CLS] state; the
``N`` clips of a video are scored independently and their logits aggregated by ``G`` (mean, max or LogSumExp, §3
Eq. 4, appendix Eq. 5) before the loss, in training (multiple-instance learning) and at inference.

Adapted from a reading of jayleicn/ClipBERT (``src/modeling/modeling.py``, ``grid_feat.py``,
``src/tasks/run_video_qa.py``); transformers' BERT layers do the fusion, so SDPA and gradient checkpointing come with
them. Padded feature pixels are kept (never masked out of attention), as in the authors' code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.bert.modeling_bert import (
    BertEmbeddings,
    BertEncoder,
    BertLMPredictionHead,
    BertPooler,
    BertPreTrainingHeads,
)
from transformers.models.resnet.modeling_resnet import ResNetEmbeddings, ResNetEncoder
from transformers.utils import ModelOutput

from ...layers.clip_aggregation import aggregate_clip_logits
from .configuration_clipbert import ClipBertConfig

# ---------------------------------------------------------------------------------------------------- outputs


@dataclass
class ClipBertModelOutput(ModelOutput):
    """Output of [`ClipBertModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, L_t + L_v, D)`): text tokens, then visual tokens.
        pooler_output (`torch.FloatTensor` of shape `(B, D)`): BERT's pooler over the last [CLS] state.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): embeddings and every layer's output, with
            `output_hidden_states=True`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): every layer's `(B, heads, L, L)` attention
            probabilities, with `output_attentions=True`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class ClipBertForPreTrainingOutput(ModelOutput):
    """Output of [`ClipBertForPreTraining`] (ClipBERT §3 "Weight Initialization and Pre-training").

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): weighted sum of the terms that are not None.
        loss_mlm (`torch.FloatTensor` of shape `()`, *optional*): masked language modeling; None when
            `mlm_loss_weight == 0` or no `mlm_labels` are given.
        loss_itm (`torch.FloatTensor` of shape `()`, *optional*): image-text matching; None when
            `itm_loss_weight == 0`.
        mlm_logits (`torch.FloatTensor` of shape `(B, L_t, vocab_size)`): word scores of the text positions.
        itm_logits (`torch.FloatTensor` of shape `(B, 2)`): not matched / matched scores.
        itm_labels (`torch.LongTensor` of shape `(B,)`, *optional*): the matching labels used (1 = matched).
        hidden_states, attentions: as in [`ClipBertModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    loss_mlm: torch.FloatTensor | None = None
    loss_itm: torch.FloatTensor | None = None
    mlm_logits: torch.FloatTensor | None = None
    itm_logits: torch.FloatTensor | None = None
    itm_labels: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class ClipBertClipScoresOutput(ModelOutput):
    """Output of the multi-clip task models ([`ClipBertForVideoTextRetrieval`], [`ClipBertForVideoQuestionAnswering`]).

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): cross-entropy of the aggregated logits (ClipBERT Eq. 4;
            with LogSumExp, the negative log-likelihood of appendix Eq. 5-6).
        logits (`torch.FloatTensor` of shape `(B, K)`): video-level logits, ``G`` over the clips.
        clip_logits (`torch.FloatTensor` of shape `(B, N, K)`): the logits of each clip.
        hidden_states, attentions: of the `B * N` clip-text pairs, as in [`ClipBertModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    clip_logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


ClipBertForVideoTextRetrievalOutput = ClipBertClipScoresOutput
ClipBertForVideoQuestionAnsweringOutput = ClipBertClipScoresOutput


# ---------------------------------------------------------------------------------------------------- helpers


def aggregate_clip_scores(clip_logits: torch.Tensor, method: str) -> torch.Tensor:
    """``G`` of ClipBERT Eq. 4 over the clip axis: ``(B, N, K)`` clip logits -> ``(B, K)`` video logits.

    The same function as the QA pipeline's per-video aggregation (:func:`hf_videolang.layers.clip_aggregation.
    aggregate_clip_logits`), applied on axis 1; see there for why LogSumExp subtracts ``log N``.
    """
    if clip_logits.ndim != 3:
        raise ValueError(f"clip_logits must be (batch, num_clips, K), got {tuple(clip_logits.shape)}")
    return aggregate_clip_logits(clip_logits, method, dim=1)


def split_clips(pixel_values: torch.Tensor, frames_per_clip: int) -> torch.Tensor:
    """``(B, N * T, C, H, W)`` (clips concatenated in time, as `ClipBertProcessor` returns them) or
    ``(B, N, T, C, H, W)`` -> ``(B, N, T, C, H, W)``."""
    if pixel_values.ndim == 6:
        return pixel_values
    if pixel_values.ndim != 5:
        raise ValueError(
            f"pixel_values must be (batch, clips * frames, 3, H, W) or (batch, clips, frames, 3, H, W), got "
            f"{tuple(pixel_values.shape)}"
        )
    batch, frames = pixel_values.shape[:2]
    if frames % frames_per_clip:
        raise ValueError(
            f"pixel_values has {frames} frames per video, not a multiple of frames_per_clip={frames_per_clip}; pass "
            "frames_per_clip= or give pixel_values as (batch, clips, frames, 3, H, W)"
        )
    return pixel_values.view(batch, frames // frames_per_clip, frames_per_clip, *pixel_values.shape[2:])


def sample_feature_pixels(
    num_tokens: int, num_samples: int, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor | None:
    """Pixel-BERT's pixel random sampling (ClipBERT §3 "Implementation Details"): sorted indices of ``num_samples``
    of the ``num_tokens`` feature pixels, the same for the whole batch (as the authors' ``get_random_sample_indices``);
    None when all are kept."""
    if num_samples <= 0 or num_samples >= num_tokens:
        return None
    indices = torch.randperm(num_tokens, generator=generator)[:num_samples]
    return indices.sort().values.to(device)


# ---------------------------------------------------------------------------------------------------- embeddings


class ClipBertResNet(nn.Module):
    """transformers' `ResNetModel` without its pooler, as plain modules (a nested `PreTrainedModel` would inherit the
    composite model's attention backend, which a CNN rejects). Same parameter names as `ResNetModel`."""

    def __init__(self, config) -> None:
        super().__init__()
        self.embedder = ResNetEmbeddings(config)
        self.encoder = ResNetEncoder(config)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` -> ``(B, C, H / 32, W / 32)``, the res5 map."""
        return self.encoder(self.embedder(pixel_values), return_dict=True).last_hidden_state


class ClipBertGridEncoder(nn.Module):
    """The vision encoder ``F_v`` (ClipBERT §3 "Model Architecture"): ResNet-50, extra conv, 2x2 max-pool, mean over T.

    The order is the authors' ``grid_encoder``: 3x3 conv (no bias) to the transformer width -> 2x2 stride-2 max-pool
    -> ReLU. The temporal fusion ``M`` is a mean over the ``T`` frame maps (ClipBERT Table 2). With
    ``config.frozen_batch_norm`` the ResNet's BatchNorms stay in eval mode with fixed scale / shift in training, as
    detectron2's ``FrozenBatchNorm2d`` of the authors' backbone; ``config.num_frozen_stages`` freezes the stem and
    the first residual stages (detectron2's ``FREEZE_AT``).
    """

    def __init__(self, config: ClipBertConfig) -> None:
        super().__init__()
        self.backbone = ClipBertResNet(config.vision_config)
        channels = config.vision_config.hidden_sizes[-1]
        self.conv = nn.Conv2d(channels, config.hidden_size, kernel_size=3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.act = nn.ReLU()
        self.frozen_batch_norm = config.frozen_batch_norm
        if self.frozen_batch_norm:
            for norm in self._batch_norms():
                norm.requires_grad_(False)
        # detectron2's FREEZE_AT: the stem counts as the first stage.
        frozen = [self.backbone.embedder, *self.backbone.encoder.stages][: config.num_frozen_stages]
        for stage in frozen:
            stage.requires_grad_(False)

    def _batch_norms(self) -> list[nn.BatchNorm2d]:
        return [module for module in self.backbone.modules() if isinstance(module, nn.BatchNorm2d)]

    def train(self, mode: bool = True) -> ClipBertGridEncoder:
        # detectron2's FrozenBatchNorm2d (the authors' backbone) always uses its stored statistics.
        super().train(mode)
        if self.frozen_batch_norm:
            for norm in self._batch_norms():
                norm.eval()
        return self

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, H, W)`` RGB frames -> ``(B, h, w, D)`` clip feature map, ``h = H / 64``."""
        if pixel_values.ndim != 5:
            raise ValueError(f"a clip must be (batch, frames, 3, H, W), got {tuple(pixel_values.shape)}")
        batch, frames = pixel_values.shape[:2]
        maps = self.backbone(pixel_values.flatten(0, 1))  # (B*T, 2048, H/32, W/32)
        maps = self.act(self.pool(self.conv(maps)))  # (B*T, D, h, w)
        maps = maps.view(batch, frames, *maps.shape[1:]).mean(dim=1)  # temporal mean pooling
        return maps.permute(0, 2, 3, 1)


class ClipBertVisualEmbeddings(nn.Module):
    """2D position embeddings (row-wise + column-wise, ClipBERT §3) and the visual type embedding, then LayerNorm."""

    def __init__(self, config: ClipBertConfig) -> None:
        super().__init__()
        hidden, text = config.hidden_size, config.text_config
        self.row_position_embeddings = nn.Embedding(config.max_grid_row_position_embeddings, hidden)
        self.col_position_embeddings = nn.Embedding(config.max_grid_col_position_embeddings, hidden)
        # A type table of its own (one row): the visual type, next to the text's token types (ClipBERT §3).
        self.token_type_embeddings = nn.Embedding(1, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=text.layer_norm_eps)
        self.dropout = nn.Dropout(text.hidden_dropout_prob)

    def add_2d_position_embeddings(self, grid: torch.Tensor) -> torch.Tensor:
        """``(B, h, w, D)`` -> the same with ``row[i] + col[j]`` added at pixel ``(i, j)``."""
        height, width = grid.shape[1:3]
        if height > self.row_position_embeddings.num_embeddings or width > self.col_position_embeddings.num_embeddings:
            raise ValueError(
                f"a {height}x{width} feature map exceeds the 2D position tables "
                f"({self.row_position_embeddings.num_embeddings}x{self.col_position_embeddings.num_embeddings}); "
                "use smaller frames or raise max_grid_row/col_position_embeddings"
            )
        rows = self.row_position_embeddings(torch.arange(height, device=grid.device))
        cols = self.col_position_embeddings(torch.arange(width, device=grid.device))
        return grid + rows[None, :, None, :] + cols[None, None, :, :]

    def forward(self, grid: torch.Tensor, pixel_indices: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, h, w, D)`` clip map -> ``(B, h * w, D)`` tokens (row-major), or the ``pixel_indices`` among them."""
        tokens = self.add_2d_position_embeddings(grid).flatten(1, 2)
        if pixel_indices is not None:
            tokens = tokens.index_select(1, pixel_indices)
        tokens = tokens + self.token_type_embeddings.weight[0]
        return self.dropout(self.LayerNorm(tokens))


# ---------------------------------------------------------------------------------------------------- base


class ClipBertPreTrainedModel(PreTrainedModel):
    config_class = ClipBertConfig
    base_model_prefix = "clipbert"
    main_input_name = "pixel_values"
    input_modalities = ("video", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True
    _no_split_modules = ["BertLayer", "ClipBertGridEncoder"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # BERT's init for the transformer side (normal, std 0.02); PyTorch's default (Kaiming) for the extra conv, as
        # in the authors' code, which leaves it to nn.Conv2d.
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            if module.out_channels == self.config.hidden_size and module.kernel_size == (3, 3):
                init.kaiming_uniform_(module.weight, a=5**0.5)  # the extra conv: nn.Conv2d's default
            else:
                init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")  # transformers' ResNet
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        if isinstance(module, BertLMPredictionHead):
            init.zeros_(module.bias)
        elif isinstance(module, BertEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
            init.zeros_(module.token_type_ids)


class ClipBertModel(ClipBertPreTrainedModel):
    """ClipBERT's encoders and fusion transformer: one clip (B, T frames) with its text -> joint hidden states."""

    def __init__(self, config: ClipBertConfig) -> None:
        super().__init__(config)
        text = config.text_config
        self.embeddings = BertEmbeddings(text)
        self.vision_model = ClipBertGridEncoder(config)
        self.visual_embeddings = ClipBertVisualEmbeddings(config)
        self.encoder = BertEncoder(text)
        self.pooler = BertPooler(text)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embeddings.word_embeddings = value

    def encode_clips(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, T, 3, H, W)`` -> ``(B, h, w, D)`` clip feature maps (the CNN part, before the position embeddings)."""
        return self.vision_model(pixel_values)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        clip_features: torch.Tensor | None = None,
        pixel_indices: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ClipBertModelOutput | tuple:
        r"""Fuse one clip per row with its text (ClipBERT Eq. 3).

        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, T, 3, H, W)`): the `T` frames of one clip per row (an
                image is a 1-frame clip), RGB, normalized as `ClipBertProcessor` does.
            input_ids (`torch.LongTensor` of shape `(B, L_t)`): ``[CLS] text [SEP]`` token ids.
            attention_mask (`torch.LongTensor` of shape `(B, L_t)`, *optional*): 1 for text tokens, 0 for padding.
                Every visual token is attended to, zero-padded frame areas included (as in the authors' code).
            clip_features (`torch.FloatTensor` of shape `(B, h, w, D)`, *optional*): precomputed
                `encode_clips(pixel_values)`, instead of `pixel_values` (to pair one clip with several texts).
            pixel_indices (`torch.LongTensor` of shape `(k,)`, *optional*): keep only these feature pixels
                (pre-training's pixel random sampling).
        """
        config = self.config
        output_attentions = output_attentions if output_attentions is not None else config.output_attentions
        output_hidden_states = output_hidden_states if output_hidden_states is not None else config.output_hidden_states
        return_dict = return_dict if return_dict is not None else config.return_dict
        if input_ids is None:
            raise ValueError("ClipBertModel needs input_ids ([CLS] text [SEP]).")
        if (pixel_values is None) == (clip_features is None):
            raise ValueError("ClipBertModel needs exactly one of pixel_values and clip_features.")
        if clip_features is None:
            clip_features = self.encode_clips(pixel_values)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)

        text_embeds = self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
        visual_embeds = self.visual_embeddings(clip_features, pixel_indices)
        hidden_states = torch.cat([text_embeds, visual_embeds], dim=1)
        # Text padding is masked; visual tokens never are (the authors' ``visual_attention_mask = new_ones``).
        full_mask = torch.cat([attention_mask, attention_mask.new_ones(visual_embeds.shape[:2])], dim=1)

        # The BERT layers read the backend from the text config; the model's choice (`attn_implementation=`,
        # `set_attn_implementation`) lives on the top config. Fused kernels return no probabilities, so a call that
        # asks for attentions runs eager. It is set, not restored: gradient checkpointing recomputes the layers in
        # the backward pass, which must use the backend of the forward pass.
        text_config = config.text_config
        text_config._attn_implementation = "eager" if output_attentions else (config._attn_implementation or "eager")
        mask = create_bidirectional_mask(config=text_config, inputs_embeds=hidden_states, attention_mask=full_mask)
        all_hidden: list[torch.Tensor] = [hidden_states]
        all_attentions: list[torch.Tensor] = []
        hooks = []
        if output_attentions:
            for layer in self.encoder.layer:
                hooks.append(
                    layer.attention.self.register_forward_hook(
                        lambda _module, _args, output: all_attentions.append(output[1])
                    )
                )
        try:
            for layer in self.encoder.layer:
                hidden_states = layer(hidden_states, mask)
                all_hidden.append(hidden_states)
        finally:
            for hook in hooks:
                hook.remove()

        output = ClipBertModelOutput(
            last_hidden_state=hidden_states,
            pooler_output=self.pooler(hidden_states),
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
        )
        return output if return_dict else output.to_tuple()


# ---------------------------------------------------------------------------------------------------- heads


def _weighted_total(losses: dict[str, torch.Tensor | None], weights: dict[str, float]) -> torch.Tensor | None:
    terms = [weights[name] * value for name, value in losses.items() if value is not None]
    return torch.stack(terms).sum() if terms else None


class ClipBertForPreTraining(ClipBertPreTrainedModel):
    """Image-text pre-training (ClipBERT §3): masked language modeling and image-text matching, images as 1-frame clips.

    One forward pass serves both losses, on the masked captions, as in the authors' ``ClipBertForPreTraining``; the
    MLM loss covers every pair, the mismatched ones too (the authors' collator masks every caption).
    """

    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "clipbert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: ClipBertConfig) -> None:
        super().__init__(config)
        self.clipbert = ClipBertModel(config)
        self.cls = BertPreTrainingHeads(config.text_config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.clipbert.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.clipbert.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.cls.predictions.decoder

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.cls.predictions.decoder = value

    def make_itm_negatives(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Replace each caption, with probability `itm_negative_probability`, by another row's caption (ClipBERT §3).

        Returns ``(row_of_caption (B,), itm_labels (B,), ...)``: the caption row each pair uses and 1 = matched.
        The authors draw the negative from the whole dataset; here it comes from the batch.
        """
        batch = input_ids.shape[0]
        if batch < 2:
            raise ValueError("ClipBertForPreTraining: in-batch ITM negatives need a batch of at least 2 pairs.")
        replace = torch.rand(batch, generator=generator) < self.config.itm_negative_probability
        shift = torch.randint(1, batch, (batch,), generator=generator)
        rows = torch.arange(batch)
        source = torch.where(replace, (rows + shift) % batch, rows).to(input_ids.device)
        return source, (~replace).long().to(input_ids.device), replace

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        mlm_input_ids: torch.Tensor | None = None,
        mlm_labels: torch.Tensor | None = None,
        itm_labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ClipBertForPreTrainingOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, T, 3, H, W)`): one clip (an image: `T = 1`) per caption.
            input_ids (`torch.LongTensor` of shape `(B, L)`): the captions; `mlm_input_ids`, their masked copy, is
                what the transformer reads when given.
            mlm_labels (`torch.LongTensor` of shape `(B, L)`, *optional*): -100 where no word is predicted.
            itm_labels (`torch.LongTensor` of shape `(B,)`, *optional*): 1 for matched pairs. When None and ITM is
                on, captions are swapped within the batch with probability `itm_negative_probability`, their
                `mlm_labels` with them.
            generator: seeds the ITM swaps and the pixel random sampling.
        """
        config = self.config
        return_dict = return_dict if return_dict is not None else config.return_dict
        text_ids = mlm_input_ids if mlm_input_ids is not None else input_ids
        if text_ids is None or pixel_values is None:
            raise ValueError("ClipBertForPreTraining needs pixel_values and input_ids (or mlm_input_ids).")
        if mlm_input_ids is not None and input_ids is not None and mlm_input_ids.shape != input_ids.shape:
            raise ValueError(
                f"mlm_input_ids {tuple(mlm_input_ids.shape)} must have the shape of input_ids {tuple(input_ids.shape)}."
            )
        if attention_mask is None:
            attention_mask = torch.ones_like(text_ids)
        use_itm = config.itm_loss_weight > 0
        if use_itm and itm_labels is None and config.itm_negative_probability > 0:
            source, itm_labels, _ = self.make_itm_negatives(text_ids, attention_mask, generator)
            text_ids, attention_mask = text_ids[source], attention_mask[source]
            if mlm_labels is not None:
                mlm_labels = mlm_labels[source]
        elif use_itm and itm_labels is None:
            itm_labels = torch.ones(text_ids.shape[0], dtype=torch.long, device=text_ids.device)

        clip_features = self.clipbert.encode_clips(pixel_values)
        pixel_indices = None
        if self.training:
            pixel_indices = sample_feature_pixels(
                clip_features.shape[1] * clip_features.shape[2], config.pixel_random_sampling_size,
                clip_features.device, generator,
            )  # fmt: skip
        outputs = self.clipbert(
            input_ids=text_ids,
            attention_mask=attention_mask,
            clip_features=clip_features,
            pixel_indices=pixel_indices,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        text_length = text_ids.shape[1]
        # Only the text positions are scored (the authors slice before the heads).
        mlm_logits, itm_logits = self.cls(outputs.last_hidden_state[:, :text_length], outputs.pooler_output)

        losses: dict[str, torch.Tensor | None] = dict.fromkeys(("mlm", "itm"))
        if config.mlm_loss_weight > 0 and mlm_labels is not None:
            losses["mlm"] = F.cross_entropy(mlm_logits.flatten(0, 1).float(), mlm_labels.flatten(), ignore_index=-100)
        if use_itm:
            losses["itm"] = F.cross_entropy(itm_logits.float(), itm_labels)
        weights = {"mlm": config.mlm_loss_weight, "itm": config.itm_loss_weight}
        output = ClipBertForPreTrainingOutput(
            loss=_weighted_total(losses, weights),
            loss_mlm=losses["mlm"],
            loss_itm=losses["itm"],
            mlm_logits=mlm_logits,
            itm_logits=itm_logits,
            itm_labels=itm_labels,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


class ClipBertMLPHead(nn.Module):
    """The two-layer MLP over the last [CLS] state (appendix B; ``hidden_size * 2`` hidden units, ReLU)."""

    def __init__(self, hidden_size: int, scale: int, num_outputs: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size * scale)
        self.act = nn.ReLU()
        self.out_proj = nn.Linear(hidden_size * scale, num_outputs)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.act(self.dense(hidden)))


class _ClipBertForClipScores(ClipBertPreTrainedModel):
    """Shared body of the task models: score each of the N clips with the text, then aggregate with G (§3 Eq. 3-4)."""

    num_outputs: int = 2

    def __init__(self, config: ClipBertConfig) -> None:
        super().__init__(config)
        self.clipbert = ClipBertModel(config)
        self.dropout = nn.Dropout(config.text_config.hidden_dropout_prob)
        self.classifier = ClipBertMLPHead(config.hidden_size, config.classifier_hidden_scale, self._num_outputs(config))
        self.post_init()

    def _num_outputs(self, config: ClipBertConfig) -> int:
        return self.num_outputs

    def get_input_embeddings(self) -> nn.Module:
        return self.clipbert.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.clipbert.set_input_embeddings(value)

    def _score_clips(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None,
        frames_per_clip: int | None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> tuple[torch.Tensor, ClipBertModelOutput]:
        """``(B, N, K)`` clip logits for ``B`` videos of ``N`` clips and their ``(B, L)`` or ``(B, J, L)`` texts
        (then ``(B, J, N, K)``). Each clip is encoded once, however many texts it is paired with."""
        clips = split_clips(pixel_values, frames_per_clip or self.config.frames_per_clip)
        batch, num_clips = clips.shape[:2]
        features = self.clipbert.encode_clips(clips.flatten(0, 1))  # (B*N, h, w, D)
        features = features.view(batch, 1, num_clips, *features.shape[1:])
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        texts = input_ids.ndim == 3
        if not texts:
            input_ids, attention_mask = input_ids[:, None], attention_mask[:, None]
        num_texts = input_ids.shape[1]
        features = features.expand(batch, num_texts, *features.shape[2:]).flatten(0, 2)
        ids = input_ids[:, :, None].expand(-1, -1, num_clips, -1).flatten(0, 2)
        mask = attention_mask[:, :, None].expand(-1, -1, num_clips, -1).flatten(0, 2)
        outputs = self.clipbert(
            input_ids=ids,
            attention_mask=mask,
            clip_features=features,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.pooler_output))
        logits = logits.view(batch, num_texts, num_clips, -1)
        return (logits if texts else logits[:, 0]), outputs

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        frames_per_clip: int | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ClipBertClipScoresOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(B, N * T, 3, H, W)` or `(B, N, T, 3, H, W)`): the `N`
                clips of each video (`N_train` random ones in training, `N_test` uniform ones at inference).
            input_ids, attention_mask (`torch.LongTensor` of shape `(B, L)`): the text of each video.
            labels (`torch.LongTensor` of shape `(B,)`, *optional*): the class of each video-text pair.
            frames_per_clip (`int`, *optional*): `T` when `pixel_values` is 5-D; defaults to `config.frames_per_clip`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if pixel_values is None or input_ids is None:
            raise ValueError(f"{type(self).__name__} needs pixel_values and input_ids.")
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be (batch, length), got {tuple(input_ids.shape)}")
        clip_logits, outputs = self._score_clips(
            pixel_values, input_ids, attention_mask, frames_per_clip, output_attentions, output_hidden_states
        )
        logits = aggregate_clip_scores(clip_logits, self.config.clip_aggregation)
        loss = F.cross_entropy(logits.float(), labels.view(-1)) if labels is not None else None
        output = ClipBertClipScoresOutput(
            loss=loss,
            logits=logits,
            clip_logits=clip_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


class ClipBertForVideoTextRetrieval(_ClipBertForClipScores):
    """Text-to-video retrieval (appendix B): a two-way matched / not-matched MLP on [CLS], clip scores aggregated by
    G; `labels` are 1 for matched pairs. `score_candidates` ranks texts for a video (multiple choice, §4.1)."""

    num_outputs = 2

    def score_candidates(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        frames_per_clip: int | None = None,
    ) -> torch.Tensor:
        """``(B, J)`` matching scores of each video with each of its ``J`` texts: ``log p(matched)`` of the clip
        logits aggregated by G (appendix Eq. 5). ``input_ids`` is ``(B, J, L)``."""
        if input_ids.ndim != 3:
            raise ValueError(f"input_ids must be (batch, candidates, length), got {tuple(input_ids.shape)}")
        clip_logits, _ = self._score_clips(pixel_values, input_ids, attention_mask, frames_per_clip)
        batch, num_texts = clip_logits.shape[:2]
        logits = aggregate_clip_scores(clip_logits.flatten(0, 1), self.config.clip_aggregation)
        return logits.log_softmax(dim=-1)[:, 1].view(batch, num_texts)


class ClipBertForVideoQuestionAnswering(_ClipBertForClipScores):
    """Open-ended video QA (appendix B): an MLP over `config.answer_list` on [CLS], clip logits aggregated by G."""

    def _num_outputs(self, config: ClipBertConfig) -> int:
        if not config.answer_list:
            raise ValueError(
                "ClipBertForVideoQuestionAnswering needs config.answer_list (the answer string of each logit); set "
                "it, e.g. ClipBertConfig(answer_list=['yes', 'no', ...])."
            )
        return len(config.answer_list)


__all__ = [
    "ClipBertClipScoresOutput",
    "ClipBertForPreTraining",
    "ClipBertForPreTrainingOutput",
    "ClipBertForVideoQuestionAnswering",
    "ClipBertForVideoQuestionAnsweringOutput",
    "ClipBertForVideoTextRetrieval",
    "ClipBertForVideoTextRetrievalOutput",
    "ClipBertGridEncoder",
    "ClipBertModel",
    "ClipBertModelOutput",
    "ClipBertPreTrainedModel",
    "ClipBertVisualEmbeddings",
    "aggregate_clip_scores",
    "split_clips",
    "sample_feature_pixels",
]
