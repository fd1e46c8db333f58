#!/usr/bin/env python
"""MAC pre-training (MAC §4.1, §4.3): masked contrastive video-text alignment, in two phases.

1. ``--phase spatial``: one random frame per video (image-text pairs are 1-frame videos too) to learn spatial
   alignment; the paper trains 20 epochs at learning rate 1e-4, batch 2048, on CC3M + one frame of WebVid-2M.
2. ``--phase temporal``: 4 random frames per video from the spatial phase's checkpoint; the paper trains 2 epochs at
   3e-5, batch 1024, on WebVid-2M.

Both phases mask 60 % of each frame's patches at random and 15 % of the words (whole words, [MASK] only), the
``MacConfig`` defaults read by ``MacProcessor``, and train with the VTC loss alone (logged as ``loss_vtc``). With
validation data, text-video retrieval (R@1/5/10, MdR) is reported at the end.

    python training_scripts/mac_pretrain.py --phase spatial --preset mac-b16 \
        --text_encoder_name_or_path distilbert-base-uncased --train_file train_retrieval.jsonl \
        --output_dir runs/mac_spatial --learning_rate 1e-4 --num_train_epochs 20
    python training_scripts/mac_pretrain.py --phase temporal --model_name_or_path runs/mac_spatial \
        --train_file train_retrieval.jsonl --validation_file val_retrieval.jsonl \
        --output_dir runs/mac_temporal --learning_rate 3e-5 --num_train_epochs 2
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from transformers import AutoTokenizer, set_seed  # noqa: E402

from common import (  # noqa: E402
    DataArguments,
    load_split,
    parse_args,
    report_and_save,
    retrieval_eval_metrics,
    setup_process,
    train_and_report,
)
from hf_videolang.models.mac import MacConfig, MacForVideoTextRetrieval, MacProcessor  # noqa: E402
from hf_videolang.training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments  # noqa: E402

LOSS_TERMS = ("loss_vtc",)
#: Frames per video of each phase (MAC §4.3: "a single frame", then "4 frames").
PHASE_FRAMES = {"spatial": 1, "temporal": 4}


@dataclass
class MacModelArguments:
    """Where the model, its text encoder and the tokenizer come from."""

    phase: str = field(default="spatial", metadata={"help": "'spatial' (1 frame) or 'temporal' (4 frames), §4.3."})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A MAC checkpoint to continue from (e.g. the spatial phase's output)."}
    )
    config_name: str | None = field(default=None, metadata={"help": "A MacConfig folder for a new model."})
    preset: str | None = field(default=None, metadata={"help": "A MacConfig preset for a new model (mac-b16)."})
    text_encoder_name_or_path: str | None = field(
        default=None, metadata={"help": "Pretrained text encoder for a new model (DistilBERT in the paper)."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer (default: the checkpoint's, else the text encoder's)."}
    )
    vision_init_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Image ViT (transformers ViTModel layout) for the spatial blocks of a new model, §4.3 "
                  "(google/vit-base-patch16-224-in21k in the paper); temporal attention starts at zero."},
    )

    def __post_init__(self) -> None:
        if self.phase not in PHASE_FRAMES:
            raise ValueError(f"MacModelArguments: --phase must be one of {sorted(PHASE_FRAMES)}, got {self.phase!r}.")
        if self.model_name_or_path is not None and (self.config_name or self.preset):
            raise ValueError("MacModelArguments: pass --model_name_or_path or --config_name/--preset, not both.")
        if self.config_name is not None and self.preset is not None:
            raise ValueError("MacModelArguments: pass --config_name or --preset, not both.")
        if self.model_name_or_path is not None and self.vision_init_name_or_path is not None:
            raise ValueError("MacModelArguments: --vision_init_name_or_path initializes a new model; it cannot be "
                             "combined with --model_name_or_path.")


def build_model(model_args: MacModelArguments) -> MacForVideoTextRetrieval:
    """The checkpoint, or a new model from ``--config_name`` / ``--preset`` (default ``mac-b16``) whose text encoder
    is initialized from ``--text_encoder_name_or_path`` when given."""
    if model_args.model_name_or_path is not None:
        return MacForVideoTextRetrieval.from_pretrained(model_args.model_name_or_path)
    if model_args.config_name is not None:
        config = MacConfig.from_pretrained(model_args.config_name)
    else:
        config = MacConfig.from_preset(model_args.preset or "mac-b16")
    model = MacForVideoTextRetrieval(config)
    if model_args.text_encoder_name_or_path is not None:
        model.mac.load_text_encoder(model_args.text_encoder_name_or_path)
    if model_args.vision_init_name_or_path is not None:
        model.mac.vision_model.load_vit_weights(model_args.vision_init_name_or_path)
    return model


def build_processor(model_args: MacModelArguments, data_args: DataArguments, config: MacConfig) -> MacProcessor:
    """The checkpoint's processor, or one made from the config; it samples the phase's frames (or ``--num_frames``)."""
    num_frames = data_args.num_frames or PHASE_FRAMES[model_args.phase]
    checkpoint = model_args.model_name_or_path
    if checkpoint is not None and os.path.isfile(os.path.join(checkpoint, "processor_config.json")):
        processor = MacProcessor.from_pretrained(checkpoint)
        if model_args.tokenizer_name is not None:
            processor.tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name)
        return processor.with_num_frames(num_frames)
    source = model_args.tokenizer_name or model_args.text_encoder_name_or_path or checkpoint
    if source is None:
        raise ValueError("MacModelArguments: a new model needs --tokenizer_name or --text_encoder_name_or_path.")
    return MacProcessor.from_config(config, AutoTokenizer.from_pretrained(source), num_frames=num_frames)


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Train one phase, evaluate retrieval on the validation split, save; returns the metrics."""
    model_args, data_args, training_args = parse_args(
        (MacModelArguments, DataArguments, VideoTextTrainingArguments), argv
    )
    setup_process(training_args)
    set_seed(training_args.seed)

    model = build_model(model_args)
    processor = build_processor(model_args, data_args, model.config)
    train_set = load_split(data_args, "train", task="retrieval")
    eval_set = load_split(data_args, "validation", task="retrieval")
    # "pretrain": masked videos (bool_masked_pos) and whole-word-masked captions (mlm_input_ids), MAC §3.1.
    collator = VideoTextCollator(processor, task="pretrain", training=True, seed=training_args.seed)
    trainer = VideoTextTrainer(
        model=model, args=training_args, train_dataset=train_set, data_collator=collator, processing_class=processor
    )
    metrics = train_and_report(trainer, training_args, LOSS_TERMS)
    metrics["num_frames"] = processor.num_frames

    eval_metrics = None if eval_set is None else retrieval_eval_metrics(model, processor, eval_set, training_args)
    return report_and_save(trainer, model, processor, metrics, eval_metrics)


if __name__ == "__main__":
    main()
