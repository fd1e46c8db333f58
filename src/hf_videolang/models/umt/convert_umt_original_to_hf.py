"""Convert the authors' UMT checkpoints (OpenGVLab/unmasked_teacher) into :class:`UmtForPreTraining`.

Four kinds of checkpoints are supported (key names read from OpenGVLab/unmasked_teacher@4fb4049):

``single`` -- ``single_modality/models/modeling_pretrain_umt.py`` (stage 1, video only)::

    encoder.patch_embed.proj.{weight,bias}          -> umt.vision_model.patch_embed.proj.*
    encoder.blocks.N.{norm1,attn.qkv,attn.q_bias,attn.v_bias,attn.proj,norm2,mlp.fc1,mlp.fc2}.*
                                                    -> umt.vision_model.blocks.N.*  (same names, fused qkv kept)
    encoder.norm.*                                  -> umt.vision_model.norm.*
    encoder.pos_embed (only if learnable)           -> umt.vision_model.pos_embed.table
    clip_decoder.K.{head,norm}.*                    -> uta_head.projections.K.{head,norm}.*

``multi`` -- ``multi_modality/models/umt.py`` (stage 2)::

    vision_encoder.encoder.*                        -> umt.vision_model.*  (as above)
    vision_encoder.pool_norm.*                      -> umt.vision_model.pool_norm.*
    vision_encoder.clip_decoder.K.*                 -> uta_head.projections.K.*
    text_encoder.bert.embeddings.*                  -> umt.text_model.embeddings.*
    text_encoder.{embeddings,encoder}.*             -> as text_encoder.bert.*  (fine-tuned files: ``setup_model
                                                       (pretrain=False)`` builds a plain BertModel, no MLM head)
    text_encoder.bert.encoder.layer.N.*  (N < F)    -> umt.text_model.encoder.layer.N.*
    text_encoder.bert.encoder.layer.N.*  (N >= F)   -> umt.multimodal_encoder.layer.(N - F).*  (with ``crossattention``)
    text_encoder.cls.predictions.*                  -> mlm_head.predictions.*
    vision_proj / text_proj / itm_head              -> umt.vision_projection / umt.text_projection / vtm_head
    temp  (temperature t)                           -> umt.logit_scale = log(1 / t)
    clip_teacher.*  (OpenAI-CLIP layout)            -> teacher.clip.*  (in_proj split into q/k/v, Conv3d squeezed,
                                                       ``proj`` transposed)

where ``F`` is the number of text-encoder layers (the authors' ``fusion_layer``).

``qa`` -- ``multi_modality/models/umt_qa.py`` (fine-tuned video QA, e.g. qa_msrvtt_b16_25m.pth) into
:class:`UmtForVideoQuestionAnswering`: as ``multi`` (the file has no ``pool_norm``, projections, ``temp`` or
``itm_head``, and its ``clip_decoder`` has no UTA head to go to), plus::

    text_decoder.{bert,cls}.*                       -> answer_decoder.{bert,cls}.*  (the answer decoder, same names)

The answer list is not in the file: give it with ``model.set_answer_list(answers, tokenizer)``.

``classification`` -- ``single_modality/models/modeling_finetune.py`` (fine-tuned classifiers) into
:class:`UmtForVideoClassification` with ``vision_config.use_final_norm=False`` (the authors' layout: no final norm)::

    patch_embed.* / blocks.N.*                      -> umt.vision_model.*  (as above)
    fc_norm.*                                       -> umt.vision_model.pool_norm.*  (the norm after the mean)
    head.*                                          -> classifier.*  (num_labels from its shape)

The conversion never refuses a checkpoint for what it lacks or holds in excess: it returns a
:class:`ConversionReport` of the heads found, the heads missing (left at their initialization, listed by name and
parameter) and the original keys ignored, and prints it. The authors' released stage-2 checkpoints differ in their
heads (b16_25m has no ``vision_proj``/``text_proj``/``itm_head``; OpenGVLab/unmasked_teacher issue #26). Only a
shape mismatch (a wrong ``--preset``) or an untied MLM decoder stops it.

Example::

    python -m hf_videolang.models.umt.convert_umt_original_to_hf --checkpoint b16_25m.pth --preset umt-b16 \\
        --kind multi --output ./umt-b16-25m
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from transformers.utils import logging

from ..conversion_utils import ConversionReport, load_checkpoint_file
from .configuration_umt import UMT_PRESETS, UmtConfig
from .modeling_umt import UmtForPreTraining, UmtForVideoClassification, UmtForVideoQuestionAnswering

KINDS = ("single", "multi", "classification", "qa")
#: Kinds of stage-2 (video-text) checkpoints.
_STAGE2_KINDS = ("multi", "qa")
_MODEL_CLASSES = {"classification": UmtForVideoClassification, "qa": UmtForVideoQuestionAnswering}

Transform = Callable[[torch.Tensor], torch.Tensor]
logger = logging.get_logger(__name__)

#: HF keys that no authors' checkpoint of that kind holds, as regular expressions (full match).
ALLOWED_MISSING: dict[str, tuple[str, ...]] = {
    # Stage 1 trains the student against a CLIP teacher loaded separately (not saved with the student), and the
    # pre-training encoder has no ``pool_norm`` (it stays at its identity initialization: ones / zeros).
    "single": (r"teacher\.clip\..*", r"umt\.vision_model\.pool_norm\.(weight|bias)"),
    # The MLM decoder weight is tied to the word embeddings (restored by ``tie_weights``).
    "multi": (r"mlm_head\.predictions\.decoder\.weight",),
    "classification": (),
    # umt_qa.py deletes vision_proj / text_proj / temp / itm_head and builds the student without pool_norm.
    "qa": (r"umt\.(vision_projection|text_projection|logit_scale|vision_model\.pool_norm).*", r"vtm_head\..*"),
}

#: Original keys that carry no weights of their own, as regular expressions (full match).
ALLOWED_UNEXPECTED: dict[str, tuple[str, ...]] = {
    "single": (),
    "multi": (
        # A buffer of old transformers BERT embeddings (``arange(max_len)``), not a weight.
        r"text_encoder\.(bert\.)?embeddings\.position_ids",
        # Tied to the word embeddings; checked equal before being dropped (see ``_check_tied_decoder``).
        r"text_encoder\.cls\.predictions\.decoder\.weight",
    ),
    "classification": (),
    "qa": (
        r"text_(en|de)coder\.(bert\.)?embeddings\.position_ids",
        r"text_decoder\.cls\.predictions\.decoder\.weight",  # tied, checked like the MLM decoder
    ),
}

#: Named parts of the converted models, by parameter prefix, for the report.
HEADS: dict[str, str] = {
    "student": "umt.vision_model.",
    "text_encoder": "umt.text_model.",
    "multimodal_encoder": "umt.multimodal_encoder.",
    "vision_projection": "umt.vision_projection.",
    "text_projection": "umt.text_projection.",
    "logit_scale": "umt.logit_scale",
    "vtm_head": "vtm_head.",
    "mlm_head": "mlm_head.",
    "uta_head": "uta_head.",
    "teacher": "teacher.",
    "classifier": "classifier.",
    "answer_decoder": "answer_decoder.",
}


def _head_of(key: str) -> str:
    return next((name for name, prefix in HEADS.items() if key.startswith(prefix)), key.split(".")[0])


# ---------------------------------------------------------------------------------------------------- loading


def load_original_state_dict(path: str | os.PathLike, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a checkpoint file (``.pth``/``.pt``/``.bin`` with ``torch.load`` or ``.safetensors``) into a flat dict.

    Checkpoints nested under ``"model"``, ``"module"``, ``"state_dict"`` (the authors' training scripts save
    ``{"model": state_dict, "optimizer": ..., ...}``) are unwrapped, and a DDP ``module.`` prefix is removed.

    Args:
        path: the checkpoint file.
        allow_pickle: load with ``weights_only=False``. Only for files you trust: the authors' training checkpoints
            pickle their ``args``/``config`` objects, which the safe loader refuses.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file cannot be read safely, or holds no tensor dict.
    """
    return load_checkpoint_file(path, "UMT", allow_pickle=allow_pickle)


# ---------------------------------------------------------------------------------------------------- key mapping


def _vision_rules(prefix: str) -> list[tuple[str, str]]:
    """Student ViT: the authors' module names are kept one to one (fused ``qkv`` + ``q_bias``/``v_bias``)."""
    return [
        (rf"{prefix}encoder\.(patch_embed\.proj\.(weight|bias))", r"umt.vision_model.\1"),
        (rf"{prefix}encoder\.(blocks\.\d+\.((norm1|norm2|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias)|attn\.qkv\.weight"
         r"|attn\.q_bias|attn\.v_bias))", r"umt.vision_model.\1"),
        (rf"{prefix}encoder\.(norm\.(weight|bias))", r"umt.vision_model.\1"),
        (rf"{prefix}clip_decoder\.(\d+)\.((head|norm)\.(weight|bias))", r"uta_head.projections.\1.\2"),
    ]


_SINGLE_RULES = _vision_rules("")
_CLASSIFICATION_RULES = [
    (r"(patch_embed\.proj\.(weight|bias))", r"umt.vision_model.\1"),
    (r"(blocks\.\d+\.((norm1|norm2|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias)|attn\.qkv\.weight|attn\.q_bias"
     r"|attn\.v_bias))", r"umt.vision_model.\1"),
    (r"fc_norm\.(weight|bias)", r"umt.vision_model.pool_norm.\1"),
    (r"head\.(weight|bias)", r"classifier.\1"),
]  # fmt: skip
_MULTI_RULES = [
    *_vision_rules(r"vision_encoder\."),
    (r"vision_encoder\.(pool_norm\.(weight|bias))", r"umt.vision_model.\1"),
    (r"text_encoder\.bert\.(embeddings\.(word_embeddings|position_embeddings|token_type_embeddings|LayerNorm)\..+)",
     r"umt.text_model.\1"),
    (r"text_encoder\.cls\.(predictions\.(bias|transform\..+|decoder\.bias))", r"mlm_head.\1"),
    (r"vision_proj\.(weight|bias)", r"umt.vision_projection.\1"),
    (r"text_proj\.(weight|bias)", r"umt.text_projection.\1"),
    (r"itm_head\.(weight|bias)", r"vtm_head.\1"),
]  # fmt: skip
_QA_RULES = [*_MULTI_RULES, (r"text_decoder\.((bert|cls)\..+)", r"answer_decoder.\1")]

_CLIP_RULES = [
    (r"clip_teacher\.class_embedding", "embeddings.class_embedding"),
    (r"clip_teacher\.positional_embedding", "embeddings.position_embedding.weight"),
    (r"clip_teacher\.ln_pre\.(weight|bias)", r"pre_layrnorm.\1"),
    (r"clip_teacher\.ln_post\.(weight|bias)", r"post_layernorm.\1"),
    (r"clip_teacher\.transformer\.resblocks\.(\d+)\.ln_1\.(weight|bias)", r"encoder.layers.\1.layer_norm1.\2"),
    (r"clip_teacher\.transformer\.resblocks\.(\d+)\.ln_2\.(weight|bias)", r"encoder.layers.\1.layer_norm2.\2"),
    (r"clip_teacher\.transformer\.resblocks\.(\d+)\.attn\.out_proj\.(weight|bias)",
     r"encoder.layers.\1.self_attn.out_proj.\2"),
    (r"clip_teacher\.transformer\.resblocks\.(\d+)\.mlp\.c_fc\.(weight|bias)", r"encoder.layers.\1.mlp.fc1.\2"),
    (r"clip_teacher\.transformer\.resblocks\.(\d+)\.mlp\.c_proj\.(weight|bias)", r"encoder.layers.\1.mlp.fc2.\2"),
]  # fmt: skip
_CLIP_PREFIX = "teacher.clip.vision_model."


def _squeeze_time(weight: torch.Tensor) -> torch.Tensor:
    """The authors' CLIP patch embedding is a Conv3d with a 1-frame kernel: `(D, 3, 1, p, p) -> (D, 3, p, p)`."""
    return weight.squeeze(2)


def _map_clip_key(key: str, value: torch.Tensor) -> dict[str, torch.Tensor] | None:
    """OpenAI-CLIP layout (the authors' ``clip.py``) -> transformers' ``CLIPVisionModelWithProjection``."""
    if key == "clip_teacher.conv1.weight":
        return {_CLIP_PREFIX + "embeddings.patch_embedding.weight": _squeeze_time(value)}
    if key == "clip_teacher.proj":
        # x @ proj with proj (width, out) equals a Linear whose weight is proj.T.
        return {"teacher.clip.visual_projection.weight": value.T.contiguous()}
    match = re.fullmatch(r"clip_teacher\.transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)", key)
    if match:
        # nn.MultiheadAttention stacks q, k, v along the output dimension.
        layer, kind = match.groups()
        query, key_, val = value.chunk(3, dim=0)
        base = f"{_CLIP_PREFIX}encoder.layers.{layer}.self_attn."
        return {f"{base}q_proj.{kind}": query, f"{base}k_proj.{kind}": key_, f"{base}v_proj.{kind}": val}
    for pattern, target in _CLIP_RULES:
        if re.fullmatch(pattern, key):
            return {_CLIP_PREFIX + re.sub(pattern, target, key): value}
    return None


_PLAIN_BERT_KEY = re.compile(r"text_encoder\.(embeddings|encoder)\.")


def _as_masked_lm_key(key: str) -> str:
    """The authors' fine-tuned checkpoints (retrieval, QA: ``UMT(is_pretrain=False)``) hold ``text_encoder`` as a
    plain ``BertModel``; pre-training ones as ``BertForMaskedLM`` (``text_encoder.bert.*``). Same weights below."""
    if _PLAIN_BERT_KEY.match(key):
        return "text_encoder.bert." + key[len("text_encoder.") :]
    return key


def _map_bert_layer(key: str, value: torch.Tensor, num_text_layers: int) -> dict[str, torch.Tensor] | None:
    """xbert's single BERT stack -> the text encoder (first layers) and the multimodal encoder (the rest)."""
    match = re.fullmatch(r"text_encoder\.bert\.encoder\.layer\.(\d+)\.(.+)", key)
    if match is None:
        return None
    index, rest = int(match.group(1)), match.group(2)
    if index < num_text_layers:
        return {f"umt.text_model.encoder.layer.{index}.{rest}": value}
    return {f"umt.multimodal_encoder.layer.{index - num_text_layers}.{rest}": value}


def map_original_key(
    key: str, value: torch.Tensor, kind: str, num_text_layers: int = 0
) -> dict[str, torch.Tensor] | None:
    """Map one original entry to its hf_videolang key(s) and value(s); ``None`` when no rule matches.

    Args:
        key: the original key (nesting and ``module.`` prefixes already removed).
        value: its tensor.
        kind: one of :data:`KINDS`.
        num_text_layers: BERT layers of the text encoder (``config.text_config.num_hidden_layers``), multi only.
    """
    if kind == "single":
        rules = _SINGLE_RULES
    elif kind == "classification":
        rules = _CLASSIFICATION_RULES
    elif kind in _STAGE2_KINDS:
        rules = _QA_RULES if kind == "qa" else _MULTI_RULES
        key = _as_masked_lm_key(key)
        if key == "temp":
            # The authors divide similarities by a learnable temperature; hf_videolang multiplies by exp(logit_scale).
            return {"umt.logit_scale": torch.log(1.0 / value.float()).reshape(())}
        mapped = _map_bert_layer(key, value, num_text_layers)
        if mapped is None and key.startswith("clip_teacher."):
            mapped = _map_clip_key(key, value)
        if mapped is not None:
            return mapped
    else:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    for pattern, target in rules:
        if re.fullmatch(pattern, key):
            return {re.sub(pattern, target, key): value}
    return None


# ---------------------------------------------------------------------------------------------------- config


def build_config(preset: str, kind: str, original: Mapping[str, torch.Tensor] | None = None, **overrides) -> UmtConfig:
    """The hf_videolang config of a preset for a checkpoint kind, adjusted to what the checkpoint holds.

    ``single`` and ``classification`` give a stage-1 (video-only) config, ``multi`` a stage-2 one; ``classification``
    also drops the final norm (``use_final_norm=False``) and the teacher, and reads ``num_labels`` from ``head``.
    With ``original``, a learnable ``pos_embed`` switches the student to learnable positions, and a teacher position
    table of another size sets the teacher's image size (the authors' CLIP-L/14 teacher runs at 196 px and stores
    the table already resized).
    """
    if preset not in UMT_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(UMT_PRESETS)}.")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    overrides.setdefault("pretraining_stage", 2 if kind in _STAGE2_KINDS else 1)
    if kind == "classification":
        vision = dict(overrides.get("vision_config") or {})
        vision.setdefault("use_final_norm", False)
        overrides["vision_config"] = vision
        # A stage-1 config needs UTA > 0; a classifier has no teacher, so it is built as a fine-tuning config.
        overrides.setdefault("uta_loss_weight", 1.0)
        if original is not None and "head.weight" in original:
            overrides.setdefault("num_labels", int(original["head.weight"].shape[0]))
    config = UmtConfig.from_preset(preset, **overrides)
    return adapt_config(config, kind, original) if original is not None else config


def adapt_config(config: UmtConfig, kind: str, original: Mapping[str, torch.Tensor]) -> UmtConfig:
    """Set what the checkpoint decides: learnable student positions, the teacher's stored image size."""
    prefix = {"single": "encoder.", "multi": "vision_encoder.encoder.", "qa": "vision_encoder.encoder.",
              "classification": ""}[kind]  # fmt: skip
    if prefix + "pos_embed" in original:
        config.vision_config.position_embedding_type = "learnable"
    table = original.get("clip_teacher.positional_embedding")
    if table is not None and config.teacher_config is not None:
        grid = math.isqrt(table.shape[0] - 1)
        if grid * grid != table.shape[0] - 1:
            raise ValueError(f"clip_teacher.positional_embedding has {table.shape[0]} rows, not 1 + a square grid.")
        image_size = grid * config.teacher_config.patch_size
        config.teacher_config.image_size = image_size
        if config.teacher_image_size != image_size:
            raise ValueError(
                f"the checkpoint's CLIP teacher runs at {image_size} px ({grid}x{grid} grid) but the config says "
                f"teacher_image_size={config.teacher_image_size}; use the matching preset."
            )
    return config


def interpolate_position_table(table: torch.Tensor, num_frames: int, tokens_per_frame: int) -> torch.Tensor:
    """Resample a learnable `(1 or none, T * h * w, D)` table to `num_frames` frames (linear in time, as the authors).

    Returns:
        `(num_frames * h * w, D)`.
    """
    table = table.reshape(-1, table.shape[-1])
    total, dim = table.shape
    if total % tokens_per_frame:
        raise ValueError(
            f"pos_embed has {total} rows, not a multiple of the {tokens_per_frame} tokens per frame of the config "
            "(image_size / patch_size differ from the checkpoint's)."
        )
    source_frames = total // tokens_per_frame
    if source_frames == num_frames:
        return table
    per_token = table.reshape(source_frames, tokens_per_frame, dim).permute(1, 2, 0)  # (h*w, D, T)
    resized = F.interpolate(per_token.float(), size=num_frames, mode="linear", align_corners=False)
    return resized.permute(2, 0, 1).reshape(num_frames * tokens_per_frame, dim).to(table.dtype)


# ---------------------------------------------------------------------------------------------------- conversion


def _check_tied_decoder(original: Mapping[str, torch.Tensor], prefix: str = "text_encoder") -> None:
    """The MLM head (``text_encoder``) or the QA answer decoder (``text_decoder``) reads its word embeddings."""
    decoder = original.get(f"{prefix}.cls.predictions.decoder.weight")
    embeddings = original.get(f"{prefix}.bert.embeddings.word_embeddings.weight")
    if decoder is not None and (embeddings is None or not torch.equal(decoder, embeddings)):
        raise ValueError(
            f"{prefix}.cls.predictions.decoder.weight differs from {prefix}.bert.embeddings.word_embeddings.weight; "
            "hf_videolang ties them, so this decoder cannot be converted."
        )


def convert_state_dict(
    original: Mapping[str, torch.Tensor],
    config: UmtConfig,
    kind: str,
    origins: dict[str, str] | None = None,
    ignored: dict[str, str] | None = None,
) -> dict[str, torch.Tensor]:
    """Rename (and where needed reshape) every original entry.

    ``origins``, when given, is filled with ``converted key -> original key``; ``ignored`` with ``original key ->
    reason`` for the entries that no rule maps (nothing is dropped silently).
    """
    origins = {} if origins is None else origins
    ignored = {} if ignored is None else ignored
    if kind in _STAGE2_KINDS:
        _check_tied_decoder(original)
    if kind == "qa":
        _check_tied_decoder(original, "text_decoder")
    num_text_layers = config.text_config.num_hidden_layers if config.text_config is not None else 0
    allowed = [re.compile(pattern) for pattern in ALLOWED_UNEXPECTED[kind]]
    converted: dict[str, torch.Tensor] = {}
    for key, value in original.items():
        if any(pattern.fullmatch(key) for pattern in allowed):
            ignored[key] = "no weight of its own (buffer, or tied to the word embeddings)"
            continue
        is_pos_embed = key == "pos_embed" or key.endswith("encoder.pos_embed")
        if is_pos_embed and config.vision_config.position_embedding_type == "learnable":
            vision = config.vision_config
            converted["umt.vision_model.pos_embed.table"] = interpolate_position_table(
                value, vision.num_frames // vision.tubelet_size, vision.num_patches_per_frame
            )
            continue
        mapped = map_original_key(key, value, kind, num_text_layers)
        if mapped is None:
            ignored[key] = f"no hf_videolang parameter for it in a {kind!r} conversion (is --kind right?)"
        else:
            converted.update(mapped)
            origins.update(dict.fromkeys(mapped, key))
    return converted


def load_converted(
    model: UmtForPreTraining | UmtForVideoClassification,
    converted: Mapping[str, torch.Tensor],
    kind: str,
    origins: Mapping[str, str] | None = None,
    report: ConversionReport | None = None,
) -> ConversionReport:
    """Load converted weights and report, head by head, what was found and what stays initialized.

    ``origins`` maps converted keys to their original ones. Converted keys with no parameter in the model (e.g. a
    UTA head when the config has no teacher) go to ``report.ignored``.

    Raises:
        ValueError: a converted tensor has another shape than the model's parameter (is ``--preset`` right?).
    """
    origins = origins or {}
    report = ConversionReport(kind) if report is None else report
    expected = model.state_dict()
    wrong_shape = [
        f"{key}: checkpoint {tuple(value.shape)} vs model {tuple(expected[key].shape)}"
        for key, value in converted.items()
        if key in expected and value.shape != expected[key].shape
    ]
    if wrong_shape:
        raise ValueError(f"shape mismatches (is --preset right?): {wrong_shape}")
    missing_keys, unexpected_keys = model.load_state_dict(dict(converted), strict=False)
    for key in unexpected_keys:
        report.ignored[origins.get(key, key)] = f"maps to {key}, which this {type(model).__name__} config lacks"
    # Every missing parameter is reported, the expected ones too (ALLOWED_MISSING: a stage-1 file has no teacher and
    # no pool_norm), except the MLM / answer decoder weights, which `tie_weights` restores from the word embeddings.
    tied = ("mlm_head.predictions.decoder.weight", "answer_decoder.cls.predictions.decoder.weight")
    missing = sorted(key for key in missing_keys if key not in tied)
    for key in missing:
        report.missing.setdefault(_head_of(key), []).append(key)
    present = {_head_of(key) for key in expected if key in converted}
    report.found = sorted(present - set(report.missing))
    model.tie_weights()
    return report


def convert_checkpoint(
    original: Mapping[str, torch.Tensor] | str | os.PathLike,
    preset: str = "umt-b16",
    kind: str = "multi",
    config: UmtConfig | None = None,
    allow_pickle: bool = False,
    report: ConversionReport | None = None,
) -> UmtForPreTraining | UmtForVideoClassification:
    """Build a :class:`UmtForPreTraining` (``kind="classification"``: a :class:`UmtForVideoClassification`,
    ``kind="qa"``: a :class:`UmtForVideoQuestionAnswering`) holding an authors' checkpoint.

    Args:
        original: a state dict or a checkpoint path (see :func:`load_original_state_dict`).
        preset: ``"umt-b16"`` or ``"umt-l16"``; ignored when ``config`` is given.
        kind: ``"single"`` (single_modality pre-training, stage 1), ``"multi"`` (multi_modality, stage 2, also
            their fine-tuned retrieval files), ``"qa"`` (multi_modality fine-tuned QA) or ``"classification"``
            (single_modality fine-tuned classifier).
        config: an explicit config (adjusted to the checkpoint by :func:`adapt_config`).
        allow_pickle: see :func:`load_original_state_dict`.
        report: a :class:`ConversionReport` to fill (heads found / missing, keys ignored); also logged.
    """
    if not isinstance(original, Mapping):
        original = load_original_state_dict(original, allow_pickle=allow_pickle)
    if config is None:
        config = build_config(preset, kind, original)
    else:
        config = adapt_config(config, kind, original)
    expected_stage = 2 if kind in _STAGE2_KINDS else 1
    if config.pretraining_stage != expected_stage:
        raise ValueError(
            f"a {kind!r} checkpoint needs pretraining_stage={expected_stage}, got {config.pretraining_stage}."
        )
    model_class = _MODEL_CLASSES.get(kind, UmtForPreTraining)
    model = model_class(config)
    origins: dict[str, str] = {}
    report = ConversionReport(kind) if report is None else report
    converted = convert_state_dict(original, config, kind, origins, report.ignored)
    load_converted(model, converted, kind, origins, report)
    logger.info("%s", report)
    return model.eval()


# ---------------------------------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="the authors' .pth/.bin/.safetensors file")
    parser.add_argument("--preset", default="umt-b16", choices=sorted(UMT_PRESETS))
    parser.add_argument("--config", default=None, help="a UmtConfig directory/JSON to use instead of --preset")
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument("--output", required=True, help="directory for save_pretrained")
    parser.add_argument("--frames", type=int, default=None, help="num_frames of the converted model (default: preset)")
    parser.add_argument("--clip", default=None, help="local CLIPVisionModelWithProjection to load as the teacher")
    # transformers 5 always writes safetensors; the flag is kept so the usual conversion command lines work.
    parser.add_argument("--safe-serialization", action="store_true", help="save as safetensors (always the case)")
    parser.add_argument(
        "--allow-pickle", action="store_true", help="torch.load(weights_only=False): trusted files only"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> UmtForPreTraining | UmtForVideoClassification:
    args = parse_args(argv)
    original = load_original_state_dict(args.checkpoint, allow_pickle=args.allow_pickle)
    if args.config is not None:
        config = UmtConfig.from_pretrained(args.config)
        if args.frames is not None:
            config.vision_config.num_frames = args.frames
    else:
        overrides = {"vision_config": {"num_frames": args.frames}} if args.frames is not None else {}
        config = build_config(args.preset, args.kind, **overrides)
    report = ConversionReport(args.kind)
    model = convert_checkpoint(original, kind=args.kind, config=config, report=report)
    print(report)
    if args.clip is not None:
        model.load_teacher(args.clip)
    elif args.kind == "single":
        print("note: single-modality checkpoints hold no teacher; pass --clip or call model.load_teacher(...) later.")
    if args.kind == "qa":
        print(
            "note: QA checkpoints hold no answer list; call model.set_answer_list(answers, tokenizer) before ranking."
        )
    model.save_pretrained(args.output)
    print(f"saved {type(model).__name__} ({args.kind}) to {args.output}")
    return model


if __name__ == "__main__":
    main()
