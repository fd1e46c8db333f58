#!/usr/bin/env python
"""UMT open-ended video question answering fine-tuning (UMT §4.3 "Video QA"; ALBEF-style answer decoder).

Starts from a stage-2 checkpoint. The question runs through the text encoder and the cross-modal decoder, and the
answer decoder is trained to generate the target answer (``[CLS] answer [SEP]``, negative log-likelihood). At
evaluation the decoder ranks every answer of the answer list (``config.answer_list``, saved with the model so the
``video-question-answering`` pipeline names its predictions); accuracy is the share of questions whose top answer
is right.

    python training_scripts/umt_finetune_qa.py --model_name_or_path runs/umt_stage2 \
        --train_file train_qa.jsonl --validation_file val_qa.jsonl --answer_list_file answers.json \
        --output_dir runs/umt_qa
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import datasets
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402
    DataArguments,
    ModelArguments,
    build_processor,
    finetuning_config,
    load_split,
    logger,
    parse_args,
    save,
    setup_logging,
    train_and_report,
)
from torch.utils.data import DataLoader  # noqa: E402
from transformers import BatchFeature, set_seed  # noqa: E402

from hf_videolang.evaluation.metrics import qa_accuracy  # noqa: E402
from hf_videolang.models.umt import UmtForVideoQuestionAnswering, UmtProcessor  # noqa: E402
from hf_videolang.training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments  # noqa: E402

FINETUNE_NUM_FRAMES = 4  # UMT §4.1
MAX_ANSWER_LENGTH = 5  # the authors' max_a_len


@dataclass
class QaArguments:
    """The answer vocabulary and the ranking width of QA fine-tuning."""

    answer_list_file: str | None = field(
        default=None,
        metadata={"help": "JSON list of candidate answers (default: the training answers, most frequent first)."},
    )
    max_answers: int | None = field(
        default=None, metadata={"help": "Keep the N most frequent training answers (without --answer_list_file)."}
    )
    top_k: int = field(default=128, metadata={"help": "Answers pre-selected by their first token (authors: 128)."})


class AnswerTargetCollator:
    """Adds the target answers ``answer_input_ids`` / ``answer_attention_mask`` ``(B, L_a)`` to QA batches.

    Wraps a :class:`VideoTextCollator` with ``task="qa"``; the index ``labels`` and ``video_ids`` it adds are
    dropped, because the answer decoder learns from the answer tokens (any answer, in the list or not).
    """

    def __init__(self, collator: VideoTextCollator, max_length: int = MAX_ANSWER_LENGTH) -> None:
        self.collator = collator
        self.max_length = max_length

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> BatchFeature:
        batch = self.collator(rows)
        batch.pop("labels", None)
        batch.pop("video_ids", None)
        answers = [str(row["answer"]).strip() for row in rows]
        tokens = self.collator.processor.tokenizer(
            answers, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        batch["answer_input_ids"] = tokens["input_ids"]
        batch["answer_attention_mask"] = tokens["attention_mask"]
        return batch


def answer_list(qa_args: QaArguments, train_set: datasets.Dataset) -> list[str]:
    """``--answer_list_file``, or the training answers by decreasing frequency (ties: first seen first)."""
    if qa_args.answer_list_file is not None:
        with open(qa_args.answer_list_file, encoding="utf-8") as handle:
            answers = json.load(handle)
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
            raise ValueError(
                f"--answer_list_file {qa_args.answer_list_file}: expected a non-empty JSON list of strings."
            )
        return answers
    counts = Counter(str(answer).strip() for answer in train_set["answer"])
    return [answer for answer, _ in counts.most_common(qa_args.max_answers)]


@torch.no_grad()
def evaluate_qa(
    model: UmtForVideoQuestionAnswering,
    processor: UmtProcessor,
    dataset: datasets.Dataset,
    batch_size: int,
    top_k: int,
    device: torch.device,
) -> dict[str, float]:
    """Accuracy (percent) of the top-ranked answer of ``config.answer_list``, over every question of ``dataset``."""
    collator = VideoTextCollator(processor, task="qa", training=False, answer_list=model.config.answer_list)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collator)
    was_training = model.training
    model.eval()
    predictions: list[str] = []
    for batch in loader:
        logits = model(
            pixel_values=batch["pixel_values"].to(device),
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            top_k=top_k,
        ).logits
        predictions.extend(model.config.answer_list[i] for i in logits.argmax(dim=-1).tolist())
    model.train(was_training)
    return {"accuracy": qa_accuracy(predictions, list(dataset["answer"]))}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Fine-tune QA, evaluate accuracy on the validation split, save model + processor; returns the metrics."""
    model_args, data_args, qa_args, training_args = parse_args(
        (ModelArguments, DataArguments, QaArguments, VideoTextTrainingArguments), argv
    )
    setup_logging(training_args)
    set_seed(training_args.seed)

    config = finetuning_config(model_args)
    model = UmtForVideoQuestionAnswering.from_pretrained(model_args.model_name_or_path, config=config)
    processor = build_processor(model_args, data_args, config, FINETUNE_NUM_FRAMES)
    train_set = load_split(data_args, "train", task="qa")
    eval_set = load_split(data_args, "validation", task="qa")
    model.set_answer_list(answer_list(qa_args, train_set), processor.tokenizer, max_length=MAX_ANSWER_LENGTH)
    logger.info("%d candidate answers", len(model.config.answer_list))

    collator = VideoTextCollator(
        processor, task="qa", training=True, seed=training_args.seed, answer_list=model.config.answer_list
    )
    trainer = VideoTextTrainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        data_collator=AnswerTargetCollator(collator),
        processing_class=processor,
    )
    metrics = train_and_report(trainer, training_args)
    if eval_set is not None:
        accuracy = evaluate_qa(
            model, processor, eval_set, training_args.per_device_eval_batch_size, qa_args.top_k, training_args.device
        )
        eval_metrics = {f"eval_{name}": value for name, value in accuracy.items()}
        trainer.log_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)
    if trainer.is_world_process_zero():
        save(model, processor, training_args.output_dir, metrics)
    return metrics


if __name__ == "__main__":
    main()
