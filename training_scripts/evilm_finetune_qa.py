#!/usr/bin/env python
"""E-ViLM open-ended QA fine-tuning: classification over the training answers (kept in `config.answer_list`).

    python training_scripts/evilm_finetune_qa.py --model_name_or_path runs/evilm_pretrain \
        --train_file train_qa.jsonl --validation_file val_qa.jsonl --output_dir runs/evilm_qa
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from transformers import set_seed  # noqa: E402

from common import (  # noqa: E402
    DataArguments,
    load_split,
    parse_args,
    qa_eval_metrics,
    report_and_save,
    setup_process,
    train_and_report,
)
from evilm_common import EvilmModelArguments, load_processor  # noqa: E402
from hf_videolang.models.evilm import EvilmForVideoQuestionAnswering  # noqa: E402
from hf_videolang.training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments  # noqa: E402


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    model_args, data_args, training_args = parse_args(
        (EvilmModelArguments, DataArguments, VideoTextTrainingArguments), argv
    )
    if model_args.model_name_or_path is None:
        raise ValueError("evilm_finetune_qa.py fine-tunes a pre-trained model: pass --model_name_or_path.")
    setup_process(training_args)
    set_seed(training_args.seed)
    train_set = load_split(data_args, "train", task="qa")
    eval_set = load_split(data_args, "validation", task="qa")
    answers = sorted({str(answer) for answer in train_set["answer"]})
    model = EvilmForVideoQuestionAnswering.from_pretrained(model_args.model_name_or_path, answer_list=answers)
    processor = load_processor(model_args.model_name_or_path)
    collator = VideoTextCollator(processor, task="qa", training=True, seed=training_args.seed, answer_list=answers,
                                 return_masks=False)  # fmt: skip
    trainer = VideoTextTrainer(model=model, args=training_args, train_dataset=train_set, data_collator=collator,
                               processing_class=processor)  # fmt: skip
    metrics = train_and_report(trainer, training_args)
    eval_metrics = None
    if eval_set is not None:
        eval_metrics = qa_eval_metrics(model, processor, train_set, eval_set, training_args)
    return report_and_save(trainer, model, processor, metrics, eval_metrics)


if __name__ == "__main__":
    main()
