"""Shared pieces of the ``convert_<method>_original_to_hf.py`` converters: the report of what a conversion found, left
at its initialization and ignored (issue 6), and the safe loading of an authors' checkpoint file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class ConversionReport:
    """What a conversion found, left initialized and ignored.

    Attributes:
        kind: the checkpoint kind (each converter names its own, e.g. UMT's ``"multi"``, ClipBERT's ``"qa"``).
        found: heads with every parameter loaded from the checkpoint.
        missing: head -> its parameters the checkpoint lacks, left at the model's initialization (a head can be
            partly found: it is then listed here).
        ignored: original key -> why it was not converted.
        method: the method's name, shown in the report's first line (``"UMT"``, ``"ClipBERT"``).
    """

    kind: str
    found: list[str] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)
    method: str = "UMT"

    def __str__(self) -> str:
        lines = [
            f"{self.method} conversion report ({self.kind} checkpoint)",
            f"  heads found: {', '.join(self.found) or 'none'}",
        ]
        if self.missing:
            lines.append("  heads missing (initialized, not from the checkpoint):")
            lines += [f"    {head}: {len(keys)} parameter(s): {', '.join(keys)}" for head, keys in self.missing.items()]
        else:
            lines.append("  heads missing: none")
        if self.ignored:
            lines.append(f"  keys ignored ({len(self.ignored)}):")
            lines += [f"    {key}: {why}" for key, why in sorted(self.ignored.items())]
        else:
            lines.append("  keys ignored: none")
        return "\n".join(lines)


#: Keys under which training scripts nest the weights (``{"model": state_dict, "optimizer": ...}``).
NESTING_KEYS = ("model", "module", "state_dict", "model_state")


def _is_state_dict(obj: Mapping) -> bool:
    return len(obj) > 0 and all(isinstance(value, torch.Tensor) for value in obj.values())


def unwrap_state_dict(obj: object, source: str, method: str) -> dict[str, torch.Tensor]:
    """The flat ``{name: tensor}`` dict inside a loaded checkpoint: nested ones (see :data:`NESTING_KEYS`) are
    unwrapped and a DDP ``module.`` prefix is removed.

    Raises:
        ValueError: no tensor dict in ``obj``.
    """
    while isinstance(obj, Mapping) and not _is_state_dict(obj):
        inner = next((obj[key] for key in NESTING_KEYS if key in obj and isinstance(obj[key], Mapping)), None)
        if inner is None:
            raise ValueError(
                f"{method} checkpoint {source!r} holds no state dict: top-level keys {sorted(map(str, obj))[:10]}, "
                f"none of {list(NESTING_KEYS)} is a tensor dict."
            )
        obj = inner
    if not isinstance(obj, Mapping):
        raise ValueError(f"{method} checkpoint {source!r} holds a {type(obj).__name__}, not a state dict.")
    state_dict = {key: value for key, value in obj.items() if isinstance(value, torch.Tensor)}
    if state_dict and all(key.startswith("module.") for key in state_dict):
        state_dict = {key[len("module.") :]: value for key, value in state_dict.items()}
    return state_dict


def load_checkpoint_file(path: str | os.PathLike, method: str, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a checkpoint file (``.pth``/``.pt``/``.bin`` with ``torch.load(weights_only=True)``, or
    ``.safetensors``) into a flat dict (see :func:`unwrap_state_dict`).

    Args:
        path: the checkpoint file.
        method: named in the errors (``"UMT checkpoint ..."``).
        allow_pickle: load with ``weights_only=False``. Only for files you trust: training checkpoints that pickle
            their ``args``/``config`` objects need it.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file cannot be read safely, or holds no tensor dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{method} checkpoint {str(path)!r} does not exist.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        obj: object = load_file(str(path))
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
        except Exception as error:  # the safe unpickler raises UnpicklingError (and others) on foreign objects
            raise ValueError(
                f"{method} checkpoint {str(path)!r} cannot be loaded with torch.load(weights_only=True): {error}. "
                "It probably pickles training objects (args, config); re-save only its state dict, or pass "
                "--allow-pickle if you trust the file."
            ) from error
    return unwrap_state_dict(obj, str(path), method)


__all__ = ["NESTING_KEYS", "ConversionReport", "load_checkpoint_file", "unwrap_state_dict"]
