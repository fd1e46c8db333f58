"""Fixtures of the training-spine tests: a tiny captioned corpus of real mp4 files and a small processor."""

from __future__ import annotations

import numpy as np
import pytest

from hf_videolang.processing_utils import VideoTextProcessor
from hf_videolang.video.writer import write_video

COLORS = {
    "red": (220, 30, 30),
    "green": (30, 200, 30),
    "blue": (30, 30, 220),
    "yellow": (230, 230, 30),
    "purple": (150, 30, 180),
    "orange": (240, 140, 20),
    "white": (235, 235, 235),
    "black": (15, 15, 15),
}


def square_frames(color: tuple[int, int, int], direction: str, num_frames: int = 8, size: int = 32) -> np.ndarray:
    """(T, size, size, 3) uint8: a coloured square crossing a grey background left-to-right or right-to-left."""
    frames = np.full((num_frames, size, size, 3), 110, dtype=np.uint8)
    side = size // 2
    for t in range(num_frames):
        x = int(t * (size - side) / (num_frames - 1))
        if direction == "left":
            x = size - side - x
        frames[t, 8 : 8 + side, x : x + side] = color
    return frames


@pytest.fixture(scope="session")
def square_corpus(tmp_path_factory) -> list[dict]:
    """8 captioned 32x32 mp4s (8 frames): ``[{"video": path, "caption": "the red square moves right"}, ...]``."""
    folder = tmp_path_factory.mktemp("square_corpus")
    rows = []
    for index, (name, color) in enumerate(COLORS.items()):
        direction = "right" if index % 2 == 0 else "left"
        path = write_video(folder / f"{name}.mp4", square_frames(color, direction), fps=8)
        rows.append({"video": path, "caption": f"the {name} square moves {direction}"})
    return rows


@pytest.fixture()
def small_processor(tiny_tokenizer) -> VideoTextProcessor:
    # No flips: the captions say "left" / "right".
    settings = dict(num_frames=4, image_size=32, patch_size=8, mask_ratio=0.5, max_length=12, mlm_probability=0.3)
    return VideoTextProcessor(tiny_tokenizer, flip_prob=0.0, **settings)
