"""Tests of `hf-videolang push` that need no Hub: refusals (one line, folder unchanged), pickle detection by content,
and the calls made to a mocked HfApi."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import tarfile
import zipfile
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch

from hf_videolang.cli import main
from hf_videolang.hub.push import PushError, find_pickle, push_to_hub


def _saved_folder(root: Path) -> Path:
    folder = root / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "hfvl_umt"}\n')
    (folder / "model.safetensors").write_bytes(b"not really weights, but bytes to hash")
    return folder


def _digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}  # fmt: skip


def _torch_zip(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def _tar(name: str, content: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


PICKLES = {
    "model_best.pth.tar": lambda: _torch_zip({"w": torch.zeros(2)}),  # torch.save to a .pth.tar name: a zip
    "legacy.pth.tar": lambda: _tar("state.pkl", pickle.dumps({"w": [1.0]}, protocol=2)),  # a real tar of a pickle
    "state.pt.gz": lambda: gzip.compress(_torch_zip({"w": torch.zeros(2)})),
    "opt.pt.gz": lambda: gzip.compress(pickle.dumps({"step": 3}, protocol=4)),
    "features.npy": lambda: _npy(np.array([{"a": 1}, None], dtype=object)),
    "arrays.npz": lambda: _zip({"x.npy": _npy(np.array([{"a": 1}], dtype=object))}),
    "notes.txt": lambda: pickle.dumps("hello", protocol=5),
}


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


@pytest.mark.parametrize("name", sorted(PICKLES))
def test_pickles_are_found_by_content_whatever_their_name(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(PICKLES[name]())
    assert find_pickle(path) is not None


@pytest.mark.parametrize("content", [
    b"", b'{"a": 1}\n', b"\x80\x00 not a pickle header", _npy(np.arange(4, dtype=np.float32)),
    _zip({"x.npy": _npy(np.zeros(3))}), gzip.compress(b"plain text"),
])  # fmt: skip
def test_safe_files_are_not_pickles(tmp_path, content):
    (tmp_path / "f.bin").write_bytes(content)
    assert find_pickle(tmp_path / "f.bin") is None


def _refused(capsys, folder: Path, *extra: str) -> str:
    before = _digest(folder)
    code = main(["push", str(folder), "--repo-id", "org/tiny", "--card", "umt-b16",
                 "--record-dir", str(folder.parent / "records"), *extra])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("hf-videolang push: error: ") and "Traceback" not in err, err
    assert _digest(folder) == before and not (folder / "README.md").exists()
    assert not (folder.parent / "records").exists()
    return err


@pytest.mark.parametrize("name", ["model_best.pth.tar", "state.pt.gz", "features.npy"])
def test_cli_refuses_a_pickle_with_an_innocent_name_in_one_line(tmp_path, capsys, name):
    folder = _saved_folder(tmp_path)
    (folder / "extra").mkdir()
    (folder / "extra" / name).write_bytes(PICKLES[name]())
    err = _refused(capsys, folder)
    assert f"extra/{name} holds a pickle" in err


def test_cli_refuses_a_symlink_out_of_the_folder_in_one_line(tmp_path, capsys):
    folder = _saved_folder(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for upload\n")
    os.symlink(secret, folder / "notes.txt")
    err = _refused(capsys, folder)
    assert "notes.txt is a symlink to" in err and "outside the folder" in err


def test_cli_refuses_a_folder_without_weights_or_config_in_one_line(tmp_path, capsys):
    folder = _saved_folder(tmp_path)
    (folder / "model.safetensors").unlink()
    assert "has no weights (model.safetensors)" in _refused(capsys, folder)
    (folder / "config.json").unlink()
    assert "has no config.json" in _refused(capsys, folder)
    assert "is not a folder" in _refused_missing(capsys, tmp_path / "missing")


def _refused_missing(capsys, folder: Path) -> str:
    assert main(["push", str(folder), "--repo-id", "org/tiny", "--card", "umt-b16"]) == 2
    return capsys.readouterr().err


def test_symlink_inside_the_folder_is_uploaded_as_a_copy(tmp_path):
    folder = _saved_folder(tmp_path)
    os.symlink(folder / "config.json", folder / "config_copy.json")
    api = _fake_api()
    record = push_to_hub(folder, "org/tiny", card="umt-b16", api=api, record_dir=tmp_path / "records")
    assert "config_copy.json" in {f["path"] for f in record["files"]}


def _fake_api() -> mock.MagicMock:
    api = mock.MagicMock()
    api.endpoint = "https://hub.example"
    api.create_repo.return_value = "https://hub.example/org/tiny"
    api.upload_folder.side_effect = _capture_upload
    return api


def _capture_upload(**kwargs):
    # The staging copy disappears after the push: remember what it held.
    staged = Path(kwargs["folder_path"])
    _capture_upload.files = {p.relative_to(staged).as_posix(): p.read_bytes() for p in staged.rglob("*") if p.is_file()}
    return mock.Mock(commit_url="https://hub.example/org/tiny/commit/abc123", oid="abc123")


def test_push_uploads_a_staging_copy_with_code_and_card_and_records_it(tmp_path):
    folder = _saved_folder(tmp_path)
    before = _digest(folder)
    api = _fake_api()
    record = push_to_hub(folder, "org/tiny", card="umt-b16", api=api, revision="v1", private=True,
                         record_dir=tmp_path / "records")  # fmt: skip
    assert _digest(folder) == before  # README rendered in the staging copy only
    api.create_repo.assert_called_once_with("org/tiny", private=True, exist_ok=True, repo_type="model")
    api.create_branch.assert_called_once_with("org/tiny", branch="v1", exist_ok=True, repo_type="model")
    files = _capture_upload.files
    assert {"README.md", "config.json", "model.safetensors", "modeling_umt.py", "configuration_umt.py"} <= set(files)
    assert files["model.safetensors"] == (folder / "model.safetensors").read_bytes()
    config = json.loads(files["config.json"])
    assert config["auto_map"]["AutoModel"] == "modeling_umt.UmtModel"
    assert "video-question-answering" in config["custom_pipelines"]
    readme = files["README.md"].decode()
    assert "pipeline_tag: visual-question-answering" in readme and '"org/tiny"' in readme
    assert "model-index" not in readme  # no results.json beside the folder: no numbers
    saved = json.loads(Path(record["record_path"]).read_text())
    assert saved["endpoint"] == "https://hub.example" and saved["commit_oid"] == "abc123" and saved["revision"] == "v1"
    assert {f["path"] for f in saved["files"]} == set(files)


def test_an_existing_readme_is_kept_and_a_card_is_needed_otherwise(tmp_path):
    folder = _saved_folder(tmp_path)
    with pytest.raises(PushError, match="no README.md; pass a card"):
        push_to_hub(folder, "org/tiny", api=_fake_api(), record_dir=tmp_path / "r")
    with pytest.raises(PushError, match="repo id must be 'org/name'"):
        push_to_hub(folder, "tiny", api=_fake_api(), record_dir=tmp_path / "r")
    (folder / "README.md").write_text("my own card\n")
    record = push_to_hub(folder, "org/tiny", api=_fake_api(), record_dir=tmp_path / "r")
    assert _capture_upload.files["README.md"] == b"my own card\n" and record["card"] is None
