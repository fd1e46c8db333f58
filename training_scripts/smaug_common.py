"""Shared pieces of the SMAUG training scripts (``smaug_pretrain.py``, ``smaug_finetune_retrieval.py``,
``smaug_finetune_qa.py``): the model arguments and how a model and its processor are built from them. Data
arguments, parsing, training and saving come from ``common.py``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from transformers import AutoTokenizer

from common import DataArguments  # noqa: F401  (re-exported for the scripts)
from hf_videolang.models.smaug import SmaugConfig, SmaugProcessor


@dataclass
class SmaugModelArguments:
    """Where the model, its initialization and the tokenizer come from."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A SMAUG checkpoint to continue from (e.g. the single-frame pre-training)."}
    )
    config_name: str | None = field(default=None, metadata={"help": "A SmaugConfig folder for a new model."})
    preset: str | None = field(default=None, metadata={"help": "A SmaugConfig preset for a new model (smaug-b16)."})
    text_encoder_name_or_path: str | None = field(
        default=None, metadata={"help": "A BERT split into 9 text + 3 multimodal layers (SMAUG §3.5) for a new model."}
    )
    clip_name_or_path: str | None = field(
        default=None, metadata={"help": "A CLIP vision tower (CLIPVisionModel) for the encoder of a new model (§3.5)."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer (default: the checkpoint's, else the text encoder's)."}
    )

    def __post_init__(self) -> None:
        if self.model_name_or_path is not None and (self.config_name or self.preset):
            raise ValueError("SmaugModelArguments: pass --model_name_or_path or --config_name/--preset, not both.")
        if self.config_name is not None and self.preset is not None:
            raise ValueError("SmaugModelArguments: pass --config_name or --preset, not both.")


def build_model(model_class: type, model_args: SmaugModelArguments):
    """The checkpoint in ``model_class``, or a new model from ``--config_name`` / ``--preset`` (default
    ``smaug-b16``) initialized from ``--text_encoder_name_or_path`` and ``--clip_name_or_path`` when given."""
    if model_args.model_name_or_path is not None:
        return model_class.from_pretrained(model_args.model_name_or_path)
    if model_args.config_name is not None:
        config = SmaugConfig.from_pretrained(model_args.config_name)
    else:
        config = SmaugConfig.from_preset(model_args.preset or "smaug-b16")
    model = model_class(config)
    if model_args.text_encoder_name_or_path is not None:
        model.smaug.load_text_encoder(model_args.text_encoder_name_or_path)
    if model_args.clip_name_or_path is not None:
        model.smaug.load_vision_encoder_from_clip(model_args.clip_name_or_path)
    return model


def build_processor(model_args: SmaugModelArguments, config: SmaugConfig, num_frames: int) -> SmaugProcessor:
    """The checkpoint's processor, or one made from the config, sampling ``num_frames`` frames."""
    checkpoint = model_args.model_name_or_path
    if checkpoint is not None and os.path.isfile(os.path.join(checkpoint, "processor_config.json")):
        processor = SmaugProcessor.from_pretrained(checkpoint)
        if model_args.tokenizer_name is not None:
            processor.tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name)
        return processor.with_num_frames(num_frames)
    source = model_args.tokenizer_name or model_args.text_encoder_name_or_path or checkpoint
    if source is None:
        raise ValueError("SmaugModelArguments: a new model needs --tokenizer_name or --text_encoder_name_or_path.")
    return SmaugProcessor.from_config(config, AutoTokenizer.from_pretrained(source), num_frames=num_frames)
