"""The Hub path end to end against the loopback Hub: `hf-videolang push` of tiny UMT, MAC, SMAUG, E-ViLM and ClipBERT
folders,
then loading them back by repo id in fresh processes, with and without hf_videolang importable."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from conftest import hub_env, run_checks, run_python
from hf_videolang.models.clipbert import ClipBertConfig, ClipBertForVideoQuestionAnswering, ClipBertProcessor
from hf_videolang.models.evilm import EvilmConfig, EvilmForVideoQuestionAnswering, EvilmProcessor
from hf_videolang.models.mac import MacConfig, MacForVideoTextRetrieval, MacProcessor
from hf_videolang.models.smaug import SmaugConfig, SmaugForVideoQuestionAnswering, SmaugProcessor
from hf_videolang.models.umt import UmtConfig, UmtForVideoQuestionAnswering, UmtProcessor

SIZE, PATCH, FRAMES = 32, 8, 2
ANSWERS = ["red", "blue", "green", "left", "right"]
QUESTION = "what color is the square?"
UMT_REPO, MAC_REPO, SMAUG_REPO, EVILM_REPO = "org/tiny-umt-qa", "org/tiny-mac", "org/tiny-smaug-qa", "org/tiny-evilm-qa"
CLIPBERT_REPO = "org/tiny-clipbert-qa"
UMT_METRICS = {"accuracy": 41.25, "accuracy_multi_frame": 30.5}
MAC_METRICS = {"t2v_R@1": 12.5, "t2v_R@5": 50.0}
SMAUG_METRICS = {"accuracy": 27.3, "accuracy_multi_frame": 31.4}
EVILM_METRICS = {"accuracy": 31.5, "accuracy_multi_frame": 32.4}
CLIPBERT_METRICS = {"accuracy": 28.6, "accuracy_multi_frame": 33.0}
# (fixture key, repo, card source, metrics) of every pushed folder.
PUSHES = (("umt", UMT_REPO, "umt-b16", UMT_METRICS), ("mac", MAC_REPO, "mac-b16", MAC_METRICS),
          ("smaug", SMAUG_REPO, "smaug-b16", SMAUG_METRICS), ("evilm", EVILM_REPO, "evilm-s", EVILM_METRICS),
          ("clipbert", CLIPBERT_REPO, "clipbert-base", CLIPBERT_METRICS))  # fmt: skip


def _folder_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def _inputs(tokenizer, batch: int = 2, frames: int = FRAMES, size: int = SIZE) -> dict[str, torch.Tensor]:
    encoding = tokenizer(["what color is the square ?", "which direction does the circle move"], padding=True,
                         return_tensors="pt")  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    return {"pixel_values": torch.randn(batch, frames, 3, size, size, generator=gen),
            "input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"]}  # fmt: skip


def _reference(model, inputs: dict, keys: tuple[str, ...]) -> dict[str, torch.Tensor]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the loader runs single-threaded: the same reduction order
    try:
        with torch.no_grad():
            out = model(**inputs)
    finally:
        torch.set_num_threads(threads)
    return {**inputs, **{k: out[k].contiguous() for k in keys}}


def _write_run(root: Path, stage: str, folder: Path, metrics: dict, **extra) -> None:
    results = {"seed": 0, "corpus": {"num_videos": 24, "seed": 0, "size": SIZE, "num_frames": 8},
               stage: {"metrics": metrics, "chance": {k: 1.0 for k in metrics}, "saved_to": str(folder), **extra}}
    (root / "results.json").write_text(json.dumps(results))


@pytest.fixture(scope="module")
def saved_runs(tmp_path_factory, tiny_tokenizer):
    """Two demo-like runs: ``<run>/results.json`` and the saved folder of the stage it describes, plus the
    reference outputs (outside the folders) of the models the folders hold."""
    root = tmp_path_factory.mktemp("runs")
    text = dict(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                intermediate_size=64, max_position_embeddings=40, hidden_dropout_prob=0.0,
                attention_probs_dropout_prob=0.0)  # fmt: skip
    vision = dict(image_size=SIZE, patch_size=PATCH, num_frames=FRAMES, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64, drop_path_rate=0.0)  # fmt: skip
    torch.manual_seed(0)
    umt = UmtForVideoQuestionAnswering(UmtConfig(vision_config=vision, text_config=text, multimodal_config=text,
                                                 teacher_config=None, uta_loss_weight=0.0, projection_dim=16)).eval()
    umt.set_answer_list(ANSWERS, tiny_tokenizer)
    umt_processor = UmtProcessor(tiny_tokenizer, image_size=SIZE, patch_size=PATCH, num_frames=FRAMES)
    umt_dir = root / "umt_run" / "umt_qa"
    umt.save_pretrained(umt_dir)
    umt_processor.save_pretrained(umt_dir)
    _write_run(umt_dir.parent, "umt_qa", umt_dir, UMT_METRICS, pipeline_example={"question": QUESTION})

    torch.manual_seed(0)
    mac = MacForVideoTextRetrieval(MacConfig(
        vision_config=vision, projection_dim=16,
        text_config=dict(vocab_size=len(tiny_tokenizer), dim=32, n_layers=1, n_heads=4, hidden_dim=64,
                         max_position_embeddings=32, dropout=0.0, attention_dropout=0.0))).eval()  # fmt: skip
    mac_dir = root / "mac_run" / "mac"
    mac.save_pretrained(mac_dir)
    MacProcessor(tiny_tokenizer, image_size=SIZE, patch_size=PATCH, num_frames=FRAMES).save_pretrained(mac_dir)
    _write_run(mac_dir.parent, "mac", mac_dir, MAC_METRICS)

    torch.manual_seed(0)
    smaug = SmaugForVideoQuestionAnswering(SmaugConfig(
        vision_config=dict(image_size=SIZE, patch_size=PATCH, num_frames=4, hidden_size=32, num_hidden_layers=4,
                           num_attention_heads=4, intermediate_size=64, sparsification_layers=[2, 3],
                           temporal_num_hidden_layers=1, decoder_hidden_size=16, decoder_num_attention_heads=2,
                           decoder_intermediate_size=32, decoder_num_hidden_layers=1),
        text_config=dict(text, num_hidden_layers=3), num_text_layers=2, projection_dim=16, selector_hidden_size=16,
        selector_intermediate_size=32)).eval()  # fmt: skip
    smaug.set_answer_list(ANSWERS, tiny_tokenizer)
    smaug_processor = SmaugProcessor(tiny_tokenizer, image_size=SIZE, patch_size=PATCH, num_frames=4)
    smaug_dir = root / "smaug_run" / "smaug_qa"
    smaug.save_pretrained(smaug_dir)
    smaug_processor.save_pretrained(smaug_dir)
    _write_run(smaug_dir.parent, "qa", smaug_dir, SMAUG_METRICS)

    torch.manual_seed(0)
    evilm = EvilmForVideoQuestionAnswering(EvilmConfig(
        vision_config=dict(depths=[1, 1, 2, 1], hidden_sizes=[16, 32, 48, 64], num_attention_heads=[4] * 4),
        text_config=dict(text, max_position_embeddings=40), hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, num_frames=FRAMES, image_size=64, codebook_size=20,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, answer_list=ANSWERS)).eval()  # fmt: skip
    evilm_processor = EvilmProcessor(tiny_tokenizer, image_size=64, num_frames=FRAMES)
    evilm_dir = root / "evilm_run" / "evilm_qa"
    evilm.save_pretrained(evilm_dir)
    evilm_processor.save_pretrained(evilm_dir)
    _write_run(evilm_dir.parent, "qa", evilm_dir, EVILM_METRICS)

    torch.manual_seed(0)
    clipbert = ClipBertForVideoQuestionAnswering(ClipBertConfig(
        vision_config=dict(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
        text_config=dict(text, num_hidden_layers=1), image_size=64, frames_per_clip=1, num_train_clips=2,
        num_test_clips=2, answer_list=ANSWERS)).eval()  # fmt: skip
    clipbert_processor = ClipBertProcessor.from_config(clipbert.config, tiny_tokenizer)
    clipbert_dir = root / "clipbert_run" / "clipbert_qa"
    clipbert.save_pretrained(clipbert_dir)
    clipbert_processor.save_pretrained(clipbert_dir)
    _write_run(clipbert_dir.parent, "qa", clipbert_dir, CLIPBERT_METRICS)

    inputs = _inputs(tiny_tokenizer)
    base_keys = ("logits_per_video", "video_embeds", "text_embeds")
    refs = root / "references"
    refs.mkdir()
    save_file(_reference(umt, inputs, ("logits",)), str(refs / "umt_qa.safetensors"))
    save_file(_reference(umt.umt, inputs, base_keys), str(refs / "umt_base.safetensors"))
    save_file(_reference(mac, inputs, base_keys), str(refs / "mac_retrieval.safetensors"))
    save_file(_reference(mac.mac, inputs, base_keys), str(refs / "mac_base.safetensors"))
    smaug_inputs = _inputs(tiny_tokenizer, frames=4)
    save_file(_reference(smaug, smaug_inputs, ("logits",)), str(refs / "smaug_qa.safetensors"))
    save_file(_reference(smaug.smaug, smaug_inputs, base_keys), str(refs / "smaug_base.safetensors"))
    save_file(_reference(evilm, _inputs(tiny_tokenizer, size=64), ("logits",)), str(refs / "evilm_qa.safetensors"))
    save_file(_reference(clipbert, _inputs(tiny_tokenizer, size=64), ("logits",)),
              str(refs / "clipbert_qa.safetensors"))  # fmt: skip
    return {"root": root, "umt": umt_dir, "mac": mac_dir, "smaug": smaug_dir, "evilm": evilm_dir,
            "clipbert": clipbert_dir, "refs": refs,
            "models": {"umt": (umt, umt_processor), "smaug": (smaug, smaug_processor),
                       "evilm": (evilm, evilm_processor), "clipbert": (clipbert, clipbert_processor)}}  # fmt: skip


@pytest.fixture(scope="module")
def pushed(saved_runs, loopback_hub, tmp_path_factory):
    """``hf-videolang push`` of both folders, as a user runs it (a fresh process at the loopback endpoint)."""
    home = tmp_path_factory.mktemp("push_home")
    before = {name: _folder_digest(saved_runs[name]) for name, *_ in PUSHES}
    records = home / "hub_uploads"
    outputs = {}
    for name, repo, card, _ in PUSHES:
        result = run_python(["-m", "hf_videolang.cli", "push", str(saved_runs[name]), "--repo-id", repo, "--card", card,
                             "--record-dir", str(records)], hub_env(loopback_hub, home), cwd=home)  # fmt: skip
        assert result.returncode == 0, result.stderr[-4000:]
        outputs[name] = result.stdout
    after = {name: _folder_digest(saved_runs[name]) for name, *_ in PUSHES}
    return {"home": home, "records": records, "before": before, "after": after, "stdout": outputs}


def _repo_files(hub, repo: str) -> dict[str, dict]:
    state = hub.storage.load(repo)
    return state["commits"][state["refs"]["main"]]["files"]


def test_push_uploads_weights_code_config_and_card_and_records_the_endpoint(pushed, loopback_hub, saved_runs):
    assert pushed["before"] == pushed["after"]  # the user's folders are untouched (no README written there)
    assert not (saved_runs["umt"] / "README.md").exists()
    files = _repo_files(loopback_hub, UMT_REPO)
    assert files["model.safetensors"]["lfs"] and not files["config.json"]["lfs"]
    assert {"configuration_umt.py", "modeling_umt.py", "processing_umt.py", "video_question_answering.py",
            "processor_config.json", "tokenizer.json", "README.md"} <= set(files)  # fmt: skip
    blob = loopback_hub.storage.blob_path
    config = json.loads(blob(files["config.json"]["sha256"]).read_bytes())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_umt.UmtConfig",
        "AutoModel": "modeling_umt.UmtModel",
        "AutoModelForPreTraining": "modeling_umt.UmtForPreTraining",
        "AutoModelForVideoClassification": "modeling_umt.UmtForVideoClassification",
        "AutoModelForVisualQuestionAnswering": "modeling_umt.UmtForVideoQuestionAnswering",
        "AutoProcessor": "processing_umt.UmtProcessor",
    }
    assert config["custom_pipelines"] == {"video-question-answering": {
        "impl": "video_question_answering.VideoQuestionAnsweringPipeline",
        "pt": ["AutoModelForVisualQuestionAnswering", "AutoModel"], "type": "multimodal"}}  # fmt: skip
    processor_config = json.loads(blob(files["processor_config.json"]["sha256"]).read_bytes())
    assert processor_config["auto_map"] == {"AutoProcessor": "processing_umt.UmtProcessor"}
    # The uploaded weights are the saved bytes.
    assert files["model.safetensors"]["sha256"] == pushed["before"]["umt"]["model.safetensors"]

    (record_path,) = pushed["records"].glob("org--tiny-umt-qa-*.json")
    record = json.loads(record_path.read_text())
    assert record["endpoint"] == loopback_hub.url and record["repo_id"] == UMT_REPO
    assert record["commit_oid"] == loopback_hub.storage.load(UMT_REPO)["refs"]["main"]
    assert record["metrics"] == UMT_METRICS and record["card"] == "umt-b16"
    assert {f["path"]: f["sha256"] for f in record["files"]} == {p: e["sha256"] for p, e in files.items()
                                                                  if p != ".gitattributes"}  # fmt: skip
    assert f"at {loopback_hub.url}" in pushed["stdout"]["umt"]
    mac_config = json.loads(blob(_repo_files(loopback_hub, MAC_REPO)["config.json"]["sha256"]).read_bytes())
    assert mac_config["auto_map"]["AutoModel"] == "modeling_mac.MacModel"
    assert mac_config["auto_map"]["AutoModelForPreTraining"] == "modeling_mac.MacForVideoTextRetrieval"


def test_without_hf_videolang_auto_classes_reproduce_the_outputs_and_the_pipeline_answers(
    pushed, loopback_hub, saved_runs, small_video, tmp_path
):
    refs, video = saved_runs["refs"], small_video[0]
    base_keys = ["logits_per_video", "video_embeds", "text_embeds"]
    inputs = ["pixel_values", "input_ids", "attention_mask"]
    (tmp_path / "video.mp4").write_bytes(Path(video).read_bytes())

    def model(repo, auto, ref, keys):
        return {"repo": repo, "auto": auto, "expected": str(refs / ref), "keys": keys, "inputs": inputs}

    qa_repos = {"umt": UMT_REPO, "smaug": SMAUG_REPO, "evilm": EVILM_REPO, "clipbert": CLIPBERT_REPO}
    spec = {
        "block_hf_videolang": True, "trust_remote_code": True,
        "models": [
            model(UMT_REPO, "AutoModel", "umt_base.safetensors", base_keys),
            model(UMT_REPO, "AutoModelForVisualQuestionAnswering", "umt_qa.safetensors", ["logits"]),
            model(MAC_REPO, "AutoModel", "mac_base.safetensors", base_keys),
            model(MAC_REPO, "AutoModelForPreTraining", "mac_retrieval.safetensors", base_keys),
            model(SMAUG_REPO, "AutoModel", "smaug_base.safetensors", base_keys),
            model(SMAUG_REPO, "AutoModelForVisualQuestionAnswering", "smaug_qa.safetensors", ["logits"]),
            model(EVILM_REPO, "AutoModelForVisualQuestionAnswering", "evilm_qa.safetensors", ["logits"]),
            model(CLIPBERT_REPO, "AutoModelForVisualQuestionAnswering", "clipbert_qa.safetensors", ["logits"]),
        ],
        "pipelines": [{"repo": repo, "video": video, "question": QUESTION, "top_k": 3} for repo in qa_repos.values()],
        "snippets": [{"repo": repo, "cwd": str(tmp_path)} for _, repo, *_ in PUSHES],
    }  # fmt: skip
    report = run_checks(loopback_hub, tmp_path, spec, importable=False)
    assert report["hf_videolang_imported"] == []
    classes = [(m["repo"], m["class"]) for m in report["models"]]
    assert classes == [(UMT_REPO, "UmtModel"), (UMT_REPO, "UmtForVideoQuestionAnswering"), (MAC_REPO, "MacModel"),
                       (MAC_REPO, "MacForVideoTextRetrieval"), (SMAUG_REPO, "SmaugModel"),
                       (SMAUG_REPO, "SmaugForVideoQuestionAnswering"),
                       (EVILM_REPO, "EvilmForVideoQuestionAnswering"),
                       (CLIPBERT_REPO, "ClipBertForVideoQuestionAnswering")]  # fmt: skip
    for loaded in report["models"]:
        assert loaded["module"].startswith("transformers_modules."), loaded
        assert all(loaded["equal"].values()), loaded  # bit for bit

    from transformers import pipeline

    for (name, repo), answered in zip(qa_repos.items(), report["pipelines"]):
        assert answered["repo"] == repo and answered["class"] == "VideoQuestionAnsweringPipeline"
        assert answered["module"].startswith("transformers_modules.")
        local_model, local_processor = saved_runs["models"][name]
        expected = pipeline("video-question-answering", model=local_model, processor=local_processor)(
            video, question=QUESTION, top_k=3
        )
        assert [a["answer"] for a in answered["answers"]] == [a["answer"] for a in expected], name
        assert [a["score"] for a in answered["answers"]] == pytest.approx([a["score"] for a in expected], abs=1e-5)

    umt_snippet, mac_snippet, *qa_snippets = report["snippets"]
    for snippet in (umt_snippet, *qa_snippets):  # every QA card's snippet runs as written and answers
        assert f'pipeline("video-question-answering", model="{snippet["repo"]}", trust_remote_code=True)' in (
            snippet["code"]
        )
        assert "'answer':" in snippet["stdout"] and "'score':" in snippet["stdout"], snippet
    assert f'AutoModel.from_pretrained("{MAC_REPO}", trust_remote_code=True)' in mac_snippet["code"]


def test_with_hf_videolang_automodel_loads_without_the_flag_and_the_card_shows_the_results(
    pushed, loopback_hub, saved_runs, tmp_path
):
    refs = saved_runs["refs"]
    inputs, keys = ["pixel_values", "input_ids", "attention_mask"], ["logits_per_video", "video_embeds", "text_embeds"]
    spec = {"block_hf_videolang": False, "trust_remote_code": False, "cards": [repo for _, repo, *_ in PUSHES],
            "models": [{"repo": repo, "auto": "AutoModel", "expected": str(refs / ref), "keys": keys, "inputs": inputs}
                       for repo, ref in ((UMT_REPO, "umt_base.safetensors"), (MAC_REPO, "mac_base.safetensors"),
                                         (SMAUG_REPO, "smaug_base.safetensors"))]}  # fmt: skip
    report = run_checks(loopback_hub, tmp_path, spec, importable=True)
    for model in report["models"]:
        assert model["module"].startswith("hf_videolang.models."), model  # the installed classes, no remote code
        assert all(model["equal"].values()), model

    umt_card = report["cards"][UMT_REPO]
    data = umt_card["data"]
    assert data["pipeline_tag"] == "visual-question-answering"  # the Hub's task; video-question-answering is not one
    assert {"hf-videolang", "custom_code", "video-question-answering"} <= set(data["tags"])
    assert data["datasets"] == ["hf-videolang/synthetic-moving-shapes"]
    (entry,) = data["model-index"]
    metrics = {m["type"]: m["value"] for r in entry["results"] for m in r["metrics"]}
    assert metrics == UMT_METRICS
    dataset = entry["results"][0]["dataset"]
    assert "synthetic" in dataset["name"] and dataset["split"] == "test"
    assert "## Deviations" in umt_card["text"] and "## Quick start" in umt_card["text"]
    assert "<repo id>" not in umt_card["text"]
    assert "| accuracy |" in umt_card["text"] or "| accuracy | 41.25 |" in umt_card["text"]
    mac_card = report["cards"][MAC_REPO]
    assert mac_card["data"]["pipeline_tag"] == "feature-extraction"
    assert {m["type"]: m["value"] for r in mac_card["data"]["model-index"][0]["results"] for m in r["metrics"]} == (
        MAC_METRICS
    )
    for _, repo, card, metrics in PUSHES[2:]:
        data = report["cards"][repo]["data"]
        assert data["pipeline_tag"] == "visual-question-answering", repo
        assert {m["type"]: m["value"] for r in data["model-index"][0]["results"] for m in r["metrics"]} == metrics
        assert "## Deviations" in report["cards"][repo]["text"], card


def _olah_cli() -> str | None:
    return os.environ.get("HF_VIDEOLANG_OLAH") or shutil.which("olah-cli")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(
    _olah_cli() is None, reason="optional: needs olah (`pip install olah`, or HF_VIDEOLANG_OLAH=its olah-cli)"
)
def test_olah_serves_the_same_repository_and_snapshot_download_gets_identical_files(pushed, loopback_hub, tmp_path):
    # olah, a real Hub mirror, serves local git repositories offline: mirror the pushed repository's files into one.
    mirror = tmp_path / "mirrors" / "models" / UMT_REPO
    mirror.mkdir(parents=True)
    for path, entry in _repo_files(loopback_hub, UMT_REPO).items():
        (mirror / path).parent.mkdir(parents=True, exist_ok=True)
        (mirror / path).write_bytes(loopback_hub.storage.blob_path(entry["sha256"]).read_bytes())
    git = ["git", "-C", str(mirror), "-c", "user.name=hf-videolang", "-c", "user.email=tests@localhost"]
    for command in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "mirror"]):
        subprocess.run(git + command, check=True, capture_output=True)
    port = _free_port()
    config = tmp_path / "olah.toml"
    config.write_text(f'[basic]\nhost = "127.0.0.1"\nport = {port}\nmirror-netloc = "127.0.0.1:{port}"\n'
                      f'mirror-lfs-netloc = "127.0.0.1:{port}"\nrepos-path = "{tmp_path / "olah_repos"}"\n'
                      f'mirrors-path = ["{tmp_path / "mirrors"}"]\n[accessibility]\noffline = true\n')  # fmt: skip
    log = (tmp_path / "olah.log").open("w")
    server = subprocess.Popen([_olah_cli(), "-c", str(config)], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "olah.log").read_text()[-3000:]
            time.sleep(0.5)
        code = ("import sys; from huggingface_hub import snapshot_download; "
                f"snapshot_download({UMT_REPO!r}, local_dir=sys.argv[1])")  # fmt: skip
        home = tmp_path / "home"
        for name, url in (("loopback", loopback_hub.url), ("olah", f"http://127.0.0.1:{port}")):
            env = dict(hub_env(loopback_hub, home / name), HF_ENDPOINT=url)
            result = run_python(["-c", code, str(tmp_path / name)], env, cwd=tmp_path)
            assert result.returncode == 0, result.stderr[-3000:] + (tmp_path / "olah.log").read_text()[-2000:]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()

    def downloaded(folder: Path) -> dict[str, str]:
        return {k: v for k, v in _folder_digest(folder).items() if not k.startswith(".cache/")}

    assert downloaded(tmp_path / "olah") == downloaded(tmp_path / "loopback")
    assert downloaded(tmp_path / "olah")["model.safetensors"] == pushed["before"]["umt"]["model.safetensors"]
