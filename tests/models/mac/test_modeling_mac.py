"""Tests of the MAC configs and models on tiny configurations (CPU, a few seconds)."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModel, AutoModelForPreTraining, BertConfig, DistilBertConfig, ViTConfig, ViTModel

from hf_videolang.hub.remote_code import save_with_remote_code
from hf_videolang.models.mac import (
    DividedSpaceTimeAttention,
    MacConfig,
    MacForVideoTextRetrieval,
    MacModel,
    MacSpaceTimeBlock,
    MacVisionConfig,
    MacVisionModel,
    convert_vit_state_dict,
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
        # A random temporal attention: with the default zero init (Frozen-in-Time) its output weight and norm get no
        # gradient at step 0, which would hide a temporal branch cut off from the loss.
        config = MacModelTester.config(learnable_temperature=True)
        config.vision_config.temporal_attention_init = "random"
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


# ---------------------------------------------------------------------------------------------------- block order


def _reference_divided_attention(x, attention, num_heads: int, num_frames: int, axis: str) -> torch.Tensor:
    """Frozen-in-Time's ``VarAttention.forward`` in plain torch, reading the weights of a MAC attention.

    Adapted from m-bain/frozen-in-time@e1f13e1 ``model/video_transformer.py``: heads are folded into the batch,
    the [CLS] query attends to every token, each patch query to the [CLS] key and to its group (``'b (f n) d ->
    (b n) f d'`` in time, ``'(b f) n d'`` in space).
    """
    batch, tokens, dim = x.shape
    head_dim = dim // num_heads
    q, k, v = torch.nn.functional.linear(x, attention.qkv.weight, attention.qkv.bias).chunk(3, dim=-1)
    q, k, v = (t.view(batch, tokens, num_heads, head_dim).transpose(1, 2).reshape(batch * num_heads, tokens, head_dim)
               for t in (q, k, v))  # fmt: skip
    q = q * head_dim**-0.5

    def attend(query, key, value):
        return torch.softmax(query @ key.transpose(1, 2), dim=-1) @ value

    cls_out = attend(q[:, :1], k, v)
    per_frame = (tokens - 1) // num_frames

    def group(t):  # (bh, f * n, d) -> groups
        grid = t.reshape(batch * num_heads, num_frames, per_frame, head_dim)
        if axis == "time":
            return grid.transpose(1, 2).reshape(-1, num_frames, head_dim)
        return grid.reshape(-1, per_frame, head_dim)

    def ungroup(t):
        if axis == "time":
            return t.reshape(batch * num_heads, per_frame, num_frames, head_dim).transpose(1, 2).reshape(
                batch * num_heads, -1, head_dim)  # fmt: skip
        return t.reshape(batch * num_heads, -1, head_dim)

    qg, kg, vg = group(q[:, 1:]), group(k[:, 1:]), group(v[:, 1:])
    repeat = qg.shape[0] // k.shape[0]
    kg = torch.cat([k[:, :1].repeat_interleave(repeat, 0), kg], dim=1)
    vg = torch.cat([v[:, :1].repeat_interleave(repeat, 0), vg], dim=1)
    out = torch.cat([cls_out, ungroup(attend(qg, kg, vg))], dim=1)
    out = out.view(batch, num_heads, tokens, head_dim).transpose(1, 2).reshape(batch, tokens, dim)
    return attention.proj(out)


def _reference_block(x, block, num_heads: int, num_frames: int, layout: str = "frozen-in-time") -> torch.Tensor:
    """Frozen-in-Time's ``SpaceTimeBlock.forward`` (``layout="frozen-in-time"``): temporal attention on
    ``norm3(x)``, spatial attention on ``norm1(x + temporal)``, and only the spatial output joins the residual
    stream. Two wrong variants exist to show the comparison can tell them apart: ``"space-first"`` (the order
    swapped) and ``"timesformer"`` (TimeSformer's layout, where the spatial residual adds to ``x + temporal``)."""
    def temporal(h):
        return _reference_divided_attention(block.temporal_norm(h), block.temporal_attn, num_heads, num_frames, "time")

    def spatial(h):
        return _reference_divided_attention(block.norm1(h), block.attn, num_heads, num_frames, "space")

    if layout == "frozen-in-time":
        x = x + spatial(x + temporal(x))
    elif layout == "timesformer":
        after_time = x + temporal(x)
        x = after_time + spatial(after_time)
    elif layout == "space-first":
        x = x + temporal(x + spatial(x))
    return x + block.mlp(block.norm2(x))


def _random_block(seed: int = 0):
    config = MacModelTester.config().vision_config
    torch.manual_seed(seed)
    block = MacSpaceTimeBlock(config, drop_path=0.0).eval()
    with torch.no_grad():  # every weight random (norm gains around 1), so that order and layout show in the output
        for name, parameter in block.named_parameters():
            is_gain = "norm" in name and name.endswith("weight")
            parameter.copy_(torch.randn_like(parameter) * 0.3 + (1.0 if is_gain else 0.0))
    return block, config


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_block_equals_frozen_in_time_space_time_block(implementation):
    """MAC §3.2 "first ... temporal, then ... spatial", with Frozen-in-Time's residual layout: MAC's block equals an
    independent port of ``SpaceTimeBlock`` with the same weights; the swapped order and TimeSformer's layout do
    not, by far, so a change of either fails here."""
    block, config = _random_block()
    frames, per_frame = 3, 4
    x = torch.randn(2, 1 + frames * per_frame, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, _ = block(x, frames, attn_implementation=implementation)
        reference = _reference_block(x, block, config.num_attention_heads, frames)
        swapped = _reference_block(x, block, config.num_attention_heads, frames, layout="space-first")
        timesformer = _reference_block(x, block, config.num_attention_heads, frames, layout="timesformer")
    assert torch.allclose(ours, reference, atol=1e-5), (ours - reference).abs().max()
    assert (ours - swapped).abs().max() > 1e-2
    assert (ours - timesformer).abs().max() > 1e-2


# ---------------------------------------------------------------------------------------------------- initialization


def test_initialization_follows_frozen_in_time():
    """Zero temporal positions, a temporal attention that outputs zero (qkv 0, output weight 1: FiT's
    ``time_init="zeros"``), no drop path by default; a 1-frame forward then ignores the temporal branch."""
    assert MacVisionConfig().drop_path_rate == 0.0 and MacVisionConfig().temporal_attention_init == "zeros"
    model = MacModel(MacModelTester.config()).vision_model.eval()
    assert torch.equal(model.embeddings.temporal_embeddings, torch.zeros_like(model.embeddings.temporal_embeddings))
    for block in model.blocks:
        attention = block.temporal_attn
        assert not attention.qkv.weight.any() and not attention.qkv.bias.any() and not attention.proj.bias.any()
        assert torch.equal(attention.proj.weight, torch.ones_like(attention.proj.weight))
        assert block.attn.qkv.weight.std() > 0.01  # the spatial attention stays random
        x = torch.randn(2, 1 + FRAMES * PER_FRAME, 32)
        with torch.no_grad():
            assert torch.equal(attention(block.temporal_norm(x), FRAMES, "time")[0], torch.zeros_like(x))
    random = MacModel(MacModelTester.config(vision_config=dict(
        MacModelTester.config().vision_config.to_dict(), temporal_attention_init="random"))).vision_model
    assert random.blocks[0].temporal_attn.qkv.weight.std() > 0.01


def test_config_rejects_an_unknown_temporal_init():
    with pytest.raises(ValueError, match="temporal_attention_init"):
        MacVisionConfig(temporal_attention_init="ones")


# ---------------------------------------------------------------------------------------------------- ViT init


def _random_vit(seed: int = 0):
    torch.manual_seed(seed)
    config = ViTConfig(image_size=SIZE, patch_size=PATCH, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, layer_norm_eps=1e-6, qkv_bias=True)  # fmt: skip
    vit = ViTModel(config).eval()
    with torch.no_grad():  # biases and norms off their init too, so that every mapped tensor matters
        for _name, parameter in vit.named_parameters():
            if parameter.ndim == 1:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    return vit


def test_vit_init_makes_a_one_frame_forward_equal_the_vit():
    """MAC §4.3 initializes the spatial blocks from ViT-B/16; with Frozen-in-Time's zero temporal attention, a
    1-frame MAC forward is the ViT's forward (MAC last_hidden_state vs ViTModel last_hidden_state)."""
    vit = _random_vit()
    model = MacModel(MacModelTester.config(vision_config=dict(MacModelTester.config().vision_config.to_dict(),
                                                             temporal_attention_init="random")))  # fmt: skip
    vision = model.vision_model.eval()
    unused = vision.load_vit_weights(vit)
    assert unused == ["pooler.dense.weight", "pooler.dense.bias"]
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = vit(pixel_values=images).last_hidden_state
        ours = vision(images[:, None]).last_hidden_state
        clip = vision(images[:, None].expand(-1, FRAMES, -1, -1, -1)).last_hidden_state
    assert (ours - expected).abs().max() < 1e-5
    # With every frame the same and the temporal branch at zero, every frame's patches equal the image's.
    assert (clip[:, 1 + PER_FRAME:] - expected[:, 1:]).abs().max() < 1e-5


def test_vit_init_reads_the_hub_checkpoint_layout():
    """google/vit-base-patch16-224-in21k stores `encoder.layer.i.attention.attention.query...`; transformers 5
    renames the keys in memory. Both layouts convert to the same MAC weights."""
    vit = _random_vit()
    state = vit.state_dict()
    renames = {"attention.q_proj": "attention.attention.query", "attention.k_proj": "attention.attention.key",
               "attention.v_proj": "attention.attention.value", "attention.o_proj": "attention.output.dense",
               "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}  # fmt: skip
    hub = {}
    for key, value in state.items():
        key = key.replace("layers.", "encoder.layer.")
        for new, old in renames.items():
            key = key.replace(new, old)
        hub[key] = value
    assert "encoder.layer.0.attention.attention.query.weight" in hub
    a, _ = convert_vit_state_dict(state)
    b, _ = convert_vit_state_dict({f"vit.{k}": v for k, v in hub.items()})
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert a["blocks.0.attn.qkv.weight"].shape == (96, 32)
    assert torch.equal(a["blocks.1.attn.qkv.bias"][64:], state["layers.1.attention.v_proj.bias"])


def test_vit_init_rejects_a_vit_of_another_shape():
    vit = ViTModel(ViTConfig(image_size=SIZE, patch_size=PATCH, hidden_size=32, num_hidden_layers=3,
                             num_attention_heads=4, intermediate_size=64))  # fmt: skip
    with pytest.raises(ValueError, match="num_hidden_layers"):
        MacVisionModel(MacModelTester.config().vision_config).load_vit_weights(vit)
    with pytest.raises(ValueError, match="missing"):
        state = {k: v for k, v in _random_vit().state_dict().items() if "layers.1." not in k}
        MacVisionModel(MacModelTester.config().vision_config).load_vit_weights(state)


def test_pretraining_script_initializes_the_video_encoder_from_a_saved_vit(tmp_path):
    """`mac_pretrain.py --vision_init_name_or_path` goes through `load_vit_weights` (a folder, as from the Hub)."""
    import importlib
    import sys
    from pathlib import Path

    scripts = str(Path(__file__).resolve().parents[3] / "training_scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    script = importlib.import_module("mac_pretrain")
    vit = _random_vit()
    vit.save_pretrained(tmp_path / "vit")
    MacModelTester.config().save_pretrained(tmp_path / "config")
    args = script.MacModelArguments(
        config_name=str(tmp_path / "config"), vision_init_name_or_path=str(tmp_path / "vit")
    )
    model = script.build_model(args).eval()
    images = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = vit(pixel_values=images).last_hidden_state
        ours = model.mac.vision_model(images[:, None]).last_hidden_state
    assert (ours - expected).abs().max() < 1e-5
    with pytest.raises(ValueError, match="vision_init_name_or_path"):
        script.MacModelArguments(model_name_or_path=str(tmp_path), vision_init_name_or_path=str(tmp_path / "vit"))


def test_a_plain_trainer_trains_the_retrieval_model_with_the_package_collator(tmp_path, tiny_tokenizer):
    """Issue 10 item 1: the loss comes out of `forward`, so `transformers.Trainer` needs nothing of hf-videolang
    besides the collator (masked videos and whole-word-masked captions, as in pre-training)."""
    from transformers import Trainer, TrainingArguments

    from hf_videolang.data import load_corpus, make_corpus
    from hf_videolang.models.mac import MacProcessor
    from hf_videolang.training import VideoTextCollator

    make_corpus(tmp_path / "corpus", num_videos=8, num_frames=4, size=SIZE)
    config = MacModelTester.config(text_config=dict(vocab_size=len(tiny_tokenizer), dim=32, n_layers=1, n_heads=4,
                                                    hidden_dim=64, max_position_embeddings=32))  # fmt: skip
    torch.manual_seed(0)
    model = MacForVideoTextRetrieval(config)
    before = model.mac.vision_projection.weight.detach().clone()
    processor = MacProcessor.from_config(config, tiny_tokenizer, num_frames=FRAMES)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4,
                             report_to="none", use_cpu=True, save_strategy="no", logging_steps=1,
                             dataloader_num_workers=0, disable_tqdm=True, remove_unused_columns=False)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=load_corpus(tmp_path / "corpus", "train", "retrieval"),
                      data_collator=VideoTextCollator(processor, task="pretrain", training=True, seed=0))  # fmt: skip
    result = trainer.train()
    assert math.isfinite(result.training_loss) and result.global_step == 2
    assert not torch.equal(before, model.mac.vision_projection.weight)
