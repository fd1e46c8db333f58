"""Shared test fixtures: tiny tokenizer and small real videos, all built in code (no Hub access)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_WORDS = (
    "the a an is what of in on to and man woman dog cat red green blue yellow purple orange white black "
    "circle square triangle moves left right up down stops changes color colour shape which direction does "
    "first then after before doing running playing video clip ball small big ##s ##ing ##ed un ##able"
).split()


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """A real BERT WordPiece tokenizer (uncased) over a ~60-word vocabulary."""
    from transformers import BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_tokenizer")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS, "?", ".", ","]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # transformers 5 reads a WordPiece vocabulary file through `vocab=` (`vocab_file=` is ignored there).
    return BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)


def make_moving_square_frames(num_frames: int = 24, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of a square moving right: frame t differs from frame t+1."""
    rng = np.random.default_rng(seed)
    frames = np.zeros((num_frames, height, width, 3), dtype=np.uint8)
    frames[:] = rng.integers(0, 60, size=3, dtype=np.uint8)
    side = height // 4
    for t in range(num_frames):
        x = int(t * (width - side) / max(num_frames - 1, 1))
        frames[t, height // 3 : height // 3 + side, x : x + side] = (220, 40, 40)
    return frames


@pytest.fixture(scope="session")
def small_video(tmp_path_factory):
    """Path of a 24-frame 96x64 H.264 mp4 at 8 fps (3 s) and its source frames."""
    from hf_videolang.video.writer import write_video

    frames = make_moving_square_frames()
    path = tmp_path_factory.mktemp("videos") / "square.mp4"
    write_video(path, frames, fps=8)
    return str(path), frames


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: optional long test (torch.compile with inductor, ...); run with RUN_SLOW=1"
    )


def pytest_collection_modifyitems(config, items):
    """Skip `@pytest.mark.slow` tests unless RUN_SLOW=1, so that the default suite stays fast."""
    if os.environ.get("RUN_SLOW", "").lower() in ("1", "true", "yes"):
        return
    skip = pytest.mark.skip(reason="slow test: set RUN_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
