"""EvilmProcessor (E-ViLM §4.1: 4 frames of 256 px, block masks of 40 % on the 32 px regions, 15 % MLM) and the
vocabulary truncation of §4.1."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from hf_videolang.models.evilm import EvilmConfig, EvilmProcessor, truncate_vocabulary

CAPTIONS = ["a red circle moves left", "a red square moves right", "a red square stops", "a blue circle spins"]


def test_processor_defaults_follow_the_paper(tiny_tokenizer):
    processor = EvilmProcessor(tiny_tokenizer)
    settings = (processor.num_frames, processor.image_size, processor.mask_type, processor.mask_ratio)
    assert settings == (4, 256, "block", 0.4)
    assert processor.mlm_probability == 0.15
    config = EvilmConfig(image_size=128)
    assert EvilmProcessor.from_config(config, tiny_tokenizer).patch_size == config.video_stride == 32


def test_processor_makes_block_masks_on_the_video_grid(tiny_tokenizer):
    processor = EvilmProcessor(tiny_tokenizer, image_size=128)
    video = np.random.default_rng(0).integers(0, 255, (12, 90, 120, 3), dtype=np.uint8)
    batch = processor(videos=[video, video], text=["a red circle", "a square"], training=True, return_masks=True,
                      return_mlm=True, generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert batch["pixel_values"].shape == (2, 4, 3, 128, 128)
    per_frame = batch["bool_masked_pos"].reshape(2, 4, 16).sum(-1)
    assert (per_frame == round(0.4 * 16)).all()


def test_truncation_keeps_the_most_frequent_words_and_maps_the_rest_to_unk(tiny_tokenizer):
    result = truncate_vocabulary(tiny_tokenizer, CAPTIONS, keep_ratio=None, max_size=4)
    # counts: a 4, red 3, moves 2, circle 2, square 2, ...; ties broken by the original id
    kept = set(result.token_counts)
    assert {"a", "red"} <= kept and len(kept) == 4
    assert set(tiny_tokenizer.all_special_tokens) <= set(result.tokenizer.get_vocab())
    dropped = next(word for word in ("blue", "spins", "left", "stops") if word not in kept)
    assert result.tokenizer.tokenize(f"a red {dropped}") == ["a", "red", "[UNK]"]
    # kept ids point back at the original tokenizer's rows
    for token, new_id in result.tokenizer.get_vocab().items():
        assert tiny_tokenizer.convert_ids_to_tokens(result.kept_ids[new_id]) == token


def test_truncated_embeddings_are_the_kept_rows(tiny_tokenizer):
    result = truncate_vocabulary(tiny_tokenizer, CAPTIONS, keep_ratio=0.5)
    full = torch.nn.Embedding(len(tiny_tokenizer), 8)
    small = result.truncate_embeddings(full)
    assert small.weight.shape == (len(result.kept_ids), 8)
    assert torch.equal(small.weight, full.weight[torch.tensor(result.kept_ids)])


def test_truncation_refuses_a_non_wordpiece_tokenizer_and_bad_ratios(tiny_tokenizer):
    with pytest.raises(ValueError, match="keep_ratio"):
        truncate_vocabulary(tiny_tokenizer, CAPTIONS, keep_ratio=1.5)
    with pytest.raises(ValueError, match="give keep_ratio"):
        truncate_vocabulary(tiny_tokenizer, CAPTIONS, keep_ratio=None)


def test_truncated_tokenizer_saves_and_reloads(tmp_path, tiny_tokenizer):
    result = truncate_vocabulary(tiny_tokenizer, CAPTIONS, keep_ratio=1.0)
    result.tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again("a red square")["input_ids"] == result.tokenizer("a red square")["input_ids"]
