"""``hf-videolang convert <method>``: an authors' checkpoint -> a transformers model saved with its remote code ->
(optionally) a card and a push, in one command.

The conversion itself belongs to each method's ``convert_<method>_original_to_hf.py``; this module only calls its
public functions, saves the result with :func:`~hf_videolang.hub.remote_code.save_with_remote_code` (every Auto class
the config is registered with in ``auto_map``) and hands the folder to :func:`~hf_videolang.hub.push.push_to_hub`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .push import PushError, add_remote_code, push_to_hub
from .remote_code import save_with_remote_code


def _convert_umt(checkpoint: str, *, kind: str, preset: str, config: str | None, frames: int | None,
                 allow_pickle: bool) -> Any:  # fmt: skip
    from ..models.umt import UmtConfig
    from ..models.umt.convert_umt_original_to_hf import build_config, convert_checkpoint, load_original_state_dict

    original = load_original_state_dict(checkpoint, allow_pickle=allow_pickle)
    if config is not None:
        umt_config = UmtConfig.from_pretrained(config)
        if frames is not None:
            umt_config.vision_config.num_frames = frames
    else:
        overrides = {"vision_config": {"num_frames": frames}} if frames is not None else {}
        umt_config = build_config(preset, kind, **overrides)
    return convert_checkpoint(original, kind=kind, config=umt_config)


def _convert_clipbert(checkpoint: str, *, kind: str, preset: str, config: str | None, frames: int | None,
                      allow_pickle: bool) -> Any:  # fmt: skip
    from ..models.clipbert import ClipBertConfig
    from ..models.clipbert.convert_clipbert_original_to_hf import convert_checkpoint
    from ..models.conversion_utils import load_checkpoint_file

    original = load_checkpoint_file(checkpoint, "ClipBERT", allow_pickle=allow_pickle)
    clipbert_config = (
        ClipBertConfig.from_pretrained(config) if config is not None else ClipBertConfig.from_preset(preset)
    )
    if frames is not None:
        clipbert_config.frames_per_clip = frames
    model, report = convert_checkpoint(original, kind, clipbert_config)
    print(report)
    return model


#: ``method -> converter``: a function of the checkpoint path and the CLI options that returns the converted model.
CONVERTERS: dict[str, Callable[..., Any]] = {"umt": _convert_umt, "clipbert": _convert_clipbert}

#: ``method -> (default --kind, default --preset, every kind)`` of ``hf-videolang convert``.
CONVERTER_DEFAULTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "umt": ("multi", "umt-b16", ("single", "multi", "qa", "classification")),
    "clipbert": ("qa", "clipbert-base", ("pretraining", "qa", "retrieval")),
}


def convert_and_push(
    method: str,
    checkpoint: str | os.PathLike,
    *,
    kind: str | None = None,
    preset: str | None = None,
    config: str | None = None,
    frames: int | None = None,
    allow_pickle: bool = False,
    output: str | os.PathLike | None = None,
    repo_id: str | None = None,
    card: str | None = None,
    record_dir: str | os.PathLike = "hub_uploads",
    private: bool = False,
) -> dict[str, Any]:
    """Convert ``checkpoint``, save it with remote code to ``output`` and push it to ``repo_id`` when given.

    Returns:
        ``{"output": folder or None, "model_class": name, "record": push record or None}``.
    """
    if method not in CONVERTERS:
        raise PushError(f"convert: no converter for {method!r}; choose one of {sorted(CONVERTERS)}.")
    default_kind, default_preset, kinds = CONVERTER_DEFAULTS[method]
    kind = default_kind if kind is None else kind
    preset = default_preset if preset is None else preset
    if kind not in kinds:
        raise PushError(f"convert: a {method} checkpoint's --kind is one of {list(kinds)}, got {kind!r}.")
    if output is None and repo_id is None:
        raise PushError("convert: give --output (a folder to save to), --push ORG/NAME, or both.")
    if not Path(checkpoint).is_file():
        raise PushError(f"convert: --checkpoint {checkpoint} is not a file.")
    model = CONVERTERS[method](str(checkpoint), kind=kind, preset=preset, config=config, frames=frames,
                               allow_pickle=allow_pickle)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="hf-videolang-convert-") as tmp:
        folder = Path(output) if output is not None else Path(tmp) / (repo_id or "model").split("/")[-1]
        save_with_remote_code(model, folder)
        add_remote_code(folder)  # auto_map for every registered Auto class, not only the model's own
        record = None
        if repo_id is not None:
            record = push_to_hub(folder, repo_id, card=card or preset, record_dir=record_dir, private=private)
    return {"output": None if output is None else str(output), "model_class": type(model).__name__, "record": record}


__all__ = ["CONVERTERS", "CONVERTER_DEFAULTS", "convert_and_push"]
