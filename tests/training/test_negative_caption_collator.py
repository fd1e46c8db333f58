"""NegativeCaptionCollator: each row's given negative captions tokenized as (B, K, L) next to the batch."""

from __future__ import annotations

import pytest
import torch

from hf_videolang.training import NegativeCaptionCollator


class _StubTokenizer:
    """Word i of a text is token len(word); pads with 0 to the longest text."""

    def __call__(self, texts, padding, truncation, max_length, return_tensors):
        ids = [[len(word) for word in text.split()][:max_length] for text in texts]
        length = max(len(row) for row in ids)
        padding = [length - len(row) for row in ids]
        return {"input_ids": torch.tensor([row + [0] * pad for row, pad in zip(ids, padding)]),
                "attention_mask": torch.tensor([[1] * len(row) + [0] * pad for row, pad in zip(ids, padding)])}


class _StubCollator:
    task = "pretrain"

    class processor:  # noqa: N801 (stands in for an attribute holding a processor)
        tokenizer = _StubTokenizer()
        max_length = 8

    def __call__(self, rows):
        return {"input_ids": torch.ones(len(rows), 3, dtype=torch.long)}


def test_negatives_are_tokenized_per_row_in_order():
    rows = [{"negative_captions": ["a bb", "ccc"]}, {"negative_captions": ["dddd e ff", "g"]}]
    batch = NegativeCaptionCollator(_StubCollator())(rows)
    assert batch["negative_input_ids"].tolist() == [[[1, 2, 0], [3, 0, 0]], [[4, 1, 2], [1, 0, 0]]]
    assert batch["negative_attention_mask"].tolist() == [[[1, 1, 0], [1, 0, 0]], [[1, 1, 1], [1, 0, 0]]]
    assert batch["input_ids"].shape == (2, 3)  # the wrapped collator's batch is kept


def test_rows_need_the_same_number_of_negatives_and_a_video_text_task():
    rows = [{"negative_captions": ["a", "b"]}, {"negative_captions": ["c"]}]
    with pytest.raises(ValueError, match=r"same non-zero number of negative_captions, got \[1, 2\]"):
        NegativeCaptionCollator(_StubCollator())(rows)
    qa = _StubCollator()
    qa.task = "qa"
    with pytest.raises(ValueError, match="retrieval or pretrain collator, got 'qa'"):
        NegativeCaptionCollator(qa)
