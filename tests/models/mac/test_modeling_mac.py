"""Tests of the MAC configs and models on tiny configurations (CPU, a few seconds)."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModel, AutoModelForPreTraining, BertConfig, DistilBertConfig

from hf_videolang.hub.remote_code import save_with_remote_code
from hf_videolang.models.mac import (
    DividedSpaceTimeAttention,
    MacConfig,
    MacForVideoTextRetrieval,
    MacModel,
    MacVisionConfig,
    MacVisionModel,
    resize_temporal_embeddings,
)
from hf_videolang.video.masking import RandomMasker
from models.test_modeling_common import ModelTesterMixin

BATCH, FRAMES, SIZE, PATCH = 3, 2, 32, 8
GRID = SIZE // PATCH  # 4x4 patches per frame
PER_FRAME = GRID * GRID
TEXT_LEN, VOCAB = 7, 100


class MacModelTester:
    """Tiny MAC: video encoder of width 32, 2 blocks, 2 frames of 32 px, patch 8; 1-layer DistilBERT of width 32."""

    @staticmethod
    def config(**overrides) -> MacConfig:
        vision = dict(image_size=SIZE, patch_size=PATCH, num_frames=FRAMES, hidden_size=32, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=64, drop_path_rate=0.0)  # fmt: skip
        text = dict(vocab_size=VOCAB, dim=32, n_layers=1, n_heads=4, hidden_dim=64, max_position_embeddings=32,
                    dropout=0.0, attention_dropout=0.0)  # fmt: skip
        kwargs = dict(vision_config=vision, text_config=text, projection_dim=16)
        kwargs.update(overrides)
        return MacConfig(**kwargs)

    @staticmethod
    def inputs(seed: int = 0, frames: int = FRAMES) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        input_ids = torch.randint(5, VOCAB, (BATCH, TEXT_LEN), generator=gen)
        input_ids[:, 0] = 2  # [CLS]
        attention_mask = torch.ones_like(input_ids)
        attention_mask[0, 5:] = 0
        return dict(
            pixel_values=torch.randn(BATCH, frames, 3, SIZE, SIZE, generator=gen),
            input_ids=input_ids,
            attention_mask=attention_mask,
        )

    @staticmethod
    def mask(ratio: float = 0.6, seed: int = 0, frames: int = FRAMES) -> torch.Tensor:
        return RandomMasker(frames, GRID, ratio)(BATCH, generator=torch.Generator().manual_seed(seed))


class TestMacModel(ModelTesterMixin):
    """The shared checks (gradients, save/load, SDPA, checkpointing, outputs, remote code, compile) on every MAC
    class, on masked videos and whole-word-masked captions as the collator gives them in pre-training."""

    all_model_classes = (MacVisionModel, MacModel, MacForVideoTextRetrieval)

    def prepare_config_and_inputs(self, model_class):
        config = MacModelTester.config(learnable_temperature=True)
        inputs = MacModelTester.inputs()
        inputs["bool_masked_pos"] = MacModelTester.mask()
        if model_class is MacVisionModel:
            return config.vision_config, dict(pixel_values=inputs["pixel_values"],
                                              bool_masked_pos=inputs["bool_masked_pos"])  # fmt: skip
        if model_class is MacForVideoTextRetrieval:
            inputs["mlm_input_ids"] = inputs["input_ids"].masked_fill(torch.arange(TEXT_LEN) % 3 == 2, 4)
            inputs["video_ids"] = torch.arange(BATCH)
        return config, inputs

    def loss_weights(self, config, model_class):
        return {"loss_vtc": 1.0} if model_class is MacForVideoTextRetrieval else None


def _model(seed: int = 0, **overrides) -> MacForVideoTextRetrieval:
    torch.manual_seed(seed)
    return MacForVideoTextRetrieval(MacModelTester.config(**overrides)).eval()


def _patch_pixels(frame: int, index: int) -> tuple[int, slice, slice, slice]:
    """Index of patch `index` (row-major) of `frame` in a `(T, C, H, W)` video."""
    row, col = divmod(index, GRID)
    return frame, slice(None), slice(row * PATCH, (row + 1) * PATCH), slice(col * PATCH, (col + 1) * PATCH)


# ---------------------------------------------------------------------------------------------------- configs


def test_preset_follows_the_paper():
    config = MacConfig.from_preset("mac-b16")
    vision = config.vision_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (768, 12, 12)
    assert (vision.patch_size, vision.image_size, vision.num_frames) == (16, 224, 4)
    assert isinstance(config.text_config, DistilBertConfig) and config.text_config.hidden_size == 768
    assert config.projection_dim == 256
    assert (config.video_mask_ratio, config.text_mask_ratio, config.max_text_length) == (0.6, 0.15, 128)
    assert config.text_pooling == "cls"
    assert math.exp(-config.logit_scale_init_value) == pytest.approx(0.05)


def test_config_round_trip_and_bert_text_config(tmp_path):
    config = MacModelTester.config(text_pooling="mean", video_mask_ratio=0.5)
    config.save_pretrained(tmp_path)
    loaded = MacConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert isinstance(loaded.vision_config, MacVisionConfig) and isinstance(loaded.text_config, DistilBertConfig)
    bert = MacModelTester.config(text_config=dict(model_type="bert", vocab_size=VOCAB, hidden_size=32,
                                                  num_hidden_layers=1, num_attention_heads=4, intermediate_size=64))
    assert isinstance(bert.text_config, BertConfig)
    model = MacModel(bert)
    assert type(model.text_model).__name__ == "BertModel" and model.text_model.pooler is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(video_mask_ratio=1.0), "video_mask_ratio"),
        (dict(text_mask_ratio=-0.1), "text_mask_ratio"),
        (dict(text_pooling="max"), "text_pooling"),
        (dict(projection_dim=0), "projection_dim"),
        (dict(vision_config=dict(image_size=30, patch_size=8)), "not divisible"),
    ],
)
def test_config_rejects_bad_values(overrides, message):
    with pytest.raises(ValueError, match=message):
        MacModelTester.config(**overrides)


# ---------------------------------------------------------------------------------------------------- video encoder


def test_masked_forward_keeps_the_same_count_per_frame():
    model = _model()
    inputs = MacModelTester.inputs()
    mask = MacModelTester.mask()
    visible = PER_FRAME - round(0.6 * PER_FRAME)
    with torch.no_grad():
        full = model.mac.vision_model(inputs["pixel_values"])
        masked = model.mac.vision_model(inputs["pixel_values"], bool_masked_pos=mask)
    assert full.last_hidden_state.shape == (BATCH, 1 + FRAMES * PER_FRAME, 32)
    assert masked.last_hidden_state.shape == (BATCH, 1 + FRAMES * visible, 32)
    assert torch.equal(masked.pooler_output, masked.last_hidden_state[:, 0])
    assert not torch.allclose(full.pooler_output, masked.pooler_output, atol=1e-4)


def test_masked_patches_are_physically_removed():
    """Changing the pixels of masked patches changes nothing; changing a visible patch changes the output."""
    model = _model()
    pixels = MacModelTester.inputs()["pixel_values"]
    mask = MacModelTester.mask()
    grid = mask.view(BATCH, FRAMES, PER_FRAME)
    masked_idx = int(grid[0, 1].nonzero()[0])
    visible_idx = int((~grid[0, 1]).nonzero()[0])
    with torch.no_grad():
        reference = model.mac.vision_model(pixels, bool_masked_pos=mask).last_hidden_state
        changed = pixels.clone()
        changed[(0, *_patch_pixels(1, masked_idx))] += 5.0
        same = model.mac.vision_model(changed, bool_masked_pos=mask).last_hidden_state
        changed = pixels.clone()
        changed[(0, *_patch_pixels(1, visible_idx))] += 5.0
        different = model.mac.vision_model(changed, bool_masked_pos=mask).last_hidden_state
    assert torch.equal(reference, same)
    assert not torch.allclose(reference[0], different[0], atol=1e-4)
    assert torch.equal(reference[1:], different[1:])  # samples do not interact


def test_visible_tokens_keep_their_positions():
    """The masked embedding is the unmasked one with the masked rows removed: every kept token carries the
    spatial and temporal position of its own patch (positions are added before dropping, MAC §3.1)."""
    model = _model()
    pixels = MacModelTester.inputs()["pixel_values"]
    mask = MacModelTester.mask()
    embeddings = model.mac.vision_model.embeddings
    with torch.no_grad():
        full = embeddings(pixels)  # (B, 1 + T * N, D)
        masked = embeddings(pixels, mask)
    expected = full[:, 1:][~mask].view(BATCH, -1, 32)
    assert torch.equal(masked[:, 1:], expected)
    assert torch.equal(masked[:, 0], full[:, 0])


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (torch.zeros(BATCH, FRAMES * PER_FRAME, dtype=torch.long), "bool tensor"),
        (torch.zeros(BATCH, FRAMES * PER_FRAME + 1, dtype=torch.bool), "shape"),
    ],
)
def test_mask_shape_and_dtype_are_checked(mask, message):
    with pytest.raises(ValueError, match=message):
        _model().mac.vision_model(MacModelTester.inputs()["pixel_values"], bool_masked_pos=mask)


def test_unequal_counts_per_frame_are_rejected():
    mask = MacModelTester.mask()
    frame0 = mask.view(BATCH, FRAMES, PER_FRAME)[0, 0]
    frame0[int((~frame0).nonzero()[0])] = True  # one more masked patch in frame 0 of sample 0
    with pytest.raises(ValueError, match="same number in every frame"):
        _model().mac.vision_model(MacModelTester.inputs()["pixel_values"], bool_masked_pos=mask)


def test_images_and_other_frame_counts():
    model = _model()
    with torch.no_grad():
        image = model.mac.vision_model(torch.randn(2, 1, 3, SIZE, SIZE))
        long_clip = model.mac.vision_model(torch.randn(2, 5, 3, SIZE, SIZE))
        image_features = model.get_video_features(torch.randn(2, 1, 3, SIZE, SIZE))
    assert image.last_hidden_state.shape == (2, 1 + PER_FRAME, 32)
    assert long_clip.last_hidden_state.shape == (2, 1 + 5 * PER_FRAME, 32)
    assert torch.allclose(image_features.norm(dim=-1), torch.ones(2))
    table = torch.tensor([[0.0, 10.0], [4.0, 2.0]])
    assert torch.equal(resize_temporal_embeddings(table, 1), table[:1])
    stretched = resize_temporal_embeddings(table, 3)
    assert torch.allclose(stretched, torch.tensor([[0.0, 10.0], [2.0, 6.0], [4.0, 2.0]]))


# ---------------------------------------------------------------------------------------------------- attention


def _probe(axis: str, frames: int = 3, per_frame: int = 4, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Perturb patch token k=1 of frame 0 and return |change| of every token `(1 + T * K,)`."""
    torch.manual_seed(0)
    attention = DividedSpaceTimeAttention(dim, num_heads=2, attn_implementation="eager").eval()
    tokens = torch.randn(1, 1 + frames * per_frame, dim)
    changed = tokens.clone()
    changed[0, 1 + 1] += 3.0  # frame 0, index 1
    with torch.no_grad():
        before, _ = attention(tokens, frames, axis)
        after, _ = attention(changed, frames, axis)
    return (after - before).abs().amax(dim=-1)[0], torch.arange(1 + frames * per_frame)


def test_temporal_attention_groups_tokens_of_the_same_index_across_frames():
    change, _ = _probe("time")
    frames, per_frame = 3, 4
    grid = change[1:].view(frames, per_frame)
    assert change[0] > 1e-4  # [CLS] attends to every token
    assert (grid[1:, 1] > 1e-4).all()  # token k=1 of frames 1 and 2
    others = torch.ones(frames, per_frame, dtype=torch.bool)
    others[:, 1] = False
    assert torch.equal(grid[others], torch.zeros(int(others.sum())))


def test_spatial_attention_groups_tokens_of_one_frame():
    change, _ = _probe("space")
    grid = change[1:].view(3, 4)
    assert change[0] > 1e-4
    assert (grid[0] > 1e-4).all()
    assert torch.equal(grid[1:], torch.zeros(2, 4))


def test_attention_maps_include_the_cls_key():
    model = _model()
    mask = MacModelTester.mask()
    visible = PER_FRAME - round(0.6 * PER_FRAME)
    with torch.no_grad():
        out = model.mac.vision_model(MacModelTester.inputs()["pixel_values"], bool_masked_pos=mask,
                                     output_attentions=True)  # fmt: skip
    assert len(out.attentions) == len(out.temporal_attentions) == 2  # one of each per block
    temporal, spatial = out.temporal_attentions[0], out.attentions[0]
    assert temporal.shape == (BATCH * visible, 4, FRAMES, 1 + FRAMES)
    assert spatial.shape == (BATCH * FRAMES, 4, visible, 1 + visible)
    assert torch.allclose(temporal.sum(-1), torch.ones(()))


# ---------------------------------------------------------------------------------------------------- loss


def test_infonce_matches_a_hand_computed_value():
    """MAC Eq. 2-3 on two pairs: with cosines c_ii = 1 and c_ij = 0 at scale s, each row's loss is
    log(1 + exp(-s)), and the two directions average to the same value."""
    model = _model()
    video = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[2.0, 0.0], [0.0, 0.5]])  # normalized inside
    scale = torch.tensor(math.log(3.0))
    loss = model.vtc_loss(video, text, scale)
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-3.0)), rel=1e-6)


def test_model_loss_is_the_symmetric_infonce_of_its_embeddings():
    model = _model()
    inputs = MacModelTester.inputs()
    with torch.no_grad():
        out = model(**inputs, bool_masked_pos=MacModelTester.mask())
    logits = math.exp(model.config.logit_scale_init_value) * out.video_embeds @ out.text_embeds.T
    expected = 0.0
    for i in range(BATCH):
        expected += -torch.log_softmax(logits[i], 0)[i] - torch.log_softmax(logits[:, i], 0)[i]
    assert out.loss.item() == pytest.approx(expected.item() / (2 * BATCH), rel=1e-5)
    assert torch.equal(out.loss, out.loss_vtc)
    assert torch.allclose(out.logits_per_video, logits, atol=1e-5)


def test_masked_text_feeds_the_text_encoder():
    model = _model()
    inputs = MacModelTester.inputs()
    masked_ids = inputs["input_ids"].clone()
    masked_ids[:, 2:4] = 4  # [MASK]
    with torch.no_grad():
        out = model(**inputs, mlm_input_ids=masked_ids, mlm_labels=torch.full_like(masked_ids, -100))
        expected = model.get_text_features(masked_ids, inputs["attention_mask"])
        clean = model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
    assert torch.equal(out.text_embeds, expected)
    assert not torch.allclose(out.text_embeds, clean, atol=1e-4)


def test_mean_text_pooling_ignores_padding():
    model = _model(text_pooling="mean")
    states = torch.tensor([[[1.0], [3.0], [100.0]]])
    pooled = model.mac.pool_text(states, torch.tensor([[1, 1, 0]]))
    assert pooled.item() == pytest.approx(2.0)


def test_temperature_is_fixed_by_default():
    assert not _model().mac.logit_scale.requires_grad  # Frozen-in-Time; the mixin's gradient check trains it
    assert _model(learnable_temperature=True).mac.logit_scale.requires_grad


# ---------------------------------------------------------------------------------------------------- saving


def test_auto_classes_load_a_saved_retrieval_model(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path)
    original = model.state_dict()
    auto = AutoModel.from_pretrained(tmp_path)
    assert type(auto) is MacModel
    assert all(torch.equal(v, original[f"mac.{k}"]) for k, v in auto.state_dict().items())
    assert type(AutoModelForPreTraining.from_pretrained(tmp_path)) is MacForVideoTextRetrieval


def test_text_encoder_loads_pretrained_weights():
    model = _model()
    torch.manual_seed(1)
    source = AutoModel.from_config(model.config.text_config)
    model.mac.load_text_encoder(source)
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in model.mac.text_model.state_dict().items())


def test_remote_code_bundle_carries_the_shared_layers(tmp_path):
    """The fresh-process load itself is the mixin's check; here, which files the bundle holds."""
    names = {path.name for path in save_with_remote_code(MacModel(MacModelTester.config()), tmp_path)}
    assert {"configuration_mac.py", "modeling_mac.py", "hfvl_layers_attention.py"} <= names
    assert not [name for name in names if "evaluation" in name or "training" in name], names
