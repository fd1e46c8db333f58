#!/usr/bin/env python
"""UMT text-video retrieval fine-tuning (UMT §4.3): VTC + VTM with hard negatives on unmasked videos.

Starts from a stage-2 checkpoint. The teacher, UTA and MLM are dropped (loss weights 0, no masking), as in the
authors' retrieval fine-tuning; ``loss_vtc`` and ``loss_vtm`` are logged. The result is saved as a
``UmtForVideoTextRetrieval`` and evaluated on the validation split with ``evaluate_retrieval`` (text-to-video and
video-to-text R@1/5/10 and median rank), optionally re-ranking the top k candidates with VTM (UMT §3.3).

    python training_scripts/umt_finetune_retrieval.py --model_name_or_path runs/umt_stage2 \
        --train_file train_retrieval.jsonl --validation_file test_retrieval.jsonl --rerank_top_k 128 \
        --output_dir runs/umt_retrieval
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
    ModelArguments,
    build_processor,
    finetuning_config,
    load_split,
    logger,
    parse_args,
    report_and_save,
    retrieval_eval_metrics,
    setup_process,
    train_and_report,
)
from hf_videolang.models.umt import UmtForPreTraining, UmtForVideoTextRetrieval  # noqa: E402
from hf_videolang.training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments  # noqa: E402

FINETUNE_NUM_FRAMES = 4  # UMT §4.1 (the authors fine-tune retrieval on 4 to 12 frames)


@dataclass
class RetrievalArguments:
    """Evaluation options of retrieval fine-tuning."""

    rerank_top_k: int | None = field(
        default=None, metadata={"help": "Re-rank the top k candidates of each query with VTM (authors: 128)."}
    )


def to_retrieval_model(model: UmtForPreTraining) -> UmtForVideoTextRetrieval:
    """The trained encoders and VTM head as a ``UmtForVideoTextRetrieval`` (the MLM head is left out)."""
    retrieval = UmtForVideoTextRetrieval(model.config)
    missing, _ = retrieval.load_state_dict(model.state_dict(), strict=False)
    if missing:
        raise RuntimeError(f"the pre-training model lacks retrieval weights: {missing}")
    return retrieval.to(model.device)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Fine-tune, evaluate retrieval on the validation split, save the retrieval model; returns the metrics."""
    model_args, data_args, retrieval_args, training_args = parse_args(
        (ModelArguments, DataArguments, RetrievalArguments, VideoTextTrainingArguments), argv
    )
    setup_process(training_args)
    set_seed(training_args.seed)

    config = finetuning_config(model_args, mlm_loss_weight=0.0)
    model = UmtForPreTraining.from_pretrained(model_args.model_name_or_path, config=config)
    processor = build_processor(model_args, data_args, config, FINETUNE_NUM_FRAMES)
    train_set = load_split(data_args, "train", task="retrieval")
    eval_set = load_split(data_args, "validation", task="retrieval")
    trainer = VideoTextTrainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        data_collator=VideoTextCollator(processor, task="retrieval", training=True, seed=training_args.seed),
        processing_class=processor,
    )
    metrics = train_and_report(trainer, training_args, ("loss_vtc", "loss_vtm"))

    retrieval_model = to_retrieval_model(model)
    eval_metrics = None
    if eval_set is not None:
        eval_metrics = retrieval_eval_metrics(
            retrieval_model, processor, eval_set, training_args, rerank_top_k=retrieval_args.rerank_top_k
        )
    report_and_save(trainer, retrieval_model, processor, metrics, eval_metrics)
    logger.info("retrieval fine-tuning done: %s", metrics)
    return metrics


if __name__ == "__main__":
    main()
