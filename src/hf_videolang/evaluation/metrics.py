"""Retrieval, open-ended QA and multiple-choice metrics, and `compute_metrics` builders for `transformers.Trainer`.

Every rate is a percentage in [0, 100]; every rank is 1-based.

Ties in retrieval are broken **pessimistically** by default: a wrong candidate that scores exactly as high as the
best correct one is ranked above it. A constant similarity matrix (e.g. a collapsed model) therefore gets the worst
possible ranks rather than a perfect score; real models, whose float scores almost never tie, are unaffected.
`ties="optimistic"` ranks correct candidates first among equals (the upper bound).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch

__all__ = [
    "build_mc_compute_metrics",
    "build_qa_compute_metrics",
    "build_retrieval_compute_metrics",
    "chance_retrieval_metrics",
    "mc_accuracy",
    "normalize_answer",
    "qa_accuracy",
    "retrieval_metrics",
]

TieRule = Literal["pessimistic", "optimistic"]
ArrayLike = np.ndarray | torch.Tensor | Sequence[Any]


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


# --------------------------------------------------------------------------------------------------- retrieval


def _ranks_of_positives(scores: np.ndarray, positives: np.ndarray, ties: TieRule) -> np.ndarray:
    """1-based rank of the best positive of each row among that row's negatives.

    Args:
        scores: `(R, C)` scores, one row per query.
        positives: `(R, C)` bool, at least one True per row.
        ties: How negatives scoring exactly as high as the best positive are counted.

    Returns:
        `(R,)` int ranks: 1 + the number of negatives that beat (or, pessimistically, equal) the best positive.
    """
    best_positive = np.where(positives, scores, -np.inf).max(axis=1, keepdims=True)
    beats = scores >= best_positive if ties == "pessimistic" else scores > best_positive
    return 1 + (beats & ~positives).sum(axis=1)


def _summarize_ranks(prefix: str, ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    metrics = {f"{prefix}_R@{k}": float(np.mean(ranks <= k) * 100.0) for k in ks}
    metrics[f"{prefix}_MdR"] = float(np.median(ranks))
    metrics[f"{prefix}_MnR"] = float(np.mean(ranks))
    return metrics


def _add_recall_summary(metrics: dict[str, float], ks: Sequence[int]) -> dict[str, float]:
    recalls = [metrics[f"{direction}_R@{k}"] for direction in ("t2v", "v2t") for k in ks]
    metrics["mean_R"] = float(np.mean(recalls))
    metrics["rsum"] = float(np.sum(recalls))
    return metrics


def _check_ks(ks: Sequence[int]) -> None:
    if not ks or any(int(k) < 1 for k in ks):
        raise ValueError(f"`ks` must be a non-empty sequence of positive integers, got {ks!r}.")


def retrieval_metrics(
    sim: ArrayLike,
    text_to_video: ArrayLike | None = None,
    ks: Sequence[int] = (1, 5, 10),
    ties: TieRule = "pessimistic",
) -> dict[str, float]:
    """Text-to-video and video-to-text recall and rank metrics, with several captions per video.

    Text-to-video: text i's only correct video is `text_to_video[i]`. Video-to-text: every caption of video j is
    correct, so its rank is the best rank among its captions (R@k counts a hit if *any* caption is in the top k);
    other captions of the same video never count against it.

    Args:
        sim: `(num_texts, num_videos)` similarity scores, higher = more similar.
        text_to_video: `(num_texts,)` column index of each text's video. Defaults to `range(num_texts)` (one
            caption per video, square `sim`). Every video must have at least one caption.
        ks: Cut-offs for R@k.
        ties: `"pessimistic"` (default) or `"optimistic"`, see the module docstring.

    Returns:
        `t2v_R@k`, `t2v_MdR`, `t2v_MnR`, the same for `v2t_`, `mean_R` (mean of all R@k of both directions) and
        `rsum` (their sum). R@k in percent, ranks 1-based.
    """
    scores = _to_numpy(sim).astype(np.float64)
    _check_ks(ks)
    if ties not in ("pessimistic", "optimistic"):
        raise ValueError(f"`ties` must be 'pessimistic' or 'optimistic', got {ties!r}.")
    if scores.ndim != 2 or 0 in scores.shape:
        raise ValueError(f"`sim` must be a non-empty (num_texts, num_videos) matrix, got shape {scores.shape}.")
    if np.isnan(scores).any():
        raise ValueError("`sim` contains NaN scores, which cannot be ranked.")
    num_texts, num_videos = scores.shape
    if text_to_video is None:
        if num_texts != num_videos:
            raise ValueError(
                f"`sim` is {num_texts}x{num_videos}; pass `text_to_video` when texts and videos are not paired 1:1."
            )
        targets = np.arange(num_texts)
    else:
        targets = _to_numpy(text_to_video).astype(np.int64).reshape(-1)
        if targets.shape[0] != num_texts:
            raise ValueError(f"`text_to_video` has {targets.shape[0]} entries for {num_texts} texts (rows of `sim`).")
        if targets.min() < 0 or targets.max() >= num_videos:
            raise ValueError(f"`text_to_video` must index the {num_videos} videos (columns of `sim`).")
    captions_of_video = targets[None, :] == np.arange(num_videos)[:, None]  # (num_videos, num_texts)
    uncaptioned = np.flatnonzero(~captions_of_video.any(axis=1))
    if uncaptioned.size:
        raise ValueError(f"Videos {uncaptioned[:10].tolist()} have no caption in `text_to_video`.")

    t2v_positives = targets[:, None] == np.arange(num_videos)[None, :]
    metrics = _summarize_ranks("t2v", _ranks_of_positives(scores, t2v_positives, ties), ks)
    metrics.update(_summarize_ranks("v2t", _ranks_of_positives(scores.T, captions_of_video, ties), ks))
    return _add_recall_summary(metrics, ks)


def chance_retrieval_metrics(num_videos: int, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Expected `retrieval_metrics` of a random ranking with one caption per video, to print "next to chance".

    R@k = min(k, n) / n * 100; MdR = MnR = (n + 1) / 2 (ranks uniform on 1..n). Same keys as `retrieval_metrics`.
    """
    if num_videos < 1:
        raise ValueError(f"`num_videos` must be >= 1, got {num_videos}.")
    _check_ks(ks)
    metrics: dict[str, float] = {}
    for direction in ("t2v", "v2t"):
        for k in ks:
            metrics[f"{direction}_R@{k}"] = min(k, num_videos) / num_videos * 100.0
        metrics[f"{direction}_MdR"] = (num_videos + 1) / 2
        metrics[f"{direction}_MnR"] = (num_videos + 1) / 2
    return _add_recall_summary(metrics, ks)


# ------------------------------------------------------------------------------------------------ QA and MC


def normalize_answer(answer: str) -> str:
    """Lower-cases, strips and collapses runs of whitespace: `"  Red  Ball "` -> `"red ball"`."""
    return " ".join(str(answer).lower().split())


def qa_accuracy(pred: Sequence[str], gold: Sequence[str | Sequence[str] | None]) -> float:
    """Open-ended QA accuracy in percent, comparing `normalize_answer`-ed strings.

    Args:
        pred: Predicted answer per question.
        gold: Correct answer per question, or a list of accepted answers; `None` (answer outside the model's
            answer list) is always wrong.
    """
    if len(pred) != len(gold):
        raise ValueError(f"`pred` has {len(pred)} answers but `gold` has {len(gold)}.")
    if len(pred) == 0:
        raise ValueError("qa_accuracy needs at least one question.")
    correct = 0
    for predicted, accepted in zip(pred, gold):
        if accepted is None:
            continue
        options = [accepted] if isinstance(accepted, str) else accepted
        correct += normalize_answer(predicted) in {normalize_answer(option) for option in options}
    return 100.0 * correct / len(pred)


def mc_accuracy(pred_idx: ArrayLike, gold_idx: ArrayLike) -> float:
    """Multiple-choice accuracy in percent: fraction of questions whose chosen candidate index is the gold one."""
    pred_arr = _to_numpy(pred_idx).reshape(-1)
    gold_arr = _to_numpy(gold_idx).reshape(-1)
    if pred_arr.shape != gold_arr.shape:
        raise ValueError(f"`pred_idx` has {pred_arr.shape[0]} entries but `gold_idx` has {gold_arr.shape[0]}.")
    if pred_arr.size == 0:
        raise ValueError("mc_accuracy needs at least one question.")
    return float(np.mean(pred_arr == gold_arr) * 100.0)


# -------------------------------------------------------------------------------- Trainer compute_metrics


def _first_prediction(predictions: Any) -> np.ndarray:
    """Trainer passes a tuple when the model returns several tensors; the scores come first."""
    if isinstance(predictions, (tuple, list)):
        predictions = predictions[0]
    return _to_numpy(predictions)


def _l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.clip(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12, None)


def _dedupe_videos(video_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the first occurrence of each video id, and each row's column among those unique videos."""
    _, first_rows, text_to_video = np.unique(video_ids, return_index=True, return_inverse=True)
    return first_rows, text_to_video.reshape(-1)


def build_retrieval_compute_metrics(
    text_to_video: ArrayLike | None = None,
    ks: Sequence[int] = (1, 5, 10),
    ties: TieRule = "pessimistic",
    video_index: int | None = None,
    text_index: int | None = None,
) -> Callable[[Any], dict[str, float]]:
    """`compute_metrics` for `Trainer` on retrieval: accepts a similarity matrix or paired embeddings.

    `eval_pred.predictions` is either
      * a `(num_texts, num_videos)` similarity matrix, scored with `text_to_video`; or
      * a tuple holding `(N, D)` video embeddings at `video_index` and `(N, D)` text embeddings at `text_index`,
        one row per (video, caption) pair; they are L2-normalized and compared by cosine. By default (`None`)
        they are the last two `(N, D)` arrays of equal width, the order of the package's retrieval outputs
        (`..., video_embeds, text_embeds`, as CLIP's); loss terms and per-batch logits before them are skipped. If
        `eval_pred.label_ids` is a 1-D array of N video ids (e.g. `label_names=["video_ids"]`), rows sharing an id
        are one video with several captions (its first row's embedding is used); otherwise `text_to_video`, or
        one video per row.

    Returns:
        A function `EvalPrediction -> dict` of `retrieval_metrics`.
    """

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        predictions = eval_pred.predictions
        if not isinstance(predictions, (tuple, list)):
            return retrieval_metrics(_to_numpy(predictions), text_to_video, ks=ks, ties=ties)
        v_index, t_index = _embedding_indices(predictions, video_index, text_index)
        video = _l2_normalize(_to_numpy(predictions[v_index]).astype(np.float64))
        text = _l2_normalize(_to_numpy(predictions[t_index]).astype(np.float64))
        if video.ndim != 2 or video.shape != text.shape:
            raise ValueError(
                f"predictions[{v_index}] {video.shape} and predictions[{t_index}] {text.shape} must be (N, D) "
                "video and text embeddings of the same shape; pass video_index= / text_index= to pick them."
            )
        mapping = text_to_video
        label_ids = getattr(eval_pred, "label_ids", None)
        if isinstance(label_ids, np.ndarray) and label_ids.ndim == 1 and label_ids.shape[0] == video.shape[0]:
            video_rows, mapping = _dedupe_videos(label_ids)
            video = video[video_rows]
        return retrieval_metrics(text @ video.T, mapping, ks=ks, ties=ties)

    return compute_metrics


def _embedding_indices(
    predictions: Sequence[Any], video_index: int | None, text_index: int | None
) -> tuple[int, int]:
    """`(video_index, text_index)`: the given ones, else the last two `(N, D)` arrays of the same shape."""
    if video_index is not None and text_index is not None:
        return video_index, text_index
    shapes = [getattr(item, "shape", None) for item in predictions]
    candidates = [i for i, shape in enumerate(shapes) if shape is not None and len(shape) == 2]
    for second in reversed(candidates):
        earlier = [i for i in candidates if i < second and shapes[i] == shapes[second]]
        if earlier:
            return (earlier[-1] if video_index is None else video_index), (second if text_index is None else text_index)
    raise ValueError(
        f"retrieval compute_metrics found no pair of (N, D) video / text embeddings among the predictions (shapes: "
        f"{shapes}); pass video_index= and text_index= (the positions of video_embeds / text_embeds in the model "
        "output without its loss), or give a (num_texts, num_videos) similarity matrix."
    )


def build_qa_compute_metrics(answer_list: Sequence[str]) -> Callable[[Any], dict[str, float]]:
    """`compute_metrics` for open-ended QA as classification over `answer_list` (the model's `config.answer_list`).

    `eval_pred.predictions`: `(B, len(answer_list))` logits (or a tuple whose first item is). `eval_pred.label_ids`:
    `(B,)` gold answer indices; an index outside the list (e.g. -100 for an answer the list does not contain) is
    counted wrong, so accuracy is over all questions. Answers are compared after `normalize_answer`.

    Returns:
        A function `EvalPrediction -> {"accuracy": percent}`.
    """
    answers = list(answer_list)
    if not answers:
        raise ValueError("`answer_list` is empty.")

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        logits = _first_prediction(eval_pred.predictions)
        if logits.ndim != 2 or logits.shape[1] != len(answers):
            raise ValueError(
                f"QA predictions must be (num_questions, {len(answers)}) answer logits, got shape {logits.shape}."
            )
        gold_idx = _to_numpy(eval_pred.label_ids).reshape(-1).astype(np.int64)
        pred = [answers[i] for i in logits.argmax(axis=1)]
        gold = [answers[i] if 0 <= i < len(answers) else None for i in gold_idx]
        return {"accuracy": qa_accuracy(pred, gold)}

    return compute_metrics


def build_mc_compute_metrics() -> Callable[[Any], dict[str, float]]:
    """`compute_metrics` for multiple choice: `(B, num_candidates)` scores and `(B,)` gold indices.

    Returns:
        A function `EvalPrediction -> {"accuracy": percent}` (the highest-scoring candidate is the answer).
    """

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        scores = _first_prediction(eval_pred.predictions)
        if scores.ndim != 2:
            raise ValueError(
                f"MC predictions must be (num_questions, num_candidates) scores, got shape {scores.shape}."
            )
        return {"accuracy": mc_accuracy(scores.argmax(axis=1), eval_pred.label_ids)}

    return compute_metrics
