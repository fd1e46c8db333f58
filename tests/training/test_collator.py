"""Tests of VideoTextCollator: per-seed determinism, worker seeding, video ids, QA / MC / pretraining batches."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from hf_videolang.training import VideoTextCollator
from hf_videolang.training.collator import video_ids


def assert_same_batch(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_deterministic_per_seed_and_fresh_randomness_per_call(small_processor, square_corpus):
    rows = square_corpus[:3]
    first = VideoTextCollator(small_processor, seed=5)
    second = VideoTextCollator(small_processor, seed=5)
    other_seed = VideoTextCollator(small_processor, seed=6)

    batch = first(rows)
    assert batch["pixel_values"].shape == (3, 4, 3, 32, 32)
    assert batch["bool_masked_pos"].shape == (3, 64)  # training + mask_ratio > 0: masks by default
    assert "mlm_input_ids" not in batch  # MLM only for pretraining
    assert_same_batch(batch, second(rows))
    assert not torch.equal(batch["bool_masked_pos"], other_seed(rows)["bool_masked_pos"])
    # The next call of the same collator draws new numbers.
    assert not torch.equal(batch["bool_masked_pos"], first(rows)["bool_masked_pos"])


def test_evaluation_collator_is_deterministic_and_unmasked(small_processor, square_corpus):
    rows = square_corpus[:2]
    collator = VideoTextCollator(small_processor, training=False, seed=0)
    batch = collator(rows)
    assert "bool_masked_pos" not in batch
    assert_same_batch(batch, VideoTextCollator(small_processor, training=False, seed=123)(rows))
    assert torch.equal(batch["pixel_values"], small_processor(videos=[r["video"] for r in rows])["pixel_values"])


def test_dataloader_workers_reproducible_and_distinct(small_processor, square_corpus):
    collator = VideoTextCollator(small_processor, seed=1)

    def masks_of_epoch():
        torch.manual_seed(0)  # the DataLoader draws the workers' base seed from the main RNG
        loader = DataLoader(square_corpus, batch_size=2, num_workers=2, collate_fn=collator)
        return [batch["bool_masked_pos"] for batch in loader]

    first, second = masks_of_epoch(), masks_of_epoch()
    assert len(first) == 4
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    # Batch 0 and batch 1 come from different workers, each at its first call: they must still differ.
    assert not torch.equal(first[0], first[1])


def test_video_ids_group_rows_of_the_same_video(small_processor, square_corpus):
    a, b = square_corpus[0], square_corpus[1]
    rows = [a, b, {"video": a["video"], "caption": "another caption of a"}, b]
    batch = VideoTextCollator(small_processor, training=False)(rows)
    ids = batch["video_ids"].tolist()
    # The same id for the same video, in every batch (ids are gathered across ranks with the embeddings).
    assert ids[0] == ids[2] and ids[1] == ids[3] and ids[0] != ids[1]
    assert VideoTextCollator(small_processor, training=False)([b])["video_ids"].tolist() == [ids[1]]
    assert video_ids(["x", "y", "z"]).tolist() == [0, 1, 2]


def test_caption_lists(small_processor, square_corpus):
    video = square_corpus[0]["video"]
    rows = [{"video": video, "caption": ["a red square", "the square moves right"]}]
    batch = VideoTextCollator(small_processor, training=False)(rows)
    assert small_processor.decode(batch["input_ids"][0], skip_special_tokens=True) == "a red square"
    drawn = set()
    for seed in range(12):
        input_ids = VideoTextCollator(small_processor, seed=seed)(rows)["input_ids"][0]
        drawn.add(small_processor.decode(input_ids, skip_special_tokens=True))
    assert drawn == {"a red square", "the square moves right"}


def test_pretraining_batch_has_mlm(small_processor, square_corpus):
    batch = VideoTextCollator(small_processor, task="pretrain", seed=0)(square_corpus[:4])
    labels = batch["mlm_labels"]
    assert labels.shape == batch["input_ids"].shape
    assert (labels != -100).any()
    assert "mlm_labels" not in VideoTextCollator(small_processor, task="pretrain", training=False)(square_corpus[:2])


def test_question_answering_labels(small_processor, square_corpus):
    video = square_corpus[0]["video"]
    rows = [
        {"video": video, "question": "what color is the square?", "answer": "red"},
        {"video": video, "question": "which direction does it move?", "answer": "right"},
        {"video": video, "question": "what shape is it?", "answer": "hexagon"},
    ]
    collator = VideoTextCollator(small_processor, task="qa", training=False, answer_list=["left", "right", "red"])
    batch = collator(rows)
    assert batch["labels"].tolist() == [2, 1, -100]
    assert batch["input_ids"].shape[0] == 3
    with pytest.raises(ValueError, match="answer_list"):
        VideoTextCollator(small_processor, task="qa")


def test_multiple_choice_batch(small_processor, square_corpus):
    video_a, video_b = square_corpus[0]["video"], square_corpus[1]["video"]
    rows = [
        {"video": video_a, "options": ["a red square", "a blue circle", "a dog"], "answer": 0},
        {"video": video_b, "options": ["a red square", "a green square moves left", "a cat"], "answer": "a cat"},
    ]
    batch = VideoTextCollator(small_processor, task="mc", training=False)(rows)
    assert batch["pixel_values"].shape[0] == 2
    assert batch["input_ids"].shape[:2] == (2, 3) and batch["attention_mask"].shape == batch["input_ids"].shape
    assert batch["labels"].tolist() == [0, 2]
    second_row = small_processor.batch_decode(batch["input_ids"][1], skip_special_tokens=True)
    assert second_row == ["a red square", "a green square moves left", "a cat"]

    rows[1]["options"] = rows[1]["options"][:2]
    with pytest.raises(ValueError, match="same non-zero number of options"):
        VideoTextCollator(small_processor, task="mc")(rows)


def test_row_errors_name_the_field(small_processor, square_corpus):
    with pytest.raises(KeyError, match="'caption'"):
        VideoTextCollator(small_processor)([{"video": square_corpus[0]["video"]}])
    with pytest.raises(ValueError, match="task"):
        VideoTextCollator(small_processor, task="captioning")
