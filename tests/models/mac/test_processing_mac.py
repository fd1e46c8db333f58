"""Tests of MacProcessor: MAC defaults, per-frame random masks, whole-word [MASK]-only text masking, collation."""

from __future__ import annotations

import torch

from hf_videolang.models.mac import MacConfig, MacForVideoTextRetrieval, MacProcessor
from hf_videolang.training import VideoTextCollator


def _tiny_config(vocab_size: int = 100, **overrides) -> MacConfig:
    """Video encoder of width 32 (2 blocks, 2 frames of 32 px, patch 8), 1-layer DistilBERT of width 32."""
    vision = dict(image_size=32, patch_size=8, num_frames=2, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64, drop_path_rate=0.0)  # fmt: skip
    text = dict(vocab_size=vocab_size, dim=32, n_layers=1, n_heads=4, hidden_dim=64, max_position_embeddings=32)
    return MacConfig(vision_config=vision, text_config=text, projection_dim=16, **overrides)


def test_defaults_follow_the_paper(tiny_tokenizer):
    processor = MacProcessor(tiny_tokenizer)
    assert processor.num_frames == 4 and (processor.image_size, processor.patch_size) == (224, 16)
    assert (processor.train_sampling, processor.eval_sampling) == ("random_segment", "uniform")
    assert (processor.mask_type, processor.mask_ratio) == ("random", 0.6)
    assert (processor.text_masking, processor.mlm_probability, processor.max_length) == ("whole_word", 0.15, 128)
    image = processor.with_num_frames(1)
    assert image.num_frames == 1 and image.num_visual_tokens == 196 and processor.num_frames == 4


def test_from_config_matches_the_model(tiny_tokenizer):
    config = _tiny_config(video_mask_ratio=0.5, text_mask_ratio=0.3, max_text_length=16)
    processor = MacProcessor.from_config(config, tiny_tokenizer, flip_prob=0.0)
    assert (processor.num_frames, processor.image_size, processor.patch_size) == (2, 32, 8)
    assert (processor.mask_ratio, processor.mlm_probability, processor.max_length) == (0.5, 0.3, 16)
    assert processor.flip_prob == 0.0
    preset = MacProcessor.from_config(MacConfig.from_preset("mac-b16"), tiny_tokenizer)
    assert (preset.num_frames, preset.image_size, preset.mask_ratio) == (4, 224, 0.6)


def test_random_masks_have_equal_counts_per_frame_and_differ_across_frames(tiny_tokenizer, small_video):
    processor = MacProcessor(tiny_tokenizer, image_size=32, patch_size=8)
    batch = processor(videos=[small_video[0]] * 3, training=True, return_masks=True,
                      generator=torch.Generator().manual_seed(0))  # fmt: skip
    masks = batch["bool_masked_pos"].view(3, 4, 16)
    assert (masks.sum(-1) == round(0.6 * 16)).all()  # 10 of 16 per frame
    for sample in masks:
        assert len({tuple(frame.tolist()) for frame in sample}) > 1  # not a tube: frames differ
    assert not torch.equal(masks[0], masks[1])


def test_whole_word_masking_never_splits_a_word_and_uses_only_mask(tiny_tokenizer):
    processor = MacProcessor(tiny_tokenizer, image_size=32, patch_size=8, mlm_probability=0.3)
    texts = ["the circles and squares moves", "unable colours stops", "a dog is playing with balls"] * 40
    batch = processor(text=texts, return_mlm=True, generator=torch.Generator().manual_seed(0))
    ids, masked = batch["input_ids"], batch["mlm_input_ids"]
    mask_id = tiny_tokenizer.mask_token_id
    changed = masked != ids
    assert torch.equal(masked[changed], torch.full((int(changed.sum()),), mask_id))  # [MASK] only
    encoding = tiny_tokenizer(texts, padding="longest")
    split_words_masked = 0
    for row in range(len(texts)):
        word_ids = encoding.word_ids(row)
        assert word_ids[0] is None and not changed[row, 0]  # [CLS] stays
        for word in set(w for w in word_ids if w is not None):
            positions = [i for i, w in enumerate(word_ids) if w == word]
            states = {bool(changed[row, i]) for i in positions}
            assert len(states) == 1, (texts[row], word)  # all sub-tokens masked, or none
            split_words_masked += len(positions) > 1 and states == {True}
        assert not changed[row][torch.tensor([w is None for w in word_ids])].any()  # specials and padding
    assert split_words_masked > 0  # multi-piece words ("circle ##s", "un ##able") were masked whole
    rate = changed.any(dim=1).float().mean()
    assert 0.5 < rate < 1.0  # ~1 - 0.7**5 of the rows have a masked word


def test_collator_gives_masked_views_in_training_and_clean_inputs_at_evaluation(tiny_tokenizer, small_video):
    processor = MacProcessor(tiny_tokenizer, image_size=32, patch_size=8, num_frames=2, mlm_probability=0.5)
    rows = [{"video": small_video[0], "caption": "the red square moves right"}] * 3
    train = VideoTextCollator(processor, task="pretrain", training=True, seed=0)(rows)
    assert {"bool_masked_pos", "mlm_input_ids", "mlm_labels"} <= set(train)
    evaluation = VideoTextCollator(processor, task="pretrain", training=False)(rows)
    assert not {"bool_masked_pos", "mlm_input_ids"} & set(evaluation)

    torch.manual_seed(0)
    model = MacForVideoTextRetrieval(_tiny_config(len(tiny_tokenizer))).eval()  # no dropout
    out = model(**train)
    assert torch.isfinite(out.loss)
    with torch.no_grad():
        expected = model.get_text_features(train["mlm_input_ids"], train["attention_mask"])
    assert torch.allclose(out.text_embeds, expected, atol=1e-6)


def test_save_and_load_round_trip(tmp_path, tiny_tokenizer, small_video):
    processor = MacProcessor(tiny_tokenizer, image_size=32, patch_size=8, num_frames=2)
    processor.save_pretrained(tmp_path)
    loaded = MacProcessor.from_pretrained(tmp_path)
    for name in MacProcessor._SETTING_NAMES:
        assert getattr(loaded, name) == getattr(processor, name), name
    a = processor(videos=small_video[0], text="a cat", training=True, return_masks=True, return_mlm=True,
                  generator=torch.Generator().manual_seed(3))  # fmt: skip
    b = loaded(videos=small_video[0], text="a cat", training=True, return_masks=True, return_mlm=True,
               generator=torch.Generator().manual_seed(3))  # fmt: skip
    for key in a:
        assert torch.equal(a[key], b[key]), key
