"""Save hf-videolang models as self-contained ``trust_remote_code`` folders.

transformers' own saving (``register_for_auto_class`` + ``dynamic_module_utils.custom_object_save``) copies the
model's file and the files it reaches through same-folder ``from .x import``; it does not follow
``from ...layers import`` or ``from hf_videolang.x import``. Models here are built from shared modules
(``layers/``, ``losses/``, ``video/masking.py``), so :func:`save_with_remote_code` bundles them instead:

1. every hf-videolang module the configuration / modeling / processing files import, transitively, is copied beside
   them under a unique flat name (``hf_videolang.layers.attention`` -> ``hfvl_layers_attention.py``);
2. every hf-videolang import in those files (relative, absolute, through a package ``__init__`` re-export) is
   rewritten into a same-folder ``from .hfvl_layers_attention import Attention``, found with :mod:`ast`;
3. ``auto_map`` in ``config.json`` points the Auto classes at the copied classes, in the format of
   ``custom_object_save``, so ``AutoModel.from_pretrained(folder, trust_remote_code=True)`` loads the folder in a
   process where hf-videolang is not installed.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PACKAGE = "hf_videolang"
BUNDLE_PREFIX = "hfvl_"

#: Auto class of a model class, chosen by the suffix of its name when the caller names none.
_AUTO_CLASS_BY_SUFFIX: tuple[tuple[str, str], ...] = (
    ("ForPreTraining", "AutoModelForPreTraining"),
    ("ForVideoQuestionAnswering", "AutoModelForVisualQuestionAnswering"),
    ("ForVisualQuestionAnswering", "AutoModelForVisualQuestionAnswering"),
    ("ForMultipleChoice", "AutoModelForMultipleChoice"),
    ("ForVideoClassification", "AutoModelForVideoClassification"),
    ("ForMaskedLM", "AutoModelForMaskedLM"),
)


class RemoteCodeError(ValueError):
    """A module cannot be bundled as remote code (the message names the file, the line and the problem)."""


@dataclass(frozen=True)
class _Module:
    """One hf-videolang module: its dotted name, its source file and whether it is a package ``__init__``."""

    name: str
    path: Path
    is_package: bool


def _package_root() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise RemoteCodeError(f"cannot locate the {PACKAGE} package sources.")
    return Path(spec.origin).parent


def _locate(name: str, root: Path) -> _Module | None:
    """The source of module ``name`` (``hf_videolang.x.y``) from the files under ``root``, without importing it."""
    parts = name.split(".")[1:]
    base = root.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return _Module(name, base.with_suffix(".py"), is_package=False)
    if (base / "__init__.py").is_file():
        return _Module(name, base / "__init__.py", is_package=True)
    return None


def _is_ours(name: str | None) -> bool:
    return name is not None and (name == PACKAGE or name.startswith(PACKAGE + "."))


def bundled_file_stem(module_name: str) -> str:
    """Flat, unique file stem of a shared module: ``hf_videolang.layers.attention`` -> ``hfvl_layers_attention``.

    A package maps to its ``__init__``: ``hf_videolang.layers`` -> ``hfvl_layers``; the top package to ``hfvl_``.
    """
    return BUNDLE_PREFIX + "_".join(module_name.split(".")[1:])


class _Bundler:
    """Collects the modules reachable from the entry modules and rewrites their hf-videolang imports."""

    def __init__(self, entry_modules: Sequence[str]) -> None:
        self.root = _package_root()
        self.stems: dict[str, str] = {}
        self.sources: dict[str, str] = {}  # module name -> rewritten source
        self._trees: dict[str, ast.Module] = {}
        for name in entry_modules:
            if not _is_ours(name):
                raise RemoteCodeError(f"{name} is not an {PACKAGE} module; only {PACKAGE} models can be bundled.")
            # Entry files keep their own name (``modeling_umt.py``), as transformers' auto_map expects.
            self.stems[name] = name.rpartition(".")[2]

    # ------------------------------------------------------------------ module graph
    def _module(self, name: str, where: str) -> _Module:
        module = _locate(name, self.root)
        if module is None:
            raise RemoteCodeError(f"{where}: imports {name}, which has no source file under {self.root}.")
        return module

    def _tree(self, module: _Module) -> ast.Module:
        if module.name not in self._trees:
            self._trees[module.name] = ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))
        return self._trees[module.name]

    def stem(self, name: str) -> str:
        stem = self.stems.setdefault(name, bundled_file_stem(name))
        if list(self.stems.values()).count(stem) > 1:
            raise RemoteCodeError(f"two bundled modules would both be written to {stem}.py (one is {name}).")
        return stem

    def _defining_module(self, package: _Module, attr: str, where: str) -> _Module:
        """Follow a package ``__init__`` re-export of ``attr`` to the module that defines it.

        The ``__init__`` itself is bundled when it defines ``attr``, renames it, re-exports it from another library
        or re-exports a submodule object under that name.
        """
        for node in self._tree(package).body:
            if not isinstance(node, ast.ImportFrom):
                continue
            for alias in node.names:
                if alias.name == "*" or (alias.asname or alias.name) != attr:
                    continue
                source = _resolve(node, package)
                if not _is_ours(source) or alias.asname is not None:
                    return package
                inner = self._module(source, where)
                if not inner.is_package:
                    return inner
                if _locate(f"{source}.{attr}", self.root) is not None:
                    return package
                return self._defining_module(inner, attr, where)
        return package

    # ------------------------------------------------------------------ rewriting
    def bundle(self) -> dict[str, str]:
        """Return ``{file name: source}`` of every bundled file."""
        pending = list(self.stems)
        while pending:
            name = pending.pop()
            if name in self.sources:
                continue
            module = self._module(name, "entry")
            source, needed = self._rewrite(module)
            self.sources[name] = source
            pending.extend(n for n in needed if n not in self.sources)
        return {f"{self.stem(name)}.py": source for name, source in sorted(self.sources.items())}

    def _rewrite(self, module: _Module) -> tuple[str, set[str]]:
        text = module.path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line))
        edits: list[tuple[int, int, str]] = []
        needed: set[str] = set()
        for node in ast.walk(self._tree(module)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                new = self._rewrite_import(node, module, needed)
                if new is not None:
                    start = offsets[node.lineno - 1] + node.col_offset
                    end = offsets[node.end_lineno - 1] + node.end_col_offset
                    indent = lines[node.lineno - 1][: node.col_offset]
                    sep = "\n" + indent if not indent.strip() else "; "
                    edits.append((start, end, sep.join(new)))
        for start, end, new in sorted(edits, reverse=True):
            text = text[:start] + new + text[end:]
        header = f"# Bundled by hf_videolang.hub.remote_code from {module.name}; edit the package, not this copy.\n"
        return header + text, needed

    def _rewrite_import(self, node: ast.Import | ast.ImportFrom, module: _Module, needed: set[str]) -> list[str] | None:
        where = f"{module.path}:{node.lineno}"
        if isinstance(node, ast.Import):
            if not any(_is_ours(alias.name) for alias in node.names):
                return None
            statements = []
            for alias in node.names:
                if not _is_ours(alias.name):
                    statements.append(f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else ""))
                    continue
                if alias.asname is None:
                    raise RemoteCodeError(
                        f"{where}: `import {alias.name}` binds the name {PACKAGE!r}, which a remote-code folder "
                        f"cannot provide; write `from {alias.name.rpartition('.')[0]} import ...` instead."
                    )
                target = self._module(alias.name, where)
                needed.add(target.name)
                statements += _module_import(self.stem(target.name), alias.asname)
            return statements
        source = _resolve(node, module)
        if not _is_ours(source):
            return None
        base = self._module(source, where)
        groups: dict[str, list[str]] = {}
        statements: list[str] = []
        for alias in node.names:
            bound = alias.asname or alias.name
            if alias.name == "*":
                target = base
            elif base.is_package and _locate(f"{source}.{alias.name}", self.root) is not None:
                target = self._module(f"{source}.{alias.name}", where)  # a submodule, imported as an object
                needed.add(target.name)
                statements += _module_import(self.stem(target.name), bound)
                continue
            else:
                target = self._defining_module(base, alias.name, where) if base.is_package else base
            needed.add(target.name)
            spelled = alias.name if alias.asname is None else f"{alias.name} as {alias.asname}"
            groups.setdefault(self.stem(target.name), []).append(spelled)
        statements += [f"from .{stem} import {', '.join(names)}" for stem, names in groups.items()]
        return statements


def _resolve(node: ast.ImportFrom, module: _Module) -> str | None:
    """Absolute name of the module an ``ImportFrom`` reads from (``from ..layers import`` in a.b.c -> a.layers)."""
    if node.level == 0:
        return node.module
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    return importlib.util.resolve_name("." * node.level + (node.module or ""), package)


def _module_import(stem: str, bound: str) -> list[str]:
    # transformers copies a remote-code file only when it sees `from .<file> import ...` (a regex in
    # `get_relative_imports`), which `from . import <file>` does not match; the first line makes it match.
    return [f"from .{stem} import __name__ as _{stem}_name", f"from . import {stem} as {bound}"]


def collect_remote_code(entry_modules: Iterable[str]) -> dict[str, str]:
    """Sources of a self-contained remote-code bundle.

    Args:
        entry_modules: dotted names of the files transformers loads by name (``hf_videolang.models.umt.modeling_umt``);
            they keep their base name, every other hf-videolang module they import becomes ``hfvl_<path>.py``.

    Returns:
        ``{file name: source text}``, every hf-videolang import rewritten to a same-folder relative import.
    """
    return _Bundler(list(dict.fromkeys(entry_modules))).bundle()


def default_auto_class(model_class: type) -> str:
    """The Auto class a model class loads with: its ``register_for_auto_class`` choice, else by name suffix."""
    registered = getattr(model_class, "_auto_class", None)
    if registered is not None:
        return registered
    for suffix, auto_class in _AUTO_CLASS_BY_SUFFIX:
        if model_class.__name__.endswith(suffix):
            return auto_class
    return "AutoModel"


def class_reference(cls: type) -> str:
    """``auto_map`` value of a class, as ``custom_object_save`` writes it: ``<module file stem>.<class name>``."""
    return f"{cls.__module__.rpartition('.')[2]}.{cls.__name__}"


_class_ref = class_reference


def registered_auto_classes(config_class: type) -> dict[str, type]:
    """``{Auto class name: model class}`` for every transformers model Auto class ``config_class`` is registered with
    (``AutoModel.register(config_class, ...)`` and the like, as ``hf_videolang.registration`` does), sorted by name."""
    from transformers.models.auto import auto_factory, modeling_auto

    found = {}
    for name in sorted(dir(modeling_auto)):
        auto = getattr(modeling_auto, name)
        is_model_auto = isinstance(auto, type) and issubclass(auto, auto_factory._BaseAutoModelClass)
        if not (name.startswith("Auto") and is_model_auto):
            continue
        model_class = auto._model_mapping._extra_content.get(config_class)
        if model_class is not None and _is_ours(model_class.__module__):
            found[name] = model_class
    return found


def registered_processor_class(config_class: type) -> type | None:
    """The processor class registered for ``config_class`` with ``AutoProcessor``, or None."""
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    processor_class = PROCESSOR_MAPPING._extra_content.get(config_class)
    return processor_class if processor_class is not None and _is_ours(processor_class.__module__) else None


def registered_pipelines(auto_classes: dict[str, type]) -> dict[str, tuple[type, list[str]]]:
    """``{task: (pipeline class, Auto class names it loads models with)}`` of every hf-videolang pipeline registered
    with transformers' ``PIPELINE_REGISTRY`` that can load one of ``auto_classes`` (names as in
    :func:`registered_auto_classes`)."""
    from transformers.pipelines import PIPELINE_REGISTRY

    found = {}
    for task, info in sorted(PIPELINE_REGISTRY.supported_tasks.items()):
        impl = info.get("impl")
        if not isinstance(impl, type) or not _is_ours(impl.__module__):  # built-in tasks name their class
            continue
        names = [auto.__name__ for auto in info.get("pt", ())]
        if any(name in auto_classes for name in names):
            found[task] = (impl, names)
    return found


def _update_auto_map(json_path: Path, auto_map: dict[str, str]) -> None:
    data = json.loads(json_path.read_text(encoding="utf-8"))
    data["auto_map"] = {**data.get("auto_map", {}), **auto_map}
    # transformers writes config.json with indent=2 and sorted keys; keep the file in that form.
    json_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def save_with_remote_code(
    model: Any,
    save_directory: str | os.PathLike,
    processor: Any | None = None,
    *,
    auto_class: str | Sequence[str] | None = None,
    **save_kwargs: Any,
) -> list[Path]:
    """``model.save_pretrained`` plus self-contained remote code, loadable with ``trust_remote_code=True``.

    Args:
        model: an hf-videolang ``PreTrainedModel``.
        save_directory: output folder (created if needed).
        processor: optional processor saved beside the model; its ``processing_*.py`` is bundled too and
            ``AutoProcessor`` is mapped to it.
        auto_class: Auto class(es) that map to ``type(model)`` (e.g. ``"AutoModel"``); by default the class's
            ``register_for_auto_class`` choice, else one chosen from its name (``*ForPreTraining`` ->
            ``AutoModelForPreTraining``, ...), else ``"AutoModel"``.
        **save_kwargs: passed to ``save_pretrained`` (``safe_serialization`` and the like).

    Returns:
        The code files written, sorted.
    """
    save_directory = Path(save_directory)
    model_class, config_class = type(model), type(model.config)
    entries = [config_class.__module__, model_class.__module__]
    if processor is not None:
        entries.append(type(processor).__module__)
    for name in entries:
        if not _is_ours(name):
            raise RemoteCodeError(f"save_with_remote_code: {name} is not an {PACKAGE} module.")
    sources = collect_remote_code(entries)

    # After `register_for_auto_class`, save_pretrained would run `custom_object_save`, which fails on
    # `from ...layers import`; switch it off for this call only (instance attributes, no class state touched).
    shadows = []
    if getattr(model_class, "_auto_class", None) is not None:
        shadows.append((model, "is_remote_code", lambda: False))
    if getattr(config_class, "_auto_class", None) is not None:
        shadows.append((model.config, "_auto_class", None))
    for obj, attr, value in shadows:
        object.__setattr__(obj, attr, value)
    try:
        model.save_pretrained(save_directory, **save_kwargs)
        if processor is not None:
            processor.save_pretrained(save_directory)
    finally:
        for obj, attr, _ in shadows:
            object.__delattr__(obj, attr)

    written = []
    for file_name, source in sources.items():
        path = save_directory / file_name
        path.write_text(source, encoding="utf-8")
        written.append(path)

    classes = [auto_class] if isinstance(auto_class, str) else list(auto_class or [default_auto_class(model_class)])
    auto_map = {"AutoConfig": _class_ref(config_class), **{name: _class_ref(model_class) for name in classes}}
    if processor is not None:
        auto_map["AutoProcessor"] = _class_ref(type(processor))
        processor_json = save_directory / "processor_config.json"
        if processor_json.is_file():
            _update_auto_map(processor_json, {"AutoProcessor": auto_map["AutoProcessor"]})
    _update_auto_map(save_directory / "config.json", auto_map)
    return sorted(written)


__all__ = [
    "RemoteCodeError",
    "bundled_file_stem",
    "class_reference",
    "collect_remote_code",
    "default_auto_class",
    "registered_auto_classes",
    "registered_pipelines",
    "registered_processor_class",
    "save_with_remote_code",
]
