#!/usr/bin/env python
"""UMT open-ended video question answering fine-tuning (UMT §4.3 "Video QA"; ALBEF-style answer decoder).

Starts from a stage-2 checkpoint. The question runs through the text encoder and the multimodal encoder, and the
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
from collections.abc import Sequence
from dataclasses import dataclass, field

import datasets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from transformers import set_seed  # noqa: E402

from common import (  # noqa: E402
    DataArguments,
    ModelArguments,
    build_processor,
    finetuning_config,
    load_split,
    logger,
    parse_args,
    qa_eval_metrics,
    report_and_save,
    setup_process,
    train_and_report,
)
from hf_videolang.models.umt import UmtForVideoQuestionAnswering  # noqa: E402
from hf_videolang.training import (  # noqa: E402
    AnswerTargetCollator,
    VideoTextCollator,
    VideoTextTrainer,
    VideoTextTrainingArguments,
)

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


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Fine-tune QA, evaluate accuracy on the validation split, save model + processor; returns the metrics."""
    model_args, data_args, qa_args, training_args = parse_args(
        (ModelArguments, DataArguments, QaArguments, VideoTextTrainingArguments), argv
    )
    setup_process(training_args)
    set_seed(training_args.seed)

    config = finetuning_config(model_args)
    # The answer decoder starts from the pre-training multimodal encoder and MLM head (as the authors' setup_model);
    # a QA checkpoint (which has its own answer decoder) loads as is.
    load = UmtForVideoQuestionAnswering.from_pretrained
    if not config.answer_token_ids:
        load = UmtForVideoQuestionAnswering.from_pretraining
    model = load(model_args.model_name_or_path, config=config)
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
        data_collator=AnswerTargetCollator(collator, max_length=MAX_ANSWER_LENGTH),
        processing_class=processor,
    )
    metrics = train_and_report(trainer, training_args)
    eval_metrics = None
    if eval_set is not None:
        eval_metrics = qa_eval_metrics(model, processor, train_set, eval_set, training_args, top_k=qa_args.top_k)
    return report_and_save(trainer, model, processor, metrics, eval_metrics)


if __name__ == "__main__":
    main()
