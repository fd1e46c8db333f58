"""Tests of UmtProcessor: UMT defaults, sampling modes, masks, MLM and save/load."""

from __future__ import annotations

import torch

from hf_videolang.models.umt import UmtProcessor


def test_defaults_follow_the_paper(tiny_tokenizer):
    processor = UmtProcessor(tiny_tokenizer)
    assert processor.num_frames == 4 and processor.frames_per_video == 4  # stage 2 (§4.1)
    assert (processor.train_sampling, processor.eval_sampling) == ("random_segment", "uniform")
    assert processor.mask_ratio == 0.8 and processor.mlm_probability == 0.5
    assert (processor.image_size, processor.patch_size, processor.tubelet_size) == (224, 16, 1)
    assert processor.mask_type == "semantic" and not processor.makes_visual_masks  # drawn by the model
    assert processor.with_num_frames(8).num_frames == 8 and processor.num_frames == 4  # stage 1, a copy


def test_eval_is_uniform_and_training_is_random_per_segment(tiny_tokenizer, small_video):
    path, frames = small_video
    processor = UmtProcessor(tiny_tokenizer, image_size=32, patch_size=8)
    assert processor.sampler(training=False)(24) == [3, 9, 15, 21]  # middle of 4 segments of 6 frames
    sampler = processor.sampler(training=True)
    draws = {tuple(sampler(24, training=True, generator=torch.Generator().manual_seed(s))) for s in range(8)}
    assert len(draws) > 1
    for draw in draws:
        assert [index // 6 for index in draw] == [0, 1, 2, 3]  # one frame in each segment
    batch = processor(videos=path, text="a red square moves right")
    assert batch["pixel_values"].shape == (1, 4, 3, 32, 32)
    assert batch["input_ids"][0, 0] == tiny_tokenizer.cls_token_id


def test_random_masks_mask_80_percent_of_each_frame(tiny_tokenizer, small_video):
    processor = UmtProcessor(tiny_tokenizer, image_size=32, patch_size=8, mask_type="random")
    batch = processor(videos=[small_video[0]] * 2, training=True, return_masks=True,
                      generator=torch.Generator().manual_seed(0))  # fmt: skip
    masks = batch["bool_masked_pos"].view(2, 4, 16)
    assert (masks.sum(-1) == round(0.8 * 16)).all()


def test_num_frames_argument_as_transformers_video_processors(tiny_tokenizer, small_video):
    processor = UmtProcessor(tiny_tokenizer, image_size=32, patch_size=8)
    assert processor(small_video[0], num_frames=2, do_sample_frames=True)["pixel_values"].shape[1] == 2


def test_save_and_load_round_trip(tmp_path, tiny_tokenizer, small_video):
    processor = UmtProcessor(tiny_tokenizer, image_size=32, patch_size=8, num_frames=8, mask_type="tube")
    processor.save_pretrained(tmp_path)
    loaded = UmtProcessor.from_pretrained(tmp_path)
    for name in UmtProcessor._SETTING_NAMES:
        assert getattr(loaded, name) == getattr(processor, name), name
    generator = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = processor(videos=small_video[0], text="a cat", training=True, return_masks=True, return_mlm=True,
                  generator=generator())  # fmt: skip
    b = loaded(videos=small_video[0], text="a cat", training=True, return_masks=True, return_mlm=True,
               generator=generator())  # fmt: skip
    for key in a:
        assert torch.equal(a[key], b[key]), key
