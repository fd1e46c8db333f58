"""Loading video-text annotations (JSONL or JSON lists) into :class:`datasets.Dataset`, without decoding video.

One record per line (``.jsonl``) or one JSON list (``.json``), in the shapes of the public datasets and the
built-in corpus (:mod:`.corpus`):

- ``retrieval``: ``{"video", "caption"}``; ``caption`` may be a list (MSRVTT train), giving one row each.
- ``qa``: ``{"video", "question", "answer"}`` (MSRVTT-QA, MSVD-QA, TGIF-QA); optional ``"type"`` and
  ``"needs_multiple_frames"`` are kept.
- ``mc``: ``{"video", "options", "answer"}`` with ``answer`` the index of the right option; the MSRVTT-MC
  spelling ``"caption": [...]`` is accepted for ``options``.

Image-text pairs (CC3M-style) may name an ``"image"`` instead of a ``"video"``: JPEG and PNG files read as
1-frame videos. Video paths must stay inside the video root (the annotation file's folder by default) unless
``allow_outside_root=True``. Every problem names the file and line.

Every row also gets ``video_id``: an integer shared by all rows of the same video, for duplicate-aware
matching and retrieval metrics. Video paths are resolved to absolute paths but not opened: frames are
decoded on access (:func:`with_lazy_frames`) or by the collator in DataLoader workers.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from ..errors import EmptyTextError, VideoNotFoundError
from .corpus import SPLITS, check_corpus
from .corpus import TASKS as CORPUS_TASKS

FrameIndices = Sequence[int] | Sequence[Sequence[int]]

_FEATURES = {
    "retrieval": datasets.Features({"video": datasets.Value("string"), "video_id": datasets.Value("int64"),
                                    "caption": datasets.Value("string")}),
    "qa": datasets.Features({"video": datasets.Value("string"), "video_id": datasets.Value("int64"),
                             "question": datasets.Value("string"), "answer": datasets.Value("string"),
                             "type": datasets.Value("string"), "needs_multiple_frames": datasets.Value("bool")}),
    "mc": datasets.Features({"video": datasets.Value("string"), "video_id": datasets.Value("int64"),
                             "options": datasets.Sequence(datasets.Value("string")),
                             "answer": datasets.Value("int64")}),
}
_OPTIONAL_KEYS = {"retrieval": (), "qa": ("type", "needs_multiple_frames"), "mc": ()}
TASKS = tuple(_FEATURES)


def load_annotations(path_or_paths: str | os.PathLike | Sequence[str | os.PathLike],
                     video_root: str | os.PathLike | None = None, task: str = "retrieval",
                     check_videos: bool = True, allow_outside_root: bool = False) -> datasets.Dataset:
    """Read annotation files into one :class:`datasets.Dataset` of rows (no video is decoded).

    Args:
        path_or_paths: one annotation file or several (rows are concatenated in order).
        video_root: folder that relative video paths are resolved against; by default, the folder of the
            annotation file that names them.
        task: ``"retrieval"``, ``"qa"`` or ``"mc"``; fixes the required keys and the columns.
        check_videos: raise :class:`~hf_videolang.errors.VideoNotFoundError` for a video path that does not
            exist (one ``stat`` per distinct video).
        allow_outside_root: accept absolute paths and ``..`` that lead outside the video root (by default they
            are an error, so an annotation file cannot point the loader at arbitrary files).

    Returns:
        Columns ``video`` (absolute path), ``video_id`` (int, same for rows of one video) and the task's
        fields: ``caption``; ``question, answer, type, needs_multiple_frames`` (the last two None when the
        file lacks them); ``options, answer`` (int).

    Raises:
        ValueError: unknown task, invalid JSON, a missing key or a value of the wrong type; the message names
            the file and line. EmptyTextError: an empty or whitespace-only caption, question, answer or option.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    paths = [path_or_paths] if isinstance(path_or_paths, (str, os.PathLike)) else list(path_or_paths)
    if not paths:
        raise ValueError("no annotation file given")
    rows: list[dict[str, Any]] = []
    video_ids: dict[str, int] = {}
    for path in paths:
        path = Path(path)
        root = Path(video_root) if video_root is not None else path.parent
        count = len(rows)
        for where, record in _read_records(path):
            for row in _parse_record(record, task, where):
                row["video"] = _resolve_video(row["video"], root, where, check_videos, video_ids,
                                              allow_outside_root)
                row["video_id"] = video_ids.setdefault(row["video"], len(video_ids))
                rows.append(row)
        if len(rows) == count:
            raise ValueError(f"{path}: no annotations in file")
    features = _FEATURES[task]
    columns = {name: [row.get(name) for row in rows] for name in features}
    return datasets.Dataset.from_dict(columns, features=features)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON value")


def _loads(text: str) -> Any:
    """``json.loads`` without NaN / Infinity (Python accepts them, JSON does not)."""
    return json.loads(text, parse_constant=_reject_constant)


def _line_of(data: bytes | str, position: int) -> int:
    newline = b"\n" if isinstance(data, bytes) else "\n"
    return data[:position].count(newline) + 1


def _deepest_line(text: str) -> int:
    """Line where the bracket nesting of ``text`` is deepest (for "nested too deeply" errors in a .json file)."""
    depth = best = 0
    best_position = 0
    for position, char in enumerate(text):
        if char in "[{":
            depth += 1
            if depth > best:
                best, best_position = depth, position
        elif char in "]}":
            depth -= 1
    return _line_of(text, best_position)


def _parse_error(error: BaseException, text: str) -> tuple[int | None, str]:
    """(line within ``text`` when known, reason) of a JSON parsing failure."""
    if isinstance(error, json.JSONDecodeError):
        return error.lineno, f"invalid JSON ({error.msg})"
    if isinstance(error, RecursionError):
        return _deepest_line(text), "invalid JSON (nested too deeply)"
    reason = str(error)
    if "digits" in reason:  # int() refuses numbers of more than 4300 digits (CVE-2020-10735)
        match = re.search(r"\d{4300,}", text)
        return (_line_of(text, match.start()) if match else None), "a number with too many digits"
    return None, f"invalid JSON ({reason})"


def _read_records(path: Path) -> Iterator[tuple[str, Any]]:
    """Yield ``(location, record)``: ``"file:line"`` for JSONL, ``"file[index]"`` for a JSON list."""
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    data = path.read_bytes()
    if path.suffix == ".json":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}:{_line_of(data, error.start)}: not UTF-8 (byte {data[error.start]:#04x} at "
                             f"offset {error.start}); save the file as UTF-8") from None
        try:
            records = _loads(text)
        except (ValueError, RecursionError) as error:
            line, reason = _parse_error(error, text)
            raise ValueError(f"{path}:{line if line is not None else 1}: {reason}") from None
        if not isinstance(records, list):
            raise ValueError(f"{path}:1: a .json annotation file must hold a list of records, "
                             f"got {type(records).__name__}")
        for index, record in enumerate(records):
            yield f"{path}[{index}]", record
        return
    for line_number, raw in enumerate(data.splitlines(), start=1):
        where = f"{path}:{line_number}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"{where}: not UTF-8 (byte {raw[error.start]:#04x} at column {error.start + 1}); "
                             "save the file as UTF-8") from None
        if not line.strip():
            continue
        try:
            record = _loads(line)
        except (ValueError, RecursionError) as error:
            raise ValueError(f"{where}: {_parse_error(error, line)[1]}") from None
        yield where, record


def _parse_record(record: Any, task: str, where: str) -> list[dict[str, Any]]:
    """Validate one record and return its rows (several for a retrieval record with a caption list)."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if task == "mc" and "options" not in record and isinstance(record.get("caption"), list):
        record = {**record, "options": record["caption"]}  # MSRVTT-MC spelling
    if "image" in record:  # image-text pairs: an image is a 1-frame video
        if "video" in record:
            raise ValueError(f"{where}: give either 'video' or 'image', not both")
        record = {**record, "video": record["image"]}
    _check_strings(record, where)
    required = ("video", *{"retrieval": ("caption",), "qa": ("question", "answer"),
                           "mc": ("options", "answer")}[task])
    missing = [key for key in required if key not in record]
    if missing:
        raise ValueError(f"{where}: missing required key {missing[0]!r} for task {task!r} "
                         f"(record has keys {sorted(record)})")
    video = _text(record["video"], "video", where, ValueError)
    if task == "retrieval":
        captions = record["caption"]
        captions = captions if isinstance(captions, list) else [captions]
        if not captions:
            raise EmptyTextError(f"{where}: empty caption list")
        return [{"video": video, "caption": _text(c, "caption", where)} for c in captions]
    if task == "qa":
        answer = record["answer"]
        # Numeric answers ("how many": 3) become their text; NaN / Infinity never get here (rejected by the parser).
        answer = str(answer) if isinstance(answer, (int, float)) and not isinstance(answer, bool) else answer
        row = {"video": video, "question": _text(record["question"], "question", where),
               "answer": _text(answer, "answer", where)}
        question_type = record.get("type")
        if question_type is not None:
            row["type"] = _text(question_type, "type", where, ValueError)
        needs_multiple_frames = record.get("needs_multiple_frames")
        if needs_multiple_frames is not None and not isinstance(needs_multiple_frames, bool):
            raise ValueError(f"{where}: 'needs_multiple_frames' must be true, false or null, got "
                             f"{type(needs_multiple_frames).__name__} {needs_multiple_frames!r}")
        row["needs_multiple_frames"] = needs_multiple_frames
        row.setdefault("type", None)
        return [row]
    return [_parse_multiple_choice(video, record, where)]


def _parse_multiple_choice(video: str, record: dict[str, Any], where: str) -> dict[str, Any]:
    options = record["options"]
    if not isinstance(options, list) or len(options) < 2:
        raise ValueError(f"{where}: 'options' must be a list of at least 2 strings, got {options!r}")
    options = [_text(option, "option", where) for option in options]
    answer = record["answer"]
    if not isinstance(answer, int) or isinstance(answer, bool) or not 0 <= answer < len(options):
        raise ValueError(f"{where}: 'answer' must be an integer index in [0, {len(options)}), got {answer!r}")
    return {"video": video, "options": options, "answer": answer}


def _check_strings(value: Any, where: str) -> None:
    """Every string of a record is valid Unicode (JSON's ``\\ud800`` escapes give lone surrogates)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(f"{where}: the string {value!r} holds a lone surrogate ({error.reason}); "
                             "escape characters outside the BMP as a surrogate pair") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key, where)
            _check_strings(item, where)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item, where)


def _text(value: Any, name: str, where: str, empty_error: type[Exception] = EmptyTextError) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: {name!r} must be a string, got {type(value).__name__} {value!r}")
    if not value.strip():
        raise empty_error(f"{where}: empty {name} {value!r}")
    return value


def _resolve_video(video: str, root: Path, where: str, check: bool, known: dict[str, int],
                   allow_outside_root: bool = False) -> str:
    path = Path(video) if os.path.isabs(video) else root / video
    resolved = os.path.normpath(path.absolute())
    if not allow_outside_root:
        base = os.path.normpath(root.absolute())
        if os.path.commonpath([base, resolved]) != base:
            raise ValueError(f"{where}: video {video!r} is outside the video root {base}; pass "
                             "allow_outside_root=True to load_annotations to allow it, or video_root=...")
    if check and resolved not in known and not os.path.isfile(resolved):
        raise VideoNotFoundError(f"{where}: video {video!r} not found (looked for {resolved})")
    return resolved


def load_corpus(root: str | os.PathLike, split: str = "train", task: str = "retrieval") -> datasets.Dataset:
    """Load one split and task of a corpus written by :func:`~hf_videolang.data.corpus.make_corpus`."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if task not in CORPUS_TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {CORPUS_TASKS}")
    path = Path(root) / f"{split}_{task}.jsonl"
    if not path.is_file() and not (Path(root) / "corpus.json").is_file():
        raise FileNotFoundError(f"no corpus annotations at {path}; write the corpus first with "
                                f"`hf-videolang make-corpus --out {root}`")
    check_corpus(root)  # refuses a half-written folder (an interrupted make-corpus run)
    # The minimal-pair multiple choice has the rows of "mc".
    return load_annotations(path, task="mc" if task.startswith("mc") else task)


def load_answer_list(root: str | os.PathLike) -> list[str]:
    """The QA answer vocabulary of a corpus (``answers.json``), most frequent first."""
    path = Path(root) / "answers.json"
    if path.is_file():
        check_corpus(root)
    if not path.is_file():
        raise FileNotFoundError(f"no answer list at {path}; write the corpus first with "
                                f"`hf-videolang make-corpus --out {root}`")
    answers = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        raise ValueError(f"{path}: expected a JSON list of answer strings")
    return answers


class LazyFrameDecoder:
    """A ``Dataset.with_transform`` function that decodes frames of each accessed row.

    Picklable (a plain class, not a closure), so DataLoader workers can run it. ``sampler`` maps a
    :class:`~hf_videolang.video.io.VideoMetadata` to frame indices, e.g. a ``FrameSampler``; nested lists
    (clips) are flattened in order. By default, ``sample_uniform(metadata.num_frames, num_frames)``.
    """

    def __init__(self, num_frames: int = 8, sampler: Callable[[Any], FrameIndices] | None = None,
                 video_column: str = "video", frames_column: str = "frames") -> None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be positive, got {num_frames}")
        self.num_frames = num_frames
        self.sampler = sampler
        self.video_column = video_column
        self.frames_column = frames_column

    def indices(self, metadata: Any) -> list[int]:
        """Frame indices to decode for a video with ``metadata``."""
        if self.sampler is None:
            from ..video.sampling import sample_uniform

            return list(sample_uniform(metadata.num_frames, self.num_frames))
        chosen = self.sampler(metadata)
        flat: list[int] = []
        for item in chosen:
            flat.extend(item if isinstance(item, (list, tuple)) else [item])
        return [int(i) for i in flat]

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """Add ``frames_column``: one uint8 ``(num_indices, H, W, 3)`` array per row."""
        from ..video.io import read_frames, read_video_metadata

        frames: list[np.ndarray] = []
        for source in batch[self.video_column]:
            frames.append(read_frames(source, self.indices(read_video_metadata(source))))
        return {**batch, self.frames_column: frames}


def with_lazy_frames(dataset: datasets.Dataset, num_frames: int = 8,
                     sampler: Callable[[Any], FrameIndices] | None = None,
                     frames_column: str = "frames") -> datasets.Dataset:
    """Return ``dataset`` with a ``frames`` column decoded on access (``dataset[i]["frames"]``: uint8
    ``(num_frames, H, W, 3)``), via :func:`hf_videolang.video.io.read_frames`. Nothing is decoded now."""
    return dataset.with_transform(LazyFrameDecoder(num_frames, sampler, frames_column=frames_column))
