"""Tests of the SMAUG configs and models on tiny configurations (CPU, a few seconds)."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModel, AutoModelForPreTraining, BertConfig, BertModel, CLIPVisionConfig, CLIPVisionModel

from hf_videolang.models.smaug import (
    SmaugConfig,
    SmaugForPreTraining,
    SmaugForVideoQuestionAnswering,
    SmaugForVideoTextRetrieval,
    SmaugFrameSelector,
    SmaugModel,
    SmaugVisionConfig,
    SmaugVisionModel,
    gumbel_top_k,
    select_frames,
    sparsify_tokens,
)
from hf_videolang.video.masking import TubeMasker
from models.test_modeling_common import ModelTesterMixin

BATCH, FRAMES, SIZE, PATCH = 3, 4, 32, 8
GRID = SIZE // PATCH  # 4x4 patches per frame
PER_FRAME = GRID * GRID
TEXT_LEN, VOCAB = 7, 100


class SmaugModelTester:
    """Tiny SMAUG: a 4-layer ViT of width 32 sparsifying at layers 2 and 3, 4 frames of 32 px (patch 8), a
    1-block temporal encoder and MAE decoder, a 3-layer BERT of width 32 split 2 + 1, 4 -> 2 frame selection."""

    @staticmethod
    def config(vision: dict | None = None, **overrides) -> SmaugConfig:
        vision_kwargs = dict(image_size=SIZE, patch_size=PATCH, num_frames=FRAMES, hidden_size=32, num_hidden_layers=4,
                             num_attention_heads=4, intermediate_size=64, sparsification_layers=[2, 3],
                             temporal_num_hidden_layers=1, decoder_hidden_size=16, decoder_num_attention_heads=2,
                             decoder_intermediate_size=32, decoder_num_hidden_layers=1)  # fmt: skip
        vision_kwargs.update(vision or {})
        text = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                    max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
        kwargs = dict(vision_config=vision_kwargs, text_config=text, num_text_layers=2, projection_dim=16,
                      selector_hidden_size=16, selector_intermediate_size=32)  # fmt: skip
        kwargs.update(overrides)
        return SmaugConfig(**kwargs)

    @staticmethod
    def inputs(seed: int = 0, frames: int = FRAMES, batch: int = BATCH) -> dict[str, torch.Tensor]:
        gen = torch.Generator().manual_seed(seed)
        input_ids = torch.randint(5, VOCAB, (batch, TEXT_LEN), generator=gen)
        input_ids[:, 0] = 2  # [CLS]
        attention_mask = torch.ones_like(input_ids)
        attention_mask[0, 5:] = 0
        return dict(
            pixel_values=torch.randn(batch, frames, 3, SIZE, SIZE, generator=gen),
            input_ids=input_ids,
            attention_mask=attention_mask,
        )

    @staticmethod
    def mask(ratio: float = 0.5, seed: int = 0, frames: int = FRAMES, batch: int = BATCH) -> torch.Tensor:
        return TubeMasker(frames, (GRID, GRID), ratio)(batch, generator=torch.Generator().manual_seed(seed))

    @classmethod
    def pretraining_inputs(cls, seed: int = 0) -> dict[str, torch.Tensor]:
        inputs = cls.inputs(seed)
        labels = torch.full_like(inputs["input_ids"], -100)
        labels[:, 2] = inputs["input_ids"][:, 2]
        mlm_input_ids = inputs["input_ids"].clone()
        mlm_input_ids[:, 2] = 4  # [MASK]
        return dict(inputs, bool_masked_pos=cls.mask(seed=seed), mlm_input_ids=mlm_input_ids, mlm_labels=labels,
                    generator=torch.Generator().manual_seed(seed))  # fmt: skip


# ---------------------------------------------------------------------------------------------------- shared checks


class TestSmaugEncoders(ModelTesterMixin):
    """The shared checks on the encoders, on tube-masked 4-frame videos, VTS and frame selection on. Hidden states
    change length at every sparsification layer (VTS), which the mixin's one-shape check does not allow; they are
    checked in `test_sdpa_matches_eager_and_outputs_can_be_tuples` instead."""

    all_model_classes = (SmaugVisionModel, SmaugModel)
    test_hidden_states = False

    def prepare_config_and_inputs(self, model_class):
        config = SmaugModelTester.config()
        inputs = SmaugModelTester.inputs()
        inputs["bool_masked_pos"] = SmaugModelTester.mask()
        if model_class is SmaugVisionModel:
            return config.vision_config, dict(pixel_values=inputs["pixel_values"],
                                              bool_masked_pos=inputs["bool_masked_pos"])  # fmt: skip
        return config, inputs


class TestSmaugTaskModels(ModelTesterMixin):
    """The shared checks on the pre-training, retrieval and QA models, each given what makes it return a loss."""

    all_model_classes = (SmaugForPreTraining, SmaugForVideoTextRetrieval)
    test_attentions = False  # the encoders' maps are checked above; task outputs carry losses and scores
    test_hidden_states = False

    def prepare_config_and_inputs(self, model_class):
        config = SmaugModelTester.config(mvm_loss_weight=0.5)
        if model_class is SmaugForPreTraining:
            inputs = SmaugModelTester.pretraining_inputs()
            inputs.pop("generator")  # the global RNG, seeded by the mixin, draws negatives and Gumbel noise
            return config, inputs
        inputs = SmaugModelTester.inputs()
        if model_class is SmaugForVideoTextRetrieval:
            return config, dict(inputs, return_loss=True, video_ids=torch.tensor([0, 1, 2]))
        config.answer_list = ["red", "blue", "green"]
        config.answer_token_ids = [[2, 10, 3], [2, 11, 3], [2, 12, 13, 3]]
        return config, dict(inputs, labels=torch.tensor([0, 2, 1]))

    def loss_weights(self, config, model_class):
        if model_class is SmaugForPreTraining:
            return {"loss_vtc": 1.0, "loss_vtm": 1.0, "loss_mlm": 1.0, "loss_mvm": 0.5}
        if model_class is SmaugForVideoTextRetrieval:
            return {"loss_vtc": 1.0, "loss_vtm": 1.0}
        return None  # QA: one term, the answer NLL


class TestSmaugQuestionAnswering(TestSmaugTaskModels):
    all_model_classes = (SmaugForVideoQuestionAnswering,)
    # The QA head trains the answer decoder on the fused question: the VTC heads and the VTM head (used by
    # score_candidates, multiple choice) take no part in its loss.
    parameters_without_gradient = frozenset(
        {"smaug.logit_scale", "smaug.vision_projection.*", "smaug.text_projection.*", "vtm_head.*"}
    )


# ---------------------------------------------------------------------------------------------------- config


def test_preset_has_the_papers_defaults():
    config = SmaugConfig.from_preset("smaug-b16")
    vision = config.vision_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads, vision.patch_size) == (
        768, 12, 12, 16)  # fmt: skip
    assert (vision.hidden_act, vision.layer_norm_eps) == ("quick_gelu", 1e-5)  # CLIP-B/16 shape
    assert vision.sparsification_layers == [4, 7, 10] and vision.keep_rate == 0.8 and vision.fuse_inattentive_tokens
    assert vision.decoder_num_hidden_layers == 3 and vision.norm_pix_loss
    assert config.video_mask_ratio == 0.5 and config.text_mask_ratio == 0.15
    assert (config.num_text_layers, config.num_multimodal_layers) == (9, 3)
    assert (config.selector_num_attention_heads, config.selector_intermediate_size) == (2, 2048)
    assert config.selector_num_hidden_layers == 2 and config.num_selected_frames == 2 and config.use_frame_selection
    weights = [config.vtc_loss_weight, config.vtm_loss_weight, config.mlm_loss_weight, config.mvm_loss_weight]
    assert weights == [1.0] * 4  # Eq. 6: the simple sum


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_text_layers=3), "num_text_layers=3"),
        (dict(num_selected_frames=0), "num_selected_frames"),
        (dict(mvm_loss_weight=-1.0), "mvm_loss_weight"),
        (dict(video_mask_ratio=1.0), "video_mask_ratio"),
        (dict(vision=dict(keep_rate=0.0)), "keep_rate"),
        (dict(vision=dict(sparsification_layers=[0, 2])), "sparsification_layers"),
    ],
)
def test_config_rejects_bad_values_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SmaugModelTester.config(**kwargs)


def test_config_round_trips_through_json(tmp_path):
    config = SmaugModelTester.config(num_selected_frames=1)
    config.save_pretrained(tmp_path)
    loaded = SmaugConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()
    assert isinstance(loaded.vision_config, SmaugVisionConfig) and isinstance(loaded.text_config, BertConfig)


# ---------------------------------------------------------------------------------------------------- masking, VTS


def test_tube_masks_are_identical_across_frames_with_exact_counts():
    mask = SmaugModelTester.mask().view(BATCH, FRAMES, PER_FRAME)
    assert (mask.sum(-1) == PER_FRAME // 2).all()  # 8 of 16 per frame
    assert (mask == mask[:, :1]).all()  # the same positions in every frame
    assert not torch.equal(mask[0], mask[1])


def test_encoder_reads_visible_tokens_only_and_counts_the_tokens_vts_kept():
    torch.manual_seed(0)
    model = SmaugModel(SmaugModelTester.config()).eval()
    inputs = SmaugModelTester.inputs()
    with torch.no_grad():
        full = model.vision_model(inputs["pixel_values"])
        masked = model.vision_model(inputs["pixel_values"], bool_masked_pos=SmaugModelTester.mask())
        dense = model.vision_model(inputs["pixel_values"], use_token_sparsification=False)
    # 16 patches: layer 2 keeps ceil(0.8 * 16) = 13 + 1 fused; layer 3 keeps ceil(0.8 * 14) = 12 + 1 fused.
    assert full.num_visual_tokens.tolist() == [17, 17, 15, 14, 14]
    assert full.last_hidden_state.shape == (BATCH, FRAMES, 14, 32)
    # 8 visible: ceil(6.4) = 7 + 1 fused, then ceil(0.8 * 8) = 7 + 1 fused.
    assert masked.num_visual_tokens.tolist() == [9, 9, 9, 9, 9]
    assert dense.num_visual_tokens.tolist() == [17] * 5
    positions = full.kept_patch_positions
    assert [p.shape for p in positions] == [(BATCH, FRAMES, 14), (BATCH, FRAMES, 13)]
    assert (positions[0][..., -1] == -1).all() and (positions[0][..., :-1] >= 0).all()


def test_masked_pixels_do_not_influence_the_encoder_output():
    torch.manual_seed(0)
    model = SmaugModel(SmaugModelTester.config()).eval()
    inputs = SmaugModelTester.inputs()
    mask = SmaugModelTester.mask()
    pixels = inputs["pixel_values"]
    # Overwrite every masked patch with noise.
    grid = mask.view(BATCH, FRAMES, 1, GRID, 1, GRID, 1).expand(-1, -1, 3, -1, PATCH, -1, PATCH)
    grid = grid.reshape(BATCH, FRAMES, 3, SIZE, SIZE)
    changed = torch.where(grid, torch.randn_like(pixels) * 10, pixels)
    assert not torch.equal(changed, pixels)
    with torch.no_grad():
        a = model.vision_model(pixels, bool_masked_pos=mask, return_decoder_inputs=True)
        b = model.vision_model(changed, bool_masked_pos=mask, return_decoder_inputs=True)
    assert torch.equal(a.last_hidden_state, b.last_hidden_state)
    assert torch.equal(a.decoder_inputs, b.decoder_inputs)


def test_vts_fused_token_is_the_attention_weighted_sum_of_the_dropped_tokens():
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randn(2, 1 + 10, 8, generator=gen)
    attention = torch.rand(2, 10, generator=gen).softmax(-1)
    out, keep, drop = sparsify_tokens(tokens, attention, keep_rate=0.8)
    assert keep.shape == (2, 8) and drop.shape == (2, 2)  # ceil(0.8 * 10) = 8
    assert out.shape == (2, 1 + 8 + 1, 8)
    for row in range(2):
        # Kept: the 8 most attended, in decreasing attention.
        assert torch.equal(keep[row], attention[row].argsort(descending=True)[:8])
        assert torch.equal(out[row, 1:9], tokens[row, 1:][keep[row]])
        expected = (attention[row, drop[row], None] * tokens[row, 1:][drop[row]]).sum(0)
        torch.testing.assert_close(out[row, -1], expected, rtol=0, atol=1e-6)
    assert torch.equal(out[:, 0], tokens[:, 0])  # [CLS] untouched


def test_vts_leaves_too_few_tokens_unchanged_and_in_order():
    tokens = torch.randn(2, 1 + 4, 8)
    out, keep, drop = sparsify_tokens(tokens, torch.rand(2, 4), keep_rate=0.8)  # ceil(3.2) = 4: nothing to drop
    assert torch.equal(out, tokens) and keep.tolist() == [[0, 1, 2, 3]] * 2 and drop.shape == (2, 0)
    torch.manual_seed(0)
    model = SmaugModel(SmaugModelTester.config()).eval()
    mask = SmaugModelTester.mask(ratio=0.75)  # 4 visible patches per frame
    with torch.no_grad():
        out = model.vision_model(SmaugModelTester.inputs()["pixel_values"], bool_masked_pos=mask)
    assert out.num_visual_tokens.tolist() == [5] * 5
    visible = (~mask.view(BATCH, FRAMES, PER_FRAME)).nonzero()[:, 2].view(BATCH, FRAMES, 4)
    assert torch.equal(out.kept_patch_positions[-1], visible)


def test_cls_attention_of_sdpa_equals_the_eager_attention_row():
    torch.manual_seed(0)
    model = SmaugModel(SmaugModelTester.config()).eval()
    layer = model.vision_model.layers[1]
    hidden = torch.randn(2, 17, 32)
    with torch.no_grad():
        _, weights, cls_eager = layer.attn(hidden, output_attentions=True, return_cls_attention=True)
        _, _, cls_sdpa = layer.attn(hidden, attn_implementation="sdpa", return_cls_attention=True)
    torch.testing.assert_close(cls_eager, weights[:, :, 0, 1:].mean(1), rtol=0, atol=1e-7)
    torch.testing.assert_close(cls_sdpa, cls_eager, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------- selection


def test_gumbel_top_k_is_exactly_top_k_at_inference_and_differentiable_in_training():
    gen = torch.Generator().manual_seed(0)
    frames = torch.randn(5, 4, 3, 6, generator=gen)
    scores = torch.randn(5, 4, generator=gen, requires_grad=True)
    picked, index = select_frames(frames, scores, 2, training=False)
    expected = scores.topk(2, dim=1).indices.sort(dim=1).values
    assert torch.equal(index, expected)
    assert torch.equal(picked, torch.stack([frames[p, expected[p]] for p in range(5)]))

    picked, index = select_frames(frames, scores, 2, training=True, generator=torch.Generator().manual_seed(1))
    assert (index[:, 1] > index[:, 0]).all()  # two distinct frames, in temporal order
    assert torch.equal(picked, torch.stack([frames[p, index[p]] for p in range(5)]))  # forward value = hard pick
    picked.sum().backward()
    assert scores.grad is not None and scores.grad.abs().sum() > 0


def test_gumbel_top_k_samples_in_proportion_to_softmax_of_the_scores():
    scores = torch.tensor([[2.0, 0.0, -1.0, 0.5]])
    gen = torch.Generator().manual_seed(0)
    picks = torch.cat([gumbel_top_k(scores, 1, generator=gen)[0] for _ in range(4000)]).flatten()
    frequency = torch.bincount(picks, minlength=4).float() / picks.numel()
    torch.testing.assert_close(frequency, scores.softmax(-1)[0], rtol=0, atol=0.03)
    index, weights = gumbel_top_k(scores.expand(3, 4), 3, generator=gen)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 3))
    assert all(len(set(row.tolist())) == 3 for row in index)


def test_the_selector_choice_depends_on_the_text():
    """A crafted clip: frame k shows 'color k'; caption c names color c. Fit the selector briefly, then two
    captions select two different frames of the same clip."""
    torch.manual_seed(0)
    config = SmaugModelTester.config()
    selector = SmaugFrameSelector(config)
    frames = torch.eye(4, 32)[None] * 3  # (1, 4, D_v): frame k is the direction e_k
    captions = torch.eye(4, 32) * 3  # caption c is e_c
    optimizer = torch.optim.Adam(selector.parameters(), lr=1e-2)
    for _ in range(60):
        scores = selector(frames.expand(4, -1, -1), captions)
        loss = torch.nn.functional.cross_entropy(scores, torch.arange(4))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    selector.eval()
    with torch.no_grad():
        scores = selector(frames.expand(2, -1, -1), captions[[0, 2]])
    _, index = select_frames(frames[:, :, None].expand(2, -1, 1, -1), scores, 1, training=False)
    assert index.flatten().tolist() == [0, 2]


def test_multimodal_encoder_reads_the_selected_frames_only():
    torch.manual_seed(0)
    model = SmaugModel(SmaugModelTester.config()).eval()
    inputs = SmaugModelTester.inputs()
    with torch.no_grad():
        out = model(**inputs)
        tokens = out.vision_model_output.last_hidden_state
        # Perturb the frames that were not selected, all but their [CLS] (what the selector reads).
        other = tokens.clone()
        for row, picked in enumerate(out.selected_frame_indices):
            dropped = [k for k in range(FRAMES) if k not in picked.tolist()]
            other[row, dropped, 1:] += 5.0
        text_states = model.encode_text(inputs["input_ids"], inputs["attention_mask"])
        fused, index = model.fuse(other, text_states, inputs["attention_mask"])
    assert out.selected_frame_indices.shape == (BATCH, 2)
    assert torch.equal(index, out.selected_frame_indices)
    torch.testing.assert_close(fused, out.multimodal_last_hidden_state, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------------- models


def test_pretraining_loss_is_the_sum_of_the_four_terms_and_reaches_every_parameter():
    torch.manual_seed(0)
    model = SmaugForPreTraining(SmaugModelTester.config(mvm_loss_weight=2.0)).train()
    out = model(**SmaugModelTester.pretraining_inputs())
    terms = [out.loss_vtc, out.loss_vtm, out.loss_mlm, out.loss_mvm]
    assert all(t is not None and torch.isfinite(t) for t in terms)
    torch.testing.assert_close(out.loss, out.loss_vtc + out.loss_vtm + out.loss_mlm + 2.0 * out.loss_mvm)
    assert out.mvm_logits.shape == (BATCH, FRAMES * PER_FRAME, PATCH * PATCH * 3)
    assert out.num_selected_frames.item() == 2 and out.selected_frame_indices.shape == (BATCH, 2)
    assert math.isclose(out.loss_mlm.item(), math.log(VOCAB), rel_tol=0.2)
    out.loss.backward()
    missing = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


def test_a_zero_weight_term_is_none_and_left_out():
    torch.manual_seed(0)
    model = SmaugForPreTraining(SmaugModelTester.config(mvm_loss_weight=0, vtm_loss_weight=0)).train()
    out = model(**SmaugModelTester.pretraining_inputs())
    assert out.loss_mvm is None and out.loss_vtm is None and out.mvm_logits is None
    torch.testing.assert_close(out.loss, out.loss_vtc + out.loss_mlm)


def test_mvm_loss_is_the_mse_of_normalized_masked_patches():
    torch.manual_seed(0)
    model = SmaugForPreTraining(SmaugModelTester.config()).eval()
    inputs = SmaugModelTester.pretraining_inputs()
    with torch.no_grad():
        out = model(**inputs)
    mask = inputs["bool_masked_pos"]
    target = model.mvm_loss.target_patches(inputs["pixel_values"])
    expected = (out.mvm_logits[mask] - target[mask]).pow(2).mean()
    torch.testing.assert_close(out.loss_mvm, expected)


def test_sdpa_matches_eager_and_outputs_can_be_tuples():
    torch.manual_seed(0)
    config = SmaugModelTester.config()
    sdpa = SmaugModel(config).eval()
    eager = SmaugModel._from_config(config, attn_implementation="eager").eval()
    eager.load_state_dict(sdpa.state_dict())
    inputs = SmaugModelTester.inputs()
    with torch.no_grad():
        a = sdpa(**inputs)
        b = eager(**inputs, output_attentions=True, output_hidden_states=True)
        as_tuple = sdpa(**inputs, return_dict=False)
    torch.testing.assert_close(a.video_embeds, b.video_embeds, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a.multimodal_last_hidden_state, b.multimodal_last_hidden_state, rtol=1e-4, atol=1e-5)
    attentions = b.vision_model_output.attentions
    assert [w.shape[-1] for w in attentions] == [17, 17, 15, 14]
    assert len(b.vision_model_output.hidden_states) == 5
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], a.logits_per_video)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    torch.manual_seed(0)
    model = SmaugForPreTraining(SmaugModelTester.config()).train()
    inputs = SmaugModelTester.pretraining_inputs()
    loss = model(**inputs).loss
    loss.backward()
    grad = model.smaug.vision_model.layers[0].mlp.fc1.weight.grad.clone()
    model.zero_grad()
    model.activation_checkpointing_enable()
    inputs = SmaugModelTester.pretraining_inputs()
    loss2 = model(**inputs).loss
    loss2.backward()
    torch.testing.assert_close(loss2, loss)
    torch.testing.assert_close(model.smaug.vision_model.layers[0].mlp.fc1.weight.grad, grad)


def test_save_and_reload_is_bit_exact_and_auto_classes_resolve(tmp_path):
    torch.manual_seed(0)
    model = SmaugForPreTraining(SmaugModelTester.config()).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    reloaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    assert type(reloaded) is SmaugForPreTraining
    inputs = SmaugModelTester.pretraining_inputs()
    with torch.no_grad():
        a, b = model(**inputs), reloaded(**SmaugModelTester.pretraining_inputs())
    assert torch.equal(a.loss, b.loss)
    base = AutoModel.from_pretrained(tmp_path)
    assert type(base) is SmaugModel
    assert torch.equal(base.logit_scale, model.smaug.logit_scale)


def test_qa_from_pretraining_starts_the_answer_decoder_from_the_multimodal_encoder_and_mlm_head(tmp_path):
    torch.manual_seed(0)
    pretraining = SmaugForPreTraining(SmaugModelTester.config())
    torch.nn.init.normal_(pretraining.mlm_head.predictions.bias)  # zero at init: make the copy visible
    pretraining.save_pretrained(tmp_path)
    qa = SmaugForVideoQuestionAnswering.from_pretraining(tmp_path)
    decoder = qa.answer_decoder
    assert torch.equal(decoder.bert.encoder.layer[0].attention.self.query.weight,
                       pretraining.smaug.multimodal_encoder.layer[0].attention.self.query.weight)  # fmt: skip
    assert torch.equal(decoder.cls.predictions.bias, pretraining.mlm_head.predictions.bias)
    assert torch.equal(decoder.cls.predictions.transform.dense.weight,
                       pretraining.mlm_head.predictions.transform.dense.weight)  # fmt: skip
    assert torch.equal(qa.vtm_head.weight, pretraining.vtm_head.weight)


def test_input_embeddings_are_the_text_word_embeddings():
    model = SmaugForPreTraining(SmaugModelTester.config())
    embeddings = model.get_input_embeddings()
    assert embeddings is model.smaug.text_model.embeddings.word_embeddings
    assert model.get_output_embeddings().weight is embeddings.weight  # MLM decoder tied
    new = torch.nn.Embedding(VOCAB, 32)
    model.set_input_embeddings(new)
    assert model.smaug.text_model.embeddings.word_embeddings is new


def test_retrieval_loss_is_vtc_plus_vtm_and_reranking_puts_the_top_k_first():
    torch.manual_seed(0)
    model = SmaugForVideoTextRetrieval(SmaugModelTester.config()).train()
    inputs = SmaugModelTester.inputs()
    out = model(**inputs, return_loss=True, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.loss, out.loss_vtc + out.loss_vtm)
    model.eval()
    with torch.no_grad():
        out = model(**inputs, rerank_top_k=2)
    assert out.loss is None and out.num_selected_frames.item() == 2
    top = out.logits_per_text.topk(2, dim=1).indices
    reranked_top = out.reranked_logits_per_text.topk(2, dim=1).indices
    assert torch.equal(top.sort(1).values, reranked_top.sort(1).values)
    with torch.no_grad():
        direct = model.rerank(model.get_video_states(inputs["pixel_values"]), inputs)
    video_embeds = model.get_video_features(inputs["pixel_values"])
    torch.testing.assert_close(video_embeds, out.video_embeds)
    assert direct.shape == (BATCH,)


def test_question_answering_ranks_the_answer_list_and_learns_from_labels(tiny_tokenizer):
    torch.manual_seed(0)
    model = SmaugForVideoQuestionAnswering(SmaugModelTester.config(text_config=dict(
        vocab_size=tiny_tokenizer.vocab_size, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=32)))  # fmt: skip
    model.init_answer_decoder()
    model.set_answer_list(["red", "blue", "green square"], tiny_tokenizer)
    assert model.config.answer_token_ids[0] == tiny_tokenizer("red")["input_ids"]
    inputs = SmaugModelTester.inputs()
    inputs["input_ids"] = inputs["input_ids"] % tiny_tokenizer.vocab_size
    model.eval()
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits.shape == (BATCH, 3) and out.loss is None
    assert out.selected_frame_indices.shape == (BATCH, 2)
    model.train()
    out = model(**inputs, labels=torch.tensor([0, 1, 2]))
    assert out.loss is not None and out.loss > 0
    out.loss.backward()
    assert model.answer_decoder.bert.encoder.layer[0].crossattention.self.query.weight.grad is not None
    torch.testing.assert_close(
        model.answer_decoder.bert.encoder.layer[0].output.dense.weight,
        model.smaug.multimodal_encoder.layer[0].output.dense.weight,
    )
    scores = model.score_candidates(inputs["pixel_values"], inputs["input_ids"][:, None].expand(-1, 2, -1))
    assert scores.shape == (BATCH, 2) and (scores <= 0).all()
    model.eval()
    with torch.no_grad():  # a -100 label is a row without target: weight 0, still counted in the mean over B
        ignored = model(**inputs, labels=torch.tensor([0, -100, 2])).loss
        weighted = model(**inputs, labels=torch.tensor([0, 1, 2]), answer_weights=torch.tensor([1.0, 0.0, 1.0])).loss
    torch.testing.assert_close(ignored, weighted)
    assert ignored > 0


# ---------------------------------------------------------------------------------------------------- loading


def test_clip_initialization_reproduces_clip_with_vts_off_and_no_mask():
    torch.manual_seed(0)
    clip_config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
                                   image_size=SIZE, patch_size=PATCH)  # fmt: skip
    clip = CLIPVisionModel(clip_config).eval()
    model = SmaugModel(SmaugModelTester.config()).eval()
    model.load_vision_encoder_from_clip(clip)
    pixels = torch.randn(2, 1, 3, SIZE, SIZE)
    with torch.no_grad():
        ours = model.vision_model(pixels, use_token_sparsification=False)
        theirs = clip(pixel_values=pixels[:, 0])
    torch.testing.assert_close(ours.pooler_output[:, 0], theirs.pooler_output, rtol=0, atol=1e-5)
    normed = getattr(clip, "vision_model", clip).post_layernorm(theirs.last_hidden_state)
    torch.testing.assert_close(ours.last_hidden_state[:, 0], normed, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="hidden_size"):
        SmaugModel(SmaugModelTester.config(vision=dict(hidden_size=64))).load_vision_encoder_from_clip(clip)


def test_bert_splits_into_the_text_and_multimodal_encoders():
    torch.manual_seed(0)
    config = SmaugModelTester.config()
    bert = BertModel(config.text_config, add_pooling_layer=False)
    model = SmaugModel(config)
    model.load_text_encoder(bert)
    for index in range(2):
        assert torch.equal(model.text_model.encoder.layer[index].output.dense.weight,
                           bert.encoder.layer[index].output.dense.weight)  # fmt: skip
    assert torch.equal(model.multimodal_encoder.layer[0].attention.self.query.weight,
                       bert.encoder.layer[2].attention.self.query.weight)  # fmt: skip
    assert torch.equal(model.text_model.embeddings.word_embeddings.weight, bert.embeddings.word_embeddings.weight)
