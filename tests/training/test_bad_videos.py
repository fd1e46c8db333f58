"""on_bad_video: a corrupt file in the middle of a 2-worker DataLoader stops the run by default, or is skipped."""

from __future__ import annotations

import logging

import pytest
import torch
from torch.utils.data import DataLoader

from hf_videolang.errors import VideoDecodeError
from hf_videolang.training import VideoTextCollator


@pytest.fixture()
def rows_with_a_corrupt_video(square_corpus, tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    data = open(square_corpus[0]["video"], "rb").read()
    corrupt.write_bytes(data[: len(data) // 3])  # the index (moov, written last) is gone
    rows = [dict(row) for row in square_corpus]
    rows[5] = {"video": str(corrupt), "caption": "a broken file"}
    return rows, str(corrupt)


def test_default_raises_naming_the_file(small_processor, rows_with_a_corrupt_video):
    rows, corrupt = rows_with_a_corrupt_video
    loader = DataLoader(rows, batch_size=2, num_workers=2, collate_fn=VideoTextCollator(small_processor, seed=0))
    with pytest.raises(VideoDecodeError, match=corrupt):
        list(loader)


def test_skip_replaces_the_bad_row_and_counts_it_across_workers(small_processor, rows_with_a_corrupt_video, caplog):
    rows, corrupt = rows_with_a_corrupt_video
    collator = VideoTextCollator(small_processor, seed=0, training=False, on_bad_video="skip")
    loader = DataLoader(rows, batch_size=2, num_workers=2, collate_fn=collator)
    batches = list(loader)
    assert len(batches) == 4 and all(batch["pixel_values"].shape[0] == 2 for batch in batches)
    assert collator.num_skipped == 1  # counted in a worker, seen here
    # Batch 2 held rows 4 and 5; row 5 (corrupt) became a copy of row 4, video and caption.
    reference = VideoTextCollator(small_processor, seed=0, training=False)([rows[4], rows[4]])
    for key in ("pixel_values", "input_ids"):
        assert torch.equal(batches[2][key], reference[key]), key
    first, second = batches[2]["video_ids"].tolist()
    assert first == second  # one video: not a negative of itself
    # The other batches are untouched.
    clean = VideoTextCollator(small_processor, seed=0, training=False)(rows[:2])
    assert torch.equal(batches[0]["pixel_values"], clean["pixel_values"])
    # In the main process the warning names the file.
    with caplog.at_level(logging.WARNING, logger="hf_videolang.training.collator"):
        collator(rows[4:6])
    assert corrupt in caplog.text and "using row 0 instead" in caplog.text
    assert collator.num_skipped == 2


def test_skip_in_training_and_a_batch_of_only_bad_videos_raises(small_processor, rows_with_a_corrupt_video):
    rows, corrupt = rows_with_a_corrupt_video
    collator = VideoTextCollator(small_processor, seed=0, on_bad_video="skip")
    assert collator(rows[4:6])["pixel_values"].shape[0] == 2
    with pytest.raises(VideoDecodeError, match=corrupt):
        collator([rows[5], rows[5]])
    with pytest.raises(ValueError, match=r"on_bad_video must be one of \('raise', 'skip'\)"):
        VideoTextCollator(small_processor, on_bad_video="ignore")
