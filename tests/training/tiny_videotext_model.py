"""A tiny dual-encoder video-text model for the training-spine tests (not part of the package).

Video tower: linear patch embedding, mean over the visible patches of all frames. Text tower: token embeddings
averaged over the attention mask. It follows the model conventions of ``docs/design.md``: ``loss`` is the weighted
sum, each unweighted term is returned as ``loss_<name>``, and ``accepts_loss_kwargs = False``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from hf_videolang.losses.contrastive import VideoTextContrastiveLoss


class TinyVideoTextConfig(PretrainedConfig):
    model_type = "hfvl_test_tiny_videotext"

    def __init__(
        self,
        vocab_size: int = 80,
        num_channels: int = 3,
        patch_size: int = 8,
        hidden_size: int = 16,
        vtc_weight: float = 1.0,
        aux_weight: float = 0.5,
        initializer_range: float = 0.2,
        **kwargs,
    ) -> None:
        self.vocab_size = vocab_size
        self.num_channels = num_channels
        self.patch_size = patch_size
        self.hidden_size = hidden_size
        self.vtc_weight = vtc_weight
        self.aux_weight = aux_weight
        self.initializer_range = initializer_range
        super().__init__(**kwargs)


@dataclass
class TinyVideoTextOutput(ModelOutput):
    """``loss`` = ``vtc_weight * loss_vtc + aux_weight * loss_aux``; embeddings ``(B, D)`` L2-normalized."""

    loss: torch.Tensor | None = None
    loss_vtc: torch.Tensor | None = None
    loss_aux: torch.Tensor | None = None
    video_embeds: torch.Tensor | None = None
    text_embeds: torch.Tensor | None = None


class TinyVideoTextModel(PreTrainedModel):
    config_class = TinyVideoTextConfig
    base_model_prefix = "tiny"
    main_input_name = "pixel_values"
    accepts_loss_kwargs = False

    def __init__(self, config: TinyVideoTextConfig) -> None:
        super().__init__(config)
        patch_dim = config.num_channels * config.patch_size**2
        self.patch_embed = nn.Linear(patch_dim, config.hidden_size)
        self.video_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.token_embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.text_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.vtc = VideoTextContrastiveLoss()
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, TinyVideoTextModel):
            init.constant_(module.logit_scale, math.log(1 / 0.07))

    def _patches(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, T * h * w, C * p * p), frame-major like ``bool_masked_pos``."""
        b, t, c, h, w = pixel_values.shape
        p = self.config.patch_size
        x = pixel_values.reshape(b, t, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)
        return x.reshape(b, t * (h // p) * (w // p), c * p * p)

    def get_video_features(self, pixel_values: torch.Tensor, bool_masked_pos: torch.Tensor | None = None):
        tokens = self.patch_embed(self._patches(pixel_values))  # (B, N, D)
        visible = torch.ones(tokens.shape[:2], device=tokens.device)
        if bool_masked_pos is not None:
            visible = (~bool_masked_pos).float()
        pooled = (tokens * visible.unsqueeze(-1)).sum(1) / visible.sum(1, keepdim=True)
        return F.normalize(self.video_proj(pooled), dim=-1)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        mask = attention_mask.float().unsqueeze(-1)
        pooled = (self.token_embed(input_ids) * mask).sum(1) / mask.sum(1)
        return F.normalize(self.text_proj(pooled), dim=-1)

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        video_ids: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        return_loss: bool = True,
    ) -> TinyVideoTextOutput:
        video_embeds = self.get_video_features(pixel_values, bool_masked_pos)
        text_embeds = self.get_text_features(input_ids, attention_mask)
        if not return_loss:
            return TinyVideoTextOutput(video_embeds=video_embeds, text_embeds=text_embeds)
        loss_vtc = self.vtc(video_embeds, text_embeds, self.logit_scale, video_ids=video_ids)
        # A per-sample term (mean over the batch): its gradient does not depend on how the batch is split.
        loss_aux = (1 - (video_embeds * text_embeds).sum(-1)).mean()
        loss = self.config.vtc_weight * loss_vtc + self.config.aux_weight * loss_aux
        return TinyVideoTextOutput(loss, loss_vtc, loss_aux, video_embeds, text_embeds)
