"""E-ViLM's semantic VQ video tokenizer (E-ViLM §3.3): Eq. 4's look-up, Eq. 6's focal loss, Eq. 7's terms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, CLIPVisionConfig, CLIPVisionModel

import hf_videolang  # noqa: F401  (registers the Auto classes)
from hf_videolang.models.evilm_tokenizer import (
    EvilmTokenizerConfig,
    EvilmVectorQuantizer,
    EvilmVideoTokenizer,
    caption_word_targets,
    codebook_utilization,
)

VISION = dict(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4)  # fmt: skip
VOCAB = 40


def _config(**overrides) -> EvilmTokenizerConfig:
    kwargs = dict(vision_config=VISION, codebook_size=50, codebook_dim=8, decoder_num_layers=2,
                  decoder_hidden_size=32, decoder_num_heads=4, vocab_size=VOCAB, max_frames=2)  # fmt: skip
    return EvilmTokenizerConfig(**{**kwargs, **overrides})


def _inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    pixels = torch.randn(3, 2, 3, 32, 32, generator=gen)
    labels = caption_word_targets(torch.randint(1, VOCAB, (3, 6), generator=gen), VOCAB, ignore_ids=[0])
    return pixels, labels


def test_paper_defaults():
    config = EvilmTokenizerConfig()
    assert (config.codebook_size, config.codebook_dim, config.decoder_num_layers) == (9420, 32, 8)  # §4.1
    assert (config.focal_gamma, config.focal_gamma_negative) == (0.0, 1.0)  # Eq. 6 as printed
    assert config.regions_per_frame == 196


def test_look_up_picks_the_nearest_normalized_code():
    quantizer = EvilmVectorQuantizer(codebook_size=5, codebook_dim=4)
    embeddings = torch.randn(2, 3, 4)
    out = quantizer(embeddings)
    unit, codes = F.normalize(embeddings, dim=-1), F.normalize(quantizer.codebook, dim=-1)
    distances = torch.cdist(unit.reshape(-1, 4), codes)  # Eq. 4: Euclidean argmin after l2 normalization
    assert torch.equal(out.indices.reshape(-1), distances.argmin(-1))
    torch.testing.assert_close(out.quantized, codes[out.indices])


def test_codebook_and_commitment_terms_equal_eq7_by_hand():
    quantizer = EvilmVectorQuantizer(codebook_size=7, codebook_dim=4)
    embeddings = torch.randn(6, 4, requires_grad=True)
    out = quantizer(embeddings)
    unit = F.normalize(embeddings, dim=-1)
    chosen = F.normalize(quantizer.codebook, dim=-1)[out.indices]
    expected = ((unit - chosen) ** 2).sum(-1).mean()
    torch.testing.assert_close(out.loss_codebook, expected)
    torch.testing.assert_close(out.loss_commitment, expected)
    # sg[.] decides where each term's gradient goes: the codebook term moves only the codes,
    # the commitment term only the encoder output.
    out.loss_codebook.backward(retain_graph=True)
    assert embeddings.grad is None and quantizer.codebook.grad.abs().sum() > 0
    quantizer.codebook.grad = None
    out.loss_commitment.backward()
    assert embeddings.grad.abs().sum() > 0 and quantizer.codebook.grad is None


def test_straight_through_gradient_reaches_the_encoder():
    torch.manual_seed(0)
    model = EvilmVideoTokenizer(_config(commitment_weight=0.0, codebook_weight=0.0))
    pixels, labels = _inputs()
    model(pixels, labels=labels).loss.backward()  # only the word loss, which sees the codes alone
    assert model.encoder.embeddings.patch_embedding.weight.grad.abs().sum() > 0
    assert model.quant_projection.weight.grad.abs().sum() > 0


def test_focal_token_loss_equals_eq6_by_hand():
    torch.manual_seed(0)
    model = EvilmVideoTokenizer(_config()).eval()
    pixels, labels = _inputs()
    out = model(pixels, labels=labels)
    p = out.logits.sigmoid()
    eq6 = torch.where(labels == 1, torch.log(p), p * torch.log(1 - p))
    torch.testing.assert_close(out.loss_token, -eq6.mean())
    torch.testing.assert_close(out.loss, out.loss_token + out.loss_codebook + out.loss_commitment)


def test_caption_targets_and_utilization():
    targets = caption_word_targets(torch.tensor([[0, 3, 3, 5], [0, 0, 7, 1]]), 8, ignore_ids=[0, 1])
    assert targets.tolist() == [[0, 0, 0, 1, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0, 0, 1]]
    assert codebook_utilization(torch.tensor([[0, 0, 3], [3, 4, 4]]), 10).item() == pytest.approx(0.3)


def test_indices_cover_every_region_and_match_the_forward():
    torch.manual_seed(0)
    model = EvilmVideoTokenizer(_config()).eval()
    pixels, _ = _inputs()
    indices = model.get_codebook_indices(pixels)
    assert indices.shape == (3, 2, 16) and indices.dtype == torch.long
    assert torch.equal(indices, model(pixels).codebook_indices)


def test_encoder_loads_a_clip_vision_checkpoint(tmp_path):
    torch.manual_seed(1)
    clip = CLIPVisionModel(CLIPVisionConfig(**VISION)).eval()
    clip.save_pretrained(tmp_path / "clip")
    model = EvilmVideoTokenizer.from_clip_vision(_config(), str(tmp_path / "clip")).eval()
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.encoder(pixels).last_hidden_state, clip(pixels).last_hidden_state)


def test_save_and_auto_load_round_trip_bit_for_bit(tmp_path):
    torch.manual_seed(0)
    model = EvilmVideoTokenizer(_config()).eval()
    model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), EvilmTokenizerConfig)
    again = AutoModel.from_pretrained(tmp_path).eval()
    pixels, labels = _inputs()
    with torch.no_grad():
        first, second = model(pixels, labels=labels), again(pixels, labels=labels)
    assert torch.equal(first.logits, second.logits) and torch.equal(first.codebook_indices, second.codebook_indices)


def test_training_lowers_the_loss_and_keeps_codes_in_use():
    torch.manual_seed(0)
    model = EvilmVideoTokenizer(_config())
    pixels, labels = _inputs()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(15):
        out = model(pixels, labels=labels)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_bad_pixel_shapes_are_named():
    model = EvilmVideoTokenizer(_config())
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        model(torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="max_frames=2"):
        model(torch.randn(1, 3, 3, 32, 32))


def test_dead_codes_restart_at_encoder_outputs():
    quantizer = EvilmVectorQuantizer(codebook_size=16, codebook_dim=4, dead_code_threshold=0.5).train()
    embeddings = torch.randn(64, 4)
    quantizer(embeddings)  # the first training batch places every code on an encoder output
    unit = F.normalize(embeddings, dim=-1)
    codes = F.normalize(quantizer.codebook.detach(), dim=-1)
    assert torch.cdist(codes, unit).min(dim=1).values.max() < 1e-3
    # codes nobody picks decay below the threshold and move onto outputs of the batch; the codes in use stay
    one_cluster = F.normalize(torch.ones(64, 4) + 0.01 * torch.randn(64, 4), dim=-1)
    in_use = quantizer(one_cluster).indices.unique()
    for _ in range(30):
        quantizer(one_cluster)
    distance = torch.cdist(F.normalize(quantizer.codebook.detach(), dim=-1), one_cluster).min(dim=1).values
    moved = torch.ones(16, dtype=torch.bool)
    moved[in_use] = False
    assert (distance[moved] < 0.1).all() and moved.sum() >= 14
    # without the threshold nothing moves
    still = EvilmVectorQuantizer(codebook_size=16, codebook_dim=4).train()
    before = still.codebook.detach().clone()
    still(embeddings)
    assert torch.equal(still.codebook.detach(), before)


from models.test_modeling_common import ModelTesterMixin  # noqa: E402


class TestEvilmTokenizerModels(ModelTesterMixin):
    all_model_classes = (EvilmVideoTokenizer,)
    test_resize_embeddings = False  # no token embeddings: it reads frames

    def prepare_config_and_inputs(self, model_class):
        pixels, labels = _inputs()
        return _config(), {"pixel_values": pixels, "labels": labels}

    def loss_weights(self, config, model_class):
        return {"loss_token": 1.0, "loss_codebook": config.codebook_weight, "loss_commitment": config.commitment_weight}
