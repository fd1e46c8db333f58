"""Shared set-up of the multi-process tests: a tiny corpus, tokenizer and MAC config on disk, and the command
environment of ``torchrun`` / ``accelerate launch`` children (this worktree's package first, one thread each)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from hf_videolang.data import make_corpus
from hf_videolang.models.mac import MacConfig
from hf_videolang.models.smaug import SmaugConfig

REPO = Path(__file__).resolve().parents[2]


def write_tiny_setup(root: Path, tokenizer, num_videos: int = 12) -> Path:
    """``root/corpus`` (make_corpus: 32x32, 8 frames), ``root/tokenizer`` and ``root/config`` (a 2-block MAC with no
    dropout); returns ``root``."""
    make_corpus(root / "corpus", num_videos=num_videos, num_frames=8, size=32)
    tokenizer.save_pretrained(root / "tokenizer")
    MacConfig(
        vision_config=dict(image_size=32, patch_size=8, num_frames=4, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64, drop_path_rate=0.0),
        text_config=dict(vocab_size=len(tokenizer), dim=32, n_layers=1, n_heads=4, hidden_dim=64,
                         max_position_embeddings=64, dropout=0.0, attention_dropout=0.0),
        projection_dim=16,
    ).save_pretrained(root / "config")  # fmt: skip
    return root


def write_tiny_smaug_config(folder: Path, vocab_size: int) -> Path:
    """A 4-block SMAUG (sparsification in blocks 2-3, 1-block MAE decoder) for 32x32, 4-frame videos."""
    SmaugConfig(
        vision_config=dict(image_size=32, patch_size=8, num_frames=4, hidden_size=32, num_hidden_layers=4,
                           num_attention_heads=4, intermediate_size=64, sparsification_layers=[2, 3],
                           temporal_num_hidden_layers=1, decoder_hidden_size=16, decoder_num_attention_heads=2,
                           decoder_intermediate_size=32, decoder_num_hidden_layers=1),
        text_config=dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=64),
        num_text_layers=2, projection_dim=16, selector_hidden_size=16, selector_intermediate_size=32,
    ).save_pretrained(folder)  # fmt: skip
    return folder


def write_shards(annotations: Path, out: Path, num_shards: int) -> list[Path]:
    """Deal the first caption of each video of a retrieval JSONL round-robin into ``num_shards`` JSONL files
    (``out/part-<i>.jsonl``, video paths made absolute) and as many webdataset tar shards (``out/shard-<i>.tar``:
    ``<key>.mp4`` + ``<key>.json`` with the caption); returns the tar paths. One row per video, so that no batch
    holds a video twice (VTM needs a negative)."""
    import io
    import json
    import tarfile

    rows = list({row["video"]: row for row in reversed(
        [json.loads(line) for line in annotations.read_text().splitlines() if line.strip()])}.values())[::-1]
    out.mkdir(parents=True, exist_ok=True)
    tars = []
    for shard in range(num_shards):
        part = rows[shard::num_shards]
        lines = [json.dumps({**row, "video": str((annotations.parent / row["video"]).resolve())}) for row in part]
        (out / f"part-{shard}.jsonl").write_text("\n".join(lines) + "\n")
        tars.append(out / f"shard-{shard:05d}.tar")
        with tarfile.open(tars[-1], "w") as tar:
            for index, row in enumerate(part):
                key = f"s{shard}r{index:04d}"  # webdataset keys end at the first dot
                files = {f"{key}.mp4": (annotations.parent / row["video"]).read_bytes(),
                         f"{key}.json": json.dumps({"caption": row["caption"]}).encode()}  # fmt: skip
                for name, payload in files.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    return tars


def child_env() -> dict[str, str]:
    """The environment of launched processes: this checkout's ``src`` first, offline, one thread, gloo on CPU."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONWARNINGS="default")  # fmt: skip
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE"):
        env.pop(name, None)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(nproc: int, script: Path | str, *args: str) -> list[str]:
    """``python -m torch.distributed.run`` (torchrun) on one node with ``nproc`` processes."""
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--nnodes=1",
            "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(script), *args]  # fmt: skip


def accelerate_launch(nproc: int, script: Path | str, *args: str) -> list[str]:
    """``accelerate launch --multi_gpu --num_processes N``: on a machine without GPUs these are N CPU processes over
    gloo (the script gets ``--use_cpu``). ``accelerate launch --cpu --num_processes N`` would start ONE process:
    accelerate's CPU launcher runs several only through MPI (``--mpirun_hostfile``)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(nproc),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port()), str(script), *args]  # fmt: skip


def warning_lines(stderr: str) -> list[str]:
    """Lines of ``stderr`` that report a deprecation (``DeprecationWarning``, ``FutureWarning``, "deprecated")."""
    keys = ("deprecat", "futurewarning")
    return [line for line in stderr.splitlines() if any(key in line.lower() for key in keys)]
