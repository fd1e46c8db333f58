"""MatchingPairsCollator: each video with its own caption (label 1) and negatives from other videos (label 0)."""

from __future__ import annotations

import pytest
import torch

from hf_videolang.training import MatchingPairsCollator


class _StubRetrievalCollator:
    """Stands in for a VideoTextCollator(task="retrieval"): video i's frames are filled with i, caption i is [i]."""

    task = "retrieval"

    def next_generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(0)

    def __call__(self, rows):
        ids = [row["video_id"] for row in rows]
        return {"pixel_values": torch.tensor(ids, dtype=torch.float)[:, None, None].expand(-1, 2, 3).clone(),
                "input_ids": torch.tensor(ids)[:, None], "attention_mask": torch.ones(len(rows), 1, dtype=torch.long),
                "video_ids": torch.tensor(ids)}  # fmt: skip


def test_each_video_gets_its_caption_then_negatives_of_other_videos():
    rows = [{"video_id": v} for v in (0, 1, 1, 2)]  # rows 1 and 2 show the same video
    batch = MatchingPairsCollator(_StubRetrievalCollator(), num_negatives=2)(rows)
    assert batch["labels"].tolist() == [1, 0, 0] * 4
    assert batch["pixel_values"].shape == (12, 2, 3)
    video = batch["pixel_values"][:, 0, 0].long()
    caption = batch["input_ids"][:, 0]
    assert video.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2]
    positives, negatives = batch["labels"] == 1, batch["labels"] == 0
    assert torch.equal(caption[positives], video[positives])
    assert (caption[negatives] != video[negatives]).all()  # never a caption of the same video
    assert torch.equal(batch["video_ids"], video)


def test_refuses_a_batch_of_one_video_and_other_tasks():
    with pytest.raises(ValueError, match="same video"):
        MatchingPairsCollator(_StubRetrievalCollator())([{"video_id": 3}, {"video_id": 3}])
    stub = _StubRetrievalCollator()
    stub.task = "qa"
    with pytest.raises(ValueError, match="task='retrieval'"):
        MatchingPairsCollator(stub)
    with pytest.raises(ValueError, match="num_negatives"):
        MatchingPairsCollator(_StubRetrievalCollator(), num_negatives=0)
