"""Convert the authors' ClipBERT checkpoints (jayleicn/ClipBERT) into the hf_videolang ClipBERT models.

The authors save ``ClipBert(nn.Module).state_dict()`` (``src/modeling/e2e_model.py``): ``cnn`` is their
``GridFeatBackbone``, whose ``feature`` is a detectron2 ``GeneralizedRCNN`` (the grid-feat ResNet-50, detectron2 key
names), and ``transformer`` one of their BERT models (``src/modeling/modeling.py``). Key mapping::

    (R = clipbert.vision_model.backbone.)
    cnn.feature.backbone.stem.conv1.weight           -> R embedder.embedder.convolution.weight
                                                        (input channels reversed: see below)
    cnn.feature.backbone.stem.conv1.norm.<bn>        -> R embedder.embedder.normalization.<bn>
    cnn.feature.backbone.resS.B.convC.weight         -> R encoder.stages.(S-2).layers.B.layer.(C-1).convolution.weight
    cnn.feature.backbone.resS.B.convC.norm.<bn>      -> R encoder.stages.(S-2).layers.B.layer.(C-1).normalization.<bn>
    cnn.feature.backbone.resS.B.shortcut.weight      -> R encoder.stages.(S-2).layers.B.shortcut.convolution.weight
    cnn.feature.backbone.resS.B.shortcut.norm.<bn>   -> R encoder.stages.(S-2).layers.B.shortcut.normalization.<bn>
    cnn.grid_encoder.0.weight                        -> clipbert.vision_model.conv.weight  (the extra 3x3 conv)
    transformer.bert.embeddings.*                    -> clipbert.embeddings.*
    transformer.bert.visual_embeddings.{row_position_embeddings,col_position_embeddings,token_type_embeddings,
        LayerNorm}.*                                 -> clipbert.visual_embeddings.*
    transformer.bert.{encoder,pooler}.*              -> clipbert.{encoder,pooler}.*
    transformer.cls.*                                -> cls.*                         (kind "pretraining")
    transformer.classifier.{0,2}.*                   -> classifier.{dense,out_proj}.* (kinds "qa", "retrieval")

where ``<bn>`` is detectron2's ``FrozenBatchNorm2d`` buffers ``weight/bias/running_mean/running_var`` (our
``nn.BatchNorm2d`` gets ``num_batches_tracked = 0``; the converted config sets ``frozen_batch_norm=True`` and
``num_frozen_stages=2``, detectron2's FrozenBN and ``FREEZE_AT=2``). A
bare detectron2 / grid-feat file (``backbone.*`` at the top level) converts its ResNet the same way.

Channel order: the authors feed RGB frames normalized by ``ImageNorm`` (0-255 minus the RGB ImageNet mean, std 1)
and swap them to BGR inside ``GridFeatBackbone.forward`` (``x[:, [2, 1, 0]]``), because detectron2's weights expect
BGR. ``ClipBertProcessor`` normalizes the same way and the model reads RGB, so the swap is folded into the first
conv: ``conv(BGR(x), W) = conv(x, W[:, [2, 1, 0]])``.

Ignored (reported by name): the detectron2 detection heads (``cnn.feature.proposal_generator.*``,
``cnn.feature.roi_heads.*``, never run by ClipBERT), ``transformer.bert.visual_embeddings.position_embeddings`` (a
table the authors declare but never use), the heads of another kind, the tied MLM decoder (checked equal to the word
embeddings) and ``position_ids`` buffers. ``ClipBertForMultipleChoice`` (TGIF-QA action / transition, one logit per
candidate) has no hf_videolang head: its ``classifier`` has 1 output and fails the shape check.

Example::

    python -m hf_videolang.models.clipbert.convert_clipbert_original_to_hf \\
        --checkpoint msrvtt_qa_model.pt --kind qa --answer_list train_ans2label.json --output_dir ./clipbert-msrvtt-qa
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers.utils import logging

from ..conversion_utils import ConversionReport, load_checkpoint_file
from .configuration_clipbert import ClipBertConfig
from .modeling_clipbert import (
    ClipBertForPreTraining,
    ClipBertForVideoQuestionAnswering,
    ClipBertForVideoTextRetrieval,
    ClipBertPreTrainedModel,
)

logger = logging.get_logger(__name__)

KINDS = ("pretraining", "qa", "retrieval")

#: The hf_videolang class of each checkpoint kind.
MODEL_CLASSES: dict[str, type[ClipBertPreTrainedModel]] = {
    "pretraining": ClipBertForPreTraining,
    "qa": ClipBertForVideoQuestionAnswering,
    "retrieval": ClipBertForVideoTextRetrieval,
}

#: Named parts of the converted models, by parameter prefix, for the report.
HEADS: dict[str, str] = {
    "resnet": "clipbert.vision_model.backbone.",
    "grid_conv": "clipbert.vision_model.conv.",
    "text_embeddings": "clipbert.embeddings.",
    "visual_embeddings": "clipbert.visual_embeddings.",
    "transformer": "clipbert.encoder.",
    "pooler": "clipbert.pooler.",
    "mlm_head": "cls.predictions.",
    "itm_head": "cls.seq_relationship.",
    "classifier": "classifier.",
}

_BN = r"(weight|bias|running_mean|running_var)"
_RESNET = "clipbert.vision_model.backbone."
# (pattern on the key without its ``cnn.feature.`` prefix, replacement) for the detectron2 ResNet.
_RESNET_RULES = [
    (r"backbone\.stem\.conv1\.weight", _RESNET + "embedder.embedder.convolution.weight"),
    (rf"backbone\.stem\.conv1\.norm\.{_BN}", _RESNET + r"embedder.embedder.normalization.\1"),
    (r"backbone\.res(\d)\.(\d+)\.conv(\d)\.weight", "STAGE:convolution.weight"),
    (rf"backbone\.res(\d)\.(\d+)\.conv(\d)\.norm\.{_BN}", "STAGE:normalization"),
    (r"backbone\.res(\d)\.(\d+)\.shortcut\.weight", "SHORTCUT:convolution.weight"),
    (rf"backbone\.res(\d)\.(\d+)\.shortcut\.norm\.{_BN}", "SHORTCUT:normalization"),
]
_IGNORED_RULES = [
    (r"(cnn\.feature\.)?(proposal_generator|roi_heads)\..*",
     "detectron2 detection head (RPN / box / attribute heads), never run by ClipBERT"),
    (r"(transformer\.)?bert\.visual_embeddings\.position_embeddings\.weight",
     "declared in the authors' VisualInputEmbedding but never used in its forward"),
    (r".*position_ids", "a buffer (arange), not a weight"),
    (r".*num_batches_tracked", "a BatchNorm counter, not a weight"),
    (r".*pixel_(mean|std)", "detectron2's input normalizer, not used by ClipBERT (it normalizes in ImageNorm)"),
]  # fmt: skip


def _head_of(key: str) -> str:
    return next((name for name, prefix in HEADS.items() if key.startswith(prefix)), key.split(".")[0])


def _map_resnet_key(key: str, value: torch.Tensor) -> tuple[str, torch.Tensor] | None:
    """detectron2 ResNet key (``backbone.*``) -> ours, or None."""
    for pattern, target in _RESNET_RULES:
        match = re.fullmatch(pattern, key)
        if match is None:
            continue
        if target.startswith(("STAGE:", "SHORTCUT:")):
            kind, leaf = target.split(":")
            stage, block = int(match.group(1)) - 2, int(match.group(2))
            if stage < 0:
                return None
            where = f"layer.{int(match.group(3)) - 1}" if kind == "STAGE" else "shortcut"
            if leaf == "normalization":
                leaf = f"normalization.{match.groups()[-1]}"
            return f"{_RESNET}encoder.stages.{stage}.layers.{block}.{where}.{leaf}", value
        new_key = match.expand(target)
        if new_key.endswith("embedder.embedder.convolution.weight"):
            value = value[:, [2, 1, 0]]  # the authors' RGB -> BGR swap, folded into the first conv
        return new_key, value
    return None


def _map_transformer_key(key: str, kind: str) -> str | None:
    """The authors' ``transformer.*`` key (prefix removed) -> ours, or None when it belongs to no head of ``kind``."""
    match = re.fullmatch(r"bert\.(embeddings|encoder|pooler)\.(.*)", key)
    if match:
        return f"clipbert.{match.group(1)}.{match.group(2)}"
    match = re.fullmatch(
        r"bert\.visual_embeddings\.((row_position_embeddings|col_position_embeddings|token_type_embeddings)\.weight"
        r"|LayerNorm\.(weight|bias))",
        key,
    )
    if match:
        return f"clipbert.visual_embeddings.{match.group(1)}"
    if kind == "pretraining" and key.startswith("cls."):
        return key
    match = re.fullmatch(r"classifier\.([02])\.(weight|bias)", key)
    if match and kind in ("qa", "retrieval"):
        return f"classifier.{'dense' if match.group(1) == '0' else 'out_proj'}.{match.group(2)}"
    return None


def infer_kind(state_dict: Mapping[str, torch.Tensor], config: ClipBertConfig) -> str:
    """``"pretraining"`` when the checkpoint holds the MLM / ITM heads, ``"qa"`` when ``config`` has an answer list,
    else ``"retrieval"``."""
    if any(re.match(r"(transformer\.)?cls\.", key) for key in state_dict):
        return "pretraining"
    return "qa" if config.answer_list else "retrieval"


def _expected_state_dict(model_class: type[ClipBertPreTrainedModel], config: ClipBertConfig) -> dict[str, Any]:
    with torch.device("meta"):
        model = model_class(config)
    return model.state_dict()


def convert_clipbert_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    config: ClipBertConfig,
    kind: str | None = None,
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Rename an authors' state dict into the layout of the ``kind`` model (see the module docstring).

    Args:
        state_dict: the authors' ``ClipBert`` state dict (``cnn.*`` / ``transformer.*``), or a detectron2 /
            grid-feat one (``backbone.*``).
        config: the target config; its sizes must match the checkpoint's (the QA answer list: one answer per
            logit of ``transformer.classifier.2``).
        kind: ``"pretraining"``, ``"qa"`` or ``"retrieval"``; None infers it (:func:`infer_kind`).

    Returns:
        ``(new_state_dict, report)``: the converted tensors (``num_batches_tracked`` added, the tied MLM decoder
        filled in), loadable with ``strict=True`` when nothing is missing, and the :class:`ConversionReport` of the
        heads found, the parameters missing (head by head) and the original keys ignored (with why).

    Raises:
        ValueError: an unknown kind, a tensor whose shape differs from the config's (wrong config or answer list),
            or an MLM decoder not tied to the word embeddings.
    """
    kind = infer_kind(state_dict, config) if kind is None else kind
    if kind not in KINDS:
        raise ValueError(f"convert_clipbert_state_dict: kind must be one of {KINDS}, got {kind!r}.")
    report = ConversionReport(kind, method="ClipBERT")
    converted: dict[str, torch.Tensor] = {}
    origins: dict[str, str] = {}
    for key, value in state_dict.items():
        reason = next((why for pattern, why in _IGNORED_RULES if re.fullmatch(pattern, key)), None)
        if reason is not None:
            report.ignored[key] = reason
            continue
        mapped: tuple[str, torch.Tensor] | None = None
        resnet_key = re.sub(r"^cnn\.feature\.", "", key)
        if resnet_key.startswith("backbone."):
            mapped = _map_resnet_key(resnet_key, value)
        elif key == "cnn.grid_encoder.0.weight":
            mapped = ("clipbert.vision_model.conv.weight", value)
        elif key.startswith("transformer."):
            new_key = _map_transformer_key(key[len("transformer.") :], kind)
            mapped = None if new_key is None else (new_key, value)
        if mapped is None:
            report.ignored[key] = f"no hf_videolang parameter for it in a {kind!r} conversion (is --kind right?)"
            continue
        converted[mapped[0]] = mapped[1]
        origins[mapped[0]] = key

    if kind == "pretraining":
        decoder = converted.pop("cls.predictions.decoder.weight", None)
        words = converted.get("clipbert.embeddings.word_embeddings.weight")
        if decoder is not None and (words is None or not torch.equal(decoder, words)):
            raise ValueError(
                "transformer.cls.predictions.decoder.weight differs from transformer.bert.embeddings.word_embeddings."
                "weight; ClipBertForPreTraining ties them, so this MLM decoder cannot be converted."
            )
        if decoder is not None:
            report.ignored[origins.pop("cls.predictions.decoder.weight")] = "tied to the word embeddings (equal)"
        if words is not None:
            converted["cls.predictions.decoder.weight"] = words
        if "cls.predictions.bias" in converted:
            converted["cls.predictions.decoder.bias"] = converted["cls.predictions.bias"]

    expected = _expected_state_dict(MODEL_CLASSES[kind], config)
    for key in [key for key in converted if key.endswith(".normalization.running_var")]:
        counter = key.replace("running_var", "num_batches_tracked")
        if counter in expected:
            converted[counter] = torch.zeros((), dtype=torch.long)
    wrong_shape = [
        f"{origins.get(key, key)} -> {key}: checkpoint {tuple(value.shape)} vs config {tuple(expected[key].shape)}"
        for key, value in converted.items()
        if key in expected and tuple(value.shape) != tuple(expected[key].shape)
    ]
    if wrong_shape:
        raise ValueError(
            "ClipBERT conversion: shape mismatches (build the config with the checkpoint's sizes; for QA, one "
            f"answer_list entry per answer logit): {wrong_shape}"
        )
    for key in [key for key in converted if key not in expected]:
        report.ignored[origins.get(key, key)] = f"maps to {key}, which this config's model lacks"
        del converted[key]
    for key in sorted(set(expected) - set(converted)):
        report.missing.setdefault(_head_of(key), []).append(key)
    present = {_head_of(key) for key in converted}
    report.found = sorted(present - set(report.missing))
    return converted, report


# ---------------------------------------------------------------------------------------------------- building


def load_answer_list(path: str | Path) -> list[str]:
    """The QA answers, one per logit: a JSON list, or the authors' ``ans2label`` dict ``{answer: label}``."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, dict):
        by_label = sorted(data.items(), key=lambda item: item[1])
        if [label for _, label in by_label] != list(range(len(by_label))):
            raise ValueError(f"{path}: an ans2label dict must map the answers to the labels 0..{len(by_label) - 1}.")
        return [answer for answer, _ in by_label]
    if not isinstance(data, list) or not all(isinstance(answer, str) for answer in data):
        raise ValueError(f"{path}: expected a JSON list of answers or an ans2label dict {{answer: label}}.")
    return data


def build_config(
    state_dict: Mapping[str, torch.Tensor],
    kind: str,
    config: ClipBertConfig | None = None,
    answer_list: Sequence[str] | None = None,
) -> ClipBertConfig:
    """The config of a converted checkpoint: ``config`` (or the ``clipbert-base`` preset) trained as the authors'
    CNN (``frozen_batch_norm=True``, ``num_frozen_stages=2``) and, for QA, the answer list (``answer_0``... with a
    warning when none is given)."""
    config = ClipBertConfig.from_preset("clipbert-base") if config is None else config
    config.frozen_batch_norm = True  # detectron2's FrozenBN
    config.num_frozen_stages = 2  # detectron2's FREEZE_AT=2, kept by the authors' grid-feat config
    if kind == "qa":
        head = state_dict.get("transformer.classifier.2.weight")
        num_answers = None if head is None else head.shape[0]
        if answer_list is not None:
            config.answer_list = list(answer_list)
        elif not config.answer_list or (num_answers is not None and len(config.answer_list) != num_answers):
            if num_answers is None:
                raise ValueError("a 'qa' conversion needs --answer_list: the checkpoint has no classifier to count.")
            logger.warning("no answer list given: naming the %d answers answer_0, answer_1, ...", num_answers)
            config.answer_list = [f"answer_{index}" for index in range(num_answers)]
    return config


def convert_checkpoint(
    state_dict: Mapping[str, torch.Tensor],
    kind: str,
    config: ClipBertConfig | None = None,
    answer_list: Sequence[str] | None = None,
) -> tuple[ClipBertPreTrainedModel, ConversionReport]:
    """The ``kind`` model holding an authors' state dict, in eval mode, and the conversion report."""
    config = build_config(state_dict, kind, config, answer_list)
    converted, report = convert_clipbert_state_dict(state_dict, config, kind)
    model = MODEL_CLASSES[kind](config)
    model.load_state_dict(converted, strict=False)  # what is missing is in the report
    model.tie_weights()
    logger.info("%s", report)
    return model.eval(), report


# ---------------------------------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="the authors' .pt/.pth/.bin/.safetensors file")
    parser.add_argument("--output_dir", "--output", dest="output_dir", required=True, help="folder to save to")
    parser.add_argument("--kind", default="qa", choices=KINDS, help="which model the checkpoint holds")
    parser.add_argument("--config", default=None, help="a ClipBertConfig folder / JSON (default: clipbert-base)")
    parser.add_argument("--answer_list", default=None, help="QA: JSON list of answers or the authors' ans2label")
    parser.add_argument("--push_to_hub", default=None, metavar="ORG/NAME", help="also push the folder to this repo")
    parser.add_argument("--card", default="clipbert-base", help="card source for --push_to_hub (model_cards/)")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="torch.load(weights_only=False): trusted files only")  # fmt: skip
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> ClipBertPreTrainedModel:
    from ...hub.push import add_remote_code, push_to_hub
    from ...hub.remote_code import save_with_remote_code

    args = parse_args(argv)
    state_dict = load_checkpoint_file(args.checkpoint, "ClipBERT", allow_pickle=args.allow_pickle)
    config = ClipBertConfig.from_pretrained(args.config) if args.config is not None else None
    answers = load_answer_list(args.answer_list) if args.answer_list is not None else None
    model, report = convert_checkpoint(state_dict, args.kind, config, answers)
    print(report)
    save_with_remote_code(model, args.output_dir)
    add_remote_code(Path(args.output_dir))
    print(f"saved {type(model).__name__} ({args.kind}) with its remote code to {args.output_dir}")
    if args.push_to_hub is not None:
        record = push_to_hub(args.output_dir, args.push_to_hub, card=args.card)
        print(f"pushed to {record['repo_id']}: {record['commit_url']}")
    return model


__all__ = [
    "HEADS",
    "KINDS",
    "MODEL_CLASSES",
    "build_config",
    "convert_checkpoint",
    "convert_clipbert_state_dict",
    "infer_kind",
    "load_answer_list",
    "main",
]


if __name__ == "__main__":
    main()
