#!/usr/bin/env python
"""UMT stage-2 pre-training (UMT §3.2): vision-language alignment with VTC, VTM (hard negatives), MLM and UTA.

Starts from a stage-1 checkpoint (its student, teacher and alignment head are kept; the text encoder and the
multimodal encoder are new unless ``--config_name`` / ``--preset`` sizes them otherwise), from a stage-2 checkpoint
(continued), or from scratch (``--config_name`` / ``--preset`` + ``--teacher_name_or_path``). Every term is logged
(``loss_vtc``, ``loss_vtm``, ``loss_mlm``, ``loss_uta``). With validation data, zero-shot text-video retrieval
(R@1/5/10, MdR) is reported at the end.

    python training_scripts/umt_pretrain_stage2.py --model_name_or_path runs/umt_stage1 \
        --tokenizer_name bert-base-uncased --train_file train_retrieval.jsonl \
        --validation_file val_retrieval.jsonl --output_dir runs/umt_stage2
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
    build_processor,
    checkpoint_config,
    load_config,
    load_split,
    load_teacher_if_given,
    parse_args,
    report_and_save,
    retrieval_eval_metrics,
    setup_process,
    train_and_report,
)
from hf_videolang.models.umt import UmtConfig, UmtForPreTraining  # noqa: E402
from hf_videolang.training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments  # noqa: E402

LOSS_TERMS = ("loss_vtc", "loss_vtm", "loss_mlm", "loss_uta")
STAGE2_NUM_FRAMES = 4  # UMT §4.1


def stage2_config(model_args: ModelArguments) -> UmtConfig:
    """The stage-2 config: the checkpoint's own, or for a stage-1 checkpoint its vision/teacher settings plus the
    text side of ``--config_name`` / ``--preset`` (BERT-base's 9 + 3 split when neither is given)."""
    if model_args.model_name_or_path is None:
        return load_config(model_args, pretraining_stage=2)
    config = checkpoint_config(model_args)
    if config.pretraining_stage == 2:
        return config
    text_side: dict = {}
    if model_args.config_name is not None or model_args.preset is not None:
        target = load_config(model_args, pretraining_stage=2)
        text_side = dict(
            text_config=target.text_config.to_dict(),
            multimodal_config=target.multimodal_config.to_dict(),
            projection_dim=target.projection_dim,
        )
    return checkpoint_config(model_args, pretraining_stage=2, **text_side)


def build_model(model_args: ModelArguments) -> UmtForPreTraining:
    config = stage2_config(model_args)
    if model_args.model_name_or_path is not None:
        # A stage-1 checkpoint fills the student, teacher and UTA head; transformers reports the new text weights.
        model = UmtForPreTraining.from_pretrained(model_args.model_name_or_path, config=config)
    else:
        if model_args.teacher_name_or_path is None and config.teacher_config is not None:
            raise ValueError("ModelArguments: a new stage-2 model needs --teacher_name_or_path (a CLIP checkpoint).")
        model = UmtForPreTraining(config)
    load_teacher_if_given(model, model_args)
    return model


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train stage 2, evaluate zero-shot retrieval on the validation split, save; returns the metrics."""
    model_args, data_args, training_args = parse_args(
        (ModelArguments, DataArguments, VideoTextTrainingArguments), argv
    )
    setup_process(training_args)
    set_seed(training_args.seed)

    model = build_model(model_args)
    processor = build_processor(model_args, data_args, model.config, STAGE2_NUM_FRAMES)
    train_set = load_split(data_args, "train", task="retrieval")
    eval_set = load_split(data_args, "validation", task="retrieval")
    # "pretrain": captions plus MLM at config.text_mask_ratio (50 %, UMT Table 5); masks come from the teacher.
    collator = VideoTextCollator(processor, task="pretrain", training=True, seed=training_args.seed)
    trainer = VideoTextTrainer(
        model=model, args=training_args, train_dataset=train_set, data_collator=collator, processing_class=processor
    )
    metrics = train_and_report(trainer, training_args, LOSS_TERMS)

    eval_metrics = None
    if eval_set is not None:
        # UmtModel is the dual encoder (get_video_features / get_text_features) of the pre-training model.
        eval_metrics = retrieval_eval_metrics(model.umt, processor, eval_set, training_args)
    return report_and_save(trainer, model, processor, metrics, eval_metrics)


if __name__ == "__main__":
    main()
