#!/usr/bin/env python
"""UMT stage-1 pre-training (UMT §3.2): video-only unmasked token alignment with a frozen CLIP teacher.

The student sees the 20 % of each frame's tokens that semantic masking keeps (80 % masked, drawn from the teacher's
class-token attention, §3.1) and aligns them, on its last layers, with the teacher's tokens at the same positions
(UTA). The loss is ``loss_uta``, logged every ``logging_steps``.

    python training_scripts/umt_pretrain_stage1.py --preset umt-b16 \
        --teacher_name_or_path openai/clip-vit-base-patch16 --tokenizer_name bert-base-uncased \
        --train_file videos.jsonl --output_dir runs/umt_stage1 --per_device_train_batch_size 32

Rows need only a ``"video"`` (any of the package's annotation formats works; each video is used once per epoch).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from transformers import set_seed  # noqa: E402

from common import (  # noqa: E402
    DataArguments,
    ModelArguments,
    VideoOnlyCollator,
    build_processor,
    checkpoint_config,
    load_config,
    load_split,
    load_teacher_if_given,
    logger,
    parse_args,
    report_and_save,
    setup_process,
    train_and_report,
)
from hf_videolang.models.umt import UmtForPreTraining  # noqa: E402
from hf_videolang.training import VideoTextTrainer, VideoTextTrainingArguments  # noqa: E402


def build_model(model_args: ModelArguments) -> UmtForPreTraining:
    """A stage-1 ``UmtForPreTraining``: resumed from ``--model_name_or_path`` or new from a config / preset."""
    if model_args.model_name_or_path is not None:
        config = checkpoint_config(model_args)
        if config.pretraining_stage != 1:
            raise ValueError(
                f"{model_args.model_name_or_path} is a stage-{config.pretraining_stage} checkpoint; stage 1 continues "
                "only stage-1 checkpoints."
            )
        model = UmtForPreTraining.from_pretrained(model_args.model_name_or_path, config=config)
    else:
        if model_args.teacher_name_or_path is None:
            raise ValueError("ModelArguments: a new stage-1 model needs --teacher_name_or_path (a CLIP checkpoint).")
        model = UmtForPreTraining(load_config(model_args, pretraining_stage=1))
    load_teacher_if_given(model, model_args)
    return model


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train stage 1 and save model + processor to ``--output_dir``; returns the final logged loss terms."""
    model_args, data_args, training_args = parse_args(
        (ModelArguments, DataArguments, VideoTextTrainingArguments), argv
    )
    setup_process(training_args)
    set_seed(training_args.seed)

    model = build_model(model_args)
    processor = build_processor(model_args, data_args, model.config, model.config.vision_config.num_frames)
    train_set = load_split(data_args, "train", task="video")
    trainer = VideoTextTrainer(
        model=model,
        args=training_args,
        train_dataset=train_set,
        data_collator=VideoOnlyCollator(processor, task="pretrain", training=True, seed=training_args.seed),
        processing_class=processor,
    )
    metrics = report_and_save(trainer, model, processor, train_and_report(trainer, training_args, ("loss_uta",)))
    logger.info("stage 1 done: %s", metrics)
    return metrics


if __name__ == "__main__":
    main()
