#!/usr/bin/env python
"""ClipBERT open-ended video QA fine-tuning (ClipBERT §4, appendix B): a two-layer MLP over ``--answer_list`` on
[CLS], trained with sparse sampling (``N_train`` random clips of ``T`` frames, their logits aggregated by G before
the cross-entropy: multiple-instance learning, §3 Eq. 4). The paper's TGIF-QA / MSRVTT-QA runs: 8x2 or 4x1 clips,
L = 448, lr 1e-4 (TGIF) / 5e-5 (MSRVTT). The validation split goes through ``Trainer.evaluate`` (``eval_dataset``,
``N_test`` uniform clips) and reports ``eval_accuracy``.

    python training_scripts/clipbert_finetune_qa.py --model_name_or_path runs/clipbert_pt --answer_list answers.json \
        --num_train_clips 8 --frames_per_clip 2 --num_test_clips 16 --train_file train_qa.jsonl \
        --validation_file test_qa.jsonl --output_dir runs/clipbert_qa --learning_rate 5e-5 --num_train_epochs 10
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from transformers import set_seed  # noqa: E402

from clipbert_common import ClipArguments, ClipBertModelArguments, build_model, build_processor  # noqa: E402
from common import DataArguments, load_split, parse_args, report_and_save, setup_process, train_and_report  # noqa: E402
from hf_videolang.models.clipbert import ClipBertForVideoQuestionAnswering  # noqa: E402
from hf_videolang.training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments  # noqa: E402


@dataclass
class QaArguments:
    answer_list: str | None = field(
        default=None, metadata={"help": "JSON list of candidate answers (default: the checkpoint's, else the training "
                                        "answers, most frequent first)."}
    )  # fmt: skip


def _answers(qa_args: QaArguments, model_args: ClipBertModelArguments, train_set) -> list[str] | None:
    if qa_args.answer_list is not None:
        with open(qa_args.answer_list) as handle:
            answers = json.load(handle)
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
            raise ValueError(f"--answer_list {qa_args.answer_list!r} must hold a non-empty JSON list of strings.")
        return answers
    if model_args.model_name_or_path is not None:
        from hf_videolang.models.clipbert import ClipBertConfig

        if ClipBertConfig.from_pretrained(model_args.model_name_or_path).answer_list:
            return None  # keep the checkpoint's
    counts: dict[str, int] = {}
    for answer in train_set["answer"]:
        counts[str(answer).strip()] = counts.get(str(answer).strip(), 0) + 1
    return sorted(counts, key=lambda answer: (-counts[answer], answer))


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    model_args, clip_args, data_args, qa_args, training_args = parse_args(
        (ClipBertModelArguments, ClipArguments, DataArguments, QaArguments, VideoTextTrainingArguments), argv
    )
    setup_process(training_args)
    set_seed(training_args.seed)
    train_set = load_split(data_args, "train", task="qa")
    eval_set = load_split(data_args, "validation", task="qa")
    answers = _answers(qa_args, model_args, train_set)
    overrides = {"answer_list": answers} if answers is not None else {}
    model = build_model(ClipBertForVideoQuestionAnswering, model_args, clip_args, **overrides)
    processor = build_processor(model_args, model.config)
    collator = VideoTextCollator(processor, task="qa", training=True, seed=training_args.seed,
                                 answer_list=model.config.answer_list)  # fmt: skip
    trainer = VideoTextTrainer(model=model, args=training_args, train_dataset=train_set, eval_dataset=eval_set,
                               data_collator=collator, processing_class=processor)  # fmt: skip
    metrics = train_and_report(trainer, training_args)
    eval_metrics = trainer.evaluate() if eval_set is not None else None
    return report_and_save(trainer, model, processor, metrics, eval_metrics)


if __name__ == "__main__":
    main()
