#!/usr/bin/env python
"""ClipBERT text-to-video retrieval fine-tuning (ClipBERT §3-4, appendix B): a two-way matched / not-matched MLP on
[CLS], trained with sparse sampling (``N_train`` random clips of ``T`` frames, their scores aggregated by G before
the loss) on each video with its caption and one caption of another video (the authors' ``itm_neg_size=1``; here
from the same batch). The paper's MSRVTT run (ClipBERT 8x2): 20 epochs at 5e-5, L = 448.
Evaluation scores every (text, video) pair of the validation split with ``N_test`` uniform clips.

    python training_scripts/clipbert_finetune_retrieval.py --model_name_or_path runs/clipbert_pt \
        --num_train_clips 8 --frames_per_clip 2 --num_test_clips 16 --train_file train_retrieval.jsonl \
        --validation_file test_retrieval.jsonl --output_dir runs/clipbert_ret --learning_rate 5e-5 \
        --num_train_epochs 20
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from transformers import set_seed  # noqa: E402

from clipbert_common import ClipArguments, ClipBertModelArguments, build_model, build_processor  # noqa: E402
from common import DataArguments, load_split, parse_args, report_and_save, setup_process, train_and_report  # noqa: E402
from hf_videolang.evaluation.retrieval import evaluate_matching_retrieval  # noqa: E402
from hf_videolang.models.clipbert import ClipBertForVideoTextRetrieval  # noqa: E402
from hf_videolang.training import (  # noqa: E402
    MatchingPairsCollator,
    VideoTextCollator,
    VideoTextTrainer,
    VideoTextTrainingArguments,
)


@dataclass
class RetrievalArguments:
    num_negatives: int = field(default=1, metadata={"help": "Negative captions per video (the authors' itm_neg_size)."})
    eval_video_batch_size: int = field(default=4, metadata={"help": "Videos scored against all texts at once."})


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    model_args, clip_args, data_args, retrieval_args, training_args = parse_args(
        (ClipBertModelArguments, ClipArguments, DataArguments, RetrievalArguments, VideoTextTrainingArguments), argv
    )
    setup_process(training_args)
    set_seed(training_args.seed)
    model = build_model(ClipBertForVideoTextRetrieval, model_args, clip_args)
    processor = build_processor(model_args, model.config)
    train_set = load_split(data_args, "train", task="retrieval")
    eval_set = load_split(data_args, "validation", task="retrieval")
    video_text_collator = VideoTextCollator(processor, task="retrieval", training=True, seed=training_args.seed)
    collator = MatchingPairsCollator(video_text_collator, retrieval_args.num_negatives)
    trainer = VideoTextTrainer(model=model, args=training_args, train_dataset=train_set, data_collator=collator,
                               processing_class=processor, eval_task=None)  # fmt: skip
    metrics = train_and_report(trainer, training_args)
    eval_metrics = None
    if eval_set is not None:
        result = evaluate_matching_retrieval(model.eval(), processor, eval_set, device=training_args.device,
                                             video_batch_size=retrieval_args.eval_video_batch_size,
                                             progress=not training_args.disable_tqdm)  # fmt: skip
        eval_metrics = {f"eval_{name}": float(value) for name, value in result.metrics.items()}
    return report_and_save(trainer, model, processor, metrics, eval_metrics)


if __name__ == "__main__":
    main()
