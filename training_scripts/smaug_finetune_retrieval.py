#!/usr/bin/env python
"""SMAUG text-to-video retrieval fine-tuning (SMAUG §4.1): the pre-training architecture with VTC + VTM (MLM and MVM
removed); 5 epochs at 1e-5 with cosine decay to 1e-6 on MSRVTT in the paper. Evaluation ranks by VTC and re-ranks
the top ``--rerank_top_k`` with VTM (the selector picks each pair's frames).

    python training_scripts/smaug_finetune_retrieval.py --model_name_or_path runs/smaug_4f --num_frames 4 \
        --train_file train_retrieval.jsonl --validation_file test_retrieval.jsonl --output_dir runs/smaug_ret \
        --learning_rate 1e-5 --num_train_epochs 5
"""

from __future__ import annotations

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
    report_and_save,
    retrieval_eval_metrics,
    setup_process,
    train_and_report,
)
from hf_videolang.models.smaug import SmaugForVideoTextRetrieval  # noqa: E402
from hf_videolang.training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments  # noqa: E402
from smaug_common import SmaugModelArguments, build_model, build_processor  # noqa: E402

LOSS_TERMS = ("loss_vtc", "loss_vtm")


@dataclass
class RetrievalArguments:
    rerank_top_k: int | None = field(default=128, metadata={"help": "VTM re-ranks the top k (Singularity's k_test)."})


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    model_args, data_args, retrieval_args, training_args = parse_args(
        (SmaugModelArguments, DataArguments, RetrievalArguments, VideoTextTrainingArguments), argv
    )
    setup_process(training_args)
    set_seed(training_args.seed)
    model = build_model(SmaugForVideoTextRetrieval, model_args)
    processor = build_processor(model_args, model.config, data_args.num_frames or 4)
    train_set = load_split(data_args, "train", task="retrieval")
    eval_set = load_split(data_args, "validation", task="retrieval")
    collator = VideoTextCollator(processor, task="retrieval", training=True, seed=training_args.seed)
    trainer = VideoTextTrainer(
        model=model, args=training_args, train_dataset=train_set, data_collator=collator, processing_class=processor
    )
    metrics = train_and_report(trainer, training_args, LOSS_TERMS)
    eval_metrics = None
    if eval_set is not None:
        model.eval()
        eval_metrics = retrieval_eval_metrics(model, processor, eval_set, training_args,
                                              rerank_top_k=retrieval_args.rerank_top_k)  # fmt: skip
    return report_and_save(trainer, model, processor, metrics, eval_metrics)


if __name__ == "__main__":
    main()
