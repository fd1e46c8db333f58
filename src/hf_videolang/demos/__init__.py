"""End-to-end demos on the built-in synthetic corpus, one module per method, fully offline.

``hf-videolang demo --model NAME`` looks ``NAME`` up in :data:`DEMOS` (method name -> module path), imports that module
and calls its entry function. Every demo module exposes the same two names:

``DEFAULT_OUTPUT_DIR: str``
    where the command writes when no ``--output-dir`` is given (e.g. ``"runs/demo"``).
``run(output_dir: str = DEFAULT_OUTPUT_DIR, seed: int = 0, num_videos: int | None = None) -> dict``
    write the corpus (``num_videos`` videos, ``None`` for :data:`~hf_videolang.demos.common.DEMO_NUM_VIDEOS`), train,
    evaluate, save and reload; print the tables and write ``results.json`` in ``output_dir``; return the same
    results as a JSON-serializable dict.

Shared pieces (the corpus writer, trainer arguments, the ``AutoModel`` reload check, the tables, the results file)
live in :mod:`hf_videolang.demos.common`; demo modules import from it and never from each other. The pieces only the
demos need also live here: the CLIP-style teacher (:mod:`~hf_videolang.demos.clip_teacher`) and the offline MiniLM
resolver (:mod:`~hf_videolang.demos.minilm`).

Importing this package loads nothing heavy; a demo module is imported only when it runs.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

DEMOS: dict[str, str] = {
    "umt": "hf_videolang.demos.umt",
    "mac": "hf_videolang.demos.mac",
    "clipbert": "hf_videolang.demos.clipbert",
    "smaug": "hf_videolang.demos.smaug",
    "evilm": "hf_videolang.demos.evilm",
}
"""Method name (``--model``) -> the module holding its demo."""


def load_demo(name: str) -> ModuleType:
    """The demo module of method ``name``.

    Raises:
        ValueError: ``name`` is not in :data:`DEMOS`, or its module is not written yet.
    """
    if name not in DEMOS:
        raise ValueError(f"no demo for {name!r}: choose one of {', '.join(DEMOS)}")
    module_path = DEMOS[name]
    try:
        module = importlib.import_module(module_path)
    except ModuleNotFoundError as error:
        if error.name != module_path:
            raise  # the demo exists but something it imports is missing
        available = ", ".join(n for n, path in DEMOS.items() if importlib.util.find_spec(path) is not None)
        raise ValueError(f"the {name} demo is not available yet ({module_path} does not exist); "
                         f"available: {available}") from None  # fmt: skip
    for attribute in ("run", "DEFAULT_OUTPUT_DIR"):
        if not hasattr(module, attribute):
            raise TypeError(f"{module_path} must define `{attribute}` (see hf_videolang.demos)")
    return module


def run_demo(name: str, output_dir: str | None = None, seed: int = 0, num_videos: int | None = None) -> dict[str, Any]:
    """Run the demo of method ``name`` (``output_dir=None``: the module's ``DEFAULT_OUTPUT_DIR``)."""
    module = load_demo(name)
    return module.run(output_dir=output_dir or module.DEFAULT_OUTPUT_DIR, seed=seed, num_videos=num_videos)


__all__ = ["DEMOS", "load_demo", "run_demo"]
