"""Tests of annotation loading: columns, path resolution, errors naming file and line, lazy decoding."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import av
import numpy as np
import pytest

from hf_videolang.data.annotations import load_annotations, load_answer_list, load_corpus, with_lazy_frames
from hf_videolang.data.corpus import make_corpus
from hf_videolang.errors import EmptyTextError, VideoNotFoundError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, str]:
    return make_corpus(tmp_path_factory.mktemp("corpus"), num_videos=4, seed=0, num_frames=8, size=32)


def _write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def video_dir(tmp_path) -> Path:
    """A folder with two files named like videos; loading must not open them (they are not mp4s)."""
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (folder / name).write_bytes(b"not a video")
    return folder


def test_load_corpus_rows_match_the_files(corpus):
    for split in ("train", "val", "test"):
        lines = [json.loads(line) for line in Path(corpus[f"{split}_qa"]).read_text().splitlines()]
        qa = load_corpus(corpus["root"], split, "qa")
        assert len(qa) == len(lines)
        assert qa["question"] == [r["question"] for r in lines]
        assert qa["needs_multiple_frames"] == [r["needs_multiple_frames"] for r in lines]
        assert qa["video"] == [str(Path(corpus["root"], r["video"]).absolute()) for r in lines]
    retrieval = load_corpus(corpus["root"], "train", "retrieval")
    assert set(retrieval.column_names) == {"video", "video_id", "caption"}
    # video_id is shared by the captions of one video and differs between videos.
    assert len(set(zip(retrieval["video"], retrieval["video_id"]))) == len(set(retrieval["video"]))
    assert len(set(retrieval["video_id"])) == len(set(retrieval["video"]))
    mc = load_corpus(corpus["root"], "test", "mc")
    assert all(0 <= a < len(o) for a, o in zip(mc["answer"], mc["options"]))


def test_load_corpus_errors(corpus, tmp_path):
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_corpus(corpus["root"], "dev", "qa")
    with pytest.raises(FileNotFoundError, match="make-corpus"):
        load_corpus(tmp_path, "train", "qa")
    assert "yes" in load_answer_list(corpus["root"])


def test_relative_paths_resolve_against_the_annotation_folder_or_video_root(tmp_path, video_dir):
    annotations = _write_jsonl(tmp_path / "ann.jsonl", [{"video": "clips/a.mp4", "caption": "a cat"},
                                                         {"video": str(video_dir / "b.mp4"), "caption": "a dog"}])
    dataset = load_annotations(annotations)
    assert dataset["video"] == [str(video_dir / "a.mp4"), str(video_dir / "b.mp4")]
    elsewhere = _write_jsonl(tmp_path / "sub" / "ann.jsonl", [{"video": "a.mp4", "caption": "a cat"}])
    assert load_annotations(elsewhere, video_root=video_dir)["video"] == [str(video_dir / "a.mp4")]


def test_several_files_share_video_ids(tmp_path, video_dir):
    first = _write_jsonl(tmp_path / "one.jsonl", [{"video": "clips/a.mp4", "caption": ["a cat", "a kitten"]}])
    second = _write_jsonl(video_dir / "two.jsonl", [{"video": "b.mp4", "caption": "a dog"},
                                                    {"video": "a.mp4", "caption": "a cat again"}])
    dataset = load_annotations([first, second])
    assert dataset["caption"] == ["a cat", "a kitten", "a dog", "a cat again"]
    assert dataset["video_id"] == [0, 0, 1, 0]


def test_public_dataset_spellings(tmp_path, video_dir):
    # MSRVTT-MC writes the options under "caption"; QA answers may be numbers (TGIF count).
    mc = _write_jsonl(video_dir / "mc.jsonl", [{"video": "a.mp4", "caption": ["x y", "y z", "z w"], "answer": 2}])
    assert load_annotations(mc, task="mc")[0]["options"] == ["x y", "y z", "z w"]
    qa = _write_jsonl(video_dir / "qa.jsonl", [{"video": "a.mp4", "question": "how many?", "answer": 3}])
    row = load_annotations(qa, task="qa")[0]
    assert row["answer"] == "3" and row["type"] is None and row["needs_multiple_frames"] is None
    listed = video_dir / "list.json"
    listed.write_text(json.dumps([{"video": "b.mp4", "caption": "a dog"}]))
    assert load_annotations(listed)["caption"] == ["a dog"]


@pytest.mark.parametrize("task, record, key", [
    ("retrieval", {"video": "a.mp4"}, "caption"),
    ("qa", {"video": "a.mp4", "question": "what?"}, "answer"),
    ("mc", {"options": ["a b", "c d"], "answer": 0}, "video"),
])
def test_missing_key_names_file_and_line(video_dir, task, record, key):
    good = {"retrieval": {"video": "a.mp4", "caption": "ok"}, "qa": {"video": "a.mp4", "question": "q", "answer": "a"},
            "mc": {"video": "a.mp4", "options": ["a b", "c d"], "answer": 1}}[task]
    path = _write_jsonl(video_dir / "ann.jsonl", [good, good, record])
    with pytest.raises(ValueError, match=rf"ann\.jsonl:3: missing required key '{key}' for task '{task}'"):
        load_annotations(path, task=task)


def test_empty_text_raises_empty_text_error_with_line(video_dir):
    path = video_dir / "ann.jsonl"
    path.write_text(json.dumps({"video": "a.mp4", "caption": "fine"}) + "\n\n"
                    + json.dumps({"video": "b.mp4", "caption": "   "}) + "\n")
    with pytest.raises(EmptyTextError, match=r"ann\.jsonl:3: empty caption"):
        load_annotations(path)
    _write_jsonl(path, [{"video": "a.mp4", "question": "", "answer": "yes"}])
    with pytest.raises(EmptyTextError, match=r"ann\.jsonl:1: empty question"):
        load_annotations(path, task="qa")
    _write_jsonl(path, [{"video": "a.mp4", "options": ["one", " "], "answer": 0}])
    with pytest.raises(EmptyTextError, match=r"ann\.jsonl:1: empty option"):
        load_annotations(path, task="mc")


def test_bad_values_are_reported(video_dir, tmp_path):
    path = video_dir / "ann.jsonl"
    path.write_text('{"video": "a.mp4", "caption": "ok"}\n{"video": "a.mp4", "caption": \n')
    with pytest.raises(ValueError, match=r"ann\.jsonl:2: invalid JSON"):
        load_annotations(path)
    _write_jsonl(path, [{"video": "a.mp4", "options": ["a", "b"], "answer": 2}])
    with pytest.raises(ValueError, match=r"ann\.jsonl:1: 'answer' must be an integer index in \[0, 2\)"):
        load_annotations(path, task="mc")
    _write_jsonl(path, [{"video": "a.mp4", "caption": 7}])
    with pytest.raises(ValueError, match=r"ann\.jsonl:1: 'caption' must be a string"):
        load_annotations(path)
    with pytest.raises(ValueError, match="unknown task 'caption'"):
        load_annotations(path, task="caption")
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        load_annotations(tmp_path / "missing.jsonl")
    path.write_text("\n")
    with pytest.raises(ValueError, match="no annotations"):
        load_annotations(path)


def test_missing_video_is_reported_unless_unchecked(video_dir):
    path = _write_jsonl(video_dir / "ann.jsonl", [{"video": "a.mp4", "caption": "ok"},
                                                  {"video": "gone.mp4", "caption": "lost"}])
    with pytest.raises(VideoNotFoundError, match=r"ann\.jsonl:2: video 'gone.mp4' not found"):
        load_annotations(path)
    assert len(load_annotations(path, check_videos=False)) == 2


@pytest.mark.skipif(importlib.util.find_spec("hf_videolang.video.io") is None,
                    reason="hf_videolang.video.io (read_frames) is not written yet")
def test_with_lazy_frames_decodes_the_sampled_frames_on_access(corpus):
    dataset = load_corpus(corpus["root"], "train", "retrieval")
    lazy = with_lazy_frames(dataset, num_frames=3, sampler=lambda metadata: [0, metadata.num_frames - 1, 2])
    row = lazy[1]
    assert row["caption"] == dataset[1]["caption"]
    with av.open(row["video"]) as container:
        decoded = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    np.testing.assert_array_equal(np.asarray(row["frames"]), decoded[[0, 7, 2]])
    assert len(lazy[:2]["frames"]) == 2


# ------------------------------------------------------------------------------------------- hostile annotations


@pytest.mark.parametrize("content, message", [
    (b'{"video": "a.mp4", "caption": "ok"}\n{"video": "a.mp4", "caption": "caf\xe9"}\n',
     r"ann\.jsonl:2: not UTF-8 \(byte 0xe9 at column \d+\)"),
    (b'{"video": "a.mp4", "caption": "\\ud800"}\n', r"ann\.jsonl:1: the string .* holds a lone surrogate"),
    (b'{"video": "a.mp4", "caption": "ok", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
     r"ann\.jsonl:1: invalid JSON \(nested too deeply\)"),
    (b'{"video": "a.mp4", "caption": "ok", "n": ' + b"7" * 5000 + b"}\n",
     r"ann\.jsonl:1: a number with too many digits"),
    (b'{"video": "a.mp4", "caption": "ok"}\n{"video": "a.mp4", "caption": NaN}\n',
     r"ann\.jsonl:2: invalid JSON \(NaN is not a valid JSON value\)"),
])
def test_unparsable_lines_name_file_and_line(video_dir, content, message):
    path = video_dir / "ann.jsonl"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_annotations(path)


def test_json_list_errors_name_the_line(video_dir):
    path = video_dir / "ann.json"
    path.write_bytes(b'[\n{"video": "a.mp4", "caption": "ok"},\n{"video": "a.mp4", "caption": "\xff"}\n]')
    with pytest.raises(ValueError, match=r"ann\.json:3: not UTF-8"):
        load_annotations(path)
    path.write_text('[\n{"video": "a.mp4",\n "caption": "ok", "n": ' + "1" * 5000 + "}\n]")
    with pytest.raises(ValueError, match=r"ann\.json:3: a number with too many digits"):
        load_annotations(path)
    path.write_text("[\n" + "[" * 100_000 + "]" * 100_000 + "\n]")
    with pytest.raises(ValueError, match=r"ann\.json:2: invalid JSON \(nested too deeply\)"):
        load_annotations(path)


@pytest.mark.parametrize("extra, message", [
    ({"needs_multiple_frames": "no"}, r"ann\.jsonl:1: 'needs_multiple_frames' must be true, false or null, got str"),
    ({"needs_multiple_frames": 0}, r"'needs_multiple_frames' must be true, false or null, got int"),
    ({"type": {"kind": "color"}}, r"ann\.jsonl:1: 'type' must be a string, got dict"),
    ({"answer": float("nan")}, r"ann\.jsonl:1: invalid JSON \(NaN is not a valid JSON value\)"),
])
def test_optional_qa_keys_are_type_checked(video_dir, extra, message):
    record = {"video": "a.mp4", "question": "what colour?", "answer": "red", **extra}
    path = video_dir / "ann.jsonl"
    path.write_text(json.dumps(record) + "\n")  # json.dumps writes NaN, which JSON does not allow
    with pytest.raises(ValueError, match=message):
        load_annotations(path, task="qa")


def test_typed_optional_keys_and_numeric_answers_are_kept(video_dir):
    path = _write_jsonl(video_dir / "ann.jsonl", [
        {"video": "a.mp4", "question": "how many?", "answer": 3, "type": "count", "needs_multiple_frames": False},
        {"video": "b.mp4", "question": "what?", "answer": "red", "type": None, "needs_multiple_frames": None},
    ])
    rows = load_annotations(path, task="qa")
    assert rows["answer"] == ["3", "red"]
    assert rows["type"] == ["count", None] and rows["needs_multiple_frames"] == [False, None]


def test_video_paths_stay_inside_the_root_unless_allowed(video_dir, tmp_path):
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"x")
    for video in ("../secret.mp4", str(outside), "sub/../../secret.mp4"):
        path = _write_jsonl(video_dir / "ann.jsonl", [{"video": "a.mp4", "caption": "ok"},
                                                      {"video": video, "caption": "escape"}])
        with pytest.raises(ValueError, match=r"ann\.jsonl:2: video .* is outside the video root .*"
                                             r"allow_outside_root=True"):
            load_annotations(path)
        rows = load_annotations(path, allow_outside_root=True)
        assert rows["video"][1] == str(outside)
    inside = _write_jsonl(video_dir / "ann.jsonl", [{"video": str(video_dir / "a.mp4"), "caption": "ok"},
                                                    {"video": "./sub/../b.mp4", "caption": "fine"}])
    assert load_annotations(inside)["video"] == [str(video_dir / "a.mp4"), str(video_dir / "b.mp4")]


def test_image_key_for_image_text_pairs(tmp_path):
    from PIL import Image

    from hf_videolang.video.io import read_frames

    folder = tmp_path / "cc3m"
    folder.mkdir()
    Image.fromarray(np.full((24, 32, 3), 200, dtype=np.uint8)).save(folder / "0001.jpg")
    path = _write_jsonl(folder / "pairs.jsonl", [{"image": "0001.jpg", "caption": "a grey square"}])
    rows = load_annotations(path)
    assert rows["video"] == [str(folder / "0001.jpg")]
    assert read_frames(rows["video"][0], [0]).shape == (1, 24, 32, 3)
    both = _write_jsonl(folder / "both.jsonl", [{"image": "0001.jpg", "video": "0001.jpg", "caption": "x"}])
    with pytest.raises(ValueError, match=r"both\.jsonl:1: give either 'video' or 'image', not both"):
        load_annotations(both)
