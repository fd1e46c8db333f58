"""``hf-videolang push``: upload a saved model folder and its card to the Hub, and record what was pushed.

The folder must hold ``config.json`` and safetensors weights and no pickle-based files (``.bin``, ``.pt``, ...),
which run code when loaded. The upload goes through ``HfApi`` (``create_repo(exist_ok=True)`` + ``upload_folder``)
at ``$HF_ENDPOINT`` (the public Hub when unset); each push writes one JSON record to ``hub_uploads/``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi

from .model_card import render_model_card

#: Suffixes of pickle-based files, refused because loading them can run arbitrary code.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
DEFAULT_RECORD_DIR = "hub_uploads"


class PushError(ValueError):
    """A folder cannot be pushed (the message names the folder and the problem)."""


def validate_model_folder(folder: str | os.PathLike) -> list[Path]:
    """Check a saved model folder before upload and return its files (relative paths, sorted).

    Raises:
        PushError: not a folder, no ``config.json``, no ``model.safetensors`` (or sharded index), or pickle files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PushError(f"push: {folder} is not a folder.")
    files = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts)
    names = {p.as_posix() for p in files}
    if "config.json" not in names:
        raise PushError(f"push: {folder} has no config.json; save the model with save_pretrained first.")
    if not {"model.safetensors", "model.safetensors.index.json"} & names:
        raise PushError(f"push: {folder} has no model.safetensors; save with safetensors (the default).")
    pickles = [p.as_posix() for p in files if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise PushError(
            f"push: {folder} holds pickle-based files {pickles}; they can run code when loaded. Remove them and "
            "keep the safetensors weights."
        )
    return files


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    card: str | os.PathLike | None = None,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    record_dir: str | os.PathLike = DEFAULT_RECORD_DIR,
    commit_message: str | None = None,
    api: HfApi | None = None,
) -> dict[str, Any]:
    """Upload a saved model folder to ``repo_id`` and write a JSON record of the push.

    Args:
        folder: output of ``save_pretrained`` / ``save_with_remote_code``.
        repo_id: ``"org/name"``.
        card: card source (preset name or path) rendered to ``README.md`` when the folder has none.
        private: create the repository as private (only when it does not exist yet).
        revision: branch to push to (created from main when missing); main when None.
        token: Hub token; the saved login / ``$HF_TOKEN`` when None.
        record_dir: where the record JSON goes.
        commit_message: defaults to "Upload <folder name> with hf-videolang <version>".
        api: an ``HfApi`` to use (tests); by default one at ``$HF_ENDPOINT``.

    Returns:
        The record written to ``record_dir / "<org>--<name>-<UTC timestamp>.json"`` (its path under ``"record_path"``).
    """
    from .. import __version__

    folder = Path(folder)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise PushError(f"push: repo id must be 'org/name', got {repo_id!r}.")
    validate_model_folder(folder)
    readme = folder / "README.md"
    if not readme.is_file():
        if card is None:
            raise PushError(f"push: {folder} has no README.md; pass a card (e.g. --card umt-b16) to render one.")
        render_model_card(card).save(readme)
    files = validate_model_folder(folder)

    endpoint = os.environ.get("HF_ENDPOINT")
    api = api if api is not None else HfApi(endpoint=endpoint, token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        revision=revision,
        commit_message=commit_message or f"Upload {folder.name} with hf-videolang {__version__}",
    )

    now = _dt.datetime.now(_dt.timezone.utc)
    record: dict[str, Any] = {
        "repo_id": repo_id,
        "repo_url": str(repo_url),
        "endpoint": endpoint or "https://huggingface.co",
        "revision": revision or "main",
        "private": private,
        "commit_url": getattr(commit, "commit_url", None),
        "commit_oid": getattr(commit, "oid", None),
        "card": None if card is None else str(card),
        "package_version": __version__,
        "pushed_at": now.isoformat(timespec="seconds"),
        "folder": str(folder.resolve()),
        "files": [{"path": p.as_posix(), "size": (folder / p).stat().st_size, "sha256": _sha256(folder / p)}
                  for p in files],  # fmt: skip
    }
    record_dir = Path(record_dir)
    record_dir.mkdir(parents=True, exist_ok=True)
    record_path = record_dir / f"{repo_id.replace('/', '--')}-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return {**record, "record_path": str(record_path)}


__all__ = ["DEFAULT_RECORD_DIR", "PICKLE_SUFFIXES", "PushError", "push_to_hub", "validate_model_folder"]
