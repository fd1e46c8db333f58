"""``hf-videolang push``: publish a saved model folder to the Hub so that it loads without this package.

What is uploaded is a *staging copy* of the folder (the user's folder is never written to):

1. the folder's files (``config.json``, safetensors weights, processor and tokenizer files, ...), after
   :func:`validate_model_folder` refused symlinks that leave the folder and any file that holds a pickle, found by
   content (:func:`find_pickle`), whatever its name;
2. the remote-code bundle (:func:`~hf_videolang.hub.remote_code.collect_remote_code`) of the config, of every model
   class registered for the config with a transformers Auto class, of the registered processor and of every
   hf-videolang pipeline (today ``video-question-answering``);
3. ``config.json`` with an ``auto_map`` for every Auto class the config is registered with (so ``AutoModel`` and the
   task classes all load with ``trust_remote_code=True``) and ``custom_pipelines`` for the pipelines, which is how
   transformers' ``pipeline(task, model=repo_id, trust_remote_code=True)`` finds a pipeline that ships with a model;
   ``processor_config.json`` with the ``AutoProcessor`` entry;
4. ``README.md``: the folder's own, else a card rendered from ``model_cards/`` with the results of the run that
   produced the folder (``results.json`` beside or above it) and a "Quick start" snippet for this repository.

Everything is derived from what ``hf_videolang.registration`` registered, so a new method publishes by registering
its classes, with no code here. Each push writes one JSON record to ``hub_uploads/`` naming the endpoint it went to.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import io
import json
import os
import pickletools
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi

from .model_card import render_model_card
from .remote_code import (
    RemoteCodeError,
    class_reference,
    collect_remote_code,
    registered_auto_classes,
    registered_pipelines,
    registered_processor_class,
)

DEFAULT_RECORD_DIR = "hub_uploads"
#: Weight files of a saved model; at least one must be present.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
#: Bytes read from a file to decide whether it is a pickle (containers are opened and their members read).
_HEAD_BYTES = 1 << 16
#: Largest compressed member decompressed to look inside (a ``.pt.gz`` of a torch zip archive).
_MAX_INFLATE = 1 << 30
#: The synthetic corpus results come from (hf_videolang.data.make_corpus), named as such on the card.
SYNTHETIC_DATASET = {
    "dataset_type": "hf-videolang/synthetic-moving-shapes",
    "dataset_name": "hf-videolang built-in synthetic corpus (moving shapes; synthetic, not a benchmark)",
}


class PushError(ValueError):
    """A folder cannot be pushed (the message names the folder and the problem, on one line)."""


# ---------------------------------------------------------------------------------------------------- pickles


def _pickle_protocol_header(head: bytes) -> bool:
    """``PROTO n`` (``0x80``, protocol 2-5) followed by a valid opcode: how every pickle since Python 2.3 starts."""
    if len(head) < 3 or head[0] != 0x80 or head[1] not in (2, 3, 4, 5):
        return False
    try:
        next(pickletools.genops(io.BytesIO(head[2:])))  # the next opcode must parse too (not just two bytes)
    except (ValueError, StopIteration, EOFError):
        return False
    return True


def _numpy_object_array(head: bytes) -> bool:
    """A ``.npy`` whose dtype holds Python objects: ``np.load`` unpickles those."""
    if not head.startswith(b"\x93NUMPY"):
        return False
    import numpy as np

    stream = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(stream)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _, _, dtype = read(stream, max_header_size=1 << 20)
    except (ValueError, OSError, SyntaxError):
        return True  # unreadable header: refuse rather than guess
    return bool(dtype.hasobject)


def _pickle_in_bytes(data: bytes, name: str, depth: int = 0) -> str | None:
    """Why ``data`` (the start of a file or a container member named ``name``) holds a pickle, or None."""
    if depth > 4:
        return f"{name}: containers nested more than 4 deep"
    if _pickle_protocol_header(data):
        return f"{name}: starts with the pickle protocol header"
    if _numpy_object_array(data):
        return f"{name}: a numpy array of Python objects (np.load unpickles it)"
    if data.startswith(b"\x1f\x8b"):
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
                inner = stream.read(_MAX_INFLATE)
        except (OSError, EOFError):
            return None
        return _pickle_in_bytes(inner, f"{name} (gzip)", depth + 1)
    if data.startswith(b"PK\x03\x04"):
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile:
            return None
        with archive:
            for member in archive.namelist():
                if member.rsplit("/", 1)[-1] == "data.pkl" or member.endswith((".pkl", ".pickle")):
                    return f"{name}: a zip archive holding {member} (torch.save format)"
                with archive.open(member) as stream:
                    reason = _pickle_in_bytes(stream.read(_HEAD_BYTES), f"{name}/{member}", depth + 1)
                if reason:
                    return reason
        return None
    if len(data) > 262 and data[257:262] == b"ustar":
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                stream = archive.extractfile(member) if member.isfile() else None
                if stream is not None:
                    reason = _pickle_in_bytes(stream.read(), f"{name}/{member.name}", depth + 1)
                    if reason:
                        return reason
    return None


def find_pickle(path: str | os.PathLike) -> str | None:
    """Why the file at ``path`` holds a pickle (which runs code when loaded), or None.

    Decided by content, not by name: the pickle protocol header, numpy arrays of objects, and zip (torch's
    ``data.pkl``), gzip and tar containers opened and searched, so ``model_best.pth.tar``, ``state.pt.gz`` or an
    ``.npy`` holding a pickle are all found.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
    # Containers are read whole (their directory is at the end); other files only by their head.
    if head.startswith((b"\x1f\x8b", b"PK\x03\x04")) or (len(head) > 262 and head[257:262] == b"ustar"):
        if path.stat().st_size > _MAX_INFLATE:
            return f"{path.name}: an archive of more than {_MAX_INFLATE >> 20} MiB, not inspected"
        head = path.read_bytes()
    return _pickle_in_bytes(head, path.name)


# ---------------------------------------------------------------------------------------------------- the folder


def validate_model_folder(folder: str | os.PathLike) -> list[Path]:
    """Check a saved model folder before upload and return its files (relative paths, sorted).

    Raises:
        PushError: not a folder; a symlink that points outside it; no ``config.json``; no safetensors weights; a file
            that holds a pickle.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PushError(f"{folder} is not a folder.")
    root = folder.resolve()
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if ".cache" in relative.parts or ".git" in relative.parts:
            continue
        if path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(root):
                raise PushError(f"{folder}: {relative} is a symlink to {target}, outside the folder; copy the file in "
                                "or remove the link.")  # fmt: skip
        if path.is_file():
            files.append(relative)
    names = {p.as_posix() for p in files}
    if "config.json" not in names:
        raise PushError(f"{folder} has no config.json; save the model with save_pretrained first.")
    if not set(WEIGHT_FILES) & names:
        raise PushError(f"{folder} has no weights (model.safetensors); save the model with save_pretrained, which "
                        "writes safetensors.")  # fmt: skip
    for relative in files:
        reason = find_pickle(folder / relative)
        if reason:
            raise PushError(f"{folder}: {relative} holds a pickle ({reason}), which runs code when loaded; remove it "
                            "and keep the safetensors weights.")  # fmt: skip
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise PushError(f"{path}: not readable JSON ({error}).") from None


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    # transformers writes config.json with indent=2 and sorted keys; keep the file in that form.
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------------- remote code


def _config_class(config: Mapping[str, Any], folder: Path) -> type:
    from transformers import CONFIG_MAPPING

    from .. import registration

    registration.register_all()
    model_type = config.get("model_type")
    try:
        config_class = CONFIG_MAPPING[model_type]
    except KeyError:
        raise PushError(f"{folder}/config.json: model_type {model_type!r} is not an hf-videolang model.") from None
    if not config_class.__module__.startswith("hf_videolang."):
        raise PushError(f"{folder}/config.json: model_type {model_type!r} belongs to transformers, not hf-videolang.")
    return config_class


def add_remote_code(staging: Path) -> dict[str, Any]:
    """Write the remote-code bundle, ``auto_map`` and ``custom_pipelines`` into a staged folder.

    Returns:
        ``{"auto_map", "custom_pipelines", "code_files"}`` as written.
    """
    config_path = staging / "config.json"
    config = _read_json(config_path)
    config_class = _config_class(config, staging)
    models = registered_auto_classes(config_class)
    processor_class = registered_processor_class(config_class)
    has_processor = processor_class is not None and (staging / "processor_config.json").is_file()
    pipelines = registered_pipelines(models)
    entries = [config_class.__module__, *(cls.__module__ for cls in models.values())]
    if has_processor:
        entries.append(processor_class.__module__)
    entries += [impl.__module__ for impl, _ in pipelines.values()]
    try:
        sources = collect_remote_code(entries)
    except RemoteCodeError as error:
        raise PushError(f"cannot bundle the model's code: {error}") from None
    for name, source in sources.items():
        (staging / name).write_text(source, encoding="utf-8")

    auto_map = {"AutoConfig": class_reference(config_class), **{n: class_reference(c) for n, c in models.items()}}
    if has_processor:
        auto_map["AutoProcessor"] = class_reference(processor_class)
        processor_config = _read_json(staging / "processor_config.json")
        processor_config["auto_map"] = {
            **processor_config.get("auto_map", {}),
            "AutoProcessor": auto_map["AutoProcessor"],
        }
        _write_json(staging / "processor_config.json", processor_config)
    custom_pipelines = {
        task: {"impl": class_reference(impl), "pt": [name for name in auto_names if name in models],
               "type": "multimodal"}
        for task, (impl, auto_names) in pipelines.items()
    }  # fmt: skip
    config["auto_map"] = {**config.get("auto_map", {}), **auto_map}
    if custom_pipelines:
        config["custom_pipelines"] = {**config.get("custom_pipelines", {}), **custom_pipelines}
    _write_json(config_path, config)
    return {"auto_map": auto_map, "custom_pipelines": custom_pipelines, "code_files": sorted(sources)}


# ---------------------------------------------------------------------------------------------------- the card


def find_results(folder: Path, results: str | os.PathLike | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The entry of ``results.json`` that belongs to ``folder``: ``(results.json path, entry)``, or None.

    ``results.json`` is ``results`` when given, else the one in the folder or its parent (the demo writes one per
    run, with one entry per saved stage). The entry is the one whose ``saved_to`` is the folder, else the one named
    after the folder, else the whole file when it has ``metrics`` itself.
    """
    candidates = [Path(results)] if results is not None else [folder / "results.json", folder.parent / "results.json"]
    for path in candidates:
        if not path.is_file():
            if results is not None:
                raise PushError(f"--results {path}: no such file.")
            continue
        data = _read_json(path)
        for stage in [data, *(v for v in data.values() if isinstance(v, dict))]:
            saved_to = stage.get("saved_to")
            # `saved_to` is as the run wrote it: absolute, relative to where it ran, or to results.json.
            if saved_to and folder.resolve() in {Path(saved_to).resolve(), (path.parent / saved_to).resolve()}:
                return path, stage
        if isinstance(data.get(folder.name), dict):
            return path, data[folder.name]
        if isinstance(data.get("metrics"), dict):
            return path, data
    return None


def results_to_eval_results(stage: Mapping[str, Any], task_type: str, corpus: Mapping[str, Any] | None = None
                            ) -> list[dict[str, Any]]:  # fmt: skip
    """``EvalResult`` fields of every number in ``stage["metrics"]``, on the built-in synthetic corpus (test split)."""
    metrics = stage.get("metrics")
    if not isinstance(metrics, Mapping) or not metrics:
        return []
    config = None
    if corpus:
        config = ",".join(f"{k}={corpus[k]}" for k in ("num_videos", "seed", "size", "num_frames") if k in corpus)
    return [
        dict(task_type=task_type, **SYNTHETIC_DATASET, dataset_split="test", dataset_config=config or None,
             metric_type=name, metric_name=name, metric_value=float(value))
        for name, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]  # fmt: skip


def usage_snippet(repo_id: str, config: Mapping[str, Any], custom_pipelines: Mapping[str, Any],
                  question: str | None = None) -> str:  # fmt: skip
    """The "Quick start" section: Python that runs as written against ``repo_id`` (tested), given ``video.mp4``."""
    lines = ["from transformers import AutoModel" + (", pipeline" if custom_pipelines else ""), "",
             f'model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)']  # fmt: skip
    if "video-question-answering" in custom_pipelines and config.get("answer_list"):
        question = question or "what is happening in the video?"
        lines += [f'vqa = pipeline("video-question-answering", model="{repo_id}", trust_remote_code=True)',
                  f'print(vqa("video.mp4", question={question!r}, top_k=3))']  # fmt: skip
    return "\n".join([
        "## Quick start",
        "",
        "The repository carries its own code (`trust_remote_code=True`), so hf-videolang need not be installed. With "
        "hf-videolang installed, `AutoModel.from_pretrained(...)` also works without the flag; the pipeline, which "
        "ships in the repository, always asks for it.",
        "",
        "```python",
        *lines,
        "```",
        "",
    ])  # fmt: skip


def render_push_card(staging: Path, repo_id: str, card: str | os.PathLike, custom_pipelines: Mapping[str, Any],
                     results: str | os.PathLike | None, source_folder: Path) -> dict[str, Any]:  # fmt: skip
    """Render ``card`` into ``staging/README.md`` with the run's results and the usage snippet; return a summary."""
    from .model_card import find_card_source, hub_pipeline_tag, load_card_data

    config = _read_json(staging / "config.json")
    _, data_path = find_card_source(card)
    task_type = hub_pipeline_tag(load_card_data(data_path).get("pipeline_tag") or "feature-extraction")
    found = find_results(source_folder, results)
    eval_results, results_path, question = [], None, None
    if found is not None:
        results_path, stage = found
        corpus = _read_json(results_path).get("corpus")
        eval_results = results_to_eval_results(stage, task_type, corpus if isinstance(corpus, dict) else None)
        question = (stage.get("pipeline_example") or {}).get("question")
    extra = {"tags": ["hf-videolang", "custom_code", *custom_pipelines]}
    if eval_results:
        extra["datasets"] = [SYNTHETIC_DATASET["dataset_type"]]
    model_card = render_model_card(card, results=eval_results or None, extra_tags=extra["tags"],
                                   card_data={k: v for k, v in extra.items() if k != "tags"},
                                   sections=[usage_snippet(repo_id, config, custom_pipelines, question)],
                                   repo_id=repo_id)  # fmt: skip
    model_card.save(staging / "README.md")
    return {"card": str(card), "results": None if results_path is None else str(results_path),
            "metrics": {r["metric_type"]: r["metric_value"] for r in eval_results}}  # fmt: skip


# ---------------------------------------------------------------------------------------------------- push


def stage_folder(folder: Path, staging: Path, files: Sequence[Path]) -> None:
    """Copy ``files`` of ``folder`` into ``staging``; a symlink inside the folder becomes a copy of its target."""
    for relative in files:
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / relative, target)


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    card: str | os.PathLike | None = None,
    results: str | os.PathLike | None = None,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    record_dir: str | os.PathLike = DEFAULT_RECORD_DIR,
    commit_message: str | None = None,
    api: HfApi | None = None,
) -> dict[str, Any]:
    """Upload a saved hf-videolang model folder to ``repo_id``, loadable without hf-videolang; record the push.

    Args:
        folder: output of ``save_pretrained`` (model, and optionally processor) or ``save_with_remote_code``.
        repo_id: ``"org/name"``.
        card: card source (preset name or path, see ``model_cards/``) rendered to ``README.md`` when the folder has
            none; required then.
        results: the run's ``results.json`` (default: the one in the folder or its parent), whose numbers for this
            folder fill the card's ``model-index``.
        private: create the repository as private (only when it does not exist yet).
        revision: branch to push to (created from main when missing); main when None.
        token: Hub token; the saved login / ``$HF_TOKEN`` when None.
        record_dir: where the record JSON goes.
        commit_message: defaults to "Upload <folder name> with hf-videolang <version>".
        api: an ``HfApi`` to use; by default one at ``$HF_ENDPOINT``.

    Returns:
        The record written to ``record_dir / "<org>--<name>-<UTC timestamp>.json"`` (its path under ``"record_path"``).
    """
    from .. import __version__

    folder = Path(folder)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PushError(f"repo id must be 'org/name', got {repo_id!r}.")
    files = validate_model_folder(folder)
    has_readme = (folder / "README.md").is_file()
    if not has_readme and card is None:
        raise PushError(f"{folder} has no README.md; pass a card (e.g. --card umt-b16) to render one.")

    with tempfile.TemporaryDirectory(prefix="hf-videolang-push-") as tmp:
        staging = Path(tmp) / folder.name
        stage_folder(folder, staging, files)
        code = add_remote_code(staging)
        card_summary = None
        if not has_readme:
            card_summary = render_push_card(staging, repo_id, card, code["custom_pipelines"], results, folder)
        staged_files = validate_model_folder(staging)

        endpoint = api.endpoint if api is not None else os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
        api = api if api is not None else HfApi(endpoint=endpoint, token=token)
        repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(staging),
            repo_type="model",
            revision=revision,
            commit_message=commit_message or f"Upload {folder.name} with hf-videolang {__version__}",
        )
        uploaded = [{"path": p.as_posix(), "size": (staging / p).stat().st_size, "sha256": _sha256(staging / p)}
                    for p in staged_files]  # fmt: skip

    now = _dt.datetime.now(_dt.timezone.utc)
    record: dict[str, Any] = {
        "repo_id": repo_id,
        "repo_url": str(repo_url),
        "endpoint": str(endpoint).rstrip("/"),
        "revision": revision or "main",
        "private": private,
        "commit_url": getattr(commit, "commit_url", None),
        "commit_oid": getattr(commit, "oid", None),
        "card": None if card_summary is None else card_summary["card"],
        "results": None if card_summary is None else card_summary["results"],
        "metrics": None if card_summary is None else card_summary["metrics"],
        "auto_map": code["auto_map"],
        "custom_pipelines": sorted(code["custom_pipelines"]),
        "package_version": __version__,
        "pushed_at": now.isoformat(timespec="seconds"),
        "folder": str(folder.resolve()),
        "files": uploaded,
    }
    record_dir = Path(record_dir)
    record_dir.mkdir(parents=True, exist_ok=True)
    record_path = record_dir / f"{repo_id.replace('/', '--')}-{now.strftime('%Y%m%dT%H%M%S%fZ')}.json"
    record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return {**record, "record_path": str(record_path)}


__all__ = [
    "DEFAULT_RECORD_DIR",
    "PushError",
    "add_remote_code",
    "find_pickle",
    "find_results",
    "push_to_hub",
    "results_to_eval_results",
    "usage_snippet",
    "validate_model_folder",
]
