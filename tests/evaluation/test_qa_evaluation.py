"""QA / multiple-choice evaluation loops and their baselines, on real mp4s with a model that reads the frame colour."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from torch import nn
from transformers import PretrainedConfig

from hf_videolang.evaluation.qa import (
    chance_mc_accuracy,
    chance_qa_accuracy,
    evaluate_multiple_choice,
    evaluate_qa,
    prior_qa_accuracy,
    qa_baselines,
)
from hf_videolang.processing_utils import VideoTextProcessor
from hf_videolang.training import AnswerTargetCollator, VideoTextCollator
from hf_videolang.video.writer import write_video

COLOURS = {"red": (230, 20, 20), "green": (20, 230, 20), "blue": (20, 20, 230)}


class ColourReader(nn.Module):
    """Answers "red" / "green" / "blue" by the dominant channel of the (unnormalized-order) frames: logits are the
    per-channel means, so the prediction depends on the video and not on the question."""

    def __init__(self, tokenizer) -> None:
        super().__init__()
        self.config = PretrainedConfig(answer_list=list(COLOURS))
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the loops a device to read
        self.colour_token_ids = torch.tensor(tokenizer.convert_tokens_to_ids(list(COLOURS)))

    def forward(self, pixel_values, input_ids, attention_mask):
        return type("Output", (), {"logits": pixel_values.mean(dim=(1, 3, 4)) + self.anchor})()

    def score_candidates(self, pixel_values, input_ids, attention_mask):
        colour = self.forward(pixel_values, None, None).logits.argmax(dim=-1)  # (B,)
        wanted = self.colour_token_ids[colour]  # (B,)
        return (input_ids == wanted[:, None, None]).any(dim=-1).float()  # (B, K): 1 for options naming it


@pytest.fixture(scope="module")
def colour_videos(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("colour_videos")
    paths = {}
    for name, rgb in COLOURS.items():
        frames = np.empty((6, 32, 32, 3), dtype=np.uint8)
        frames[:] = rgb
        paths[name] = str(write_video(folder / f"{name}.mp4", frames, fps=6))
    return paths


@pytest.fixture()
def processor(tiny_tokenizer) -> VideoTextProcessor:
    return VideoTextProcessor(tiny_tokenizer, num_frames=2, image_size=32, patch_size=8, mask_ratio=0.0,
                              mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), max_length=12)  # fmt: skip


def test_qa_accuracy_overall_and_on_a_subset(colour_videos, processor, tiny_tokenizer):
    dataset = datasets.Dataset.from_list([
        {"video": colour_videos["red"], "question": "what colour ?", "answer": "red", "multi": True},
        {"video": colour_videos["green"], "question": "what colour ?", "answer": "green", "multi": False},
        {"video": colour_videos["blue"], "question": "what colour ?", "answer": "yellow", "multi": True},
        {"video": colour_videos["blue"], "question": "what colour ?", "answer": "Blue ", "multi": False},
    ])  # fmt: skip
    result = evaluate_qa(ColourReader(tiny_tokenizer), processor, dataset, batch_size=3, subsets={"m": "multi"},
                         progress=False)  # fmt: skip
    assert result.predictions == ["red", "green", "blue", "blue"]
    assert result.metrics["accuracy"] == pytest.approx(75.0)
    assert result.metrics["accuracy_m"] == pytest.approx(50.0)  # rows 0 (right) and 2 (wrong)
    assert result.subset_sizes == {"m": 2}
    with pytest.raises(ValueError, match="no column 'missing'"):
        evaluate_qa(ColourReader(tiny_tokenizer), processor, dataset, subsets={"x": "missing"}, progress=False)


def test_qa_accuracy_per_question_type(colour_videos, processor, tiny_tokenizer):
    dataset = datasets.Dataset.from_list([
        {"video": colour_videos["red"], "question": "what colour ?", "answer": "red", "type": "colour"},
        {"video": colour_videos["green"], "question": "what colour ?", "answer": "blue", "type": "colour"},
        {"video": colour_videos["blue"], "question": "what shape ?", "answer": "blue", "type": "shape"},
    ])  # fmt: skip
    result = evaluate_qa(ColourReader(tiny_tokenizer), processor, dataset, group_by="type", progress=False)
    assert result.metrics == {"accuracy": pytest.approx(200 / 3), "accuracy_type_colour": pytest.approx(50.0),
                              "accuracy_type_shape": pytest.approx(100.0)}  # fmt: skip
    assert result.subset_sizes == {"type_colour": 2, "type_shape": 1}
    with pytest.raises(ValueError, match="group_by='kind'"):
        evaluate_qa(ColourReader(tiny_tokenizer), processor, dataset, group_by="kind", progress=False)


def test_qa_baselines_give_chance_and_the_blind_prior_per_type_and_subset():
    train = datasets.Dataset.from_dict({
        "answer": ["left", "left", "right", "red", "blue", "blue"],
        "type": ["direction", "direction", "direction", "colour", "colour", "colour"],
    })  # fmt: skip
    test = datasets.Dataset.from_dict({
        "answer": ["left", "right", "blue", "red"],
        "type": ["direction", "direction", "colour", "colour"],
        "multi": [True, True, False, True],
    })  # fmt: skip
    baselines = qa_baselines(["left", "right", "red", "blue"], train, test, subsets={"m": "multi"})
    # the prior answers "left" to direction and "blue" to colour questions
    assert baselines["prior"] == {"accuracy": pytest.approx(50.0), "accuracy_m": pytest.approx(100 / 3),
                                  "accuracy_type_colour": pytest.approx(50.0),
                                  "accuracy_type_direction": pytest.approx(50.0)}  # fmt: skip
    assert baselines["chance"] == {key: pytest.approx(25.0) for key in baselines["prior"]}
    with pytest.raises(ValueError, match="'answer' and 'kind' columns"):
        qa_baselines(["left"], train, test, group_by="kind")


def test_qa_needs_an_answer_list(colour_videos, processor, tiny_tokenizer):
    model = ColourReader(tiny_tokenizer)
    model.config.answer_list = []
    dataset = datasets.Dataset.from_list([{"video": colour_videos["red"], "question": "what ?", "answer": "red"}])
    with pytest.raises(ValueError, match="answer_list is empty"):
        evaluate_qa(model, processor, dataset, progress=False)


def test_multiple_choice_accuracy_uses_the_video(colour_videos, processor, tiny_tokenizer):
    options = ["the red square", "the green square", "the blue square"]
    dataset = datasets.Dataset.from_list([
        {"video": colour_videos["green"], "options": options, "answer": 1},
        {"video": colour_videos["blue"], "options": options, "answer": 2},
        {"video": colour_videos["red"], "options": options, "answer": 1},  # labelled wrong on purpose
    ])  # fmt: skip
    result = evaluate_multiple_choice(ColourReader(tiny_tokenizer), processor, dataset, batch_size=2, progress=False)
    assert result.predictions == [1, 2, 0]
    assert result.metrics["accuracy"] == pytest.approx(200 / 3)
    assert chance_mc_accuracy(dataset) == pytest.approx(100 / 3)


def test_blind_prior_answers_the_most_frequent_answer_of_each_group():
    train = ["left", "left", "right", "red", "blue", "blue"]
    train_types = ["direction", "direction", "direction", "colour", "colour", "colour"]
    test = ["left", "right", "blue", "red", "yes"]
    test_types = ["direction", "direction", "colour", "colour", "yes/no"]  # unseen group -> overall majority
    # guesses: left, left, blue, blue, (overall: left/blue tie -> first seen, left)
    assert prior_qa_accuracy(train, test, train_types, test_types) == pytest.approx(40.0)
    assert prior_qa_accuracy(train, test) == pytest.approx(20.0)  # always "left"
    with pytest.raises(ValueError, match="groups"):
        prior_qa_accuracy(train, test, train_types, None)


def test_uniform_chance_counts_answers_outside_the_list_as_wrong():
    assert chance_qa_accuracy(["a", "b", "c", "d"], ["a", "b"]) == pytest.approx(25.0)
    assert chance_qa_accuracy(["a", "b", "c", "d"], ["a", "zzz"]) == pytest.approx(12.5)


def test_answer_target_collator_adds_the_answer_tokens(colour_videos, processor, tiny_tokenizer):
    rows = [{"video": colour_videos["red"], "question": "what colour ?", "answer": "red"},
            {"video": colour_videos["blue"], "question": "what colour ?", "answer": "the blue square"}]  # fmt: skip
    inner = VideoTextCollator(processor, task="qa", training=True, answer_list=list(COLOURS))
    batch = AnswerTargetCollator(inner, max_length=4)(rows)
    assert "labels" not in batch and "video_ids" not in batch
    decoded = tiny_tokenizer.batch_decode(batch["answer_input_ids"], skip_special_tokens=False)
    # the UMT authors tokenize `answer + " [SEP]"`: the answer ends with an explicit [SEP] before the tokenizer's
    assert decoded[0].split() == ["[CLS]", "red", "[SEP]", "[SEP]"]
    assert decoded[1].split() == ["[CLS]", "the", "blue", "[SEP]"]  # truncated to max_length, [SEP] kept
    assert batch["answer_attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 1]]
    with pytest.raises(ValueError, match="task='qa'"):
        AnswerTargetCollator(VideoTextCollator(processor, task="retrieval"))
