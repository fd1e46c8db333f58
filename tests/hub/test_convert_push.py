"""`hf-videolang convert umt --checkpoint X.pth --push ORG/NAME` against the loopback Hub: convert -> save with remote
code -> card -> push in one command, then `from_pretrained` of the pushed repository in a process that cannot
import hf_videolang."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save_file

from conftest import hub_env, run_checks, run_python
from models.umt.test_convert_umt import FRAMES, SIZE, _config, _random_model, _to_original

REPO = "org/tiny-umt-converted"


def test_convert_push_publishes_a_checkpoint_in_the_authors_layout_that_loads_by_repo_id(loopback_hub, tmp_path):
    source = _random_model(stage=2, seed=3).eval()
    checkpoint = tmp_path / "umt_multi.pth"
    torch.save({"model": _to_original(source.state_dict(), "multi"), "epoch": 9}, checkpoint)
    _config(2).save_pretrained(tmp_path / "config")

    gen = torch.Generator().manual_seed(0)
    inputs = {"pixel_values": torch.randn(2, FRAMES, 3, SIZE, SIZE, generator=gen),
              "input_ids": torch.randint(5, 50, (2, 7), generator=gen),
              "attention_mask": torch.ones(2, 7, dtype=torch.long)}  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the checking process runs single-threaded: the same reduction order
    try:
        with torch.no_grad():
            out = source.umt(**inputs)
    finally:
        torch.set_num_threads(threads)
    keys = ["logits_per_video", "video_embeds", "text_embeds"]
    save_file({**inputs, **{k: out[k].contiguous() for k in keys}}, str(tmp_path / "expected.safetensors"))

    home = tmp_path / "home"
    home.mkdir()
    result = run_python(["-m", "hf_videolang.cli", "convert", "umt", "--checkpoint", str(checkpoint), "--kind", "multi",
                         "--config", str(tmp_path / "config"), "--push", REPO, "--card", "umt-b16",
                         "--record-dir", str(home / "hub_uploads")], hub_env(loopback_hub, home), cwd=home)  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"pushed UmtForPreTraining to {REPO} at {loopback_hub.url}" in result.stdout

    state = loopback_hub.storage.load(REPO)
    files = state["commits"][state["refs"]["main"]]["files"]
    assert {"model.safetensors", "config.json", "configuration_umt.py", "modeling_umt.py", "README.md"} <= set(files)
    assert not any(path.endswith((".pth", ".bin", ".pt")) for path in files)  # only the converted safetensors
    (record,) = (home / "hub_uploads").glob("org--tiny-umt-converted-*.json")
    assert json.loads(record.read_text())["endpoint"] == loopback_hub.url

    spec = {"block_hf_videolang": True, "trust_remote_code": True, "cards": [REPO],
            "models": [{"repo": REPO, "auto": "AutoModel", "expected": str(tmp_path / "expected.safetensors"),
                        "keys": keys, "inputs": list(inputs)}]}  # fmt: skip
    report = run_checks(loopback_hub, home, spec, importable=False)
    (model,) = report["models"]
    assert model["class"] == "UmtModel" and model["module"].startswith("transformers_modules."), model
    assert all(model["equal"].values()), model  # the authors' weights, bit for bit through the endpoint
    card = report["cards"][REPO]
    assert "## Deviations" in card["text"] and REPO in card["text"]
