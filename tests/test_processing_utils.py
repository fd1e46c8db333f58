"""Tests of VideoTextProcessor: outputs, masking, determinism, save/load round trip, subclass defaults."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from hf_videolang.errors import EmptyTextError
from hf_videolang.processing_utils import VideoTextProcessor
from hf_videolang.video.io import read_frames


def make_processor(tokenizer, **kwargs) -> VideoTextProcessor:
    settings = dict(num_frames=4, image_size=32, patch_size=8, mask_ratio=0.5, max_length=12, mlm_probability=0.5)
    settings.update(kwargs)
    return VideoTextProcessor(tokenizer, **settings)


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_outputs_shapes_dtypes_and_values(tiny_tokenizer, small_video):
    path, _ = small_video
    processor = make_processor(tiny_tokenizer)
    texts = ["a red square moves right", "the dog"]
    batch = processor(
        videos=[path, path], text=texts, training=True, return_masks=True, return_mlm=True, generator=seeded(0)
    )

    assert batch["pixel_values"].shape == (2, 4, 3, 32, 32)
    assert batch["pixel_values"].dtype == torch.float32
    # Normalized with ImageNet statistics: values leave [0, 1].
    assert batch["pixel_values"].min() < 0
    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["mlm_labels"].shape
    assert batch["input_ids"].shape == (2, 7)  # [CLS] + 5 words + [SEP], padded to the longest
    assert batch["attention_mask"][1].tolist() == [1, 1, 1, 1, 0, 0, 0]
    assert processor.decode(batch["input_ids"][0], skip_special_tokens=True) == texts[0]
    assert processor.batch_decode(batch["input_ids"], skip_special_tokens=True) == texts

    masks = batch["bool_masked_pos"]
    assert masks.dtype == torch.bool and masks.shape == (2, processor.num_visual_tokens) == (2, 4 * 16)
    # Tube masking: the same 8 of the 16 patches of every frame.
    per_frame = masks.view(2, 4, 16)
    assert (per_frame.sum(-1) == 8).all()
    assert (per_frame == per_frame[:, :1]).all()


def test_mlm_labels_mark_exactly_the_corrupted_positions(tiny_tokenizer):
    processor = make_processor(tiny_tokenizer, mlm_probability=0.5)
    texts = ["the red circle moves left then stops", "a dog"]
    batch = processor(text=texts, return_mlm=True, generator=seeded(3))
    ids, mlm_ids, labels = batch["input_ids"], batch["mlm_input_ids"], batch["mlm_labels"]
    selected = labels != -100
    assert selected.any()
    assert torch.equal(labels[selected], ids[selected])  # labels are the original tokens
    assert torch.equal(mlm_ids[~selected], ids[~selected])  # nothing else changes
    special = torch.isin(ids, torch.tensor(tiny_tokenizer.all_special_ids))
    assert not (selected & special).any()  # [CLS], [SEP], [PAD] are never selected


def test_eval_mode_is_deterministic_and_path_equals_decoded_frames(tiny_tokenizer, small_video):
    path, _ = small_video
    processor = make_processor(tiny_tokenizer)
    first = processor(videos=path)["pixel_values"]
    second = processor(videos=path)["pixel_values"]
    assert torch.equal(first, second)

    # The same frames, already decoded, go through the same sampling and transform.
    decoded = read_frames(path, list(range(24)))
    from_array = processor(videos=decoded)["pixel_values"]
    torch.testing.assert_close(from_array, first)
    indices = processor.sampler(training=False)(24)
    assert indices == [3, 9, 15, 21]  # middles of 4 equal segments of 24 frames
    torch.testing.assert_close(processor.transform(decoded[indices]).unsqueeze(0), first)
    # Encoded bytes and a list of PIL frames are single videos too.
    with open(path, "rb") as file:
        torch.testing.assert_close(processor(videos=file.read())["pixel_values"], first)
    torch.testing.assert_close(processor(videos=[Image.fromarray(frame) for frame in decoded])["pixel_values"], first)
    # A (B, T, H, W, 3) array is a batch of videos.
    assert processor(videos=np.stack([decoded, decoded]))["pixel_values"].shape == (2, 4, 3, 32, 32)


def test_training_randomness_follows_the_generator(tiny_tokenizer, small_video):
    path, _ = small_video
    processor = make_processor(tiny_tokenizer)

    def run(seed):
        return processor(
            videos=path, text="a dog", training=True, return_masks=True, return_mlm=True, generator=seeded(seed)
        )

    a, b, c = run(0), run(0), run(1)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not torch.equal(a["bool_masked_pos"], c["bool_masked_pos"])


def test_save_and_load_round_trip(tiny_tokenizer, small_video, tmp_path):
    path, _ = small_video
    processor = make_processor(tiny_tokenizer, text_masking="whole_word", short_video="stretch", num_frames=32)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["num_frames"] == 32 and saved["text_masking"] == "whole_word"
    # transformers' video-processor names; the attribute names are not saved twice.
    assert saved["image_mean"] == processor.mean and saved["image_std"] == processor.std
    assert saved["crop_size"] == {"height": 32, "width": 32} and saved["size"] == {"shortest_edge": 32}
    assert saved["do_sample_frames"] is True and saved["fps"] is None
    assert not {"mean", "std", "image_size", "target_fps"} & set(saved)
    assert saved["processor_class"] == "VideoTextProcessor"
    assert not any(key.startswith("_") for key in saved)  # helper objects are rebuilt, not saved

    loaded = VideoTextProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    assert loaded.tokenizer.get_vocab() == tiny_tokenizer.get_vocab()

    def run(p):
        texts = ["the red square moves", "a cat"]
        return p(videos=path, text=texts, training=True, return_masks=True, return_mlm=True, generator=seeded(7))

    original, reloaded = run(processor), run(loaded)
    assert original.keys() == reloaded.keys()
    for key in original:
        assert torch.equal(original[key], reloaded[key]), key
    # 24 frames stretched over 32 positions.
    assert original["pixel_values"].shape[1] == 32


class _ShortClipProcessor(VideoTextProcessor):
    num_frames = 2
    mask_ratio = 0.75
    image_size = 32
    patch_size = 8


def test_subclass_defaults_and_overrides(tiny_tokenizer, small_video, tmp_path):
    path, _ = small_video
    processor = _ShortClipProcessor(tiny_tokenizer)
    assert (processor.num_frames, processor.mask_ratio, processor.image_size) == (2, 0.75, 32)
    masks = processor(videos=path, return_masks=True, generator=seeded(0))["bool_masked_pos"]
    assert masks.shape == (1, 2 * 16) and masks.sum() == 2 * 12

    overridden = _ShortClipProcessor(tiny_tokenizer, num_frames=4)
    assert overridden.num_frames == 4 and overridden.mask_ratio == 0.75
    overridden.save_pretrained(tmp_path)
    assert _ShortClipProcessor.from_pretrained(tmp_path).num_frames == 4


@pytest.mark.parametrize("bad_text", ["", "   ", ["a dog", "\n"]])
def test_empty_text_raises(tiny_tokenizer, bad_text):
    with pytest.raises(EmptyTextError, match="empty"):
        make_processor(tiny_tokenizer)(text=bad_text)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"image_size": 30}, "multiple of patch_size"),
        ({"mask_ratio": 1.0}, "mask_ratio"),
        ({"text_masking": "span"}, "text_masking"),
        ({"short_video": "loop"}, "short_video"),
        ({"num_frames": 3, "tubelet_size": 2}, "tubelet_size"),
    ],
)
def test_invalid_settings_raise(tiny_tokenizer, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_processor(tiny_tokenizer, **kwargs)


def test_call_argument_errors(tiny_tokenizer):
    processor = make_processor(tiny_tokenizer)
    with pytest.raises(ValueError, match="videos, text"):
        processor()
    with pytest.raises(ValueError, match="return_masks"):
        processor(text="a dog", return_masks=True)
    with pytest.raises(ValueError, match="return_tensors"):
        processor(text="a dog", return_tensors="tf")
    semantic = make_processor(tiny_tokenizer, mask_type="semantic")
    assert not semantic.makes_visual_masks
    with pytest.raises(ValueError, match="inside the model"):
        semantic(videos=np.zeros((4, 32, 32, 3), np.uint8), return_masks=True)


def test_num_frames_per_call_and_do_sample_frames(tiny_tokenizer, small_video):
    processor = VideoTextProcessor(tiny_tokenizer, num_frames=4, image_size=32, patch_size=8)
    assert processor(small_video[0], num_frames=2)["pixel_values"].shape[1] == 2
    assert processor(small_video[0])["pixel_values"].shape[1] == 4  # the processor itself is unchanged
    # do_sample_frames=False keeps every frame given (they were sampled already), as transformers' processors do.
    _, frames = small_video
    kept = processor(frames[:6], do_sample_frames=False)["pixel_values"]
    assert kept.shape == (1, 6, 3, 32, 32)
    torch.testing.assert_close(kept[0], processor.transform(torch.from_numpy(frames[:6]), training=False))
    with pytest.raises(ValueError, match="equal length"):
        processor([frames[:6], frames[:5]], do_sample_frames=False)
    with pytest.raises(ValueError, match="masks for 4 frames"):
        processor(frames[:6], do_sample_frames=False, return_masks=True)


def test_tokenizer_arguments_pass_through(tiny_tokenizer):
    processor = make_processor(tiny_tokenizer)  # max_length 12
    texts = ["a red square moves right then stops", "a dog"]
    fixed = processor(text=texts, padding="max_length", max_length=10)
    assert fixed["input_ids"].shape == (2, 10) and fixed["attention_mask"][1].tolist() == [1] * 4 + [0] * 6
    cut = processor(text=texts, max_length=5)
    assert cut["input_ids"].shape == (2, 5) and cut["input_ids"][0, -1] == tiny_tokenizer.sep_token_id
    whole = processor(text=texts, truncation=False, max_length=5)
    assert whole["input_ids"].shape == (2, 9)  # [CLS] + 7 words + [SEP]: not truncated
    assert processor(text=texts)["input_ids"].shape == (2, 9)  # default: the longest text, up to 12


def test_numpy_outputs_equal_the_pytorch_ones(tiny_tokenizer, small_video):
    processor = make_processor(tiny_tokenizer)
    kwargs = dict(videos=small_video[0], text=["a red square", "a cat"], return_masks=True, return_mlm=True,
                  training=True)  # fmt: skip
    pt = processor(**kwargs, generator=seeded(4))
    np_batch = processor(**kwargs, generator=seeded(4), return_tensors="np")
    assert pt.keys() == np_batch.keys()
    for key in pt:
        assert isinstance(np_batch[key], np.ndarray), key
        np.testing.assert_array_equal(np_batch[key], pt[key].numpy())
    assert np_batch["bool_masked_pos"].dtype == np.bool_ and np_batch["input_ids"].dtype == np.int64


def test_transformers_names_are_aliases_and_old_saved_files_still_load(tiny_tokenizer, tmp_path):
    new = VideoTextProcessor(tiny_tokenizer, crop_size={"height": 32, "width": 32}, image_mean=[0.5, 0.5, 0.5],
                             image_std=[0.25, 0.25, 0.25], fps=2.0, patch_size=8)  # fmt: skip
    old = VideoTextProcessor(tiny_tokenizer, image_size=32, mean=[0.5] * 3, std=[0.25] * 3, target_fps=2.0,
                             patch_size=8)  # fmt: skip
    assert new.to_dict() == old.to_dict()
    assert (new.image_size, new.mean, new.target_fps) == (32, [0.5] * 3, 2.0)
    assert (new.crop_size, new.image_mean, new.fps) == ({"height": 32, "width": 32}, [0.5] * 3, 2.0)
    assert VideoTextProcessor(tiny_tokenizer, size={"shortest_edge": 32}, patch_size=8).image_size == 32
    assert VideoTextProcessor(tiny_tokenizer, image_size=32, patch_size=8, resize_mode="pad").size == {
        "longest_edge": 32
    }
    with pytest.raises(ValueError, match="disagree"):
        VideoTextProcessor(tiny_tokenizer, image_size=32, crop_size={"height": 64, "width": 64})
    with pytest.raises(ValueError, match="square"):
        VideoTextProcessor(tiny_tokenizer, crop_size={"height": 32, "width": 48})

    # A processor_config.json written before the rename (old names) loads with the same settings.
    old.save_pretrained(tmp_path)
    config_path = tmp_path / "processor_config.json"
    saved = json.loads(config_path.read_text())
    legacy = {key: value for key, value in saved.items() if key not in ("size", "crop_size", "image_mean",
                                                                        "image_std", "fps", "do_sample_frames")}
    legacy.update(image_size=32, mean=[0.5] * 3, std=[0.25] * 3, target_fps=2.0)
    config_path.write_text(json.dumps(legacy))
    assert VideoTextProcessor.from_pretrained(tmp_path).to_dict() == old.to_dict()


def test_transformers_video_metadata_round_trip():
    import subprocess
    import sys

    from transformers.video_utils import VideoMetadata as TransformersVideoMetadata

    from hf_videolang.video import from_transformers_video_metadata, to_transformers_video_metadata
    from hf_videolang.video.io import VideoMetadata

    ours = VideoMetadata(num_frames=24, fps=8.0, duration=3.0, width=96, height=64, source="clip.mp4")
    theirs = to_transformers_video_metadata(ours)
    assert isinstance(theirs, TransformersVideoMetadata)
    assert (theirs.total_num_frames, theirs.fps, theirs.duration, theirs.width, theirs.height) == (24, 8.0, 3.0, 96, 64)
    assert theirs.video_backend == "pyav"
    assert from_transformers_video_metadata(theirs, source="clip.mp4") == ours
    # transformers' fields that may be None read as "unknown" (0), as our decoded-frame metadata writes them.
    sparse = from_transformers_video_metadata(TransformersVideoMetadata(total_num_frames=5))
    assert (sparse.num_frames, sparse.fps, sparse.duration, sparse.source) == (5, 0.0, 0.0, "<transformers metadata>")
    # transformers.video_utils loads without torchvision (which does not load with the CPU torch here).
    code = "import sys, transformers.video_utils; print('torchvision' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
