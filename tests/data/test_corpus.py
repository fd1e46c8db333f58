"""Tests of the built-in moving-shapes corpus: determinism, playable files, splits, labels, multi-frame questions."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from hf_videolang.cli import main as cli_main
from hf_videolang.data.corpus import (
    COLOURS,
    DIRECTIONS,
    OPPOSITE,
    QUESTION_TYPES,
    SPLITS,
    TASKS,
    Distractor,
    ShapeVideoSpec,
    assign_splits,
    canonical_caption,
    corpus_video_spec,
    make_corpus,
    msrvtt_choices,
    render_video,
)

NUM_VIDEOS, NUM_FRAMES, SIZE, FPS, SEED = 12, 16, 32, 8, 3


def _make(out: Path, seed: int = SEED) -> dict[str, str]:
    return make_corpus(out, num_videos=NUM_VIDEOS, seed=seed, num_frames=NUM_FRAMES, size=SIZE, fps=FPS)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, str]:
    return _make(tmp_path_factory.mktemp("corpus"))


def _jsonl(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _specs(corpus: dict[str, str]) -> dict[str, ShapeVideoSpec]:
    """Video path -> spec, rebuilt from videos.jsonl."""
    specs = {}
    for record in _jsonl(corpus["video_index"]):
        video, _ = record.pop("video"), record.pop("split")
        distractor = record.pop("distractor")
        specs[video] = ShapeVideoSpec(
            **{**record, "start": tuple(record["start"]), "background": tuple(record["background"])},
            distractor=Distractor(**{**distractor, "center": tuple(distractor["center"])}) if distractor else None,
        )
    return specs


def _decode(path: str | Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def _annotation_files() -> list[str]:
    return [f"{split}_{task}" for split in SPLITS for task in TASKS] + ["answers", "video_index"]


def test_same_seed_gives_identical_files_and_frames(corpus, tmp_path):
    again = _make(tmp_path / "again")
    for name in _annotation_files():
        assert Path(again[name]).read_bytes() == Path(corpus[name]).read_bytes(), name
    video = "videos/video00000.mp4"
    np.testing.assert_array_equal(_decode(Path(again["root"]) / video), _decode(Path(corpus["root"]) / video))


def test_other_seed_differs(corpus, tmp_path):
    other = _make(tmp_path / "other", seed=SEED + 1)
    assert Path(other["train_retrieval"]).read_bytes() != Path(corpus["train_retrieval"]).read_bytes()
    video = "videos/video00000.mp4"
    assert not np.array_equal(_decode(Path(other["root"]) / video), _decode(Path(corpus["root"]) / video))


def test_video_only_depends_on_seed_and_index():
    small, _ = corpus_video_spec(SEED, 5, NUM_FRAMES, SIZE)
    again, _ = corpus_video_spec(SEED, 5, NUM_FRAMES, SIZE)
    assert small == again
    assert small != corpus_video_spec(SEED, 6, NUM_FRAMES, SIZE)[0]


def test_videos_are_playable_and_show_the_rendered_frames(corpus):
    specs = _specs(corpus)
    assert len(specs) == NUM_VIDEOS
    for video, spec in specs.items():
        path = Path(corpus["root"]) / video
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.name, stream.width, stream.height) == ("h264", SIZE, SIZE)
            assert float(stream.average_rate) == FPS
        frames = _decode(path)
        assert frames.shape == (NUM_FRAMES, SIZE, SIZE, 3)
        # Lossy H.264 on tiny frames: close to the rendering, far from a black or shifted video.
        rendered = render_video(spec).astype(np.float64)
        assert np.abs(frames - rendered).mean() < 6.0
        assert np.abs(frames - np.roll(rendered, 4, axis=2)).mean() > np.abs(frames - rendered).mean()


def test_splits_are_disjoint_and_cover_every_video(corpus):
    all_videos = {f"videos/{p.name}" for p in Path(corpus["videos"]).glob("*.mp4")}
    assert len(all_videos) == NUM_VIDEOS
    per_split = {}
    for split in SPLITS:
        per_task = [{r["video"] for r in _jsonl(corpus[f"{split}_{task}"])} for task in TASKS]
        assert per_task[0] == per_task[1] == per_task[2], split
        per_split[split] = per_task[0]
    assert set.union(*per_split.values()) == all_videos
    assert sum(len(v) for v in per_split.values()) == NUM_VIDEOS
    sizes = json.loads(Path(corpus["corpus"]).read_text())["splits"]
    assert sizes == {split: len(videos) for split, videos in per_split.items()}
    index = {r["video"]: r["split"] for r in _jsonl(corpus["video_index"])}
    assert all(index[v] == split for split, videos in per_split.items() for v in videos)


@pytest.mark.parametrize("num_videos, expected", [(300, (210, 45, 45)), (12, (8, 2, 2)), (3, (1, 1, 1))])
def test_split_sizes(num_videos, expected):
    names = assign_splits(num_videos, seed=0)
    assert tuple(names.count(split) for split in SPLITS) == expected
    assert names == assign_splits(num_videos, seed=0)
    if num_videos > 3:  # 3 videos have only 6 orders, so another seed may repeat one
        assert names != assign_splits(num_videos, seed=1)


def test_qa_answers_are_in_the_vocabulary_and_match_the_video(corpus):
    answers = json.loads(Path(corpus["answers"]).read_text())
    assert len(answers) == len(set(answers))
    specs = _specs(corpus)
    train_counts = {}
    for split in SPLITS:
        for item in _jsonl(corpus[f"{split}_qa"]):
            assert item["answer"] in answers and item["type"] in QUESTION_TYPES
            spec = specs[item["video"]]
            if item["type"] == "direction":
                assert item["answer"] == spec.direction
            elif item["type"] == "shape":
                assert item["answer"] == spec.shape
            elif item["question"].endswith("at the end?"):
                assert item["answer"] == spec.end_colour
            elif item["type"] == "colour":
                assert item["answer"] == spec.colour
            elif item["question"].startswith("what happens"):
                assert item["answer"] == spec.event
            if split == "train":
                train_counts[item["answer"]] = train_counts.get(item["answer"], 0) + 1
    counts = [train_counts.get(a, 0) for a in answers]
    assert counts == sorted(counts, reverse=True)


def test_minimal_pair_choices_change_one_attribute_each(corpus):
    specs = _specs(corpus)
    for split in SPLITS:
        captions = {}
        for record in _jsonl(corpus[f"{split}_retrieval"]):
            captions.setdefault(record["video"], []).append(record["caption"])
        for item in _jsonl(corpus[f"{split}_mc_minimal_pairs"]):
            spec, options = specs[item["video"]], item["options"]
            assert len(options) == len(set(options)) == 5
            truth = options[item["answer"]]
            assert truth == canonical_caption(spec) == captions[item["video"]][0]
            assert len(captions[item["video"]]) == 3
            # One negative is the same caption with the direction reversed: only motion tells them apart.
            reverse = truth.replace(f" {spec.direction} ", f" {OPPOSITE[spec.direction]} ", 1)
            assert reverse in options and reverse != truth
            for option in options:
                if option != truth:
                    assert sum(a != b for a, b in zip(option.split(), truth.split())) >= 1


def test_msrvtt_choices_draw_wrong_options_from_other_videos(corpus):
    specs = _specs(corpus)
    truths = {video: canonical_caption(spec) for video, spec in specs.items()}
    num_options = min(5, len(set(truths.values())))
    answers = []
    for split in SPLITS:
        items = _jsonl(corpus[f"{split}_mc"])
        assert [item["video"] for item in items] == [i["video"] for i in _jsonl(corpus[f"{split}_mc_minimal_pairs"])]
        for item in items:
            options = item["options"]
            assert len(options) == len(set(options)) == num_options
            assert options[item["answer"]] == truths[item["video"]]
            others = {caption for video, caption in truths.items() if video != item["video"]}
            assert set(options) - {truths[item["video"]]} <= others
            answers.append(item["answer"])
    assert num_options == 5 and len(set(answers)) > 1  # the true option is not always in the same place


def test_msrvtt_choices_validate_and_are_deterministic():
    captions = [f"caption {i}" for i in range(8)]
    first = msrvtt_choices(captions, np.random.default_rng(3))
    assert first == msrvtt_choices(captions, np.random.default_rng(3))
    assert all(options[answer] == captions[i] for i, (options, answer) in enumerate(first))
    with pytest.raises(ValueError, match="needs 5 distinct captions"):
        msrvtt_choices(["a", "b", "c", "a"], np.random.default_rng(0))


def test_multi_frame_questions_are_marked(corpus):
    specs = _specs(corpus)
    items = [item for split in SPLITS for item in _jsonl(corpus[f"{split}_qa"])]
    for item in items:
        spec = specs[item["video"]]
        expected = {
            "direction": True,
            "event": True,
            "colour": spec.event == "changes colour",
            "shape": spec.distractor is not None,
        }[item["type"]]
        assert item["needs_multiple_frames"] is expected, item
    assert {item["type"] for item in items} == set(QUESTION_TYPES)


def _centroid(frame: np.ndarray, colour: str) -> np.ndarray:
    """(x, y) centroid of the pixels nearest to ``colour`` among all palette colours (and close to it)."""
    palette = np.array(list(COLOURS.values()), dtype=np.float64)
    distances = np.linalg.norm(frame[..., None, :].astype(np.float64) - palette, axis=-1)
    target = list(COLOURS).index(colour)
    mask = (distances.argmin(-1) == target) & (distances[..., target] < 70)
    rows, cols = np.nonzero(mask)
    assert len(rows) >= 4, f"{colour} shape not found"
    return np.array([cols.mean() + 0.5, rows.mean() + 0.5])


def test_two_decoded_frames_give_the_direction(corpus):
    """Between the first and the middle frame the shape moves ``speed * event_frame`` pixels the stated way."""
    for video, spec in _specs(corpus).items():
        frames = _decode(Path(corpus["root"]) / video)
        first, middle = 0, spec.event_frame
        shift = _centroid(frames[middle], spec.colour_at(middle)) - _centroid(frames[first], spec.colour_at(first))
        expected = spec.speed * middle * np.asarray(DIRECTIONS[spec.direction])
        np.testing.assert_allclose(shift, expected, atol=1.5, err_msg=video)
        assert abs(expected[spec.axis]) > 1.5  # so the tolerance cannot hide a move the wrong way


def test_one_frame_of_unknown_time_does_not_give_the_direction():
    """From the shape's position in one random frame, the best left/right guess is close to chance.

    The Bayes-optimal rule is estimated by a majority vote per position bin on one half of the specs and
    scored on the other; the two-frame rule (sign of the displacement) is always right.
    """
    rng = np.random.default_rng(0)
    positions, is_left, two_frame_right = [], [], []
    for index in range(3000):
        spec, _ = corpus_video_spec(0, index, 32, 64)
        if spec.direction not in ("left", "right"):
            continue
        x = spec.centers()[:, 0]
        positions.append(x[rng.integers(spec.num_frames)])
        is_left.append(spec.direction == "left")
        two_frame_right.append((x[spec.event_frame] < x[0]) == is_left[-1])
    positions, is_left = np.array(positions), np.array(is_left)
    bins = np.digitize(positions, np.linspace(0, 64, 17))
    half = len(positions) // 2
    vote = {b: is_left[:half][bins[:half] == b].mean() >= 0.5 for b in np.unique(bins[:half])}
    accuracy = np.mean([vote.get(b, True) == y for b, y in zip(bins[half:], is_left[half:])])
    assert 0.4 < is_left.mean() < 0.6
    assert accuracy < 0.6
    assert all(two_frame_right)


def test_reuse_without_overwrite(corpus):
    before = Path(corpus["corpus"]).stat().st_mtime_ns
    again = make_corpus(corpus["root"], num_videos=NUM_VIDEOS, seed=SEED, num_frames=NUM_FRAMES, size=SIZE,
                        fps=FPS, overwrite=False)
    assert again == corpus and Path(corpus["corpus"]).stat().st_mtime_ns == before


@pytest.mark.parametrize("kwargs, message", [
    ({"num_videos": 2}, "num_videos"), ({"size": 33}, "even"), ({"num_frames": 2}, "num_frames"),
    ({"seed": -1}, "seed"), ({"fps": 0}, "fps"),
])
def test_invalid_arguments(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_corpus(tmp_path, **kwargs)
    assert not (tmp_path / "videos").exists()


def test_cli_writes_a_corpus(tmp_path, capsys):
    assert cli_main(["make-corpus", "--out", str(tmp_path), "--num-videos", "3", "--num-frames", "8",
                     "--size", "16"]) == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert json.loads(Path(printed["corpus"]).read_text())["num_videos"] == 3
    assert len(list(Path(printed["videos"]).glob("*.mp4"))) == 3


def test_interrupted_run_with_another_seed_is_refused(tmp_path):
    from hf_videolang.data.annotations import load_answer_list, load_corpus
    from hf_videolang.errors import IncompleteCorpusError

    paths = _make(tmp_path / "corpus", seed=0)
    assert len(load_corpus(paths["root"], "train", "retrieval")) > 0
    # A second run with another seed, killed after writing some of its videos: it deleted the marker first.
    Path(paths["corpus"]).unlink()
    _make(tmp_path / "scratch", seed=1)
    for index in range(3):
        name = f"video{index:05d}.mp4"
        (Path(paths["videos"]) / name).write_bytes((Path(tmp_path / "scratch" / "videos") / name).read_bytes())
    message = r"holds an incomplete corpus: corpus.json, which make-corpus writes last, is missing"
    with pytest.raises(IncompleteCorpusError, match=message):
        load_corpus(paths["root"], "train", "retrieval")
    with pytest.raises(IncompleteCorpusError, match="make-corpus --out"):
        load_answer_list(paths["root"])
    # A marker with a video gone is refused too.
    again = _make(tmp_path / "corpus", seed=0)
    (Path(again["videos"]) / "video00004.mp4").unlink()
    with pytest.raises(IncompleteCorpusError, match=r"1 files missing \(video00004.mp4\)"):
        load_corpus(again["root"], "test", "qa")


def test_same_seed_gives_identical_video_bytes(corpus, tmp_path):
    again = _make(tmp_path / "again")
    for index in range(NUM_VIDEOS):
        name = f"videos/video{index:05d}.mp4"
        assert (Path(again["root"]) / name).read_bytes() == (Path(corpus["root"]) / name).read_bytes(), name
    assert Path(again["corpus"]).read_bytes() == Path(corpus["corpus"]).read_bytes()


def _digest_of_twelve_videos(path: str) -> str:
    import hashlib

    from hf_videolang.video.writer import write_video

    digest = hashlib.sha256()
    for index in range(12):
        spec, _ = corpus_video_spec(3, index, 16, 32)
        write_video(path, render_video(spec), fps=8)
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def test_videos_are_byte_identical_across_processes(tmp_path):
    # x264's macroblock tree made 2 of these 12 videos differ from one process to the next (never within one).
    import inspect
    import subprocess
    import sys
    import textwrap

    script = "\n".join([
        "import hashlib, sys", "from pathlib import Path",
        "from hf_videolang.data.corpus import corpus_video_spec, render_video",
        textwrap.dedent(inspect.getsource(_digest_of_twelve_videos)),
        "print(_digest_of_twelve_videos(sys.argv[1]))",
    ])
    children = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / f"v{k}.mp4")],
                                 stdout=subprocess.PIPE, text=True) for k in range(2)]
    runs = [child.communicate()[0].strip() for child in children]
    assert all(child.returncode == 0 for child in children)
    runs.append(_digest_of_twelve_videos(str(tmp_path / "here.mp4")))
    assert len(set(runs)) == 1, runs
