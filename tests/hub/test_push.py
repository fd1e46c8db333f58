"""Tests of `hf-videolang push` with a mocked HfApi (no network)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from unittest import mock

import pytest

from hf_videolang import __version__
from hf_videolang.cli import main
from hf_videolang.hub import push as push_module
from hf_videolang.hub.push import PushError, push_to_hub


def _saved_folder(root: Path) -> Path:
    folder = root / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "hfvl_umt"}\n')
    (folder / "model.safetensors").write_bytes(b"not really weights, but bytes to hash")
    return folder


def _fake_api() -> mock.MagicMock:
    api = mock.MagicMock()
    api.create_repo.return_value = "https://hub.example/org/tiny-umt"
    api.upload_folder.return_value = mock.Mock(commit_url="https://hub.example/org/tiny-umt/commit/abc123",
                                               oid="abc123")  # fmt: skip
    return api


def test_cli_push_renders_card_calls_hfapi_at_endpoint_and_writes_record(tmp_path, monkeypatch):
    folder = _saved_folder(tmp_path)
    api = _fake_api()
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example")
    with mock.patch.object(push_module, "HfApi", return_value=api) as hf_api:
        code = main(["push", str(folder), "--repo-id", "org/tiny-umt", "--card", "umt-b16", "--private",
                     "--revision", "v1", "--record-dir", str(tmp_path / "records")])  # fmt: skip
    assert code == 0
    hf_api.assert_called_once_with(endpoint="https://hub.example", token=None)
    api.create_repo.assert_called_once_with("org/tiny-umt", private=True, exist_ok=True, repo_type="model")
    api.create_branch.assert_called_once_with("org/tiny-umt", branch="v1", exist_ok=True, repo_type="model")
    kwargs = api.upload_folder.call_args.kwargs
    assert kwargs["repo_id"] == "org/tiny-umt" and kwargs["folder_path"] == str(folder) and kwargs["revision"] == "v1"

    readme = (folder / "README.md").read_text()
    assert readme.startswith("---\n") and "## Deviations" in readme and "library_name: transformers" in readme

    (record_path,) = (tmp_path / "records").glob("org--tiny-umt-*.json")
    record = json.loads(record_path.read_text())
    assert record["repo_id"] == "org/tiny-umt" and record["commit_oid"] == "abc123"
    assert record["endpoint"] == "https://hub.example" and record["revision"] == "v1"
    assert record["card"] == "umt-b16" and record["package_version"] == __version__
    files = {f["path"]: f["sha256"] for f in record["files"]}
    assert set(files) == {"README.md", "config.json", "model.safetensors"}
    assert files["model.safetensors"] == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_existing_readme_is_kept_and_main_is_default(tmp_path):
    folder = _saved_folder(tmp_path)
    (folder / "README.md").write_text("my own card\n")
    api = _fake_api()
    record = push_to_hub(folder, "org/tiny-umt", api=api, record_dir=tmp_path / "records")
    assert (folder / "README.md").read_text() == "my own card\n"
    api.create_branch.assert_not_called()
    assert api.upload_folder.call_args.kwargs["revision"] is None and record["revision"] == "main"
    assert record["card"] is None and Path(record["record_path"]).is_file()


@pytest.mark.parametrize("name", ["pytorch_model.bin", "optimizer.pt", "sub/state.pkl"])
def test_folder_with_pickle_file_is_refused_before_any_call(tmp_path, name):
    folder = _saved_folder(tmp_path)
    (folder / name).parent.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(b"\x80\x04")
    api = _fake_api()
    with pytest.raises(PushError, match=rf"pickle-based files \['{name}'\]"):
        push_to_hub(folder, "org/tiny-umt", card="umt-b16", api=api, record_dir=tmp_path / "records")
    api.create_repo.assert_not_called()
    assert not (tmp_path / "records").exists()


def test_invalid_folders_and_repo_ids_are_refused(tmp_path):
    folder = _saved_folder(tmp_path)
    with pytest.raises(PushError, match="no README.md; pass a card"):
        push_to_hub(folder, "org/tiny-umt", api=_fake_api(), record_dir=tmp_path / "r")
    with pytest.raises(PushError, match="repo id must be 'org/name'"):
        push_to_hub(folder, "tiny-umt", api=_fake_api(), record_dir=tmp_path / "r")
    (folder / "model.safetensors").unlink()
    with pytest.raises(PushError, match="has no model.safetensors"):
        push_to_hub(folder, "org/tiny-umt", card="umt-b16", api=_fake_api(), record_dir=tmp_path / "r")
    with pytest.raises(PushError, match="is not a folder"):
        push_to_hub(tmp_path / "missing", "org/tiny-umt", api=_fake_api(), record_dir=tmp_path / "r")
