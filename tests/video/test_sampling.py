"""Frame samplers: positions, determinism under a torch.Generator, short-video policy, FrameSampler round trip."""

from __future__ import annotations

import json
import re

import pytest
import torch

from hf_videolang.errors import VideoTooShortError
from hf_videolang.video.io import VideoMetadata
from hf_videolang.video.sampling import (
    FrameSampler,
    sample_clips,
    sample_fps,
    sample_random_segment,
    sample_uniform,
)


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------------- uniform


def test_uniform_takes_the_middle_frame_of_equal_segments():
    assert sample_uniform(80, 8) == [5, 15, 25, 35, 45, 55, 65, 75]  # segments of 10 frames, middles at 5, 15, ...
    assert sample_uniform(10, 1) == [5]
    assert sample_uniform(8, 8) == list(range(8))


@pytest.mark.parametrize("total", [8, 9, 17, 100, 1001])
@pytest.mark.parametrize("count", [1, 3, 8])
def test_uniform_indices_are_sorted_distinct_and_in_range(total, count):
    indices = sample_uniform(total, count)
    assert len(indices) == count and indices == sorted(set(indices))
    assert 0 <= indices[0] and indices[-1] < total
    segment = total / count
    for k, index in enumerate(indices):  # the frame on screen at the middle of segment k
        assert index <= (k + 0.5) * segment < index + 1


# ------------------------------------------------------------------------------------------------ random segment


def test_random_segment_is_deterministic_per_seed_and_stays_in_its_segment():
    total, count = 100, 8
    first = sample_random_segment(total, count, _seeded(0))
    assert first == sample_random_segment(total, count, _seeded(0))
    draws = {tuple(sample_random_segment(total, count, _seeded(seed))) for seed in range(20)}
    assert len(draws) > 15  # different seeds give different indices
    for indices in draws:
        assert list(indices) == sorted(indices)
        for k, index in enumerate(indices):
            assert k * total // count <= index < (k + 1) * total // count


def test_random_segment_covers_every_frame_of_a_segment():
    seen = set()
    for seed in range(200):
        seen.update(sample_random_segment(12, 3, _seeded(seed)))
    assert seen == set(range(12))


def test_random_segment_uses_the_global_rng_without_a_generator():
    torch.manual_seed(3)
    first = sample_random_segment(1000, 4)
    torch.manual_seed(3)
    assert sample_random_segment(1000, 4) == first


# ------------------------------------------------------------------------------------------------------- clips


def test_clips_at_inference_are_evenly_spaced_one_second_windows():
    # 10 s at 10 fps, 5 clips of 2 frames: windows of 10 frames centred on the middles of 5 segments of 20 frames.
    clips = sample_clips(100, fps=10, num_clips=5, frames_per_clip=2, training=False)
    assert clips == [[7, 12], [27, 32], [47, 52], [67, 72], [87, 92]]
    # One clip is the middle clip of the video (ClipBERT §4.2 inference).
    assert sample_clips(100, fps=10, num_clips=1, frames_per_clip=2) == [[47, 52]]
    assert sample_clips(100, fps=10, num_clips=3, frames_per_clip=2, generator=_seeded(1)) == sample_clips(
        100, fps=10, num_clips=3, frames_per_clip=2, generator=_seeded(2)
    )


def test_clips_in_training_are_random_windows_of_clip_duration():
    kwargs = dict(fps=30, num_clips=4, frames_per_clip=3, clip_duration=1.0, training=True)
    clips = sample_clips(300, generator=_seeded(0), **kwargs)
    assert clips == sample_clips(300, generator=_seeded(0), **kwargs)
    assert clips != sample_clips(300, generator=_seeded(1), **kwargs)
    assert len(clips) == 4 and [clip[0] for clip in clips] == sorted(clip[0] for clip in clips)
    for clip in clips:
        assert len(clip) == 3 and clip == sorted(clip) and 0 <= clip[0] and clip[-1] < 300
        # Evenly spread inside a 30-frame (1 s) window: sub-segments of 10 frames, middles 5, 15, 25 from the start.
        start = clip[0] - 5
        assert clip == [start + 5, start + 15, start + 25]


def test_clip_windows_hold_consecutive_frames_when_the_window_is_that_short():
    assert sample_clips(40, fps=4, num_clips=1, frames_per_clip=4, clip_duration=1.0) == [[18, 19, 20, 21]]


def test_clips_longer_than_the_video_cover_the_whole_video():
    # 6 frames at 8 fps (0.75 s) with 1 s clips: each window is the whole video.
    assert sample_clips(6, fps=8, num_clips=2, frames_per_clip=3) == [[1, 3, 5], [1, 3, 5]]


# --------------------------------------------------------------------------------------------------------- fps


def test_fps_samples_at_the_target_rate_and_caps_at_max_frames():
    assert sample_fps(90, fps=30, target_fps=1) == [15, 45, 75]  # 3 s at 1 fps: the middle of each second
    assert sample_fps(300, fps=30, target_fps=2, max_frames=4) == sample_uniform(300, 4)  # 20 wanted, capped
    assert sample_fps(5, fps=30, target_fps=1) == [2]  # at least one frame
    with pytest.raises(VideoTooShortError, match="10 frames, fewer than the 20"):
        sample_fps(10, fps=5, target_fps=10)


# ----------------------------------------------------------------------------------------------- short videos


@pytest.mark.parametrize(
    "sampler",
    [
        lambda policy: sample_uniform(3, 8, short_video=policy, source="tiny.mp4"),
        lambda policy: sample_random_segment(3, 8, _seeded(0), short_video=policy, source="tiny.mp4"),
        lambda policy: sample_clips(3, 8, 2, 8, short_video=policy, source="tiny.mp4")[0],
    ],
    ids=["uniform", "random_segment", "clips"],
)
def test_short_video_policy(sampler):
    with pytest.raises(VideoTooShortError, match=r"tiny\.mp4 has 3 frames, fewer than the 8"):
        sampler("error")
    stretched = sampler("stretch")
    # Every frame used, in order, each about equally often: no silent repeat of frame 0.
    assert stretched == [0, 0, 0, 1, 1, 2, 2, 2]


@pytest.mark.parametrize("total, count", [(1, 4), (2, 5), (5, 16), (7, 8)])
def test_stretch_uses_every_frame_in_order(total, count):
    indices = sample_uniform(total, count, short_video="stretch")
    assert len(indices) == count and indices == sorted(indices) and set(indices) == set(range(total))
    uses = [indices.count(frame) for frame in range(total)]
    assert max(uses) - min(uses) <= 1


def test_a_video_without_frames_is_always_an_error():
    with pytest.raises(VideoTooShortError, match="clip.mp4 has no frames"):
        sample_uniform(0, 4, short_video="stretch", source="clip.mp4")


# ------------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: sample_uniform(10, 0), "num_frames must be a positive integer"),
        (lambda: sample_uniform(-1, 2), "num_frames_total must be a non-negative integer"),
        (lambda: sample_uniform(10, 2, short_video="repeat"), "short_video must be one of"),
        (lambda: sample_clips(10, 0, 1, 1), "fps must be a positive number"),
        (lambda: sample_clips(10, 8, 1, 1, clip_duration=-1), "clip_duration must be a positive number"),
        (lambda: sample_fps(10, 8, 1, max_frames=0), "max_frames must be a positive integer"),
        (lambda: FrameSampler("dense", 8), "strategy must be one of"),
        (lambda: FrameSampler("fps", 8), "strategy='fps' needs target_fps"),
        (lambda: FrameSampler("uniform", 8, num_clips=0), "num_clips must be a positive integer"),
    ],
)
def test_bad_arguments_get_clear_errors(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


# ---------------------------------------------------------------------------------------------- FrameSampler


def _metadata(num_frames: int, fps: float = 10.0, source: str = "clip.mp4") -> VideoMetadata:
    return VideoMetadata(num_frames, fps, num_frames / fps if fps else 0.0, 64, 48, source)


def test_frame_sampler_dispatches_to_the_sample_functions():
    metadata = _metadata(100)
    assert FrameSampler("uniform", 8)(metadata) == sample_uniform(100, 8)
    assert FrameSampler("uniform", 8)(100) == sample_uniform(100, 8)
    segment = FrameSampler("random_segment", 8)
    assert segment(metadata, training=True, generator=_seeded(4)) == sample_random_segment(100, 8, _seeded(4))
    # Evaluation mode is deterministic whatever the generator.
    assert segment(metadata, training=False, generator=_seeded(4)) == sample_uniform(100, 8)
    clips = FrameSampler("clips", 4, num_clips=2, frames_per_clip=2, clip_duration=1.0)
    assert clips(metadata, training=True, generator=_seeded(5)) == sample_clips(
        100, 10.0, 2, 2, 1.0, True, _seeded(5)
    )
    assert FrameSampler("fps", 4, target_fps=1.0)(metadata) == sample_fps(100, 10.0, 1.0, max_frames=4)


def test_frame_sampler_names_the_source_in_short_video_errors():
    with pytest.raises(VideoTooShortError, match=r"short\.mp4 has 2 frames, fewer than the 4"):
        FrameSampler("uniform", 4)(_metadata(2, source="short.mp4"))
    assert FrameSampler("uniform", 4, short_video="stretch")(_metadata(2)) == [0, 0, 1, 1]


def test_frame_sampler_needs_a_frame_rate_for_clips_and_fps():
    sampler = FrameSampler("clips", 2, num_clips=1, frames_per_clip=2)
    with pytest.raises(ValueError, match=r"needs the frame rate of <array>.*pass fps="):
        sampler(_metadata(20, fps=0.0, source="<array>"))
    assert sampler(_metadata(20, fps=0.0), fps=10) == sample_clips(20, 10, 1, 2)


def test_frame_sampler_round_trips_through_json():
    sampler = FrameSampler("clips", 8, num_clips=4, frames_per_clip=2, clip_duration=2.0, short_video="stretch")
    restored = FrameSampler.from_dict(json.loads(json.dumps(sampler.to_dict())))
    assert restored == sampler and restored is not sampler
    assert restored(_metadata(300), training=True, generator=_seeded(0)) == sampler(
        _metadata(300), training=True, generator=_seeded(0)
    )
    assert restored != FrameSampler("clips", 8, num_clips=4, frames_per_clip=2, clip_duration=1.0)
    with pytest.raises(ValueError, match=r"unknown FrameSampler settings \['num_frame'\]"):
        FrameSampler.from_dict({"strategy": "uniform", "num_frame": 8})
