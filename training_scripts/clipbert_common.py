"""Shared pieces of the ClipBERT training scripts (``clipbert_pretrain.py``, ``clipbert_finetune_retrieval.py``,
``clipbert_finetune_qa.py``): the model and clip-layout arguments and how a model and its processor are built from
them. Data arguments, parsing, training and saving come from ``common.py``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from transformers import AutoModel, AutoTokenizer

from common import DataArguments  # noqa: F401  (re-exported for the scripts)
from hf_videolang.models.clipbert import ClipBertConfig, ClipBertProcessor


@dataclass
class ClipBertModelArguments:
    """Where the model, its initialization and the tokenizer come from."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A ClipBERT checkpoint to continue from (e.g. the image-text pre-training)."}
    )
    config_name: str | None = field(default=None, metadata={"help": "A ClipBertConfig folder for a new model."})
    preset: str | None = field(
        default=None, metadata={"help": "A ClipBertConfig preset for a new model (clipbert-base, ClipBERT §3)."}
    )
    text_encoder_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A BERT (BertModel) whose embeddings, layers and pooler initialize the fusion transformer of "
                          "a new model (ClipBERT §3: BERT-base)."},
    )  # fmt: skip
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer (default: the checkpoint's, else the text encoder's)."}
    )

    def __post_init__(self) -> None:
        if self.model_name_or_path is not None and (self.config_name or self.preset):
            raise ValueError("ClipBertModelArguments: pass --model_name_or_path or --config_name/--preset, not both.")
        if self.config_name is not None and self.preset is not None:
            raise ValueError("ClipBertModelArguments: pass --config_name or --preset, not both.")


@dataclass
class ClipArguments:
    """The sparse clip layout (ClipBERT §3 "Sparse Sampling"); None keeps the checkpoint's / config's value."""

    num_train_clips: int | None = field(default=None, metadata={"help": "N_train, random clips per video (8)."})
    frames_per_clip: int | None = field(default=None, metadata={"help": "T, frames per clip (2)."})
    num_test_clips: int | None = field(default=None, metadata={"help": "N_test, uniform clips at evaluation (16)."})
    clip_aggregation: str | None = field(default=None, metadata={"help": "G: mean, max or logsumexp (default)."})

    def __post_init__(self) -> None:
        for name in ("num_train_clips", "frames_per_clip", "num_test_clips"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"ClipArguments: --{name} must be a positive integer, got {value}.")

    def overrides(self) -> dict[str, Any]:
        """The config fields given on the command line."""
        names = ("num_train_clips", "frames_per_clip", "num_test_clips", "clip_aggregation")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


def build_model(model_class: type, model_args: ClipBertModelArguments, clip_args: ClipArguments | None = None,
                **config_overrides: Any):  # fmt: skip
    """The checkpoint in ``model_class``, or a new model from ``--config_name`` / ``--preset`` (default
    ``clipbert-base``), its fusion transformer initialized from ``--text_encoder_name_or_path`` when given. The clip
    layout of ``clip_args`` and ``config_overrides`` (e.g. ``answer_list``) replace the config's."""
    overrides = {**(clip_args.overrides() if clip_args is not None else {}), **config_overrides}
    if model_args.model_name_or_path is not None:
        return model_class.from_pretrained(model_args.model_name_or_path, **overrides)
    if model_args.config_name is not None:
        config = ClipBertConfig.from_pretrained(model_args.config_name, **overrides)
    else:
        config = ClipBertConfig.from_preset(model_args.preset or "clipbert-base", **overrides)
    model = model_class(config)
    if model_args.text_encoder_name_or_path is not None:
        bert = AutoModel.from_pretrained(model_args.text_encoder_name_or_path)
        result = model.clipbert.load_state_dict(bert.state_dict(), strict=False)
        missing = [key for key in result.missing_keys if not key.startswith(("vision_model.", "visual_embeddings."))]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"--text_encoder_name_or_path {model_args.text_encoder_name_or_path!r} does not fit the fusion "
                f"transformer (missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}); pass a BertModel "
                "checkpoint with the config's text_config sizes."
            )
    return model


def build_processor(model_args: ClipBertModelArguments, config: ClipBertConfig, **overrides: Any) -> ClipBertProcessor:
    """The checkpoint's processor with ``config``'s clip layout, or one made from the config; ``overrides`` (e.g.
    ``num_clips=1, frames_per_clip=1`` for image pre-training) win."""
    settings = dict(num_clips=config.num_train_clips, frames_per_clip=config.frames_per_clip,
                    num_frames=config.num_train_clips * config.frames_per_clip, num_test_clips=config.num_test_clips)
    settings.update(overrides)  # fmt: skip
    checkpoint = model_args.model_name_or_path
    if checkpoint is not None and os.path.isfile(os.path.join(checkpoint, "processor_config.json")):
        processor = ClipBertProcessor.from_pretrained(checkpoint, **settings)
        if model_args.tokenizer_name is not None:
            processor.tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name)
        return processor
    source = model_args.tokenizer_name or model_args.text_encoder_name_or_path or checkpoint
    if source is None:
        raise ValueError("ClipBertModelArguments: a new model needs --tokenizer_name or --text_encoder_name_or_path.")
    return ClipBertProcessor.from_config(config, AutoTokenizer.from_pretrained(source), **settings)
