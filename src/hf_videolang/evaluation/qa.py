"""Question-answering and multiple-choice evaluation loops, and the baselines their numbers are read against.

Open-ended QA ranks ``model.config.answer_list`` (``model(pixel_values, input_ids, attention_mask).logits``,
``(B, num_answers)``); multiple choice ranks each row's options with ``model.score_candidates`` (the interface the
``video-question-answering`` pipeline uses). Both decode videos with the processor's evaluation path.
"""

from __future__ import annotations

import numbers
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..processing_utils import VideoTextProcessor
from .metrics import mc_accuracy, normalize_answer, qa_accuracy
from .retrieval import _model_device


class _EvaluationBatches:
    """Picklable DataLoader ``collate_fn`` of the evaluation loops: decodes with the processor's evaluation path
    (uniform frames, no masks) and tokenizes each row's ``"question"`` (QA) or its ``"options"`` (MC: ``input_ids``
    ``(B, num_options, L)``, ``labels`` the answer index)."""

    def __init__(self, processor: VideoTextProcessor, task: str) -> None:
        self.processor = processor
        self.task = task

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> Mapping[str, torch.Tensor]:
        videos = [_field(row, "video", index) for index, row in enumerate(rows)]
        if self.task == "qa":
            return self.processor(
                videos=videos, text=[_field(row, "question", i) for i, row in enumerate(rows)], training=False
            )
        options = [list(_field(row, "options", index)) for index, row in enumerate(rows)]
        if len({len(row_options) for row_options in options}) != 1 or not options[0]:
            raise ValueError("multiple-choice batches need the same non-zero number of options in every row.")
        batch = self.processor(videos=videos, text=[text for row in options for text in row], training=False)
        for key in ("input_ids", "attention_mask"):
            batch[key] = batch[key].view(len(rows), len(options[0]), -1)
        batch["labels"] = torch.tensor(
            [_answer_index(_field(row, "answer", i), options[i], i) for i, row in enumerate(rows)], dtype=torch.long
        )
        return batch


def _field(row: Mapping[str, Any], name: str, index: int) -> Any:
    try:
        return row[name]
    except KeyError:
        raise KeyError(f"row {index} has no {name!r} field (fields: {sorted(row)})") from None


def _answer_index(answer: Any, options: list[str], row_index: int) -> int:
    if isinstance(answer, numbers.Integral) and not isinstance(answer, bool):
        if not 0 <= answer < len(options):
            raise ValueError(f"row {row_index}: answer index {answer} is out of range for {len(options)} options")
        return int(answer)
    try:
        return options.index(str(answer))
    except ValueError:
        raise ValueError(f"row {row_index}: answer {answer!r} is not one of the options {options}") from None


@dataclass
class QaResult:
    """Predictions and accuracies (percent) of a QA evaluation.

    Attributes:
        metrics: ``{"accuracy": ...}`` plus ``"accuracy_<subset>"`` for every subset asked for.
        predictions: the predicted answer string (QA) or option index (MC) of each row, in dataset order.
        subset_sizes: number of rows in each subset.
    """

    metrics: dict[str, float]
    predictions: list[Any]
    subset_sizes: dict[str, int] = field(default_factory=dict)


def _subset_metrics(
    dataset: datasets.Dataset,
    subsets: Mapping[str, str],
    score: Callable[[list[int]], float],
) -> tuple[dict[str, float], dict[str, int]]:
    """Accuracy on the rows whose boolean column ``subsets[name]`` is true, for every ``name``."""
    metrics: dict[str, float] = {}
    sizes: dict[str, int] = {}
    for name, column in subsets.items():
        if column not in dataset.column_names:
            raise ValueError(f"subset {name!r}: the dataset has no column {column!r} (columns: {dataset.column_names})")
        rows = [index for index, flag in enumerate(dataset[column]) if flag]
        sizes[name] = len(rows)
        if rows:
            metrics[f"accuracy_{name}"] = score(rows)
    return metrics, sizes


def _group_rows(dataset: datasets.Dataset, group_by: str | None) -> dict[str, list[int]]:
    """``{"<group_by>_<value>": row indices}`` for every value of the column ``group_by`` (sorted), or ``{}``."""
    if group_by is None:
        return {}
    if group_by not in dataset.column_names:
        raise ValueError(f"group_by={group_by!r}: the dataset has no such column (columns: {dataset.column_names})")
    groups: dict[str, list[int]] = defaultdict(list)
    for index, value in enumerate(dataset[group_by]):
        groups[f"{group_by}_{value}"].append(index)
    return dict(sorted(groups.items()))


@torch.no_grad()
def evaluate_qa(
    model: nn.Module,
    processor: VideoTextProcessor,
    dataset: datasets.Dataset,
    batch_size: int = 32,
    subsets: Mapping[str, str] | None = None,
    group_by: str | None = None,
    progress: bool = True,
    **forward_kwargs: Any,
) -> QaResult:
    """Open-ended QA accuracy: the top-ranked answer of ``model.config.answer_list`` against the ``"answer"`` column.

    Args:
        model: a QA model whose forward returns ``logits`` ``(B, len(config.answer_list))``.
        processor: decodes, samples (evaluation path) and tokenizes the questions.
        dataset: rows with ``"video"``, ``"question"`` and ``"answer"``.
        subsets: ``{name: boolean column}``; adds ``accuracy_<name>`` over the rows where the column is true, e.g.
            ``{"multi_frame": "needs_multiple_frames"}``.
        group_by: a column (e.g. ``"type"``, the question type); adds ``accuracy_<column>_<value>`` for each of its
            values, e.g. ``accuracy_type_shape``.
        progress: show a progress bar.
        forward_kwargs: passed to the model's forward (e.g. ``top_k``).
    """
    answer_list = list(getattr(model.config, "answer_list", None) or [])
    if not answer_list:
        raise ValueError("evaluate_qa: model.config.answer_list is empty; set the candidate answers first.")
    groups = _group_rows(dataset, group_by)  # checked before the (slow) loop
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=_EvaluationBatches(processor, "qa"))
    device = _model_device(model)
    was_training = model.training
    model.eval()
    predictions: list[str] = []
    for batch in tqdm(loader, desc="QA evaluation", disable=not progress):
        logits = model(
            pixel_values=batch["pixel_values"].to(device),
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            **forward_kwargs,
        ).logits
        if logits.shape[-1] != len(answer_list):
            raise ValueError(f"the model returned {logits.shape[-1]} answer scores for {len(answer_list)} answers.")
        predictions.extend(answer_list[index] for index in logits.argmax(dim=-1).tolist())
    model.train(was_training)
    gold = [str(answer) for answer in dataset["answer"]]
    metrics = {"accuracy": qa_accuracy(predictions, gold)}
    extra, sizes = _subset_metrics(
        dataset, subsets or {}, lambda rows: qa_accuracy([predictions[i] for i in rows], [gold[i] for i in rows])
    )
    metrics.update(extra)
    for name, rows in groups.items():
        metrics[f"accuracy_{name}"] = qa_accuracy([predictions[i] for i in rows], [gold[i] for i in rows])
        sizes[name] = len(rows)
    return QaResult(metrics=metrics, predictions=predictions, subset_sizes=sizes)


@torch.no_grad()
def evaluate_multiple_choice(
    model: nn.Module,
    processor: VideoTextProcessor,
    dataset: datasets.Dataset,
    batch_size: int = 16,
    progress: bool = True,
) -> QaResult:
    """Multiple-choice accuracy: ``model.score_candidates`` ranks each row's ``"options"``; ``"answer"`` is the index
    (or the text) of the right one."""
    if not callable(getattr(model, "score_candidates", None)):
        raise ValueError(f"{type(model).__name__} has no score_candidates(pixel_values, input_ids, attention_mask).")
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=_EvaluationBatches(processor, "mc"))
    device = _model_device(model)
    was_training = model.training
    model.eval()
    predictions: list[int] = []
    gold: list[int] = []
    for batch in tqdm(loader, desc="multiple-choice evaluation", disable=not progress):
        scores = model.score_candidates(
            pixel_values=batch["pixel_values"].to(device),
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
        )
        scores = getattr(scores, "logits", scores)
        predictions.extend(scores.argmax(dim=-1).tolist())
        gold.extend(batch["labels"].tolist())
    model.train(was_training)
    return QaResult(metrics={"accuracy": mc_accuracy(predictions, gold)}, predictions=predictions)


def chance_mc_accuracy(dataset: datasets.Dataset) -> float:
    """Expected accuracy (percent) of picking an option uniformly at random: the mean of ``1 / num_options``."""
    counts = [len(options) for options in dataset["options"]]
    if not counts:
        raise ValueError("chance_mc_accuracy needs at least one row.")
    return 100.0 * sum(1.0 / count for count in counts) / len(counts)


def prior_qa_accuracy(
    train_answers: Sequence[str],
    test_answers: Sequence[str],
    train_groups: Sequence[Any] | None = None,
    test_groups: Sequence[Any] | None = None,
) -> float:
    """Accuracy (percent) of a blind baseline that never looks at the video: it answers the most frequent training
    answer (of the question's group, e.g. its question type, when groups are given; the overall most frequent
    answer for a group not seen in training)."""
    if len(train_answers) == 0 or len(test_answers) == 0:
        raise ValueError("prior_qa_accuracy needs training and test answers.")
    if (train_groups is None) != (test_groups is None):
        raise ValueError("give groups for both the training and the test answers, or for neither.")
    train_groups = train_groups if train_groups is not None else [None] * len(train_answers)
    test_groups = test_groups if test_groups is not None else [None] * len(test_answers)
    by_group: dict[Any, Counter] = defaultdict(Counter)
    for answer, group in zip(train_answers, train_groups):
        by_group[group][normalize_answer(answer)] += 1
    overall = Counter(normalize_answer(answer) for answer in train_answers).most_common(1)[0][0]
    guesses = [by_group[group].most_common(1)[0][0] if group in by_group else overall for group in test_groups]
    return qa_accuracy(guesses, list(test_answers))


def qa_baselines(
    answer_list: Sequence[str],
    train_set: datasets.Dataset,
    test_set: datasets.Dataset,
    subsets: Mapping[str, str] | None = None,
    group_by: str = "type",
) -> dict[str, dict[str, float]]:
    """The two numbers every QA accuracy is read against, keyed like :func:`evaluate_qa`'s metrics (``accuracy``,
    ``accuracy_<subset>``, ``accuracy_<group_by>_<value>``) for the same ``subsets`` and ``group_by``.

    Returns:
        ``{"chance": ..., "prior": ...}``: a uniform guess from ``answer_list``
        (:func:`chance_qa_accuracy`), and the blind baseline that answers the most frequent training answer of the
        question's ``group_by`` value, never looking at the video (:func:`prior_qa_accuracy`).
    """
    for split, rows in (("train", train_set), ("test", test_set)):
        if group_by not in rows.column_names or "answer" not in rows.column_names:
            raise ValueError(f"qa_baselines: the {split} set needs 'answer' and {group_by!r} columns "
                             f"(columns: {rows.column_names})")  # fmt: skip
    selections = {"accuracy": list(range(len(test_set)))}
    for name, column in (subsets or {}).items():
        if column not in test_set.column_names:
            raise ValueError(f"subset {name!r}: the test set has no column {column!r}")
        selections[f"accuracy_{name}"] = [index for index, flag in enumerate(test_set[column]) if flag]
    selections.update({f"accuracy_{name}": rows for name, rows in _group_rows(test_set, group_by).items()})
    train_answers, train_groups = train_set["answer"], train_set[group_by]
    test_answers, test_groups = test_set["answer"], test_set[group_by]
    chance, prior = {}, {}
    for key, rows in selections.items():
        if not rows:
            continue
        answers = [test_answers[i] for i in rows]
        chance[key] = chance_qa_accuracy(answer_list, answers)
        prior[key] = prior_qa_accuracy(train_answers, answers, train_groups, [test_groups[i] for i in rows])
    return {"chance": chance, "prior": prior}


def chance_qa_accuracy(answer_list: Sequence[str], test_answers: Sequence[str]) -> float:
    """Expected accuracy (percent) of answering uniformly at random from ``answer_list``."""
    if not answer_list:
        raise ValueError("chance_qa_accuracy needs a non-empty answer list.")
    vocabulary = {normalize_answer(answer) for answer in answer_list}
    covered = sum(normalize_answer(answer) in vocabulary for answer in test_answers)
    return 100.0 * covered / (len(vocabulary) * max(len(test_answers), 1))
