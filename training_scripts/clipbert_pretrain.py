#!/usr/bin/env python
"""ClipBERT image-text pre-training (ClipBERT §3 "Weight Initialization and Pre-training"): masked language modeling
(15 % of the tokens) and image-text matching (a caption replaced by another with probability 0.5), on images as
1-frame clips; pixel random sampling keeps ``pixel_random_sampling_size`` feature pixels. The paper pre-trains on
COCO Captions + Visual Genome Captions (40 epochs, batch 32 x 8 GPUs, lr 1e-4, L = 768); videos work too, one
random frame each. Every loss term is logged (``loss_mlm``, ``loss_itm``); the validation split reports
``eval_loss_mlm`` / ``eval_loss_itm`` (seeded masks and negatives).

    python training_scripts/clipbert_pretrain.py --preset clipbert-base --text_encoder_name_or_path bert-base-uncased \
        --train_file train_captions.jsonl --validation_file val_captions.jsonl --output_dir runs/clipbert_pt \
        --learning_rate 1e-4 --num_train_epochs 40
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from transformers import set_seed  # noqa: E402

from clipbert_common import ClipArguments, ClipBertModelArguments, build_model, build_processor  # noqa: E402
from common import DataArguments, load_split, parse_args, report_and_save, setup_process, train_and_report  # noqa: E402
from hf_videolang.models.clipbert import ClipBertForPreTraining  # noqa: E402
from hf_videolang.training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments  # noqa: E402

LOSS_TERMS = ("loss_mlm", "loss_itm")


@torch.no_grad()
def pretraining_eval_losses(model, collator, eval_set, batch_size: int, seed: int) -> dict[str, float]:
    """Mean ``loss_mlm`` / ``loss_itm`` over ``eval_set`` (masks, frames and ITM negatives from ``seed``)."""
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    totals = dict.fromkeys(LOSS_TERMS, 0.0)
    count = 0
    for batch in DataLoader(eval_set, batch_size=batch_size, collate_fn=collator, drop_last=len(eval_set) > batch_size):
        if len(batch["input_ids"]) < 2:
            continue  # in-batch ITM negatives need two pairs
        inputs = {k: batch[k].to(device) for k in ("pixel_values", "input_ids", "attention_mask", "mlm_input_ids",
                                                   "mlm_labels") if k in batch}  # fmt: skip
        outputs = model(**inputs, generator=generator)
        for term in LOSS_TERMS:
            value = getattr(outputs, term)
            totals[term] += float(value) if value is not None else float("nan")
        count += 1
    return {f"eval_{term}": total / max(count, 1) for term, total in totals.items()}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Pre-train on (frame, caption) pairs, report the validation losses, save; returns the metrics."""
    model_args, clip_args, data_args, training_args = parse_args(
        (ClipBertModelArguments, ClipArguments, DataArguments, VideoTextTrainingArguments), argv
    )
    setup_process(training_args)
    set_seed(training_args.seed)
    model = build_model(ClipBertForPreTraining, model_args, clip_args)
    # The saved processor keeps the video layout for fine-tuning; pre-training reads one frame per image / video.
    processor = build_processor(model_args, model.config)
    image_processor = build_processor(model_args, model.config, num_clips=1, frames_per_clip=1, num_frames=1)
    train_set = load_split(data_args, "train", task="retrieval")
    eval_set = load_split(data_args, "validation", task="retrieval")
    collator = VideoTextCollator(image_processor, task="pretrain", training=True, seed=training_args.seed)
    trainer = VideoTextTrainer(model=model, args=training_args, train_dataset=train_set, data_collator=collator,
                               processing_class=processor, eval_task=None)  # fmt: skip
    metrics = train_and_report(trainer, training_args, LOSS_TERMS)
    eval_metrics = None
    if eval_set is not None:
        eval_metrics = pretraining_eval_losses(model, collator, eval_set, training_args.per_device_eval_batch_size,
                                               training_args.seed)  # fmt: skip
    return report_and_save(trainer, model, processor, metrics, eval_metrics)


if __name__ == "__main__":
    main()
