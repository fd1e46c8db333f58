"""Shared set-up of the multi-process tests: a tiny corpus, tokenizer and MAC config on disk, and the command
environment of ``torchrun`` / ``accelerate launch`` children (this worktree's package first, one thread each)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from hf_videolang.data import make_corpus
from hf_videolang.models.mac import MacConfig

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
    """``accelerate launch --num_processes N --cpu`` (CPU processes talk over gloo)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(nproc), "--cpu",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(free_port()), str(script), *args]  # fmt: skip


def warning_lines(stderr: str) -> list[str]:
    """Lines of ``stderr`` that report a deprecation (``DeprecationWarning``, ``FutureWarning``, "deprecated")."""
    keys = ("deprecat", "futurewarning")
    return [line for line in stderr.splitlines() if any(key in line.lower() for key in keys)]
