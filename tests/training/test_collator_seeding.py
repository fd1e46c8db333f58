"""Per-row seeding of VideoTextCollator: a row's frames and masks do not depend on its batch, worker or rank (so 2
ranks of B rows equal 1 rank of 2B rows); epochs and repeated rows draw new numbers; video ids are stable."""

from __future__ import annotations

import torch

from hf_videolang.training import VideoTextCollator
from hf_videolang.training.trainer import CollatorEpochCallback


def test_a_row_gets_the_same_frames_and_masks_in_any_batch(small_processor, square_corpus):
    whole = VideoTextCollator(small_processor, task="pretrain", seed=3)(square_corpus[:4])
    first = VideoTextCollator(small_processor, task="pretrain", seed=3)(square_corpus[:2])
    second = VideoTextCollator(small_processor, task="pretrain", seed=3)(square_corpus[2:4])
    for key in ("pixel_values", "bool_masked_pos", "video_ids"):
        assert torch.equal(whole[key], torch.cat([first[key], second[key]])), key
    # Text is padded to each batch's longest: compare the unpadded tokens.
    for key in ("input_ids", "mlm_input_ids", "mlm_labels"):
        halves = [first[key], second[key]]
        for row in range(4):
            part = halves[row // 2][row % 2]
            assert torch.equal(whole[key][row, : part.shape[0]], part), (key, row)
    assert not torch.equal(whole["bool_masked_pos"][0], whole["bool_masked_pos"][1])  # rows differ


def test_each_epoch_and_each_repeat_draws_new_numbers(small_processor, square_corpus):
    rows = square_corpus[:2]
    collator = VideoTextCollator(small_processor, seed=0)
    epoch0 = collator(rows)["bool_masked_pos"]
    repeat = collator(rows)["bool_masked_pos"]
    collator.set_epoch(1)
    epoch1 = collator(rows)["bool_masked_pos"]
    assert not torch.equal(epoch0, repeat) and not torch.equal(epoch0, epoch1)
    collator.set_epoch(0)
    assert torch.equal(collator(rows)["bool_masked_pos"], epoch0)  # the counts restart with the epoch


def test_the_trainer_callback_sets_the_epoch_of_a_wrapped_collator(small_processor):
    from hf_videolang.training.collator import AnswerTargetCollator

    inner = VideoTextCollator(small_processor, task="qa", answer_list=["left", "right"])
    callback = CollatorEpochCallback(AnswerTargetCollator(inner))
    callback.on_epoch_begin(None, type("State", (), {"epoch": 2.0})(), None)
    assert inner.epoch == 2
