"""The built-in corpus: coloured shapes moving on a plain background, with one event half-way through.

It lets every method train and evaluate offline, with retrieval captions, open-ended QA and 5-way multiple
choice in the annotation shapes of MSRVTT / MSVD / TGIF, so the loaders in :mod:`.annotations` read it and
the public datasets alike. Each video shows one shape (circle / square / triangle) moving left, right, up
or down; at the middle frame it either changes colour, stops, or turns around. Half the videos add a static
distractor shape of another shape and colour.

Multiple choice comes in two sets: ``mc`` follows the MSR-VTT MC protocol (the true caption among the captions of
four other videos); ``mc_minimal_pairs`` is a harder diagnostic whose four wrong options each change one attribute
of the true caption (colour, shape, direction, event).

Some questions cannot be answered from one frame whose time is unknown: the direction of motion, the event,
the colour order of a shape that changes colour, and which of two shapes is the one moving. They are marked
``"needs_multiple_frames": true``. To keep the position of the shape from giving the direction away, every
trajectory is centred on a uniformly drawn point, so left- and right-moving shapes cover the same positions.

Layout written by :func:`make_corpus` (video paths in the JSONL files are relative to ``root``)::

    root/
      videos/video00000.mp4 ...   H.264 mp4, ``size`` x ``size``, ``num_frames`` frames at ``fps``
      videos.jsonl                one line per video: split and the attributes it was generated from
      {split}_retrieval.jsonl     {"video", "caption"}, one line per caption
      {split}_qa.jsonl            {"video", "question", "answer", "type", "needs_multiple_frames"}
      {split}_mc.jsonl            {"video", "options", "answer"} with ``answer`` the index of the true caption;
                                  wrong options: canonical captions of 4 other videos (MSR-VTT MC protocol)
      {split}_mc_minimal_pairs.jsonl  the same keys; each wrong option changes one attribute of the true caption
      answers.json                QA answer vocabulary, most frequent in train first
      corpus.json                 version, seed, sizes and split sizes (written last: its presence means complete)

Generation is deterministic: the same arguments give byte-identical files, videos included, with the same FFmpeg
and x264 build (see :mod:`hf_videolang.video.writer` for how, and for what another build changes).

``corpus.json`` is the completeness marker: :func:`make_corpus` deletes it first and writes it last, and
:func:`check_corpus` (called by ``load_corpus``) refuses a folder without it, e.g. one where a second run with
another seed was interrupted and left new videos next to the old captions.
Video ``i`` and its captions, questions and minimal-pair options depend only on ``(seed, i)``, so a small corpus is a
prefix of a larger one with the same seed; the wrong options of ``mc`` are drawn from all the other videos.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

# 1.1: MSR-VTT-protocol `mc`; the one-attribute options moved to `mc_minimal_pairs`. 1.2: byte-reproducible videos.
CORPUS_VERSION = "1.2"
SPLITS = ("train", "val", "test")
TASKS = ("retrieval", "qa", "mc", "mc_minimal_pairs")
HELD_OUT_FRACTION = 0.15  # of the videos in each of val and test; train gets the rest (70 / 15 / 15)

SHAPES = ("circle", "square", "triangle")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 200),
    "orange": (250, 130, 20),
    "white": (240, 240, 240),
}
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
# The event names double as the answers to "what happens to the <shape>?".
EVENTS = ("changes colour", "stops", "turns around")
# Dark backgrounds, so every shape colour (white included) stands out after H.264 compression.
BACKGROUNDS = ((20, 20, 24), (48, 48, 56), (28, 48, 36), (60, 36, 36), (72, 72, 72))
TEXTURES = ("plain", "stripes", "gradient")
QUESTION_TYPES = ("colour", "shape", "direction", "event")

_RADIUS_RANGE = (0.09, 0.13)  # shape radius, as a fraction of the frame side
_EXTENT_RANGE = (0.3, 0.5)  # distance travelled, as a fraction of the free space along the motion axis
_DISTRACTOR_PROBABILITY = 0.5
_VIDEO_NAME = "video{index:05d}.mp4"
_VIDEO_PATTERN = re.compile(r"video\d{5}\.mp4")
# The event phrase in a caption, one wording per caption template (the first is the canonical one).
_EVENT_PHRASES = {
    "changes colour": ("turns {end_colour}", "changes colour to {end_colour}", "becomes {end_colour}"),
    "stops": ("stops", "stops moving", "comes to a stop"),
    "turns around": ("turns around", "reverses direction", "moves back {opposite}"),
}
# What "does the <shape> ...?" asks for each event.
_EVENT_VERBS = {"changes colour": "change colour", "stops": "stop", "turns around": "turn around"}


@dataclass(frozen=True)
class Distractor:
    """A static shape that does not move: ``center`` is ``(x, y)`` in pixels, ``radius`` in pixels."""

    shape: str
    colour: str
    center: tuple[float, float]
    radius: float


@dataclass(frozen=True)
class ShapeVideoSpec:
    """Everything needed to render one video of the corpus.

    The shape starts at ``start`` (``(x, y)`` centre, pixels) and moves ``speed`` pixels per frame along
    ``direction``. At :attr:`event_frame` (the middle frame) the ``event`` happens: ``"changes colour"``
    (it is drawn in ``end_colour`` from then on and keeps moving), ``"stops"``, or ``"turns around"``
    (it moves back the way it came). ``end_colour == colour`` unless the event is a colour change.
    """

    shape: str
    colour: str
    end_colour: str
    direction: str
    event: str
    start: tuple[float, float]
    speed: float
    radius: float
    background: tuple[int, int, int]
    texture: str
    distractor: Distractor | None
    num_frames: int
    frame_size: int

    @property
    def event_frame(self) -> int:
        """Index of the first frame after the event (the middle frame)."""
        return self.num_frames // 2

    @property
    def axis(self) -> int:
        """0 when the shape moves horizontally (x changes), 1 when vertically (y changes)."""
        return 0 if DIRECTIONS[self.direction][0] else 1

    def steps(self) -> np.ndarray:
        """``(num_frames,)`` float: how many steps of ``speed`` the shape has advanced at each frame."""
        return _event_steps(self.event, self.num_frames)

    def centers(self) -> np.ndarray:
        """``(num_frames, 2)`` float: the ``(x, y)`` centre of the moving shape in every frame."""
        unit = np.asarray(DIRECTIONS[self.direction], dtype=np.float64)
        return np.asarray(self.start, dtype=np.float64) + self.speed * self.steps()[:, None] * unit

    def colour_at(self, frame_index: int) -> str:
        """Name of the moving shape's colour in frame ``frame_index``."""
        return self.colour if frame_index < self.event_frame else self.end_colour

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly attributes (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))


def _event_steps(event: str, num_frames: int) -> np.ndarray:
    t = np.arange(num_frames, dtype=np.float64)
    half = num_frames // 2
    if event == "stops":
        return np.minimum(t, half)
    if event == "turns around":
        return np.where(t <= half, t, 2 * half - t)
    return t


# ----------------------------------------------------------------------------------------------- sampling


def _round(value: float) -> float:
    # The rounded value is both written to videos.jsonl and rendered, so the metadata is exact.
    return round(float(value), 3)


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def sample_video_spec(rng: np.random.Generator, num_frames: int, frame_size: int) -> ShapeVideoSpec:
    """Draw the attributes of one video.

    The trajectory covers a random ``_EXTENT_RANGE`` share of the free space along its axis and is centred
    on a uniformly drawn point, so the positions a left-moving shape visits are visited by right-moving
    shapes as well: one frame does not tell the direction.
    """
    shape = _pick(rng, SHAPES)
    colour = _pick(rng, tuple(COLOURS))
    direction = _pick(rng, tuple(DIRECTIONS))
    event = _pick(rng, EVENTS)
    end_colour = _pick(rng, [c for c in COLOURS if c != colour]) if event == "changes colour" else colour

    radius = _round(rng.uniform(*_RADIUS_RANGE) * frame_size)
    low, high = _center_range(radius, frame_size)
    extent = rng.uniform(*_EXTENT_RANGE) * (high - low)
    speed = _round(extent / _event_steps(event, num_frames).max())
    extent = speed * _event_steps(event, num_frames).max()
    middle = rng.uniform(low + extent / 2, high - extent / 2)
    spec_axis = 0 if DIRECTIONS[direction][0] else 1
    sign = DIRECTIONS[direction][spec_axis]
    start = [0.0, 0.0]
    start[spec_axis] = _round(middle - sign * extent / 2)
    start[1 - spec_axis] = _round(rng.uniform(low, high))

    background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    texture = _pick(rng, TEXTURES)
    distractor = None
    if rng.random() < _DISTRACTOR_PROBABILITY:
        distractor = _sample_distractor(rng, shape, (colour, end_colour), start, spec_axis, radius, frame_size)
    return ShapeVideoSpec(shape=shape, colour=colour, end_colour=end_colour, direction=direction, event=event,
                          start=(start[0], start[1]), speed=speed, radius=radius, background=background,
                          texture=texture, distractor=distractor, num_frames=num_frames, frame_size=frame_size)


def _center_range(radius: float, frame_size: int) -> tuple[float, float]:
    """Where a centre may lie so that a shape of ``radius`` stays inside the frame (1 px margin)."""
    reach = 1.15 * radius + 1.0  # triangles reach 1.15 radius from their centre
    return reach, frame_size - reach


def _sample_distractor(rng: np.random.Generator, target_shape: str, target_colours: tuple[str, str],
                       start: list[float], axis: int, radius: float, frame_size: int) -> Distractor | None:
    """A static shape off the target's path (so they never overlap), or None when there is no room."""
    shape = _pick(rng, [s for s in SHAPES if s != target_shape])
    colour = _pick(rng, [c for c in COLOURS if c not in target_colours])
    own_radius = _round(rng.uniform(*_RADIUS_RANGE) * frame_size)
    low, high = _center_range(own_radius, frame_size)
    gap = 1.15 * (radius + own_radius) + 2.0
    lane = start[1 - axis]
    free = [(low, min(high, lane - gap)), (max(low, lane + gap), high)]
    free = [(a, b) for a, b in free if b > a]
    if not free:
        return None
    lengths = np.array([b - a for a, b in free])
    a, b = free[int(rng.choice(len(free), p=lengths / lengths.sum()))]
    center = [0.0, 0.0]
    center[1 - axis] = _round(rng.uniform(a, b))
    center[axis] = _round(rng.uniform(low, high))
    return Distractor(shape=shape, colour=colour, center=(center[0], center[1]), radius=own_radius)


# ---------------------------------------------------------------------------------------------- rendering


def _shape_mask(shape: str, center: np.ndarray, radius: float, frame_size: int) -> np.ndarray:
    """Boolean ``(frame_size, frame_size)`` mask of a shape, sampled at pixel centres."""
    coords = np.arange(frame_size, dtype=np.float64) + 0.5
    dx = coords[None, :] - center[0]
    dy = coords[:, None] - center[1]
    if shape == "circle":
        return dx**2 + dy**2 <= radius**2
    if shape == "square":
        half = 0.886 * radius  # same area as the circle (sqrt(pi) / 2)
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if shape == "triangle":
        half = 1.15 * radius  # apex up; its width grows linearly to the base
        return (dy >= -half) & (dy <= half) & (np.abs(dx) <= (dy + half) / 2)
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _background(spec: ShapeVideoSpec) -> np.ndarray:
    size = spec.frame_size
    frame = np.empty((size, size, 3), dtype=np.float64)
    frame[:] = spec.background
    if spec.texture == "stripes":
        rows, cols = np.indices((size, size))
        frame += 12.0 * (((rows + cols) // 4) % 2)[..., None]
    elif spec.texture == "gradient":
        frame += np.linspace(0.0, 30.0, size)[:, None, None]
    return np.clip(frame, 0, 255).astype(np.uint8)


def render_video(spec: ShapeVideoSpec) -> np.ndarray:
    """Render ``spec`` as uint8 RGB frames ``(num_frames, frame_size, frame_size, 3)``."""
    frames = np.repeat(_background(spec)[None], spec.num_frames, axis=0)
    if spec.distractor is not None:
        d = spec.distractor
        mask = _shape_mask(d.shape, np.asarray(d.center), d.radius, spec.frame_size)
        frames[:, mask] = COLOURS[d.colour]
    for index, center in enumerate(spec.centers()):
        mask = _shape_mask(spec.shape, center, spec.radius, spec.frame_size)
        frames[index, mask] = COLOURS[spec.colour_at(index)]
    return frames


# ------------------------------------------------------------------------------------------------- text


def _event_phrase(spec: ShapeVideoSpec, variant: int) -> str:
    template = _EVENT_PHRASES[spec.event][variant]
    return template.format(end_colour=spec.end_colour, opposite=OPPOSITE[spec.direction])


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def canonical_caption(spec: ShapeVideoSpec) -> str:
    """The first caption of a video; also the true option of its multiple-choice item."""
    return _caption(spec, template=0)


def _caption(spec: ShapeVideoSpec, template: int) -> str:
    colour, shape, direction = spec.colour, spec.shape, spec.direction
    event = _event_phrase(spec, template)
    d = spec.distractor
    if template == 0:
        past = f" past {_article(d.colour)} {d.colour} {d.shape}" if d else ""
        return f"{_article(colour)} {colour} {shape} moves {direction}{past} and then {event}"
    if template == 1:
        still = f" while {_article(d.colour)} {d.colour} {d.shape} stays still" if d else ""
        return f"the {colour} {shape} moving {direction} {event} half-way{still}"
    prefix = f"next to {_article(d.colour)} {d.colour} {d.shape}, " if d else ""
    return f"{prefix}a {shape} that is {colour} goes {direction}, then it {event}"


def captions_for(spec: ShapeVideoSpec) -> list[str]:
    """Three captions of one video, each in its own template and wording of the event."""
    return [_caption(spec, template) for template in range(3)]


def questions_for(spec: ShapeVideoSpec, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Open-ended QA items (without the ``"video"`` key) about colour, shape, direction and event.

    ``needs_multiple_frames`` is True when one frame, whose time is unknown, cannot answer the question.
    """
    shape = spec.shape
    items = [_qa("what shape is moving?", shape, "shape", spec.distractor is not None)]
    if spec.event == "changes colour":
        items.append(_qa(f"what colour is the {shape} at first?", spec.colour, "colour", True))
        items.append(_qa(f"what colour is the {shape} at the end?", spec.end_colour, "colour", True))
    else:
        items.append(_qa(f"what colour is the {shape}?", spec.colour, "colour", False))
    first = " first" if spec.event == "turns around" else ""
    items.append(_qa(f"what direction does the {shape} move{first}?", spec.direction, "direction", True))
    items.append(_qa(f"what happens to the {shape}?", spec.event, "event", True))
    # Yes/no: ask about the true event or another one with equal probability.
    asked = spec.event if rng.random() < 0.5 else _pick(rng, [e for e in EVENTS if e != spec.event])
    answer = "yes" if asked == spec.event else "no"
    items.append(_qa(f"does the {shape} {_EVENT_VERBS[asked]}?", answer, "event", True))
    return items


def _qa(question: str, answer: str, kind: str, needs_multiple_frames: bool) -> dict[str, Any]:
    return {"question": question, "answer": answer, "type": kind, "needs_multiple_frames": needs_multiple_frames}


def answer_space() -> list[str]:
    """Every answer a QA item of the corpus can have."""
    return [*COLOURS, *SHAPES, *DIRECTIONS, *EVENTS, "yes", "no"]


def minimal_pair_choice_for(spec: ShapeVideoSpec, rng: np.random.Generator) -> tuple[list[str], int]:
    """Five options: the canonical caption and four captions that each change one attribute.

    The changed attributes are the (first) colour, the shape, the direction (reversed, so only motion tells
    them apart) and the event. Returns ``(options, index_of_true_caption)``.
    """
    other_colours = [c for c in COLOURS if c not in (spec.colour, spec.end_colour)]
    other_shapes = [s for s in SHAPES if s != spec.shape and (spec.distractor is None or s != spec.distractor.shape)]
    new_event = _pick(rng, [e for e in EVENTS if e != spec.event])
    new_end = _pick(rng, [c for c in COLOURS if c != spec.colour]) if new_event == "changes colour" else spec.colour
    negatives = [
        _replace(spec, colour=_pick(rng, other_colours),
                 end_colour=spec.end_colour if spec.event == "changes colour" else None),
        _replace(spec, shape=_pick(rng, other_shapes)),
        _replace(spec, direction=OPPOSITE[spec.direction]),
        _replace(spec, event=new_event, end_colour=new_end),
    ]
    options = [canonical_caption(spec), *(canonical_caption(n) for n in negatives)]
    order = rng.permutation(len(options))
    return [options[i] for i in order], int(np.flatnonzero(order == 0)[0])


def msrvtt_choices(
    true_captions: list[str], rng: np.random.Generator, num_options: int = 5
) -> list[tuple[list[str], int]]:
    """The MSR-VTT multiple-choice protocol (JSFusion, Yu et al. 2018, as used by UMT §4.3): for each video, its
    caption among ``num_options - 1`` captions of other videos drawn at random (distinct from the true one).

    Args:
        true_captions: the canonical caption of every video, in order.

    Returns:
        ``(options, index_of_true_caption)`` per video.
    """
    items = []
    for index, truth in enumerate(true_captions):
        others = sorted({c for i, c in enumerate(true_captions) if i != index and c != truth})
        if len(others) < num_options - 1:
            raise ValueError(f"multiple choice needs {num_options} distinct captions, got {len(others) + 1}")
        chosen = [others[i] for i in rng.choice(len(others), size=num_options - 1, replace=False)]
        options = [truth, *chosen]
        order = rng.permutation(num_options)
        items.append(([options[i] for i in order], int(np.flatnonzero(order == 0)[0])))
    return items


def _replace(spec: ShapeVideoSpec, **changes: Any) -> ShapeVideoSpec:
    values = asdict(spec)
    values["distractor"] = spec.distractor
    values.update({k: v for k, v in changes.items() if v is not None})
    if "colour" in changes and changes.get("end_colour") is None:
        values["end_colour"] = values["colour"]  # a shape that does not change colour keeps the new one
    return ShapeVideoSpec(**values)


# -------------------------------------------------------------------------------------------- the corpus


def assign_splits(num_videos: int, seed: int) -> list[str]:
    """Split name of every video: a seeded shuffle cut 70 / 15 / 15, at least one video per split."""
    if num_videos < len(SPLITS):
        raise ValueError(f"num_videos must be at least {len(SPLITS)} (one per split), got {num_videos}")
    held_out = max(1, round(HELD_OUT_FRACTION * num_videos))
    num_train = num_videos - 2 * held_out
    if num_train < 1:
        held_out, num_train = 1, num_videos - 2
    order = np.random.default_rng([seed, 1]).permutation(num_videos)
    names = ["train"] * num_videos
    for rank, index in enumerate(order):
        if rank >= num_train:
            names[index] = "val" if rank < num_train + held_out else "test"
    return names


def corpus_video_spec(seed: int, index: int, num_frames: int, size: int) -> tuple[ShapeVideoSpec, np.random.Generator]:
    """The spec of video ``index`` and the generator that goes on to draw its QA and MC items."""
    rng = np.random.default_rng([seed, 0, index])
    return sample_video_spec(rng, num_frames, size), rng


def _validate(num_videos: int, seed: int, num_frames: int, size: int, fps: int) -> None:
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if num_frames < 4:
        raise ValueError(f"num_frames must be at least 4 (the event happens half-way), got {num_frames}")
    if size < 16 or size % 2:
        raise ValueError(f"size must be an even number of pixels >= 16 (H.264 yuv420p), got {size}")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    assign_splits(num_videos, seed)


def corpus_paths(out: str | os.PathLike) -> dict[str, str]:
    """Paths of every file of a corpus rooted at ``out`` (name -> path), as :func:`make_corpus` returns them."""
    root = Path(out)
    paths = {"root": root, "videos": root / "videos", "video_index": root / "videos.jsonl"}
    for split in SPLITS:
        for task in TASKS:
            paths[f"{split}_{task}"] = root / f"{split}_{task}.jsonl"
    paths["answers"] = root / "answers.json"
    paths["corpus"] = root / "corpus.json"
    return {name: str(path) for name, path in paths.items()}


def check_corpus(root: str | os.PathLike) -> dict[str, Any]:
    """Raise :class:`~hf_videolang.errors.IncompleteCorpusError` unless ``root`` holds a complete corpus.

    Complete: ``corpus.json`` (written last) is there and readable, and every annotation file and every video it
    implies exists. Returns the parsed ``corpus.json``.
    """
    from ..errors import IncompleteCorpusError

    paths = corpus_paths(root)
    rewrite = f"write it again with `hf-videolang make-corpus --out {root}` (same --seed and sizes as before)"
    marker = Path(paths["corpus"])
    if not marker.is_file():
        what = "is not a corpus folder" if not Path(paths["video_index"]).exists() else (
            "holds an incomplete corpus: corpus.json, which make-corpus writes last, is missing, so a make-corpus "
            "run into this folder was interrupted and its videos and annotations may come from different runs")
        raise IncompleteCorpusError(f"{root}: {what}; {rewrite}")
    try:
        config = json.loads(marker.read_text(encoding="utf-8"))
        num_videos = int(config["num_videos"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise IncompleteCorpusError(f"{marker}: unreadable completeness marker ({error}); {rewrite}") from None
    missing = [name for name, path in paths.items() if name != "root" and not Path(path).exists()]
    missing += [_VIDEO_NAME.format(index=i) for i in range(num_videos)
                if not (Path(paths["videos"]) / _VIDEO_NAME.format(index=i)).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise IncompleteCorpusError(f"{root}: the corpus is incomplete: {len(missing)} files missing ({shown}); "
                                    f"{rewrite}")
    return config


def make_corpus(out: str | os.PathLike, num_videos: int = 300, seed: int = 0, num_frames: int = 32,
                size: int = 64, fps: int = 8, overwrite: bool = True) -> dict[str, str]:
    """Write the synthetic moving-shapes corpus to ``out`` and return the paths of its files (name -> path).

    Args:
        out: output folder (created if needed).
        num_videos: number of videos (at least 3: one per split).
        seed: the corpus seed; the same arguments give identical files.
        num_frames: frames per video (the event happens at frame ``num_frames // 2``).
        size: frame width and height in pixels (even).
        fps: frame rate written into the mp4 files.
        overwrite: when False and ``out`` already holds a complete corpus made with the same arguments,
            return its paths without writing anything.
    """
    _validate(num_videos, seed, num_frames, size, fps)
    from ..video.writer import write_video

    paths = corpus_paths(out)
    config = {"name": "hf-videolang-moving-shapes", "version": CORPUS_VERSION, "seed": seed,
              "num_videos": num_videos, "num_frames": num_frames, "size": size, "fps": fps}
    if not overwrite and _existing_config(paths["corpus"]) == config:
        return paths

    root, video_dir = Path(paths["root"]), Path(paths["videos"])
    video_dir.mkdir(parents=True, exist_ok=True)
    Path(paths["corpus"]).unlink(missing_ok=True)  # an interrupted run must not look complete
    splits = assign_splits(num_videos, seed)
    names = {_VIDEO_NAME.format(index=i) for i in range(num_videos)}
    for stale in video_dir.iterdir():
        if _VIDEO_PATTERN.fullmatch(stale.name) and stale.name not in names:
            stale.unlink()

    records: dict[str, dict[str, list[dict[str, Any]]]] = {s: {t: [] for t in TASKS} for s in SPLITS}
    index_lines = []
    for index in range(num_videos):
        spec, rng = corpus_video_spec(seed, index, num_frames, size)
        video = f"videos/{_VIDEO_NAME.format(index=index)}"
        write_video(root / video, render_video(spec), fps=fps)
        split = records[splits[index]]
        split["retrieval"] += [{"video": video, "caption": caption} for caption in captions_for(spec)]
        split["qa"] += [{"video": video, **item} for item in questions_for(spec, rng)]
        options, answer = minimal_pair_choice_for(spec, rng)
        split["mc_minimal_pairs"].append({"video": video, "options": options, "answer": answer})
        index_lines.append({"video": video, "split": splits[index], **spec.to_dict()})

    # MSR-VTT-protocol multiple choice: wrong options are the canonical captions of other videos of the corpus (five
    # options, fewer in a corpus of fewer distinct captions).
    true_captions = {item["video"]: item["options"][item["answer"]]
                     for name in SPLITS for item in records[name]["mc_minimal_pairs"]}  # fmt: skip
    num_options = min(5, len(set(true_captions.values())))
    if num_options >= 2:
        videos = list(true_captions)
        choices = dict(zip(videos, msrvtt_choices(list(true_captions.values()), np.random.default_rng([seed, 1]),
                                                  num_options)))  # fmt: skip
        for name in SPLITS:
            records[name]["mc"] = [{"video": item["video"], "options": choices[item["video"]][0],
                                    "answer": choices[item["video"]][1]}
                                   for item in records[name]["mc_minimal_pairs"]]  # fmt: skip
    _write_jsonl(paths["video_index"], index_lines)
    for split in SPLITS:
        for task in TASKS:
            _write_jsonl(paths[f"{split}_{task}"], records[split][task])
    answers = _answer_vocabulary(records["train"]["qa"])
    Path(paths["answers"]).write_text(json.dumps(answers, indent=0) + "\n")
    config["splits"] = {split: splits.count(split) for split in SPLITS}
    Path(paths["corpus"]).write_text(json.dumps(config, indent=2) + "\n")
    return paths


def _answer_vocabulary(train_items: list[dict[str, Any]]) -> list[str]:
    """The whole answer space, most frequent in train first (ties alphabetical), so no answer is missing."""
    counts = Counter(item["answer"] for item in train_items)
    return sorted(answer_space(), key=lambda answer: (-counts[answer], answer))


def _existing_config(path: str) -> dict[str, Any] | None:
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    config.pop("splits", None)
    return config


def _write_jsonl(path: str, records: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
