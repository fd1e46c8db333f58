"""The training scripts under ``accelerate launch`` and ``torchrun`` (2 CPU processes, gloo), ``--streaming`` (JSONL
files and webdataset tar shards, each rank reading its own) and ``--bf16`` (CPU autocast).

Every child runs with ``PYTHONWARNINGS=default``; its stderr must have no deprecation warning.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from multiprocess_setup import (  # noqa: E402
    accelerate_launch,
    child_env,
    torchrun,
    warning_lines,
    write_shards,
    write_tiny_setup,
    write_tiny_smaug_config,
)

SCRIPTS = Path(__file__).resolve().parents[2] / "training_scripts"
TWO_PROCESS_BATCH = "Total train batch size (w. parallel, distributed & accumulation) = 4"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_tokenizer):
    root = write_tiny_setup(tmp_path_factory.mktemp("multiprocess_scripts"), tiny_tokenizer)
    write_tiny_smaug_config(root / "smaug_config", len(tiny_tokenizer))
    write_shards(root / "corpus" / "train_retrieval.jsonl", root / "shards", num_shards=2)
    return root


def _args(root: Path, out: str, **extra) -> list[str]:
    args = dict(validation_file=root / "corpus" / "val_retrieval.jsonl", output_dir=root / out, max_steps=2,
                per_device_train_batch_size=2, per_device_eval_batch_size=4, dataloader_num_workers=0,
                report_to="none", use_cpu=True, logging_steps=1, save_strategy="no", disable_tqdm=True, seed=0,
                log_level="info", **extra)  # fmt: skip
    return [item for key, value in args.items() for item in (f"--{key}", str(value))]


def _run(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, env=child_env(), capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-5000:]
    assert warning_lines(result.stderr) == []
    return result


def test_mac_pretrain_under_accelerate_launch_with_two_processes(tiny):
    command = accelerate_launch(2, SCRIPTS / "mac_pretrain.py", *_args(
        tiny, "mac_accelerate", phase="spatial", config_name=tiny / "config", tokenizer_name=tiny / "tokenizer",
        train_file=tiny / "corpus" / "train_retrieval.jsonl"))  # fmt: skip
    result = _run(command)
    assert TWO_PROCESS_BATCH in result.stderr  # 2 ranks x 2 rows: really two processes
    metrics = json.loads((tiny / "mac_accelerate" / "metrics.json").read_text())
    assert math.isfinite(metrics["loss_vtc"]) and "eval_t2v_R@1" in metrics
    assert (tiny / "mac_accelerate" / "model.safetensors").is_file()


def test_smaug_pretrain_streams_tar_shards_under_torchrun(tiny):
    command = torchrun(2, SCRIPTS / "smaug_pretrain.py", *_args(
        tiny, "smaug_torchrun", streaming=True, train_file=tiny / "shards" / "shard-*.tar", num_frames=4,
        config_name=tiny / "smaug_config", tokenizer_name=tiny / "tokenizer"))  # fmt: skip
    result = _run(command)
    assert TWO_PROCESS_BATCH in result.stderr
    metrics = json.loads((tiny / "smaug_torchrun" / "metrics.json").read_text())
    assert all(math.isfinite(metrics[term]) for term in ("loss_vtc", "loss_vtm", "loss_mlm", "loss_mvm"))
    assert "eval_t2v_R@1" in metrics


def test_each_rank_streams_its_own_shards(tiny):
    jsonl = ",".join(str(tiny / "shards" / f"part-{i}.jsonl") for i in range(2))
    tars = str(tiny / "shards" / "shard-*.tar")
    out = tiny / "stream_ranks.json"
    _run(torchrun(2, Path(__file__).resolve().parent / "stream_ranks.py", str(out), tars, jsonl))
    seen = json.loads(out.read_text())
    # Tar shard i holds keys "s<i>r...": rank i reads shard i and nothing else, and no row is lost.
    assert [sorted({key[:2] for key in rows}) for rows in seen[tars]] == [["s0"], ["s1"]]
    assert [len(rows) for rows in seen[tars]] == [4, 4]  # 8 training videos
    for rank, rows in enumerate(seen[jsonl]):
        part = [json.loads(line) for line in (tiny / "shards" / f"part-{rank}.jsonl").read_text().splitlines()]
        assert sorted(rows) == sorted(f"{Path(row['video']).name}|{row['caption']}" for row in part)


def test_streaming_in_one_process_reads_jsonl_and_tar_alike(tiny):
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    from common import DataArguments, load_split

    jsonl = ",".join(str(tiny / "shards" / f"part-{i}.jsonl") for i in range(2))
    from_jsonl = load_split(DataArguments(train_file=jsonl, streaming=True), "train", task="retrieval")
    from_tar = load_split(DataArguments(train_file=str(tiny / "shards" / "shard-*.tar"), streaming=True), "train",
                          task="retrieval")  # fmt: skip
    assert from_jsonl.num_shards == from_tar.num_shards == 2
    jsonl_rows, tar_rows = list(from_jsonl), list(from_tar)
    assert len(jsonl_rows) == 8
    assert sorted(row["caption"] for row in jsonl_rows) == sorted(row["caption"] for row in tar_rows)
    # A tar row's video is the mp4's bytes, a JSONL row's its path: the same files.
    by_caption = {row["caption"]: row["video"] for row in tar_rows}
    assert all(by_caption[row["caption"]] == Path(row["video"]).read_bytes() for row in jsonl_rows)
    limited = load_split(DataArguments(train_file=jsonl, streaming=True, max_train_samples=3), "train", "retrieval")
    assert len(list(limited)) == 3
    with pytest.raises(FileNotFoundError, match="matches no file"):
        DataArguments(train_file=str(tiny / "shards" / "missing-*.tar"), streaming=True)


def test_mac_pretrain_with_bf16_on_cpu(tiny):
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    import mac_pretrain

    metrics = mac_pretrain.main(_args(tiny, "mac_bf16", phase="temporal", num_frames=2, bf16=True,
                                      config_name=tiny / "config", tokenizer_name=tiny / "tokenizer",
                                      train_file=tiny / "corpus" / "train_retrieval.jsonl"))  # fmt: skip
    assert math.isfinite(metrics["loss_vtc"]) and "eval_t2v_R@1" in metrics
