#!/usr/bin/env python
"""E-ViLM retrieval fine-tuning: unimodal encoding with a contrastive loss plus VTM (E-ViLM §4.2 and appendix);
evaluation ranks by the dot product and re-ranks the top ``--rerank_top_k`` with the matching head.

    python training_scripts/evilm_finetune_retrieval.py --model_name_or_path runs/evilm_pretrain \
        --train_file train_retrieval.jsonl --validation_file val_retrieval.jsonl --output_dir runs/evilm_retrieval
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
    report_and_save,
    retrieval_eval_metrics,
    setup_process,
    train_and_report,
)
from evilm_common import EvilmModelArguments, load_processor  # noqa: E402
from hf_videolang.models.evilm import EvilmForVideoTextRetrieval  # noqa: E402
from hf_videolang.training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments  # noqa: E402


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    model_args, data_args, training_args = parse_args(
        (EvilmModelArguments, DataArguments, VideoTextTrainingArguments), argv
    )
    if model_args.model_name_or_path is None:
        raise ValueError("evilm_finetune_retrieval.py fine-tunes a pre-trained model: pass --model_name_or_path.")
    setup_process(training_args)
    set_seed(training_args.seed)
    model = EvilmForVideoTextRetrieval.from_pretrained(model_args.model_name_or_path)
    processor = load_processor(model_args.model_name_or_path)
    train_set = load_split(data_args, "train", task="retrieval")
    eval_set = load_split(data_args, "validation", task="retrieval")
    collator = VideoTextCollator(processor, task="retrieval", training=True, seed=training_args.seed)
    trainer = VideoTextTrainer(model=model, args=training_args, train_dataset=train_set, data_collator=collator,
                               processing_class=processor)  # fmt: skip
    metrics = train_and_report(trainer, training_args, ("loss_vtc", "loss_vtm"))
    eval_metrics = None if eval_set is None else retrieval_eval_metrics(model, processor, eval_set, training_args)
    return report_and_save(trainer, model, processor, metrics, eval_metrics)


if __name__ == "__main__":
    main()
