#!/usr/bin/env python
"""SMAUG open-ended video QA fine-tuning (SMAUG §4.1): an answer decoder after the multimodal encoder, initialized
from it, generates the answer; 10 epochs in the paper. Evaluation ranks ``--answer_list`` (a JSON list; default:
the training answers) and reports accuracy on the validation split.

    python training_scripts/smaug_finetune_qa.py --model_name_or_path runs/smaug_4f --num_frames 4 \
        --train_file train_qa.jsonl --validation_file test_qa.jsonl --answer_list answers.json \
        --output_dir runs/smaug_qa --learning_rate 1e-5 --num_train_epochs 10
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

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
from hf_videolang.models.smaug import SmaugConfig, SmaugForVideoQuestionAnswering  # noqa: E402
from hf_videolang.training import (  # noqa: E402
    AnswerTargetCollator,
    VideoTextCollator,
    VideoTextTrainer,
    VideoTextTrainingArguments,
)
from smaug_common import SmaugModelArguments, build_model, build_processor  # noqa: E402


@dataclass
class QaArguments:
    answer_list: str | None = field(default=None, metadata={"help": "JSON list of candidate answers."})
    max_answer_length: int = field(default=5, metadata={"help": "Answer tokens, [CLS] and [SEP] included."})


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    model_args, data_args, qa_args, training_args = parse_args(
        (SmaugModelArguments, DataArguments, QaArguments, VideoTextTrainingArguments), argv
    )
    setup_process(training_args)
    set_seed(training_args.seed)
    checkpoint = model_args.model_name_or_path
    if checkpoint is not None and not SmaugConfig.from_pretrained(checkpoint).answer_token_ids:
        # A pre-training checkpoint: the answer decoder starts from its multimodal encoder and MLM head.
        model = SmaugForVideoQuestionAnswering.from_pretraining(checkpoint)
    else:
        model = build_model(SmaugForVideoQuestionAnswering, model_args)
        if checkpoint is None:
            model.init_answer_decoder()
    processor = build_processor(model_args, model.config, data_args.num_frames or 4)
    train_set = load_split(data_args, "train", task="qa")
    eval_set = load_split(data_args, "validation", task="qa")
    if qa_args.answer_list is not None:
        with open(qa_args.answer_list) as handle:
            answers = json.load(handle)
    else:
        answers = sorted(set(train_set["answer"]))
    model.set_answer_list(answers, processor.tokenizer, max_length=qa_args.max_answer_length)
    collator = VideoTextCollator(processor, task="qa", training=True, seed=training_args.seed, answer_list=answers,
                                 return_masks=False)  # fmt: skip
    trainer = VideoTextTrainer(
        model=model, args=training_args, train_dataset=train_set,
        data_collator=AnswerTargetCollator(collator, max_length=qa_args.max_answer_length), processing_class=processor,
    )  # fmt: skip
    metrics = train_and_report(trainer, training_args)
    eval_metrics = None
    if eval_set is not None:
        model.eval()
        eval_metrics = qa_eval_metrics(model, processor, train_set, eval_set, training_args)
    return report_and_save(trainer, model, processor, metrics, eval_metrics)


if __name__ == "__main__":
    main()
