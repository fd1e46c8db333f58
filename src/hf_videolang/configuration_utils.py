"""Configuration helpers shared by every method's config."""

from __future__ import annotations

import copy
from typing import Any, ClassVar


class PresetMixin:
    """`from_preset(name, **overrides)` for a `PreTrainedConfig` that lists its paper presets in `presets`.

    A preset is a dict of constructor keyword arguments. Overrides replace top-level fields, and a dict given for a
    sub-config (e.g. `vision_config=dict(num_hidden_layers=2)`) is merged into the preset's dict. Subclasses may
    adjust the merged arguments in `_preset_kwargs` (e.g. drop fields that a stage does not have).
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    @classmethod
    def _preset_kwargs(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        return kwargs

    @classmethod
    def from_preset(cls, name: str, **overrides: Any):
        """Build the preset `name`, with `overrides` replacing (or, for sub-config dicts, updating) its fields."""
        if name not in cls.presets:
            raise ValueError(
                f"{cls.__name__}.from_preset: unknown preset {name!r}; choose one of {sorted(cls.presets)}."
            )
        kwargs = copy.deepcopy(cls.presets[name])
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(kwargs.get(key), dict):
                kwargs[key].update(value)
            else:
                kwargs[key] = value
        return cls(**cls._preset_kwargs(kwargs))


__all__ = ["PresetMixin"]
