#!/usr/bin/env python
"""SMAUG pre-training (SMAUG §3.3-3.5): VTC + VTM + MLM + MVM on tube-masked videos, with VTS and frame selection.

Two runs, as in the paper: ``--num_frames 1`` (single frame; 10 epochs at 1e-4, warm-up 1 epoch, cosine to 1e-6),
then ``--num_frames 4`` from the single-frame checkpoint (5 epochs; the selector keeps ``num_selected_frames``).
50 % of the patches are tube-masked and 15 % of the tokens masked for MLM (the ``SmaugConfig`` defaults, read by
``SmaugProcessor``); every loss term is logged (``loss_vtc``, ``loss_vtm``, ``loss_mlm``, ``loss_mvm``).

    python training_scripts/smaug_pretrain.py --preset smaug-b16 --text_encoder_name_or_path bert-base-uncased \
        --clip_name_or_path openai/clip-vit-base-patch16 --num_frames 1 --train_file train_retrieval.jsonl \
        --output_dir runs/smaug_1f --learning_rate 1e-4 --num_train_epochs 10
    python training_scripts/smaug_pretrain.py --model_name_or_path runs/smaug_1f --num_frames 4 \
        --train_file train_retrieval.jsonl --validation_file val_retrieval.jsonl --output_dir runs/smaug_4f \
        --learning_rate 1e-4 --num_train_epochs 5
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
from hf_videolang.models.smaug import SmaugForPreTraining, SmaugForVideoTextRetrieval  # noqa: E402
from hf_videolang.training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments  # noqa: E402
from smaug_common import SmaugModelArguments, build_model, build_processor  # noqa: E402

LOSS_TERMS = ("loss_vtc", "loss_vtm", "loss_mlm", "loss_mvm")


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Pre-train, evaluate retrieval on the validation split (VTC), save; returns the metrics."""
    model_args, data_args, training_args = parse_args(
        (SmaugModelArguments, DataArguments, VideoTextTrainingArguments), argv
    )
    setup_process(training_args)
    set_seed(training_args.seed)
    model = build_model(SmaugForPreTraining, model_args)
    processor = build_processor(model_args, model.config, data_args.num_frames or 1)
    train_set = load_split(data_args, "train", task="retrieval")
    eval_set = load_split(data_args, "validation", task="retrieval")
    # "pretrain": tube-masked videos (bool_masked_pos) and MLM captions (mlm_input_ids / mlm_labels).
    collator = VideoTextCollator(processor, task="pretrain", training=True, seed=training_args.seed)
    trainer = VideoTextTrainer(
        model=model, args=training_args, train_dataset=train_set, data_collator=collator, processing_class=processor
    )
    metrics = train_and_report(trainer, training_args, LOSS_TERMS)
    metrics["num_frames"] = processor.num_frames
    eval_metrics = None
    if eval_set is not None:
        retrieval = SmaugForVideoTextRetrieval(model.config)
        retrieval.smaug.load_state_dict(model.smaug.state_dict())
        retrieval.vtm_head.load_state_dict(model.vtm_head.state_dict())
        eval_metrics = retrieval_eval_metrics(retrieval.to(training_args.device).eval(), processor, eval_set,
                                              training_args)  # fmt: skip
    return report_and_save(trainer, model, processor, metrics, eval_metrics)


if __name__ == "__main__":
    main()
