"""The ``video-question-answering`` pipeline: answer a question about a video, over one or several clips.

``import hf_videolang`` registers :class:`VideoQuestionAnsweringPipeline` with transformers, after which::

    from transformers import pipeline

    vqa = pipeline("video-question-answering", model=model, processor=processor)
    vqa("clip.mp4", question="what color is the square?", top_k=3)
    # [{"answer": "red", "score": 0.71}, {"answer": "blue", "score": 0.12}, {"answer": "green", "score": 0.05}]

The pipeline is a [`~transformers.ChunkPipeline`]: it samples ``num_clips`` clips of ``num_frames`` frames, runs the
model once per clip, aggregates the per-clip logits (ClipBERT's dense inference, ClipBERT §3 and appendix Eq. 5)
and turns the aggregate into probabilities with a softmax.

Model contract
--------------
Open-ended QA (the default):
    ``model.config.answer_list`` is a ``list[str]`` (answer ``i`` is logit ``i``), and
    ``model(pixel_values, input_ids, attention_mask)`` returns an output with ``logits`` of shape
    ``(B, len(answer_list))``. ``pixel_values`` is ``(B, T, C, H, W)``, ``input_ids`` / ``attention_mask`` are the
    question tokens ``(B, L)``.

Multiple choice (``candidates=[...]``):
    ``model.score_candidates(pixel_values, input_ids, attention_mask)`` returns the matching scores ``(B, K)`` (a
    tensor, or an output with ``logits``) of ``K`` candidate texts. ``input_ids`` / ``attention_mask`` are
    ``(B, K, L)``: row ``k`` is the tokenizer's text pair ``(question, candidates[k])`` (``[CLS] q [SEP] c [SEP]``
    for BERT), or ``candidates[k]`` alone when no question is given (MSR-VTT MC style caption ranking). Rows padded
    to the longest candidate have attention mask 0. A retrieval model implements it with its video-text matching
    score. The answers are the candidate strings, ranked.

Processor contract
------------------
The pipeline decodes and samples the frames itself (one set per clip) and hands decoded frames to the processor:
``processor.transform(frames, training=False)`` (uint8 ``(T, H, W, 3)`` -> float ``(T, C, H, W)``) when the processor
has a ``transform``, else ``processor(videos=frames, return_tensors="pt")["pixel_values"]``; the question goes
through ``processor(text=question, return_tensors="pt")``. Any [`~hf_videolang.processing_utils.VideoTextProcessor`]
works.
"""

from __future__ import annotations

import functools
import math
import os
import types
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from transformers import AutoModel, AutoModelForVisualQuestionAnswering
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import ChunkPipeline
from transformers.pipelines.pt_utils import PipelineChunkIterator, PipelineIterator, PipelinePackIterator

from ..errors import EmptyTextError

if TYPE_CHECKING:
    from ..video.io import VideoMetadata

TASK = "video-question-answering"

CLIP_AGGREGATIONS = ("mean", "max", "logsumexp")
"""Ways to combine per-clip logits (ClipBERT Table 3: mean pooling, max pooling, LogSumExp)."""

# ClipBERT samples 1-second clips (ClipBERT §3, "Sparse Sampling for Training"); used when neither the call nor the
# processor gives a clip duration.
DEFAULT_CLIP_DURATION = 1.0


def aggregate_clip_logits(clip_logits: torch.Tensor, method: str = "mean") -> torch.Tensor:
    """Combine the logits of ``N`` clips into video-level logits (ClipBERT §3, appendix Eq. 5).

    ``"mean"`` and ``"max"`` pool the logits over clips; a softmax follows in the pipeline. ``"logsumexp"`` returns
    ``log(mean_i exp(g_i))``, whose softmax is Eq. 5: ``p = sum_i exp(g_i) / sum(sum_i exp(g_i))``. Subtracting
    ``log N`` does not change the softmax; it keeps one clip's logits unchanged, so every method is the identity for
    ``N = 1``.

    Args:
        clip_logits: ``(N, K)`` logits of ``N`` clips over ``K`` answers.
        method: one of :data:`CLIP_AGGREGATIONS`.

    Returns:
        ``(K,)`` video-level logits.
    """
    if clip_logits.ndim != 2 or clip_logits.shape[0] == 0:
        raise ValueError(f"clip_logits must be (num_clips >= 1, num_answers), got {tuple(clip_logits.shape)}")
    if method == "mean":
        return clip_logits.mean(dim=0)
    if method == "max":
        return clip_logits.max(dim=0).values
    if method == "logsumexp":
        return torch.logsumexp(clip_logits, dim=0) - math.log(clip_logits.shape[0])
    raise ValueError(f"clip_aggregation must be one of {CLIP_AGGREGATIONS}, got {method!r}")


def clip_probabilities(clip_logits: torch.Tensor, method: str = "mean") -> torch.Tensor:
    """Answer probabilities ``(K,)`` from per-clip logits ``(N, K)``: aggregate, then softmax (ClipBERT Eq. 5)."""
    return aggregate_clip_logits(clip_logits.float(), method).softmax(dim=-1)


def _is_frame(item: Any) -> bool:
    """Whether ``item`` is one decoded frame (so a list of them is one video, not a batch of videos)."""
    return isinstance(item, Image.Image) or (isinstance(item, (np.ndarray, torch.Tensor)) and item.ndim == 3)


def _is_video_batch(video: Any) -> bool:
    if isinstance(video, (np.ndarray, torch.Tensor)):
        return video.ndim == 5
    if isinstance(video, (list, tuple)):
        if not video:
            raise ValueError("video is an empty list: pass a video, a list of frames or a list of videos")
        return not _is_frame(video[0])
    return False


def _as_video_source(video: Any) -> Any:
    """Make ``video`` something that :func:`read_video_metadata` and :func:`read_frames` can both read.

    A file-like object is read once into bytes (the metadata read would otherwise consume it) and a list of array
    frames is stacked; paths, bytes, arrays, tensors and lists of PIL images pass through.
    """
    if hasattr(video, "read"):
        return video.read()
    if isinstance(video, (list, tuple)) and video and not isinstance(video[0], Image.Image):
        if isinstance(video[0], torch.Tensor):
            return torch.stack(list(video))
        return np.stack([np.asarray(frame) for frame in video])
    return video


def _check_question(question: Any, has_candidates: bool) -> str | None:
    if question is None and has_candidates:
        return None  # caption ranking: the candidates alone are scored against the video
    if not isinstance(question, str):
        raise TypeError(f"question must be a string, got {type(question).__name__}")
    if not question.strip():
        raise EmptyTextError(f"question is empty or only whitespace: {question!r}")
    return question


def _check_candidates(candidates: Any) -> list[str] | None:
    if candidates is None:
        return None
    if isinstance(candidates, str) or not isinstance(candidates, Sequence):
        raise TypeError(f"candidates must be a list of strings, got {type(candidates).__name__}")
    if len(candidates) == 0:
        raise ValueError("candidates is an empty list")
    for index, candidate in enumerate(candidates):
        if not isinstance(candidate, str):
            raise TypeError(f"candidates[{index}] must be a string, got {type(candidate).__name__}")
        if not candidate.strip():
            raise EmptyTextError(f"candidates[{index}] is empty or only whitespace: {candidate!r}")
    return list(candidates)


def _pad_stack(tensors: list[torch.Tensor], value: int) -> torch.Tensor:
    """Stack tensors of equal rank but different sizes into ``(B, *max_sizes)``, padding at the end with ``value``."""
    sizes = [max(t.shape[d] for t in tensors) for d in range(tensors[0].ndim)]
    out = tensors[0].new_full((len(tensors), *sizes), value)
    for row, tensor in enumerate(tensors):
        out[(row, *(slice(0, n) for n in tensor.shape))] = tensor
    return out


def collate_clips(items: list[dict[str, Any]], pad_token_id: int = 0) -> dict[str, Any]:
    """Batch clip chunks, possibly from different videos: pixel values are concatenated, text is padded.

    Question tokens ``(1, L)`` become ``(B, L_max)``; candidate pairs ``(1, K, L)`` become ``(B, K_max, L_max)``
    (videos may have different numbers of candidates); padding has id ``pad_token_id`` and attention mask 0.
    """
    kinds = {"candidates" in item for item in items}
    if len(kinds) > 1:
        raise ValueError("cannot batch multiple-choice inputs (with candidates) together with open-ended ones")
    batch: dict[str, Any] = {
        "pixel_values": torch.cat([item["pixel_values"] for item in items]),
        "input_ids": _pad_stack([item["input_ids"][0] for item in items], pad_token_id),
        "attention_mask": _pad_stack([item["attention_mask"][0] for item in items], 0),
        "is_last": [item["is_last"] for item in items],
    }
    if kinds == {True}:
        batch["candidates"] = [item["candidates"] for item in items]
    return batch


def _pair_one(item: Any, question: str | None) -> dict[str, Any]:
    """One streamed input: a dict passes through (``question`` fills in a missing one), a video gets ``question``."""
    if isinstance(item, dict):
        return item if question is None or "question" in item else {**item, "question": question}
    return {"video": item, "question": question}


def _pair_stream(videos: Iterator[Any], question: str | Sequence[str] | None) -> Iterator[dict[str, Any]]:
    """Pair a generator of videos with one question, or with a list of questions (one per video, in order)."""
    if question is None or isinstance(question, str):
        return (_pair_one(item, question) for item in videos)
    return (_pair_one(item, q) for item, q in zip(videos, question))


class _PairedDataset(Dataset):
    """A dataset of videos (or input dicts), e.g. a ``KeyDataset``, seen as a dataset of input dicts."""

    def __init__(self, dataset: Dataset, question: str | Sequence[str] | None) -> None:
        self.dataset, self.question = dataset, question

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index >= len(self):
            raise IndexError(index)  # iterating a map-style dataset stops here
        question = self.question
        if question is not None and not isinstance(question, str):
            question = question[index]
        return _pair_one(self.dataset[index], question)


def _logits_of(output: Any) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output["logits"]


class VideoQuestionAnsweringPipeline(ChunkPipeline):
    """Answer questions about videos with an hf-videolang QA model (task ``"video-question-answering"``).

    The video is decoded once; ``num_clips`` clips of ``num_frames`` frames go through the model one chunk each,
    and their logits are aggregated (``clip_aggregation``) before a softmax, as in ClipBERT's dense inference
    (ClipBERT §3: ``N_test`` uniformly spaced clips). See the module docstring for what the model and the processor
    must provide.

    Call arguments:
        video: a path, encoded bytes, a binary file-like object, decoded frames (``(T, H, W, 3)`` uint8 array or
            tensor, a list of frames or PIL images), a dict ``{"video", "question"[, "candidates"]}``, or a list of
            any of these (then the result is a list of lists, and ``batch_size`` batches clips across videos).
        question: the question (a string, or one per video).
        top_k (`int`, defaults to 5): number of answers returned (at most the number of answers / candidates).
        num_frames (`int`, *optional*): frames per clip; defaults to the frames per video of the processor
            (``frames_per_video`` or ``num_frames``), else ``model.config.num_frames``.
        num_clips (`int`, defaults to 1): clips per video. One clip spans the whole video (uniform sampling, the
            evaluation sampling of single-clip models); several clips are ClipBERT's ``N_test`` windows of
            ``clip_duration`` seconds, evenly spaced over the video.
        clip_duration (`float`, *optional*): seconds per clip when ``num_clips > 1``; defaults to the processor's
            ``clip_duration``, else 1 s (ClipBERT §3).
        video_fps (`float`, *optional*): frame rate of decoded-frame inputs, which carry none; needed to place
            several clips (``num_clips > 1``) in them. Ignored for encoded videos, whose container gives it.
        clip_aggregation (`str`, defaults to ``"mean"``): ``"mean"``, ``"max"`` or ``"logsumexp"`` (ClipBERT
            Table 3 and appendix Eq. 5; see :func:`aggregate_clip_logits`).
        candidates (`list[str]`, *optional*): answer options for multiple choice; the answers are then these
            strings, ranked by ``model.score_candidates``. A question may be omitted to rank captions.

    Returns:
        `list[dict]` sorted by score, highest first: ``{"answer": str, "score": float}``; the scores are the softmax
        probabilities over all answers (or candidates), so they sum to at most 1.
    """

    _load_processor = None
    _load_tokenizer = None
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.processor is None:
            raise ValueError(
                f"The {TASK} pipeline needs a processor that turns frames and text into model inputs (e.g. a "
                "VideoTextProcessor); pass `processor=` to `pipeline()`."
            )

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        """Save the model and the processor (else the tokenizer) to ``save_directory``.

        The pipeline ships with hf-videolang, so unlike the base class (made for Hub custom pipelines) this writes no
        pipeline code and no ``custom_pipelines`` entry, which would make ``pipeline(TASK, model=save_directory)``
        ask for ``trust_remote_code``.
        """
        os.makedirs(save_directory, exist_ok=True)
        self.model.save_pretrained(save_directory, **kwargs)
        if callable(getattr(self.processor, "save_pretrained", None)):
            self.processor.save_pretrained(save_directory, **kwargs)
        elif self.tokenizer is not None:
            self.tokenizer.save_pretrained(save_directory, **kwargs)

    # ------------------------------------------------------------------ arguments

    def __call__(self, video: Any, question: str | Sequence[str] | None = None, **kwargs: Any) -> Any:
        """Answer ``question`` about ``video``; see the class docstring for the arguments.

        ``video`` may also be a generator or a ``torch.utils.data.Dataset`` (e.g. transformers' ``KeyDataset``) of
        videos or input dicts; the answers then stream, one list per video, batched by ``batch_size``.
        """
        if isinstance(video, types.GeneratorType):
            return super().__call__(_pair_stream(video, question), **kwargs)
        if isinstance(video, Dataset):
            return super().__call__(_PairedDataset(video, question), **kwargs)
        return super().__call__(self._pair_inputs(video, question), **kwargs)

    @staticmethod
    def _pair_inputs(video: Any, question: str | Sequence[str] | None) -> dict[str, Any] | list[dict[str, Any]]:
        """Turn ``(video, question)`` into one input dict, or a list of them for a batch of videos."""
        if isinstance(video, dict):
            return video if question is None else {**video, "question": question}
        if not _is_video_batch(video):
            return {"video": video, "question": question}
        videos = list(video)
        if isinstance(videos[0], dict):
            return videos
        if isinstance(question, (list, tuple)):
            if len(question) != len(videos):
                raise ValueError(f"got {len(videos)} videos but {len(question)} questions")
            questions = list(question)
        else:
            questions = [question] * len(videos)
        return [{"video": v, "question": q} for v, q in zip(videos, questions)]

    def _sanitize_parameters(
        self,
        top_k: int | None = None,
        num_frames: int | None = None,
        num_clips: int | None = None,
        clip_duration: float | None = None,
        clip_aggregation: str | None = None,
        candidates: Sequence[str] | None = None,
        video_fps: float | None = None,
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        preprocess_params: dict[str, Any] = {}
        postprocess_params: dict[str, Any] = {}
        for name, value in (("num_frames", num_frames), ("num_clips", num_clips), ("top_k", top_k)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if num_frames is not None:
            preprocess_params["num_frames"] = num_frames
        if num_clips is not None:
            preprocess_params["num_clips"] = num_clips
        if clip_duration is not None:
            if clip_duration <= 0:
                raise ValueError(f"clip_duration must be positive (seconds), got {clip_duration!r}")
            preprocess_params["clip_duration"] = float(clip_duration)
        if video_fps is not None:
            if video_fps <= 0:
                raise ValueError(f"video_fps must be positive (frames per second), got {video_fps!r}")
            preprocess_params["video_fps"] = float(video_fps)
        if candidates is not None:
            preprocess_params["candidates"] = _check_candidates(candidates)
        if top_k is not None:
            postprocess_params["top_k"] = top_k
        if clip_aggregation is not None:
            if clip_aggregation not in CLIP_AGGREGATIONS:
                raise ValueError(f"clip_aggregation must be one of {CLIP_AGGREGATIONS}, got {clip_aggregation!r}")
            postprocess_params["clip_aggregation"] = clip_aggregation
        return preprocess_params, {}, postprocess_params

    def get_iterator(
        self,
        inputs: Any,
        num_workers: int,
        batch_size: int,
        preprocess_params: dict[str, Any],
        forward_params: dict[str, Any],
        postprocess_params: dict[str, Any],
    ) -> PipelineIterator:
        """:meth:`ChunkPipeline.get_iterator` with :func:`collate_clips` for ``batch_size > 1``.

        The generic pipeline collation pads only with a feature extractor and cannot pad the ``(1, K, L)``
        candidate pairs of videos with different candidates.
        """
        if batch_size == 1:
            return super().get_iterator(
                inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params
            )
        pad_token_id = getattr(self.tokenizer, "pad_token_id", None) or 0
        dataset = PipelineChunkIterator(inputs, self.preprocess, preprocess_params)
        dataloader = DataLoader(
            dataset,
            num_workers=min(num_workers, 1),  # chunks come from one iterator: more workers would duplicate them
            batch_size=batch_size,
            collate_fn=functools.partial(collate_clips, pad_token_id=pad_token_id),
        )
        model_iterator = PipelinePackIterator(dataloader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    # ------------------------------------------------------------------ preprocess

    def preprocess(
        self,
        inputs: dict[str, Any],
        num_frames: int | None = None,
        num_clips: int = 1,
        clip_duration: float | None = None,
        candidates: list[str] | None = None,
        video_fps: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield one model input per clip: ``pixel_values (1, T, C, H, W)``, the text inputs and ``is_last``."""
        if not isinstance(inputs, dict) or "video" not in inputs:
            raise ValueError(f"each input must be a video or a dict with a 'video' key, got {type(inputs).__name__}")
        candidates = _check_candidates(inputs.get("candidates", candidates))
        question = _check_question(inputs.get("question"), has_candidates=candidates is not None)
        self._check_model_supports(candidates)  # fail before decoding anything
        text_inputs = self._encode_text(question, candidates)

        # Imported on use, so registering the pipeline and the aggregation helpers do not load the decoding stack.
        from ..video.io import read_frames, read_video_metadata

        source = _as_video_source(inputs["video"])
        metadata = read_video_metadata(source)
        num_frames = num_frames or self._default_num_frames()
        clips = self._sample_clips(metadata, num_frames, num_clips, clip_duration, video_fps)
        # One decode for all clips: read_frames keeps the order of the indices and allows duplicates.
        frames = read_frames(source, [index for clip in clips for index in clip])
        start = 0
        for clip_number, clip in enumerate(clips):
            pixel_values = self._encode_frames(frames[start : start + len(clip)])
            start += len(clip)
            yield {"pixel_values": pixel_values, **text_inputs, "is_last": clip_number == len(clips) - 1}

    def _check_model_supports(self, candidates: list[str] | None) -> None:
        name = type(self.model).__name__
        if candidates is not None:
            if not callable(getattr(self.model, "score_candidates", None)):
                raise ValueError(
                    f"{name} has no score_candidates(pixel_values, input_ids, attention_mask) method, so it cannot "
                    "rank `candidates`; use a model that scores video-text pairs, or drop `candidates`."
                )
        elif not getattr(self.model.config, "answer_list", None):
            raise ValueError(
                f"{name} has no `config.answer_list` (the answer string of each logit), which open-ended video QA "
                "needs; set it on the config, or pass `candidates=[...]` for multiple choice."
            )

    def _default_num_frames(self) -> int:
        for owner, attribute in (
            (self.processor, "frames_per_video"),
            (self.processor, "num_frames"),
            (self.model.config, "num_frames"),
        ):
            value = getattr(owner, attribute, None)
            if isinstance(value, int) and value > 0:
                return value
        raise ValueError(
            f"cannot tell how many frames per clip {type(self.model).__name__} expects: pass `num_frames=`"
        )

    def _sample_clips(
        self,
        metadata: VideoMetadata,
        num_frames: int,
        num_clips: int,
        clip_duration: float | None,
        video_fps: float | None,
    ) -> list[list[int]]:
        """Frame indices of each clip, deterministic (evaluation mode)."""
        from ..video.sampling import FrameSampler

        short_video = getattr(self.processor, "short_video", "error")
        if num_clips == 1:
            sampler = FrameSampler("uniform", num_frames=num_frames, short_video=short_video)
            return [list(sampler(metadata, training=False))]
        fps = metadata.fps if metadata.fps > 0 else video_fps
        if fps is None:
            raise ValueError(
                f"num_clips={num_clips} places clips of clip_duration seconds, which needs the frame rate of "
                f"{metadata.source}; decoded frames carry none: pass video_fps="
            )
        if clip_duration is None:
            clip_duration = float(getattr(self.processor, "clip_duration", None) or DEFAULT_CLIP_DURATION)
        sampler = FrameSampler(
            "clips",
            num_frames=num_clips * num_frames,
            num_clips=num_clips,
            frames_per_clip=num_frames,
            clip_duration=clip_duration,
            short_video=short_video,
        )
        return [list(clip) for clip in sampler(metadata, fps=fps, training=False)]

    def _encode_frames(self, frames: np.ndarray) -> torch.Tensor:
        """Decoded uint8 frames ``(T, H, W, 3)`` -> ``pixel_values (1, T, C, H, W)`` in the model's dtype."""
        transform = getattr(self.processor, "transform", None)
        if callable(transform):
            pixel_values = transform(frames, training=False).unsqueeze(0)
        else:
            # The processor samples again from the frames it gets; that is the identity only when the counts match.
            pixel_values = self.processor(videos=frames, return_tensors="pt")["pixel_values"]
            if pixel_values.shape[1] != len(frames):
                raise ValueError(
                    f"the processor turned a clip of {len(frames)} frames into {pixel_values.shape[1]}: pass "
                    f"num_frames={pixel_values.shape[1]}, or give the processor a `transform` that keeps the frames"
                )
        return pixel_values.to(self.dtype) if self.dtype is not None else pixel_values

    def _encode_text(self, question: str | None, candidates: list[str] | None) -> dict[str, Any]:
        """Question tokens ``(1, L)`` (open-ended), or the candidate encodings ``(K, L)`` plus their strings."""
        if candidates is None:
            encoding = self.processor(text=question, return_tensors="pt")
            return {"input_ids": encoding["input_ids"], "attention_mask": encoding["attention_mask"]}
        if self.tokenizer is None:
            raise ValueError(f"ranking candidates needs a tokenizer; the {TASK} pipeline has none")
        max_length = getattr(self.processor, "max_length", None)
        texts = (candidates,) if question is None else ([question] * len(candidates), candidates)
        encoding = self.tokenizer(
            *texts, padding=True, truncation=max_length is not None, max_length=max_length, return_tensors="pt"
        )
        return {
            "input_ids": encoding["input_ids"].unsqueeze(0),  # (1, K, L)
            "attention_mask": encoding["attention_mask"].unsqueeze(0),
            "candidates": candidates,
        }

    # ------------------------------------------------------------------ forward / postprocess

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        is_last = model_inputs.pop("is_last")
        text = {"input_ids": model_inputs["input_ids"], "attention_mask": model_inputs["attention_mask"]}
        if "candidates" in model_inputs:
            logits = _logits_of(self.model.score_candidates(pixel_values=model_inputs["pixel_values"], **text))
            return {"logits": logits, "candidates": model_inputs["candidates"], "is_last": is_last}
        logits = _logits_of(self.model(pixel_values=model_inputs["pixel_values"], **text))
        return {"logits": logits, "is_last": is_last}

    def postprocess(
        self, model_outputs: list[dict[str, Any]], top_k: int = 5, clip_aggregation: str = "mean"
    ) -> list[dict[str, Any]]:
        """Aggregate the clips' logits, softmax, and return the ``top_k`` answers, best first."""
        candidates = model_outputs[0].get("candidates")
        answers = candidates if candidates is not None else list(self.model.config.answer_list)
        # Candidate logits may be padded past this video's own candidates when batched with other videos.
        clip_logits = torch.cat([output["logits"] for output in model_outputs], dim=0)[:, : len(answers)]
        if clip_logits.shape[1] != len(answers):
            raise ValueError(
                f"{type(self.model).__name__} returned {clip_logits.shape[1]} logits per clip but has "
                f"{len(answers)} answers"
            )
        probabilities = clip_probabilities(clip_logits, clip_aggregation)
        scores, indices = probabilities.topk(min(top_k, len(answers)))
        return [{"answer": answers[i], "score": s} for s, i in zip(scores.tolist(), indices.tolist())]


class _NoDefaultModel(dict):
    """The ``default`` entry of the task: there is no default checkpoint, so asking for one explains how to pass a
    model instead of failing with ``KeyError: 'default'`` (transformers reads ``task["default"]["model"]`` when
    ``pipeline()`` gets no model)."""

    MESSAGE = (
        f"The {TASK} pipeline has no default model: pass one, e.g. "
        f'pipeline("{TASK}", model="path/to/saved_qa_model") (a folder written by save_pretrained, with its '
        f'processor saved next to it), or pipeline("{TASK}", model=model, processor=processor).'
    )

    def __contains__(self, key: object) -> bool:
        return key == "model" or super().__contains__(key)

    def __getitem__(self, key: str) -> Any:
        if key == "model":
            raise ValueError(self.MESSAGE)
        return super().__getitem__(key)


def register_pipeline() -> None:
    """Register :class:`VideoQuestionAnsweringPipeline` as ``"video-question-answering"``. Idempotent.

    Models load with ``AutoModelForVisualQuestionAnswering`` (where QA-head classes are registered) and fall back to
    ``AutoModel``.
    """
    registered = PIPELINE_REGISTRY.supported_tasks.get(TASK)
    if registered is not None and registered.get("impl") is VideoQuestionAnsweringPipeline:
        return  # registering again would only log an "overwriting" warning
    PIPELINE_REGISTRY.register_pipeline(
        TASK,
        pipeline_class=VideoQuestionAnsweringPipeline,
        pt_model=(AutoModelForVisualQuestionAnswering, AutoModel),
        default=_NoDefaultModel(),
        type="multimodal",
    )


__all__ = [
    "CLIP_AGGREGATIONS",
    "VideoQuestionAnsweringPipeline",
    "aggregate_clip_logits",
    "clip_probabilities",
    "collate_clips",
    "register_pipeline",
]
