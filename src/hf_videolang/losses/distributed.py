"""Cross-rank gathering for losses whose negatives should span the global batch.

Contrastive objectives (VTC) are stronger with more negatives, so under data parallelism every rank compares its
local rows against the embeddings of *all* ranks. The gather keeps the autograd graph: the backward of
`torch.distributed.nn.functional.all_gather` sums, over ranks, the gradients that flow into each rank's slice, so
each rank receives the gradient of every rank's loss with respect to its own inputs (see
`VideoTextContrastiveLoss` for what that means for loss scaling).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["gather_features", "get_rank_and_world_size"]


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
    if x.requires_grad:
        # Imported lazily: `torch.distributed.nn` pulls in RPC machinery that is not needed single-process.
        import torch.distributed.nn.functional as dist_fn

        return torch.cat(dist_fn.all_gather(x), dim=0)
    gathered = [torch.empty_like(x) for _ in range(world_size)]
    dist.all_gather(gathered, x.contiguous())
    return torch.cat(gathered, dim=0)
