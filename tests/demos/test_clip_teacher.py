"""The CLIP-style frame teacher: VTC loss, mean-pooled video embeddings, export to CLIPVisionModelWithProjection."""

from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, BertModel, CLIPVisionConfig, CLIPVisionModel, VisionTextDualEncoderConfig

from hf_videolang.demos.clip_teacher import ClipTeacherForImageTextPreTraining
from hf_videolang.losses import VideoTextContrastiveLoss


@pytest.fixture()
def teacher() -> ClipTeacherForImageTextPreTraining:
    torch.manual_seed(0)
    vision = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                              num_attention_heads=2, image_size=32, patch_size=8))
    text = BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=64, max_position_embeddings=16))
    config = VisionTextDualEncoderConfig.from_vision_text_configs(vision.config, text.config, projection_dim=16)
    return ClipTeacherForImageTextPreTraining(config=config, vision_model=vision, text_model=text).eval()


def _inputs(batch: int = 3, frames: int = 2):
    generator = torch.Generator().manual_seed(1)
    pixel_values = torch.randn(batch, frames, 3, 32, 32, generator=generator)
    input_ids = torch.randint(5, 50, (batch, 6), generator=generator)
    return pixel_values, input_ids, torch.ones_like(input_ids)


def test_loss_is_the_shared_vtc_on_normalized_embeddings(teacher):
    pixel_values, input_ids, attention_mask = _inputs()
    out = teacher(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)
    assert out.video_embeds.shape == out.text_embeds.shape == (3, 16)
    torch.testing.assert_close(out.video_embeds.norm(dim=-1), torch.ones(3))
    expected = VideoTextContrastiveLoss()(out.video_embeds, out.text_embeds, teacher.logit_scale)
    torch.testing.assert_close(out.loss, expected)
    assert out.loss_vtc is out.loss
    torch.testing.assert_close(out.logits_per_video, teacher.logit_scale.exp() * out.video_embeds @ out.text_embeds.T)


def test_video_embedding_is_the_mean_of_frame_embeddings(teacher):
    pixel_values, _, _ = _inputs(batch=2, frames=3)
    with torch.no_grad():
        video = teacher.get_video_features(pixel_values)
        frames = [teacher.get_video_features(pixel_values[:, t]) for t in range(3)]  # (B, C, H, W) = an image
    expected = torch.nn.functional.normalize(torch.stack(frames, dim=1).mean(dim=1), dim=-1)
    torch.testing.assert_close(video, expected)


def test_training_step_lowers_the_loss(teacher):
    teacher.train()
    pixel_values, input_ids, attention_mask = _inputs(batch=4, frames=1)
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        loss = teacher(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_exported_clip_vision_model_gives_the_same_image_embeddings(teacher):
    pixel_values, _, _ = _inputs(batch=2, frames=1)
    clip = teacher.to_clip_vision_model()
    with torch.no_grad():
        ours = teacher.get_video_features(pixel_values)
        theirs = torch.nn.functional.normalize(clip(pixel_values=pixel_values[:, 0]).image_embeds, dim=-1)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_save_and_load_round_trip(teacher, tmp_path):
    pixel_values, input_ids, attention_mask = _inputs()
    teacher.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    reloaded = ClipTeacherForImageTextPreTraining.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        a = teacher(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)
        b = reloaded(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)
    assert torch.equal(a.video_embeds, b.video_embeds)
    assert torch.equal(a.text_embeds, b.text_embeds)
