"""A tiny video QA model for the pipeline tests (not part of the package).

It follows the QA model contract of ``hf_videolang.pipelines.video_question_answering``: ``config.answer_list``,
``forward(pixel_values, input_ids, attention_mask) -> logits (B, num_answers)`` and
``score_candidates(pixel_values, input_ids (B, K, L), attention_mask (B, K, L)) -> (B, K)``. The video feature is a
2x2 grid of average-pooled pixels, averaged over frames; the text feature is the mean token embedding. Everything is
deterministic: no dropout, no randomness in the forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import SequenceClassifierOutput

DEFAULT_ANSWERS = ["red", "green", "blue", "left", "right", "up", "down"]


class TinyVqaConfig(PreTrainedConfig):
    model_type = "hfvl_test_tiny_vqa"

    def __init__(
        self,
        answer_list: list[str] | None = None,
        vocab_size: int = 128,
        num_channels: int = 3,
        hidden_size: int = 8,
        num_frames: int = 4,
        initializer_range: float = 0.5,
        **kwargs,
    ) -> None:
        self.answer_list = list(DEFAULT_ANSWERS if answer_list is None else answer_list)
        self.vocab_size = vocab_size
        self.num_channels = num_channels
        self.hidden_size = hidden_size
        self.num_frames = num_frames
        # Large on purpose: the logits then differ enough for the ranking to be meaningful.
        self.initializer_range = initializer_range
        super().__init__(**kwargs)


class TinyVqaModel(PreTrainedModel):
    config_class = TinyVqaConfig
    base_model_prefix = "tiny_vqa"
    main_input_name = "pixel_values"

    def __init__(self, config: TinyVqaConfig) -> None:
        super().__init__(config)
        self.video_proj = nn.Linear(config.num_channels * 4, config.hidden_size)
        self.token_embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.answer_head = nn.Linear(config.hidden_size, len(config.answer_list))
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            init.normal_(module.weight, mean=0.0, std=self.config.initializer_range)
        if isinstance(module, nn.Linear):
            init.zeros_(module.bias)

    def video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, H, W)`` -> ``(B, D)``: 2x2 average-pooled frames, averaged over time, projected."""
        b, t, c, h, w = pixel_values.shape
        pooled = F.adaptive_avg_pool2d(pixel_values.reshape(b * t, c, h, w), 2).reshape(b, t, c * 4)
        return self.video_proj(pooled.mean(dim=1))

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``(..., L)`` -> ``(..., D)``: token embeddings averaged over the attention mask."""
        mask = attention_mask.unsqueeze(-1).to(self.token_embed.weight.dtype)
        return (self.token_embed(input_ids) * mask).sum(-2) / mask.sum(-2).clamp(min=1.0)

    def forward(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> SequenceClassifierOutput:
        fused = torch.tanh(self.video_features(pixel_values) + self.text_features(input_ids, attention_mask))
        return SequenceClassifierOutput(logits=self.answer_head(fused))

    def score_candidates(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Dot product of the video feature ``(B, D)`` with each candidate's text feature ``(B, K, D)``: ``(B, K)``."""
        video = self.video_features(pixel_values)
        text = self.text_features(input_ids, attention_mask)
        return torch.einsum("bd,bkd->bk", video, text)


def register_tiny_vqa() -> None:
    """Make ``AutoConfig`` / ``AutoModel`` know ``hfvl_test_tiny_vqa`` (idempotent)."""
    AutoConfig.register(TinyVqaConfig.model_type, TinyVqaConfig, exist_ok=True)
    AutoModel.register(TinyVqaConfig, TinyVqaModel, exist_ok=True)
