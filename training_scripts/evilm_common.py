"""Shared set-up of the E-ViLM training scripts: where the model, the tokenizer and the text vocabulary come from."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from transformers import AutoModel, AutoTokenizer

from hf_videolang.models.evilm import EvilmConfig, EvilmProcessor, truncate_vocabulary


@dataclass
class EvilmModelArguments:
    """A checkpoint to continue from, or a new model from a preset / config and a text encoder."""

    model_name_or_path: str | None = field(default=None, metadata={"help": "An E-ViLM checkpoint folder or Hub id."})
    preset: str | None = field(default=None, metadata={"help": "A preset for a new model: 'evilm-s' (E-ViLM §4.1)."})
    config_name: str | None = field(default=None, metadata={"help": "An EvilmConfig folder for a new model."})
    text_encoder_name_or_path: str | None = field(
        default=None, metadata={"help": "A pretrained BERT whose layers start the language encoder (a new model)."}
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "The WordPiece tokenizer to truncate."})
    vocabulary_keep_ratio: float = field(
        default=0.3, metadata={"help": "Fraction of the corpus' WordPieces kept (§4.1: the top 30 %)."}
    )
    video_tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "A trained EvilmVideoTokenizer that tags the masked regions (pre-training)."}
    )

    def __post_init__(self) -> None:
        if self.model_name_or_path is None and self.tokenizer_name is None and self.text_encoder_name_or_path is None:
            raise ValueError("EvilmModelArguments: a new model needs --tokenizer_name or --text_encoder_name_or_path.")
        if self.model_name_or_path is not None and (self.preset or self.config_name):
            raise ValueError("EvilmModelArguments: pass --model_name_or_path or --preset/--config_name, not both.")


def new_model_and_processor(model_class, model_args: EvilmModelArguments, captions, **config_overrides):
    """A new E-ViLM whose vocabulary is truncated to `captions` (and whose text layers start from the text
    encoder, embeddings sliced to the kept tokens), with its processor."""
    source = model_args.tokenizer_name or model_args.text_encoder_name_or_path
    vocabulary = truncate_vocabulary(AutoTokenizer.from_pretrained(source), captions,
                                     keep_ratio=model_args.vocabulary_keep_ratio)  # fmt: skip
    if model_args.config_name:
        config = EvilmConfig.from_pretrained(model_args.config_name, **config_overrides)
    else:
        config = EvilmConfig.from_preset(model_args.preset or "evilm-s", **config_overrides)
    text = config.text_config.to_dict()
    if model_args.text_encoder_name_or_path:
        text = AutoModel.from_pretrained(model_args.text_encoder_name_or_path).config.to_dict()
    text["vocab_size"] = len(vocabulary.kept_ids)
    config = EvilmConfig(**{**config.to_dict(), "text_config": text})
    model = model_class(config)
    if model_args.text_encoder_name_or_path:
        encoder = AutoModel.from_pretrained(model_args.text_encoder_name_or_path)
        encoder.set_input_embeddings(vocabulary.truncate_embeddings(encoder.get_input_embeddings()))
        model.evilm.text_model.load_state_dict(encoder.state_dict(), strict=False)
    return model, EvilmProcessor.from_config(config, vocabulary.tokenizer)


def load_processor(path: str) -> EvilmProcessor:
    if not os.path.isfile(os.path.join(path, "processor_config.json")):
        raise FileNotFoundError(f"{path!r} holds no processor_config.json: save the processor with the model.")
    return EvilmProcessor.from_pretrained(path)
