"""VTC with all-gather across 2 CPU processes (gloo) equals the single-process loss on the global batch."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp

from hf_videolang.losses import VideoTextContrastiveLoss

WORLD_SIZE = 2
LOCAL_BATCH = 3
DIM = 5
TIMEOUT_S = 180.0


def _global_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    generator = torch.Generator().manual_seed(0)
    video = torch.randn(WORLD_SIZE * LOCAL_BATCH, DIM, generator=generator)
    text = torch.randn(WORLD_SIZE * LOCAL_BATCH, DIM, generator=generator)
    # Video 1 appears on both ranks (global rows 0 and 4), so the gathered ids matter.
    video_ids = torch.tensor([1, 2, 3, 4, 1, 5])
    return video, text, video_ids, math.log(7.0)


def _loss_and_grads(video, text, video_ids, log_scale) -> dict[str, torch.Tensor]:
    video = video.clone().requires_grad_()
    text = text.clone().requires_grad_()
    logit_scale = torch.tensor(log_scale, requires_grad=True)
    loss = VideoTextContrastiveLoss()(video, text, logit_scale, video_ids=video_ids)
    loss.backward()
    return {"loss": loss.detach(), "video": video.grad, "text": text.grad, "scale": logit_scale.grad}


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    import warnings

    import torch.distributed as dist

    from hf_videolang.losses.distributed import gather_rows, shard_range

    warnings.simplefilter("error", FutureWarning)  # no deprecated collective
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        video, text, video_ids, log_scale = _global_batch()
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        results = {
            "plain": _loss_and_grads(video[rows], text[rows], None, log_scale),
            "ids": _loss_and_grads(video[rows], text[rows], video_ids[rows], log_scale),
        }
        # Unequal shards (5 rows on 2 ranks: 3 + 2) come back whole and in order on every rank.
        shard = torch.arange(5.0)[list(shard_range(5, rank, WORLD_SIZE))].unsqueeze(1)
        results["gather_rows"] = gather_rows(shard, 5)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _run_two_ranks(tmp_path: Path) -> list[dict]:
    # spawn, not fork: a fork of a pytest process whose earlier tests started torch's thread pools can deadlock.
    start_method = "spawn"
    context = mp.start_processes(
        _worker, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=WORLD_SIZE, join=False,
        start_method=start_method,
    )  # fmt: skip
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not context.join(timeout=1.0):  # re-raises a worker's exception
            if time.monotonic() > deadline:
                raise TimeoutError(f"distributed VTC workers did not finish within {TIMEOUT_S} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
    return [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD_SIZE)]


def test_gathered_loss_and_gradients_match_single_process(tmp_path):
    per_rank = _run_two_ranks(tmp_path)
    video, text, video_ids, log_scale = _global_batch()
    for result in per_rank:
        assert torch.equal(result.pop("gather_rows"), torch.arange(5.0).unsqueeze(1))
    for case, ids in (("plain", None), ("ids", video_ids)):
        reference = _loss_and_grads(video, text, ids, log_scale)
        ranks = [result[case] for result in per_rank]
        # DDP averages the rank losses (and parameter gradients) over ranks.
        mean_loss = sum(r["loss"] for r in ranks) / WORLD_SIZE
        torch.testing.assert_close(mean_loss, reference["loss"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(sum(r["scale"] for r in ranks) / WORLD_SIZE, reference["scale"])
        # The gather's backward sums every rank's gradient into the owner of each row: W x the global gradient.
        for name in ("video", "text"):
            gathered = torch.cat([r[name] for r in ranks]) / WORLD_SIZE
            torch.testing.assert_close(gathered, reference[name], rtol=1e-5, atol=1e-6)
    # Sanity: the local (ungathered) loss of a rank differs from its gathered loss, so gathering happened.
    local_only = _loss_and_grads(video[:LOCAL_BATCH], text[:LOCAL_BATCH], None, log_scale)["loss"]
    assert not torch.allclose(local_only, per_rank[0]["plain"]["loss"])
