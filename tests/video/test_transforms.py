"""Tests of hf_videolang.video.transforms: pixel values, sizes, determinism and temporal consistency."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hf_videolang.video.transforms import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    VideoTransform,
    center_crop,
    crop,
    horizontal_flip,
    normalize,
    random_horizontal_flip,
    random_resized_crop,
    resize,
    resize_longer_and_pad,
    resize_short_side,
    sample_crop_box,
    to_tchw,
)


def random_video(num_frames: int = 3, height: int = 12, width: int = 16, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (num_frames, 3, height, width), dtype=torch.uint8, generator=generator)


def coordinate_video(height: int, width: int) -> torch.Tensor:
    """(1, 3, H, W) uint8 whose channel 0 is the row index, channel 1 the column index, channel 2 their sum."""
    rows = torch.arange(height).view(height, 1).expand(height, width)
    cols = torch.arange(width).view(1, width).expand(height, width)
    return torch.stack([rows, cols, rows + cols]).unsqueeze(0).to(torch.uint8)


# ---------------------------------------------------------------------------------------------------- layout


def test_to_tchw_accepts_channels_last_numpy_and_channels_first_tensor():
    frames = np.random.default_rng(0).integers(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    video = to_tchw(frames)
    assert video.shape == (2, 3, 5, 7)
    assert torch.equal(video[1, 2], torch.from_numpy(frames[1, :, :, 2]))
    assert to_tchw(video) is video
    assert to_tchw(frames[0]).shape == (1, 3, 5, 7)  # one image is a one-frame video
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        to_tchw(np.zeros((2, 5, 7, 4), dtype=np.uint8))


# ---------------------------------------------------------------------------------------------------- resize


def test_resize_exact_size_and_constant_video_keeps_its_value():
    video = torch.full((2, 3, 12, 16), 137, dtype=torch.uint8)
    out = resize(video, (5, 9))
    assert out.shape == (2, 3, 5, 9) and out.dtype == torch.uint8
    assert (out == 137).all()
    assert resize(video, 7).shape == (2, 3, 7, 7)


def test_resize_uint8_is_rounded_float_resize():
    video = random_video()
    as_uint8 = resize(video, (7, 10))
    as_float = resize(video.float(), (7, 10))
    assert as_float.dtype == torch.float32
    assert torch.equal(as_uint8, as_float.round().clamp(0, 255).to(torch.uint8))
    # Antialiased downscaling averages: the result lies inside the input's range and is smoother than the input.
    assert as_float.std() < video.float().std()


@pytest.mark.parametrize(("height", "width", "expected"), [(12, 16, (6, 8)), (16, 12, (8, 6)), (10, 25, (6, 15))])
def test_resize_short_side_keeps_aspect_ratio(height, width, expected):
    out = resize_short_side(random_video(height=height, width=width), 6)
    assert tuple(out.shape[-2:]) == expected


# ---------------------------------------------------------------------------------------------------- crops and flips


def test_center_crop_picks_the_central_pixels():
    video = coordinate_video(6, 8)
    out = center_crop(video, 4)
    assert torch.equal(out[0, 0, :, 0], torch.arange(1, 5, dtype=torch.uint8))  # rows 1..4
    assert torch.equal(out[0, 1, 0, :], torch.arange(2, 6, dtype=torch.uint8))  # cols 2..5
    # Odd margins leave the extra pixel at the bottom/right.
    odd = center_crop(coordinate_video(5, 6), (2, 3))
    assert odd[0, 0, 0, 0] == 1 and odd[0, 1, 0, 0] == 1
    with pytest.raises(ValueError, match="larger than"):
        center_crop(video, 7)


def test_horizontal_flip_mirrors_columns_and_twice_is_identity():
    video = random_video()
    flipped = horizontal_flip(video)
    assert torch.equal(flipped[..., 0], video[..., -1])
    assert torch.equal(flipped[..., 5], video[..., 16 - 1 - 5])
    assert not torch.equal(flipped, video)
    assert torch.equal(horizontal_flip(flipped), video)


def test_random_horizontal_flip_extremes_and_frequency():
    video = random_video()
    generator = torch.Generator().manual_seed(0)
    assert torch.equal(random_horizontal_flip(video, p=0.0, generator=generator), video)
    assert torch.equal(random_horizontal_flip(video, p=1.0, generator=generator), horizontal_flip(video))
    flips = sum(
        not torch.equal(random_horizontal_flip(video, p=0.5, generator=generator), video) for _ in range(400)
    )
    assert 150 < flips < 250


def test_crop_box_respects_scale_ratio_and_frame():
    generator = torch.Generator().manual_seed(0)
    boxes = [sample_crop_box(60, 80, scale=(0.3, 0.6), ratio=(0.75, 1.33), generator=generator) for _ in range(200)]
    for top, left, box_h, box_w in boxes:
        assert 0 <= top <= 60 - box_h and 0 <= left <= 80 - box_w
        # Rounding the sides to integers moves the area and the ratio a little.
        assert 0.27 <= box_h * box_w / (60 * 80) <= 0.64
        assert 0.7 <= box_w / box_h <= 1.42
    assert len({box[:2] for box in boxes}) > 50  # positions vary
    assert len({box[2:] for box in boxes}) > 20  # sizes vary


def test_crop_box_fallback_is_central_and_within_ratio():
    # A 10x100 strip cannot hold a box with a ratio in (0.9, 1.1) of at least 80 % of its area: fallback.
    top, left, box_h, box_w = sample_crop_box(10, 100, scale=(0.8, 1.0), ratio=(0.9, 1.1))
    assert (top, box_h) == (0, 10)
    assert box_w == 11 and left == (100 - 11) // 2


def test_random_resized_crop_is_seeded_and_shared_by_all_frames():
    video = random_video(num_frames=4, height=24, width=32)
    out_a = random_resized_crop(video, 8, scale=(0.2, 0.6), generator=torch.Generator().manual_seed(3))
    out_b = random_resized_crop(video, 8, scale=(0.2, 0.6), generator=torch.Generator().manual_seed(3))
    assert out_a.shape == (4, 3, 8, 8) and out_a.dtype == torch.uint8
    assert torch.equal(out_a, out_b)
    outputs = {
        random_resized_crop(video, 8, scale=(0.2, 0.6), generator=torch.Generator().manual_seed(seed)).sum().item()
        for seed in range(6)
    }
    assert len(outputs) > 1

    # The output is exactly the resized box that the same seed draws, for every frame.
    box = sample_crop_box(24, 32, scale=(0.2, 0.6), generator=torch.Generator().manual_seed(3))
    assert torch.equal(out_a, resize(crop(video, *box), 8))

    # Frames that are equal before the crop are equal after it (one box for the whole clip).
    still = video[:1].expand(5, -1, -1, -1)
    out = random_resized_crop(still, 8, scale=(0.2, 0.6), generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(out[t], out[0]) for t in range(5))


# ---------------------------------------------------------------------------------------------------- ClipBERT pad


@pytest.mark.parametrize(("height", "width", "content"), [(64, 96, (32, 48)), (96, 64, (48, 32)), (48, 48, (48, 48))])
def test_resize_longer_and_pad_keeps_content_top_left_and_zeros_elsewhere(height, width, content):
    video = torch.randint(1, 256, (2, 3, height, width), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    out = resize_longer_and_pad(video, 48)
    assert out.shape == (2, 3, 48, 48)
    content_h, content_w = content
    assert torch.equal(out[..., :content_h, :content_w], resize(video, content))
    assert (out[..., content_h:, :] == 0).all()
    assert (out[..., :, content_w:] == 0).all()
    assert (out[..., :content_h, :content_w] > 0).all()  # antialiasing of values >= 1 never produces 0


def test_resize_longer_and_pad_on_real_frames(small_video):
    _, frames = small_video  # (24, 64, 96, 3): landscape, the square moves right
    out = resize_longer_and_pad(to_tchw(frames), 48)
    assert (out[..., 32:, :] == 0).all()
    # The red square of the last frame is near the right edge of the content, as in the source.
    red = (out[-1, 0].int() - out[-1, 1].int()) > 100
    columns = red.any(dim=0).nonzero().flatten()
    assert columns.max() >= 44 and columns.min() >= 36


# ---------------------------------------------------------------------------------------------------- normalize


def test_normalize_values():
    mean_video = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    assert torch.allclose(normalize(mean_video, IMAGENET_MEAN, IMAGENET_STD), torch.zeros(2, 3, 4, 4), atol=1e-6)
    white = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalize(white, CLIP_MEAN, CLIP_STD)
    assert out.dtype == torch.float32
    expected = (1 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    assert torch.allclose(out[0, :, 1, 1], expected)
    black = normalize(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), IMAGENET_MEAN, IMAGENET_STD)
    assert torch.allclose(black[0, :, 0, 0], -torch.tensor(IMAGENET_MEAN) / torch.tensor(IMAGENET_STD))
    with pytest.raises(ValueError, match="one per channel"):
        normalize(white, (0.5, 0.5), (0.5, 0.5))
    with pytest.raises(ValueError, match="positive"):
        normalize(white, (0.5,) * 3, (0.5, 0.0, 0.5))


# ---------------------------------------------------------------------------------------------------- VideoTransform


@pytest.mark.parametrize("mode", ["crop", "pad"])
@pytest.mark.parametrize("training", [False, True])
def test_video_transform_output_size_and_dtype(mode, training):
    frames = np.random.default_rng(0).integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    out = VideoTransform(16, mode=mode)(frames, training=training, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 3, 16, 16)
    assert out.dtype == torch.float32 and out.is_contiguous()


def test_video_transform_eval_is_resize_center_crop_normalize():
    video = random_video(height=20, width=30)
    transform = VideoTransform(16, mean=CLIP_MEAN, std=CLIP_STD)
    expected = normalize(center_crop(resize_short_side(video, 16), 16), CLIP_MEAN, CLIP_STD)
    assert torch.equal(transform(video, training=False), expected)
    # Channels-last input gives the same result.
    assert torch.equal(transform(video.permute(0, 2, 3, 1).numpy(), training=False), expected)
    # Evaluation ignores the generator.
    assert torch.equal(transform(video, training=False, generator=torch.Generator().manual_seed(5)), expected)


def test_video_transform_training_is_seeded_and_temporally_consistent():
    transform = VideoTransform(8)
    video = random_video(num_frames=1, height=20, width=30).expand(4, -1, -1, -1)
    outputs = [transform(video, training=True, generator=torch.Generator().manual_seed(seed)) for seed in (0, 0, 1, 2)]
    assert torch.equal(outputs[0], outputs[1])
    assert not (torch.equal(outputs[0], outputs[2]) and torch.equal(outputs[0], outputs[3]))
    for out in outputs:
        assert all(torch.equal(out[t], out[0]) for t in range(4))


def test_video_transform_flip_only_when_training_with_augment():
    video = random_video(height=16, width=16)
    # With the full frame as the only possible crop, training = eval + flip.
    transform = VideoTransform(16, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=1.0)
    assert torch.equal(transform(video, training=True), horizontal_flip(transform(video, training=False)))
    no_augment = VideoTransform(16, train_augment=False, flip_prob=1.0)
    assert torch.equal(no_augment(video, training=True), no_augment(video, training=False))
    padded = VideoTransform(16, mode="pad", flip_prob=1.0)
    assert torch.equal(padded(video, training=True), horizontal_flip(padded(video, training=False)))


def test_video_transform_to_dict_round_trip_and_validation():
    transform = VideoTransform(32, mean=CLIP_MEAN, std=CLIP_STD, mode="pad", scale=(0.3, 0.9), flip_prob=0.0)
    settings = json.loads(json.dumps(transform.to_dict()))
    assert VideoTransform(**settings).to_dict() == transform.to_dict()
    assert settings["mode"] == "pad" and settings["flip_prob"] == 0.0
    with pytest.raises(ValueError, match="mode"):
        VideoTransform(32, mode="stretch")
    with pytest.raises(ValueError, match="3 values"):
        VideoTransform(32, mean=(0.5,))
    with pytest.raises(ValueError, match="scale"):
        VideoTransform(32, scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="uint8"):
        VideoTransform(32)(torch.zeros(2, 3, 8, 8))
