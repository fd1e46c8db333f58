"""Text-video retrieval evaluation: encode every video and every text once, rank, optionally re-rank the top k.

Model interface (``docs/design.md``):

- ``model.get_video_features(pixel_values (N, T, C, H, W)) -> (N, D)`` and
  ``model.get_text_features(input_ids (N, L), attention_mask (N, L)) -> (N, D)``: embeddings of the dual encoder
  (normalized again here, so unnormalized ones also work).
- Re-ranking (only with ``rerank_top_k``), for models with a cross-modal matching head (UMT §3.3, the VTM head
  re-scores the top-k candidates of the dual encoder):

  - ``model.get_video_states(pixel_values) -> Tensor (N, ...)`` (optional): what the matching head needs of a
    video, computed once per video and kept on the CPU. Without it the states are the ``pixel_values``.
  - ``model.rerank(video_states (K, ...), text_inputs) -> (K,)``: matching scores (higher = better) of K aligned
    (video, text) pairs, ``text_inputs`` being ``{"input_ids": (K, L), "attention_mask": (K, L)}``.

  Text-to-video re-ranks the ``k`` best videos of each text, video-to-text the ``k`` best texts of each video; the
  re-ranked candidates stay above all others, which keep their dual-encoder order.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..losses.distributed import gather_rows, get_rank_and_world_size, shard_range
from ..losses.matching import place_above
from .metrics import retrieval_metrics


@dataclass
class RetrievalIndex:
    """The corpus of a retrieval dataset: distinct videos (columns) and all texts (rows).

    Attributes:
        videos: the distinct video sources, in order of first appearance.
        texts: every caption (a row with a list of captions gives one text per caption).
        text_to_video: ``(num_texts,)`` index into ``videos`` of the video each text describes.
    """

    videos: list[Any]
    texts: list[str]
    text_to_video: torch.Tensor


@dataclass
class RetrievalResult:
    """Output of :func:`evaluate_retrieval`.

    Attributes:
        metrics: :func:`~hf_videolang.evaluation.metrics.retrieval_metrics` of the final scores (re-ranked if asked).
        similarity: ``(num_texts, num_videos)`` cosine similarity of the dual encoder.
        text_to_video: ``(num_texts,)`` ground-truth video of each text.
        videos: the distinct videos, in column order.
        reranked_t2v / reranked_v2t: ``(num_texts, num_videos)`` scores after re-ranking the top k videos of each
            text / the top k texts of each video (``None`` without re-ranking).
    """

    metrics: dict[str, float]
    similarity: torch.Tensor
    text_to_video: torch.Tensor
    videos: list[Any]
    reranked_t2v: torch.Tensor | None = None
    reranked_v2t: torch.Tensor | None = None


def build_retrieval_index(
    rows: Iterable[Mapping[str, Any]], video_column: str = "video", text_column: str = "caption"
) -> RetrievalIndex:
    """List the distinct videos and all texts of ``rows`` (dicts, or a ``datasets.Dataset``).

    Rows with the same video (compared by value: paths, bytes) share one column.
    """
    videos: list[Any] = []
    column_of: dict[Any, int] = {}
    texts: list[str] = []
    text_to_video: list[int] = []
    for index, row in enumerate(rows):
        if video_column not in row or text_column not in row:
            raise KeyError(f"row {index} needs {video_column!r} and {text_column!r} fields, has {sorted(row)}")
        video = row[video_column]
        key = video if isinstance(video, Hashable) else ("object", id(video))
        if key not in column_of:
            column_of[key] = len(videos)
            videos.append(video)
        captions = row[text_column]
        for caption in [captions] if isinstance(captions, str) else captions:
            texts.append(caption)
            text_to_video.append(column_of[key])
    if not texts:
        raise ValueError("the retrieval dataset has no rows")
    return RetrievalIndex(videos, texts, torch.tensor(text_to_video, dtype=torch.long))


class _ProcessBatch:
    """Picklable DataLoader ``collate_fn``: one processor call on a list of videos or texts (evaluation mode)."""

    def __init__(self, processor: Callable[..., Mapping[str, torch.Tensor]], modality: str) -> None:
        self.processor = processor
        self.modality = modality

    def __call__(self, items: list[Any]) -> Mapping[str, torch.Tensor]:
        if self.modality == "video":
            return self.processor(videos=items, training=False)
        return self.processor(text=items)


def _model_device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def encode_retrieval_corpus(
    model: nn.Module,
    dataloader: Iterable[Mapping[str, torch.Tensor]],
    device: torch.device | str | None = None,
    progress: bool = True,
    return_video_states: bool = False,
    desc: str = "Encoding",
    allow_empty: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """L2-normalized embeddings of every batch of ``dataloader``, concatenated on the CPU.

    Batches with ``pixel_values`` go through ``model.get_video_features``; batches with ``input_ids`` /
    ``attention_mask`` through ``model.get_text_features``.

    Returns:
        ``(N, D)`` float32 embeddings; with ``return_video_states=True`` (video batches) also the re-ranking states
        ``(N, ...)`` (``model.get_video_states(pixel_values)`` if the model has it, else the ``pixel_values``).
    """
    device = torch.device(device) if device is not None else _model_device(model)
    embeddings, states = [], []
    total = len(dataloader) if hasattr(dataloader, "__len__") else None
    for batch in tqdm(dataloader, total=total, desc=desc, disable=not progress):
        if "pixel_values" in batch:
            pixel_values = batch["pixel_values"].to(device)
            features = model.get_video_features(pixel_values=pixel_values)
            if return_video_states:
                get_states = getattr(model, "get_video_states", None)
                states.append((get_states(pixel_values) if get_states is not None else pixel_values).cpu())
        elif "input_ids" in batch:
            features = model.get_text_features(
                input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
            )
        else:
            raise KeyError(f"a retrieval batch needs pixel_values or input_ids, got {sorted(batch)}")
        features = _as_tensor(features, "get_video_features / get_text_features")
        if features.ndim != 2:
            raise ValueError(f"embeddings must be (batch, dim), got shape {tuple(features.shape)}")
        embeddings.append(F.normalize(features.float(), dim=-1).cpu())
    if not embeddings:
        if not allow_empty:
            raise ValueError("the dataloader yielded no batches")
        # A rank whose share is empty (more ranks than rows) still joins the gather; its width is the model's.
        dim = getattr(getattr(model, "config", None), "projection_dim", None)
        if dim is None:
            raise ValueError("the dataloader yielded no batches")
        return torch.empty(0, dim)
    features = torch.cat(embeddings)
    if return_video_states:
        return features, torch.cat(states)
    return features


def _as_tensor(value: Any, what: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{what} must return a torch.Tensor, got {type(value).__name__}")
    return value


def evaluate_retrieval(
    model: nn.Module,
    processor: Callable[..., Mapping[str, torch.Tensor]],
    dataset: Iterable[Mapping[str, Any]],
    batch_size: int = 32,
    rerank_top_k: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    num_workers: int = 0,
    video_column: str = "video",
    text_column: str = "caption",
    shard_across_ranks: bool = False,
) -> RetrievalResult:
    """Text-to-video and video-to-text retrieval on ``dataset`` (rows with a video and a caption).

    Every distinct video is decoded and encoded once, every text once; the similarity is ``texts @ videos.T`` of
    the normalized embeddings. With ``rerank_top_k`` the model's matching head re-scores the top k candidates (see
    the module docstring for the hooks).

    Args:
        model: a retrieval model (``get_video_features`` / ``get_text_features``; ``rerank`` for re-ranking).
        processor: a :class:`~hf_videolang.processing_utils.VideoTextProcessor` (evaluation sampling is used).
        dataset: rows ``{"video": ..., "caption": str | list[str]}``.
        batch_size: videos / texts / re-ranked pairs per forward pass.
        rerank_top_k: number of candidates re-ranked per query (``None``: no re-ranking).
        device: where the model runs (default: the device of its parameters).
        progress: show tqdm progress bars.
        num_workers: DataLoader workers decoding videos.
        shard_across_ranks: under ``torch.distributed``, every rank encodes a contiguous share of the videos and
            texts and the embeddings are gathered once (``all_gather_single``); every rank returns the same
            result. Every rank must call it. Not combinable with ``rerank_top_k``.

    Returns:
        :class:`RetrievalResult` with the metrics and the similarity matrices.
    """
    if rerank_top_k is not None:
        if not hasattr(model, "rerank"):
            raise AttributeError(
                f"{type(model).__name__} has no rerank(video_states, text_inputs) method, needed by rerank_top_k"
            )
        if rerank_top_k < 1:
            raise ValueError(f"rerank_top_k must be at least 1, got {rerank_top_k}")
        if shard_across_ranks and get_rank_and_world_size()[1] > 1:
            raise ValueError("rerank_top_k is not supported with shard_across_ranks; re-rank in a single process.")
    index = build_retrieval_index(dataset, video_column=video_column, text_column=text_column)
    device = torch.device(device) if device is not None else _model_device(model)
    was_training = model.training
    model.eval()
    try:
        rank, world_size = get_rank_and_world_size() if shard_across_ranks else (0, 1)
        video_rows = shard_range(len(index.videos), rank, world_size)
        text_rows = shard_range(len(index.texts), rank, world_size)
        video_loader = DataLoader(
            [index.videos[i] for i in video_rows], batch_size=batch_size, num_workers=num_workers,
            collate_fn=_ProcessBatch(processor, "video"),
        )  # fmt: skip
        text_loader = DataLoader(
            [index.texts[i] for i in text_rows], batch_size=batch_size, collate_fn=_ProcessBatch(processor, "text")
        )
        encoded = encode_retrieval_corpus(
            model,
            video_loader,
            device=device,
            progress=progress,
            return_video_states=rerank_top_k is not None,
            desc="Encoding videos",
            allow_empty=world_size > 1,
        )
        video_embeds, video_states = encoded if rerank_top_k is not None else (encoded, None)
        text_embeds = encode_retrieval_corpus(
            model, text_loader, device=device, progress=progress, desc="Encoding texts", allow_empty=world_size > 1
        )
        if world_size > 1:
            video_embeds = gather_rows(video_embeds.to(device), len(index.videos)).cpu()
            text_embeds = gather_rows(text_embeds.to(device), len(index.texts)).cpu()
        similarity = text_embeds @ video_embeds.T  # (num_texts, num_videos)
        if rerank_top_k is None:
            metrics = retrieval_metrics(similarity, index.text_to_video)
            return RetrievalResult(metrics, similarity, index.text_to_video, index.videos)
        reranked_t2v, reranked_v2t = _rerank(
            model, processor, similarity, video_states, index.texts, rerank_top_k, batch_size, device, progress
        )
    finally:
        model.train(was_training)
    metrics_t2v = retrieval_metrics(reranked_t2v, index.text_to_video)
    metrics_v2t = retrieval_metrics(reranked_v2t, index.text_to_video)
    metrics = _combine_directions(metrics_t2v, metrics_v2t)
    return RetrievalResult(metrics, similarity, index.text_to_video, index.videos, reranked_t2v, reranked_v2t)


def _combine_directions(metrics_t2v: Mapping[str, float], metrics_v2t: Mapping[str, float]) -> dict[str, float]:
    """Text-to-video metrics of one score matrix, video-to-text of another, and their recall summaries.

    ``mean_R`` / ``rsum`` are recomputed over the combined ``R@k`` values, as ``retrieval_metrics`` defines them.
    """
    metrics = {name: value for name, value in metrics_t2v.items() if name.startswith("t2v_")}
    metrics.update({name: value for name, value in metrics_v2t.items() if name.startswith("v2t_")})
    recalls = [value for name, value in metrics.items() if "_R@" in name]
    metrics["mean_R"] = sum(recalls) / len(recalls)
    metrics["rsum"] = sum(recalls)
    return metrics


# ---------------------------------------------------------------------------- re-ranking


def _rerank(
    model: nn.Module,
    processor: Callable[..., Mapping[str, torch.Tensor]],
    similarity: torch.Tensor,
    video_states: torch.Tensor,
    texts: Sequence[str],
    top_k: int,
    batch_size: int,
    device: torch.device,
    progress: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-score the top-k videos of every text and the top-k texts of every video with ``model.rerank``."""
    num_texts, num_videos = similarity.shape

    def score(video_index: torch.Tensor, text_index: torch.Tensor, desc: str) -> torch.Tensor:
        scores = _score_pairs(
            model,
            processor,
            video_states,
            texts,
            video_index.flatten(),
            text_index.flatten(),
            batch_size=batch_size,
            device=device,
            progress=progress,
            desc=desc,
        )
        return scores.view_as(video_index)

    # Text-to-video: rows are texts, candidates are videos.
    t2v_top = similarity.topk(min(top_k, num_videos), dim=1).indices  # (num_texts, k)
    t2v_scores = score(t2v_top, torch.arange(num_texts).unsqueeze(1).expand_as(t2v_top), "Re-ranking t2v")
    # Video-to-text: rows are videos, candidates are texts.
    v2t_top = similarity.T.topk(min(top_k, num_texts), dim=1).indices  # (num_videos, k)
    v2t_scores = score(torch.arange(num_videos).unsqueeze(1).expand_as(v2t_top), v2t_top, "Re-ranking v2t")
    reranked_t2v = place_above(similarity, t2v_top, t2v_scores)
    reranked_v2t = place_above(similarity.T, v2t_top, v2t_scores).T
    return reranked_t2v, reranked_v2t


@torch.no_grad()
def _score_pairs(
    model: nn.Module,
    processor: Callable[..., Mapping[str, torch.Tensor]],
    video_states: torch.Tensor,
    texts: Sequence[str],
    video_index: torch.Tensor,
    text_index: torch.Tensor,
    batch_size: int,
    device: torch.device,
    progress: bool,
    desc: str,
) -> torch.Tensor:
    """``model.rerank`` scores ``(P,)`` of the pairs ``(video_index[i], text_index[i])``, ``batch_size`` at a time."""
    scores = []
    for start in tqdm(range(0, len(video_index), batch_size), desc=desc, disable=not progress):
        videos = video_index[start : start + batch_size]
        encoding = processor(text=[texts[i] for i in text_index[start : start + batch_size].tolist()])
        text_inputs = {key: encoding[key].to(device) for key in ("input_ids", "attention_mask")}
        batch_scores = _as_tensor(model.rerank(video_states[videos].to(device), text_inputs), "model.rerank")
        if batch_scores.shape != (len(videos),):
            raise ValueError(
                f"model.rerank must return one score per pair ({len(videos)},), got {tuple(batch_scores.shape)}"
            )
        scores.append(batch_scores.float().cpu())
    return torch.cat(scores)


# ---------------------------------------------------------------------------- cross-encoder retrieval


@torch.no_grad()
def evaluate_matching_retrieval(
    model: nn.Module,
    processor: Callable[..., Mapping[str, torch.Tensor]],
    dataset: Iterable[Mapping[str, Any]],
    video_batch_size: int = 4,
    text_batch_size: int = 64,
    device: torch.device | str | None = None,
    progress: bool = True,
    video_column: str = "video",
    text_column: str = "caption",
) -> RetrievalResult:
    """Retrieval with a cross-encoder that has no separate embeddings (ClipBERT): every (text, video) pair is scored
    by ``model.score_candidates(pixel_values (b, ...), input_ids (b, J, L), attention_mask (b, J, L)) -> (b, J)``.

    Each video is decoded once and every text tokenized once; the cost is one fusion pass per pair, so keep the
    gallery small. ``similarity`` holds the matching scores ``(num_texts, num_videos)``; the metrics cover both
    directions, as :func:`evaluate_retrieval`'s.
    """
    if not callable(getattr(model, "score_candidates", None)):
        raise AttributeError(f"{type(model).__name__} has no score_candidates(pixel_values, input_ids, attention_mask)")
    index = build_retrieval_index(dataset, video_column=video_column, text_column=text_column)
    device = torch.device(device) if device is not None else _model_device(model)
    texts = processor(text=index.texts)
    input_ids, attention_mask = texts["input_ids"].to(device), texts["attention_mask"].to(device)
    was_training = model.training
    model.eval()
    columns = []
    try:
        starts = range(0, len(index.videos), video_batch_size)
        for start in tqdm(starts, desc="Scoring video-text pairs", disable=not progress):
            videos = index.videos[start : start + video_batch_size]
            pixel_values = processor(videos=videos, training=False)["pixel_values"].to(device)
            scores = []
            for begin in range(0, len(index.texts), text_batch_size):
                ids = input_ids[begin : begin + text_batch_size]
                mask = attention_mask[begin : begin + text_batch_size]
                batch_scores = model.score_candidates(
                    pixel_values,
                    ids[None].expand(len(videos), -1, -1),
                    mask[None].expand(len(videos), -1, -1),
                )
                scores.append(_as_tensor(getattr(batch_scores, "logits", batch_scores), "score_candidates").float())
            columns.append(torch.cat(scores, dim=1).cpu())  # (b, num_texts)
    finally:
        model.train(was_training)
    similarity = torch.cat(columns).T  # (num_texts, num_videos)
    return RetrievalResult(retrieval_metrics(similarity, index.text_to_video), similarity, index.text_to_video,
                           index.videos)  # fmt: skip
