"""``VideoTextCollator``: turns dataset rows into model batches inside DataLoader workers.

Decoding is the expensive part of video training, so it happens in the collator (which runs in the workers), not in
the dataset: rows carry only a video path and text. In training, randomness (frame sampling, crops, masks, caption
choice) comes from one ``torch.Generator`` per *row*, seeded from ``(seed, epoch, worker base seed, the row's
content, how often this collator has seen that row this epoch)``. A row therefore gets the same frames and masks
whichever batch, worker or rank it lands in, so ``N`` ranks with ``B`` rows each build exactly the batches of one
rank with ``N * B`` rows; a run is reproducible for a given seed, and every epoch draws new numbers.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import get_worker_info
from transformers import BatchFeature

from ..errors import VideoError
from ..processing_utils import VideoTextProcessor
from ..video.io import describe_source

TASKS = ("retrieval", "qa", "mc", "pretrain")
IGNORE_INDEX = -100
ON_BAD_VIDEO = ("raise", "skip")
logger = logging.getLogger(__name__)


class VideoTextCollator:
    """Collate dataset rows ``{"video": ..., <text fields>}`` into a model batch with a :class:`VideoTextProcessor`.

    Args:
        processor: samples, decodes, transforms, masks and tokenizes.
        task: which text fields the rows carry and which labels to build:

            - ``"retrieval"`` / ``"pretrain"``: ``"caption"`` (a string, or a list of which one is drawn in
              training and the first used at evaluation).
            - ``"qa"``: ``"question"`` and ``"answer"``; ``labels`` is the index of the answer in ``answer_list``
              (-100 for an answer outside it, which the cross-entropy ignores).
            - ``"mc"``: ``"options"`` (the same number per row) and ``"answer"`` (an option index or the option
              text); ``input_ids`` / ``attention_mask`` are ``(B, num_options, L)`` and ``labels`` the answer index.
        training: random sampling / augmentation / masking (True) or the deterministic evaluation path (False).
        seed: base seed of the per-call generators (a non-negative integer).
        answer_list: the answer vocabulary of a QA model (``model.config.answer_list``); required for ``"qa"``.
        return_masks: add ``bool_masked_pos``. Default: in training, when ``processor.mask_ratio > 0`` and the
            processor makes that kind of mask (``processor.makes_visual_masks``).
        return_mlm: add ``mlm_input_ids`` / ``mlm_labels``. Default: ``task == "pretrain"`` in training with
            ``processor.mlm_probability > 0``.
        on_bad_video: ``"raise"`` (default): a video that cannot be read stops the run with its
            :class:`~hf_videolang.errors.VideoError`. ``"skip"``: the row is replaced by another row of the same batch
            whose video reads (its text and label too), a warning names the file, and :attr:`num_skipped` counts the
            replacements over all DataLoader workers. A batch with no readable video still raises.

    Every batch also has ``video_ids`` ``(B,)``: the same integer for rows with the same video, in every batch and on
    every rank (a hash of the path, :func:`stable_video_ids`), so that contrastive and matching losses, whose
    negatives span the gathered global batch, do not treat two captions of one video as negatives.

    :meth:`set_epoch` (which :class:`~hf_videolang.training.VideoTextTrainer` calls at each epoch) gives every
    epoch new random numbers.
    """

    def __init__(
        self,
        processor: VideoTextProcessor,
        task: str = "retrieval",
        training: bool = True,
        seed: int = 0,
        answer_list: Sequence[str] | None = None,
        return_masks: bool | None = None,
        return_mlm: bool | None = None,
        on_bad_video: str = "raise",
    ) -> None:
        if on_bad_video not in ON_BAD_VIDEO:
            raise ValueError(f"on_bad_video must be one of {ON_BAD_VIDEO}, got {on_bad_video!r}")
        self.on_bad_video = on_bad_video
        # Shared with the DataLoader workers (created before they start), so the parent sees their skips.
        self._skipped = multiprocessing.Value("q", 0) if on_bad_video == "skip" else None
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if task == "qa" and answer_list is None:
            raise ValueError("task='qa' needs answer_list (the model's config.answer_list)")
        if not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.processor = processor
        self.task = task
        self.training = training
        self.seed = seed
        self.answer_to_index = {answer: index for index, answer in enumerate(answer_list or [])}
        if return_masks is None:
            return_masks = training and processor.mask_ratio > 0 and processor.makes_visual_masks
        if return_mlm is None:
            return_mlm = training and task == "pretrain" and processor.mlm_probability > 0
        self.return_masks = return_masks
        self.return_mlm = return_mlm
        self.epoch = 0
        self._num_calls = 0
        self._seen: Counter[int] = Counter()  # row key -> times collated in this epoch

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch``: rows draw new random numbers (the per-epoch count of each row restarts)."""
        self.epoch = int(epoch)
        self._seen.clear()

    def next_generator(self) -> torch.Generator:
        """A generator for a whole batch, seeded from ``(seed, epoch, worker id, worker base seed, call count)``
        (for collators that randomize per batch rather than per row, e.g. video-only batches)."""
        info = get_worker_info()
        worker_id = 0 if info is None else info.id + 1
        entropy = [self.seed, self.epoch, worker_id, _worker_base_seed(), self._num_calls]
        self._num_calls += 1
        return _generator(entropy)

    def row_generator(self, row: Mapping[str, Any]) -> torch.Generator:
        """The generator of one row, seeded from ``(seed, epoch, worker base seed, row key, times seen)``.

        It does not depend on the row's batch, worker or rank. In a DataLoader worker the base seed is the one torch
        draws for the worker pool when an epoch starts (from the main process RNG, which ``Trainer`` seeds alike on
        every rank), so workers that restart each epoch still draw new numbers; the same row collated twice in an
        epoch (a duplicate) draws new numbers too. The per-epoch counts cost one dictionary entry per distinct row
        this process (or worker) has collated in the epoch.
        """
        key = row_key(row)
        occurrence = self._seen[key]
        self._seen[key] += 1
        return _generator([self.seed, self.epoch, _worker_base_seed(), key, occurrence])

    @property
    def num_skipped(self) -> int:
        """Rows replaced because their video could not be read (``on_bad_video="skip"``), in all workers."""
        return 0 if self._skipped is None else int(self._skipped.value)

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> BatchFeature:
        """Collate ``rows`` (a list of dataset rows) into one batch; see the class docstring for the keys."""
        if not rows:
            raise ValueError("cannot collate an empty list of rows")
        if self.on_bad_video == "raise":
            return self._collate(rows)
        rows = list(rows)
        for _ in range(3):  # a replacement can fail under training's random sampling too: a few rounds
            try:
                return self._collate(rows)
            except VideoError as error:
                rows = self._replace_bad_rows(rows, error)
        return self._collate(rows)

    def _replace_bad_rows(self, rows: list[Mapping[str, Any]], error: VideoError) -> list[Mapping[str, Any]]:
        """``rows`` with each row whose video fails replaced by the next row (cyclically) whose video reads."""
        bad: dict[int, str] = {}
        for index, row in enumerate(rows):
            video = _field(row, "video", index)
            try:
                self.processor.load_video(video, training=False)
            except VideoError as row_error:
                bad[index] = str(row_error)
        if not bad:  # only the training sampler hit the damage: the row the error names
            bad = {i: str(error) for i, row in enumerate(rows) if str(error).startswith(describe_source(row["video"]))}
        good = [index for index in range(len(rows)) if index not in bad]
        if not bad or not good:
            raise error
        replaced = list(rows)
        for index, reason in bad.items():
            substitute = next((g for g in good if g > index), good[0])
            replaced[index] = rows[substitute]
            logger.warning("skipping row %d of the batch, its video cannot be read (%s); using row %d instead",
                           index, reason, substitute)
        assert self._skipped is not None
        with self._skipped.get_lock():
            self._skipped.value += len(bad)
        return replaced

    def _collate(self, rows: Sequence[Mapping[str, Any]]) -> BatchFeature:
        videos = [_field(row, "video", index) for index, row in enumerate(rows)]
        if self.training:
            # One processor call per row with the row's own generator, then text padded to the batch's longest.
            generators = [self.row_generator(row) for row in rows]
            texts, labels, num_options = self._texts_and_labels(rows, generators)
            per_row = num_options or 1
            parts = [
                self.processor(videos=[videos[index]], text=texts[index * per_row : (index + 1) * per_row],
                               training=True, return_masks=self.return_masks, return_mlm=self.return_mlm,
                               generator=generator)
                for index, generator in enumerate(generators)
            ]  # fmt: skip
            batch = _concatenate(parts, self.processor.tokenizer)
        else:
            texts, labels, num_options = self._texts_and_labels(rows, [None] * len(rows))
            batch = self.processor(
                videos=videos,
                text=texts,
                training=False,
                return_masks=self.return_masks,
                return_mlm=self.return_mlm,
            )
        if num_options is not None:
            for key in ("input_ids", "attention_mask", "mlm_input_ids", "mlm_labels"):
                if key in batch:
                    batch[key] = batch[key].view(len(rows), num_options, -1)
        if labels is not None:
            batch["labels"] = torch.tensor(labels, dtype=torch.long)
        batch["video_ids"] = stable_video_ids(videos)
        return batch

    # ------------------------------------------------------------------ per task

    def _texts_and_labels(
        self, rows: Sequence[Mapping[str, Any]], generators: Sequence[torch.Generator | None]
    ) -> tuple[list[str], list[int] | None, int | None]:
        if self.task in ("retrieval", "pretrain"):
            captions = [self._pick_caption(_field(row, "caption", i), generators[i]) for i, row in enumerate(rows)]
            return captions, None, None
        if self.task == "qa":
            questions = [_field(row, "question", i) for i, row in enumerate(rows)]
            answers = [str(_field(row, "answer", i)).strip() for i, row in enumerate(rows)]
            labels = [self.answer_to_index.get(answer, IGNORE_INDEX) for answer in answers]
            return questions, labels, None
        return self._multiple_choice(rows)

    def _pick_caption(self, caption: str | Sequence[str], generator: torch.Generator | None) -> str:
        if isinstance(caption, str):
            return caption
        if not caption:
            raise ValueError("a row has an empty list of captions")
        if not self.training:
            return caption[0]
        return caption[int(torch.randint(len(caption), (1,), generator=generator))]

    def _multiple_choice(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[int], int]:
        texts: list[str] = []
        labels: list[int] = []
        num_options = None
        for index, row in enumerate(rows):
            options = list(_field(row, "options", index))
            if num_options is None:
                num_options = len(options)
            if len(options) != num_options or not options:
                raise ValueError(
                    f"row {index} has {len(options)} options, but multiple-choice batches need the same non-zero "
                    f"number of options per row (first row: {num_options})"
                )
            labels.append(_answer_index(_field(row, "answer", index), options, index))
            texts.extend(options)
        return texts, labels, num_options



class AnswerTargetCollator:
    """Adds target answers ``answer_input_ids`` / ``answer_attention_mask`` ``(B, L_a)`` to QA batches, for models
    that generate the answer (UMT's answer decoder, ALBEF-style) rather than classify it.

    Wraps a :class:`VideoTextCollator` with ``task="qa"``; the index ``labels`` it adds is dropped, because a
    generative head learns from the answer tokens (any answer, in the list or not), and so is ``video_ids``.

    Args:
        collator: the QA collator that decodes, samples, transforms and tokenizes the questions.
        max_length: answer length in tokens, special tokens included (the authors' ``max_a_len``: 5).
    """

    def __init__(self, collator: VideoTextCollator, max_length: int = 5) -> None:
        if collator.task != "qa":
            raise ValueError(f"AnswerTargetCollator wraps a task='qa' collator, got task={collator.task!r}")
        self.collator = collator
        self.max_length = max_length

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> BatchFeature:
        batch = self.collator(rows)
        batch.pop("labels", None)
        batch.pop("video_ids", None)
        tokenizer = self.collator.processor.tokenizer
        # The authors' `answer + " " + eos` (eos "[SEP]"), as UMT's `tokenize_answers`.
        answers = [f"{str(_field(row, 'answer', index)).strip()} {tokenizer.sep_token or ''}".strip()
                   for index, row in enumerate(rows)]  # fmt: skip
        tokens = tokenizer(answers, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch["answer_input_ids"] = tokens["input_ids"]
        batch["answer_attention_mask"] = tokens["attention_mask"]
        return batch


class NegativeCaptionCollator:
    """Adds each video's given negative captions ``negative_input_ids`` / ``negative_attention_mask`` ``(B, K, L)`` to
    video-text batches, from a ``"negative_captions"`` column (K strings per row, e.g. the caption with one
    attribute swapped: another colour, shape, direction or event). Models that take them (``UmtForPreTraining``)
    score them as extra negatives of their video in VTC (NegCLIP's hard negatives) and VTM.

    Wraps a :class:`VideoTextCollator` with ``task="retrieval"`` or ``"pretrain"``; the captions are tokenized as
    the processor tokenizes captions (longest in the batch, truncated to ``processor.max_length``).
    """

    def __init__(self, collator: VideoTextCollator) -> None:
        if collator.task not in ("retrieval", "pretrain"):
            raise ValueError(f"NegativeCaptionCollator wraps a retrieval or pretrain collator, got {collator.task!r}")
        self.collator = collator

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> BatchFeature:
        negatives = [list(_field(row, "negative_captions", index)) for index, row in enumerate(rows)]
        counts = {len(row_negatives) for row_negatives in negatives}
        if len(counts) != 1 or 0 in counts:
            raise ValueError(f"NegativeCaptionCollator: every row needs the same non-zero number of "
                             f"negative_captions, got {sorted(len(n) for n in negatives)}")  # fmt: skip
        batch = self.collator(rows)
        processor = self.collator.processor
        tokens = processor.tokenizer([text for row_negatives in negatives for text in row_negatives], padding="longest",
                                     truncation=True, max_length=processor.max_length, return_tensors="pt")  # fmt: skip
        batch["negative_input_ids"] = tokens["input_ids"].view(len(rows), counts.pop(), -1)
        batch["negative_attention_mask"] = tokens["attention_mask"].view_as(batch["negative_input_ids"])
        return batch


class MatchingPairsCollator:
    """Retrieval batches for a cross-encoder matching head with labels (ClipBERT's retrieval fine-tuning, appendix B):
    each video with its own caption (``labels`` 1) and with ``num_negatives`` captions of other videos of the same
    batch (``labels`` 0); the video's ``pixel_values`` row is repeated for each of its texts.

    Wraps a :class:`VideoTextCollator` with ``task="retrieval"``. The authors (``itm_neg_size=1``) draw the negative
    caption from the whole training set; here it comes from the batch, so a batch needs two distinct videos.

    Returns ``pixel_values`` ``(B * (1 + k), ...)``, ``input_ids`` / ``attention_mask``, ``labels`` and ``video_ids``.
    """

    def __init__(self, collator: VideoTextCollator, num_negatives: int = 1) -> None:
        if collator.task != "retrieval":
            raise ValueError(f"MatchingPairsCollator wraps a task='retrieval' collator, got task={collator.task!r}")
        if not isinstance(num_negatives, int) or num_negatives < 1:
            raise ValueError(f"MatchingPairsCollator: num_negatives must be a positive integer, got {num_negatives!r}")
        self.collator = collator
        self.num_negatives = num_negatives

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> BatchFeature:
        generator = self.collator.next_generator()
        batch = self.collator(rows)
        ids = batch["video_ids"]
        size = len(ids)
        pixel_rows, text_rows, labels = [], [], []
        for row in range(size):
            others = torch.nonzero(ids != ids[row]).flatten()
            if len(others) == 0:
                raise ValueError(
                    "MatchingPairsCollator: every row of the batch shows the same video, so there is no negative "
                    "caption; use a larger batch or shuffle the rows."
                )
            picks = others[torch.randint(len(others), (self.num_negatives,), generator=generator)].tolist()
            pixel_rows += [row] * (1 + self.num_negatives)
            text_rows += [row, *picks]
            labels += [1] + [0] * self.num_negatives
        pixel_index, text_index = torch.tensor(pixel_rows), torch.tensor(text_rows)
        return BatchFeature({
            "pixel_values": batch["pixel_values"][pixel_index],
            "input_ids": batch["input_ids"][text_index],
            "attention_mask": batch["attention_mask"][text_index],
            "labels": torch.tensor(labels, dtype=torch.long),
            "video_ids": ids[pixel_index],
        })  # fmt: skip


class CaptionWordsCollator:
    """Batches for E-ViLM's semantic VQ tokenizer (E-ViLM §3.3, Eq. 6): the frames, and as ``labels`` the multi-hot
    ``(B, vocab_size)`` words of each caption, special tokens excluded.

    Wraps a :class:`VideoTextCollator` with ``task="retrieval"``; its other fields are dropped, since the tokenizer
    reads only frames.
    """

    def __init__(self, collator: VideoTextCollator) -> None:
        if collator.task != "retrieval":
            raise ValueError(f"CaptionWordsCollator wraps a task='retrieval' collator, got task={collator.task!r}")
        self.collator = collator
        tokenizer = collator.processor.tokenizer
        self.vocab_size = len(tokenizer)
        self.ignore_ids = [tokenizer.convert_tokens_to_ids(token) for token in tokenizer.all_special_tokens]

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        from ..models.evilm_tokenizer import caption_word_targets

        batch = self.collator(rows)
        labels = caption_word_targets(batch["input_ids"], self.vocab_size, self.ignore_ids)
        return {"pixel_values": batch["pixel_values"], "labels": labels}


def _worker_base_seed() -> int:
    info = get_worker_info()
    return 0 if info is None else info.seed - info.id


def _generator(entropy: Sequence[int]) -> torch.Generator:
    state = np.random.SeedSequence([int(value) for value in entropy]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def _digest(value: Any) -> bytes:
    """Bytes that identify ``value`` across processes: paths and text by value, arrays by shape and content."""
    if isinstance(value, (str, os.PathLike)):
        return b"s" + os.fspath(value).encode("utf-8", "surrogatepass")
    if isinstance(value, bytes):
        return b"b" + hashlib.blake2b(value, digest_size=16).digest()
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        contiguous = np.ascontiguousarray(value)
        return b"a" + repr((contiguous.shape, contiguous.dtype.str)).encode() + hashlib.blake2b(
            contiguous.tobytes(), digest_size=16).digest()  # fmt: skip
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda item: str(item[0]))
        return b"m" + b"|".join(_digest(key) + b"=" + _digest(item) for key, item in items)
    if isinstance(value, (list, tuple)):
        return b"l" + b"|".join(_digest(item) for item in value)
    if value is None or isinstance(value, (bool, int, float, np.integer, np.floating)):
        return b"n" + repr(value).encode()
    return b"o" + str(id(value)).encode()  # file objects, PIL images: by identity (this process only)


def _hash63(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


def row_key(row: Mapping[str, Any]) -> int:
    """A 63-bit key of a row's content (video source and text fields), equal in every process for equal rows.

    A video given as a path enters by its file name only, so that the same corpus written to another folder (each
    demo writes its own) draws the same frames and masks."""
    row = dict(row)
    if isinstance(row.get("video"), (str, os.PathLike)):
        row["video"] = os.path.basename(os.fspath(row["video"]))
    return _hash63(_digest(row))


def stable_video_ids(videos: Sequence[Any]) -> torch.Tensor:
    """A 63-bit id per video ``(B,)``, equal for equal sources in every batch and on every rank.

    Paths are compared by value, decoded arrays by content, file objects by identity. Under data parallelism the
    ids are gathered with the embeddings (``VideoTextContrastiveLoss``), so they must not depend on the batch.
    """
    return torch.tensor([_hash63(_digest(video)) for video in videos], dtype=torch.long)


def _concatenate(parts: Sequence[BatchFeature], tokenizer: Any) -> BatchFeature:
    """Concatenate one-row processor outputs along dim 0; text fields are padded to the longest first."""
    pad_values = {"input_ids": tokenizer.pad_token_id or 0, "mlm_input_ids": tokenizer.pad_token_id or 0,
                  "attention_mask": 0, "mlm_labels": IGNORE_INDEX}  # fmt: skip
    left = getattr(tokenizer, "padding_side", "right") == "left"
    data = {}
    for key in parts[0]:
        tensors = [part[key] for part in parts]
        if key in pad_values:
            length = max(tensor.shape[-1] for tensor in tensors)
            padded = []
            for tensor in tensors:
                extra = length - tensor.shape[-1]
                padding = (extra, 0) if left else (0, extra)
                padded.append(torch.nn.functional.pad(tensor, padding, value=pad_values[key]))
            tensors = padded
        data[key] = torch.cat(tensors)
    return BatchFeature(data, tensor_type="pt")


def video_ids(videos: Sequence[Any]) -> torch.Tensor:
    """Integer id per distinct video of a batch ``(B,)``, in order of first appearance.

    Paths (and other hashable sources) are compared by value; decoded arrays and file objects by identity.
    """
    ids: dict[Any, int] = {}
    out = []
    for video in videos:
        key = video if isinstance(video, Hashable) and not hasattr(video, "read") else ("object", id(video))
        out.append(ids.setdefault(key, len(ids)))
    return torch.tensor(out, dtype=torch.long)


def _field(row: Mapping[str, Any], name: str, index: int) -> Any:
    try:
        return row[name]
    except KeyError:
        raise KeyError(f"row {index} has no {name!r} field (fields: {sorted(row)})") from None


def _answer_index(answer: Any, options: list[str], row_index: int) -> int:
    if isinstance(answer, (int, np.integer)) and not isinstance(answer, bool):
        if not 0 <= answer < len(options):
            raise ValueError(f"row {row_index}: answer index {answer} is out of range for {len(options)} options")
        return int(answer)
    try:
        return options.index(str(answer))
    except ValueError:
        raise ValueError(f"row {row_index}: answer {answer!r} is not one of the options {options}") from None
