"""A CLIP-style image-text model trained on video frames: the teacher that UMT distils from when no public CLIP
checkpoint can be downloaded (the offline demo), and a frame-level retrieval baseline.

It *is* transformers' :class:`~transformers.VisionTextDualEncoderModel` (any vision tower + any text tower + two
projections + a learnable temperature), with three changes:

- inputs are videos ``(B, T, C, H, W)``; each frame is embedded on its own and the frame embeddings are mean-pooled
  (the CLIP4Clip "mean pooling" baseline); a 1-frame video is an image;
- the loss is the package's shared :class:`~hf_videolang.losses.VideoTextContrastiveLoss` (all-gathered negatives,
  duplicate-aware through ``video_ids``), reported as ``loss_vtc`` so :class:`VideoTextTrainer` logs it;
- :meth:`to_clip_vision_model` exports the vision tower and its projection as a
  :class:`~transformers.CLIPVisionModelWithProjection`, the class UMT's teacher loads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, VisionTextDualEncoderModel
from transformers.utils import ModelOutput

from ..losses import VideoTextContrastiveLoss


@dataclass
class ClipTeacherOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`): total loss (equal to `loss_vtc`).
        loss_vtc (`torch.FloatTensor` of shape `()`): symmetric InfoNCE between video and text embeddings.
        logits_per_video (`torch.FloatTensor` of shape `(B, B)`): scaled cosine similarities, videos x texts.
        video_embeds (`torch.FloatTensor` of shape `(B, D)`): L2-normalized mean-pooled frame embeddings.
        text_embeds (`torch.FloatTensor` of shape `(B, D)`): L2-normalized text embeddings.
    """

    loss: torch.FloatTensor | None = None
    loss_vtc: torch.FloatTensor | None = None
    logits_per_video: torch.FloatTensor | None = None
    video_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None


class ClipTeacherForImageTextPreTraining(VisionTextDualEncoderModel):
    """CLIP-style dual encoder trained with VTC on (frames, caption) pairs. See the module docstring."""

    accepts_loss_kwargs = False

    def __init__(self, config=None, vision_model=None, text_model=None):
        super().__init__(config=config, vision_model=vision_model, text_model=text_model)
        self.vtc_loss = VideoTextContrastiveLoss()

    def get_video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, H, W)`` (or ``(B, C, H, W)``) -> L2-normalized ``(B, D)``: mean of per-frame embeddings."""
        if pixel_values.dim() == 4:
            pixel_values = pixel_values.unsqueeze(1)
        batch, frames = pixel_values.shape[:2]
        pooled = self.vision_model(pixel_values=pixel_values.flatten(0, 1)).pooler_output
        frame_embeds = self.visual_projection(pooled).view(batch, frames, -1)
        frame_embeds = torch.nn.functional.normalize(frame_embeds, dim=-1)
        return torch.nn.functional.normalize(frame_embeds.mean(dim=1), dim=-1)

    def get_text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids ``(B, L)`` -> L2-normalized ``(B, D)`` from the text tower's pooled output."""
        pooled = self.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return torch.nn.functional.normalize(self.text_projection(pooled), dim=-1)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        video_ids: torch.Tensor | None = None,
        return_loss: bool = True,
        **kwargs,
    ) -> ClipTeacherOutput:
        video_embeds = self.get_video_features(pixel_values)
        text_embeds = self.get_text_features(input_ids, attention_mask)
        scale = self.logit_scale.exp().clamp(max=100.0)
        loss = self.vtc_loss(video_embeds, text_embeds, self.logit_scale, video_ids=video_ids) if return_loss else None
        return ClipTeacherOutput(
            loss=loss,
            loss_vtc=loss,
            logits_per_video=scale * video_embeds @ text_embeds.t(),
            video_embeds=video_embeds,
            text_embeds=text_embeds,
        )

    def to_clip_vision_model(self) -> CLIPVisionModelWithProjection:
        """Export the vision tower + its projection as a ``CLIPVisionModelWithProjection`` (UMT's teacher class).

        Only CLIP vision towers can be exported: their weights map one to one.
        """
        vision_config = self.config.vision_config
        if not isinstance(vision_config, CLIPVisionConfig):
            raise TypeError(f"only a CLIP vision tower can be exported, this one is {type(vision_config).__name__}")
        vision_config = CLIPVisionConfig(**{**vision_config.to_dict(), "projection_dim": self.config.projection_dim})
        clip = CLIPVisionModelWithProjection(vision_config)
        # transformers 5's CLIPVisionModel holds the embeddings/encoder directly; its *WithProjection sibling nests
        # them under `vision_model.`.
        state = {f"vision_model.{k}": v for k, v in self.vision_model.state_dict().items()}
        state["visual_projection.weight"] = self.visual_projection.weight
        clip.load_state_dict(state, strict=True)
        return clip.eval()
