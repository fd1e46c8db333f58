"""Tests of the MAC configs and models on tiny configurations (CPU, a few seconds)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel, AutoModelForPreTraining, BertConfig, DistilBertConfig

from hf_videolang.hub.remote_code import save_with_remote_code
from hf_videolang.models.mac import (
    DividedSpaceTimeAttention,
    MacConfig,
    MacForVideoTextRetrieval,
    MacModel,
    MacVisionConfig,
    resize_temporal_embeddings,
)
from hf_videolang.video.masking import RandomMasker

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
    temporal, spatial = out.attentions[0]
    assert temporal.shape == (BATCH * visible, 4, FRAMES, 1 + FRAMES)
    assert spatial.shape == (BATCH * FRAMES, 4, visible, 1 + visible)
    assert torch.allclose(temporal.sum(-1), torch.ones(()))


def test_sdpa_matches_eager():
    torch.manual_seed(0)
    config = MacModelTester.config()
    eager = MacForVideoTextRetrieval._from_config(config, attn_implementation="eager").eval()
    sdpa = MacForVideoTextRetrieval._from_config(config, attn_implementation="sdpa").eval()
    sdpa.load_state_dict(eager.state_dict())
    inputs = MacModelTester.inputs()
    with torch.no_grad():
        a = eager(**inputs, bool_masked_pos=MacModelTester.mask())
        b = sdpa(**inputs, bool_masked_pos=MacModelTester.mask())
    assert torch.allclose(a.video_embeds, b.video_embeds, atol=1e-5)
    assert torch.allclose(a.loss, b.loss, atol=1e-5)


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


def test_every_trainable_parameter_gets_a_gradient():
    model = _model(learnable_temperature=True).train()
    out = model(**MacModelTester.inputs(), bool_masked_pos=MacModelTester.mask())
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert not _model().mac.logit_scale.requires_grad  # fixed temperature by default (Frozen-in-Time)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    inputs = dict(MacModelTester.inputs(), bool_masked_pos=MacModelTester.mask())
    plain, checkpointed = _model().train(), _model().train()
    checkpointed.activation_checkpointing_enable()
    assert checkpointed.mac.vision_model.blocks[0].gradient_checkpointing
    a, b = plain(**inputs), checkpointed(**inputs)
    a.loss.backward()
    b.loss.backward()
    assert torch.allclose(a.loss, b.loss)
    weight = "mac.vision_model.blocks.0.temporal_attn.qkv.weight"
    grads = {name: p.grad for name, p in checkpointed.named_parameters()}
    assert torch.allclose(dict(plain.named_parameters())[weight].grad, grads[weight], atol=1e-6)


# ---------------------------------------------------------------------------------------------------- saving


def test_save_load_round_trip_is_bit_exact(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path)
    reloaded = MacForVideoTextRetrieval.from_pretrained(tmp_path).eval()
    original, loaded = model.state_dict(), reloaded.state_dict()
    assert original.keys() == loaded.keys()
    assert all(torch.equal(original[k], loaded[k]) for k in original)
    inputs = MacModelTester.inputs()
    with torch.no_grad():
        a, b = model(**inputs), reloaded(**inputs)
    assert torch.equal(a.video_embeds, b.video_embeds) and torch.equal(a.loss, b.loss)

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


_LOADER = textwrap.dedent(
    """
    import sys

    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name == "hf_videolang" or name.startswith("hf_videolang."):
                raise ImportError(name)

    sys.meta_path.insert(0, _Block())
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel

    torch.set_num_threads(1)
    model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    data = load_file(sys.argv[1] + "/expected.safetensors")
    with torch.no_grad():
        out = model(pixel_values=data["pixel_values"], input_ids=data["input_ids"],
                    attention_mask=data["attention_mask"])
    assert torch.equal(out.video_embeds, data["video_embeds"]), "video_embeds"
    assert type(model).__name__ == "MacModel" and type(model).__module__.startswith("transformers_modules")
    print("LOADED")
    """
)


def test_saved_mac_loads_with_trust_remote_code_without_hf_videolang(tmp_path):
    torch.manual_seed(0)
    model = MacModel(MacModelTester.config()).eval()
    inputs = MacModelTester.inputs()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            out = model(**inputs)
    finally:
        torch.set_num_threads(threads)
    folder = tmp_path / "mac"
    names = {path.name for path in save_with_remote_code(model, folder)}
    assert {"configuration_mac.py", "modeling_mac.py", "hfvl_layers_attention.py"} <= names
    save_file({**inputs, "video_embeds": out.video_embeds.contiguous()}, str(folder / "expected.safetensors"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_MODULES_CACHE=str(tmp_path / "modules"), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", _LOADER, str(folder)], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LOADED" in result.stdout
