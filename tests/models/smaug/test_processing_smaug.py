"""Tests of SmaugProcessor: Singularity's sampling, tube masks at 50 %, BERT MLM, and a batch the model reads."""

from __future__ import annotations

import torch

from hf_videolang.models.smaug import SmaugConfig, SmaugForPreTraining, SmaugProcessor
from hf_videolang.training import VideoTextCollator


def _tiny_config(vocab_size: int) -> SmaugConfig:
    vision = dict(image_size=32, patch_size=8, num_frames=4, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                  intermediate_size=64, sparsification_layers=[2, 3], temporal_num_hidden_layers=1,
                  decoder_hidden_size=16, decoder_num_attention_heads=2, decoder_intermediate_size=32,
                  decoder_num_hidden_layers=1)  # fmt: skip
    text = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=32)  # fmt: skip
    return SmaugConfig(vision_config=vision, text_config=text, num_text_layers=2, projection_dim=16,
                       selector_hidden_size=16, selector_intermediate_size=32)  # fmt: skip


def test_defaults_follow_the_paper_and_singularity(tiny_tokenizer):
    processor = SmaugProcessor(tiny_tokenizer)
    assert processor.num_frames == 4 and (processor.image_size, processor.patch_size, processor.tubelet_size) == (
        224, 16, 1)  # fmt: skip
    assert (processor.train_sampling, processor.eval_sampling) == ("random_segment", "uniform")
    assert (processor.mask_type, processor.mask_ratio) == ("tube", 0.5)
    assert (processor.text_masking, processor.mlm_probability, processor.max_length) == ("mlm", 0.15, 32)
    single = processor.with_num_frames(1)
    assert single.num_frames == 1 and processor.num_frames == 4


def test_tube_masks_repeat_the_same_positions_in_every_frame(tiny_tokenizer, small_video):
    processor = SmaugProcessor(tiny_tokenizer, image_size=32, patch_size=8)
    batch = processor(videos=[small_video[0]] * 3, training=True, return_masks=True,
                      generator=torch.Generator().manual_seed(0))  # fmt: skip
    masks = batch["bool_masked_pos"].view(3, 4, 16)
    assert (masks.sum(-1) == 8).all()  # 50 % of 16
    assert (masks == masks[:, :1]).all()
    assert not torch.equal(masks[0], masks[1])


def test_training_samples_randomly_and_evaluation_uniformly(tiny_tokenizer, small_video):
    processor = SmaugProcessor(tiny_tokenizer, image_size=32, patch_size=8, train_augment=False)
    path = small_video[0]
    eval_a = processor(videos=[path], training=False)["pixel_values"]
    eval_b = processor(videos=[path], training=False)["pixel_values"]
    assert torch.equal(eval_a, eval_b)
    draws = [processor(videos=[path], training=True, generator=torch.Generator().manual_seed(s))["pixel_values"]
             for s in range(4)]  # fmt: skip
    assert any(not torch.equal(draws[0], d) for d in draws[1:])


def test_collated_batch_runs_the_pretraining_model(tiny_tokenizer, small_video):
    processor = SmaugProcessor(tiny_tokenizer, image_size=32, patch_size=8)
    config = _tiny_config(tiny_tokenizer.vocab_size)
    assert SmaugProcessor.from_config(config, tiny_tokenizer).mask_ratio == 0.5
    collator = VideoTextCollator(processor, task="pretrain")
    batch = collator([{"video": small_video[0], "caption": "a red square moves right"},
                      {"video": small_video[0], "caption": "the blue circle stops"}])  # fmt: skip
    assert {"pixel_values", "input_ids", "bool_masked_pos", "mlm_input_ids", "mlm_labels"} <= set(batch)
    torch.manual_seed(0)
    model = SmaugForPreTraining(config).train()
    out = model(**{k: v for k, v in batch.items() if k in (
        "pixel_values", "input_ids", "attention_mask", "bool_masked_pos", "mlm_input_ids", "mlm_labels")})  # fmt: skip
    assert out.loss_mvm is not None and torch.isfinite(out.loss)


def test_save_and_load_round_trip(tiny_tokenizer, tmp_path):
    processor = SmaugProcessor(tiny_tokenizer, num_frames=1, mask_ratio=0.65)
    processor.save_pretrained(tmp_path)
    loaded = SmaugProcessor.from_pretrained(tmp_path)
    assert (loaded.num_frames, loaded.mask_ratio, loaded.mask_type) == (1, 0.65, "tube")


def test_model_card_renders_with_its_deviations_and_no_numbers():
    from hf_videolang.hub.model_card import render_model_card

    card = render_model_card("smaug-b16")
    assert "smaug" in card.data.tags and card.data.license == "apache-2.0"
    assert "## Deviations" in card.text and "model-index" not in str(card)
