"""Cross-rank gathering for losses whose negatives should span the global batch.

Contrastive objectives (VTC) are stronger with more negatives, so under data parallelism every rank compares its
local rows against the embeddings of *all* ranks. The gather keeps the autograd graph: the backward of
`all_gather_single_autograd` (torch's functional collectives) sums, over ranks, the gradients that flow into
each rank's slice, so
each rank receives the gradient of every rank's loss with respect to its own inputs (see
`VideoTextContrastiveLoss` for what that means for loss scaling).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["gather_features", "gather_rows", "get_rank_and_world_size", "shard_range"]


def get_rank_and_world_size() -> tuple[int, int]:
    """Returns `(rank, world_size)` of the default process group, or `(0, 1)` when not running distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_features(x: torch.Tensor) -> torch.Tensor:
    """Concatenates `x` from every rank along dim 0, keeping gradients for tensors that require them.

    Args:
        x: `(B, ...)` local tensor. Every rank must pass the same shape (all-gather cannot pad), which holds for
            `DistributedSampler` batches.

    Returns:
        `(world_size * B, ...)` tensor ordered by rank (rank 0's rows first), or `x` itself when torch.distributed
        is not initialized or the world has a single process. Rows of the local rank are the autograd-connected
        input; rows from other ranks carry gradients back to their owners through the collective's backward.
        Tensors that do not require grad (e.g. integer video ids) are gathered without building a graph.
    """
    _, world_size = get_rank_and_world_size()
    if world_size == 1:
        return x
    x = x.contiguous()
    if x.requires_grad:
        # Imported lazily; the non-deprecated autograd-aware gather (torch.distributed.nn.functional.all_gather
        # warns that it is deprecated). Its backward reduce-scatters the gradient: the sum over ranks.
        from torch.distributed._functional_collectives import all_gather_single_autograd

        return all_gather_single_autograd(x, gather_dim=0, group=dist.group.WORLD)
    gathered = x.new_empty((world_size * x.shape[0], *x.shape[1:]))
    dist.all_gather_single(gathered, x)
    return gathered


def gather_rows(x: torch.Tensor, num_rows: int) -> torch.Tensor:
    """Concatenates, without gradient, rank shards of *unequal* lengths that together hold ``num_rows`` rows.

    Rank ``r`` holds rows ``shard_range(num_rows, r, world_size)``; shards are padded to the longest one, gathered
    once with ``all_gather_single`` and the padding is dropped, so the result is ``(num_rows, ...)`` in
    order on every rank. Single-process: ``x`` itself.
    """
    rank, world_size = get_rank_and_world_size()
    if world_size == 1:
        return x
    longest = -(-num_rows // world_size)
    padded = x.new_zeros((longest, *x.shape[1:]))
    padded[: x.shape[0]] = x.detach()
    if dist.get_backend() == "nccl" and padded.device.type == "cpu":
        padded = padded.cuda()
    gathered = padded.new_empty((world_size * longest, *x.shape[1:]))
    dist.all_gather_single(gathered, padded.contiguous())
    pieces = [
        gathered[r * longest : r * longest + len(shard_range(num_rows, r, world_size))] for r in range(world_size)
    ]
    return torch.cat(pieces).to(x.device)


def shard_range(num_rows: int, rank: int, world_size: int) -> range:
    """The contiguous rows ``[start, stop)`` of ``num_rows`` that rank ``rank`` of ``world_size`` owns (the first
    ``num_rows % world_size`` ranks hold one row more)."""
    base, extra = divmod(num_rows, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))
