"""Tests of the ``video-question-answering`` pipeline, with a tiny QA model on a real mp4.

The first tests check the clip aggregation math (ClipBERT appendix Eq. 5) and the input pairing alone; they need
neither the video stack nor a model.
"""

from __future__ import annotations

import math

import pytest
import torch
from tiny_vqa_model import DEFAULT_ANSWERS, TinyVqaConfig, TinyVqaModel, register_tiny_vqa
from transformers import pipeline
from transformers.pipelines import PIPELINE_REGISTRY

import hf_videolang  # noqa: F401  (registers the pipeline)
from hf_videolang.errors import EmptyTextError, VideoNotFoundError
from hf_videolang.pipelines.video_question_answering import (
    CLIP_AGGREGATIONS,
    VideoQuestionAnsweringPipeline,
    aggregate_clip_logits,
    clip_probabilities,
    register_pipeline,
)

QUESTION = "which direction does the red square move?"
CANDIDATES = ["the red square moves right", "a blue circle stops", "the dog is running", "green triangle moves up"]


def _softmax(values: list[float]) -> list[float]:
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


# ---------------------------------------------------------------- aggregation math (no video, no model)

# Two clips, three answers.
CLIP_LOGITS = torch.tensor([[1.0, 2.0, 3.0], [3.0, 0.0, -1.0]])


@pytest.mark.parametrize(("method", "expected_logits"), [("mean", [2.0, 1.0, 1.0]), ("max", [3.0, 2.0, 3.0])])
def test_mean_and_max_pool_the_logits_then_softmax(method, expected_logits):
    torch.testing.assert_close(aggregate_clip_logits(CLIP_LOGITS, method), torch.tensor(expected_logits))
    torch.testing.assert_close(clip_probabilities(CLIP_LOGITS, method), torch.tensor(_softmax(expected_logits)))


def test_logsumexp_is_clipbert_eq5():
    # Eq. 5: p = sum_i exp(g_i) / sum(sum_i exp(g_i)), written out for the two clips.
    sums = [math.exp(1) + math.exp(3), math.exp(2) + math.exp(0), math.exp(3) + math.exp(-1)]
    expected = torch.tensor([s / sum(sums) for s in sums])
    torch.testing.assert_close(clip_probabilities(CLIP_LOGITS, "logsumexp"), expected)
    # The aggregate itself is log-mean-exp, on the scale of one clip's logits.
    log_mean_exp = torch.tensor([math.log(s / 2) for s in sums])
    torch.testing.assert_close(aggregate_clip_logits(CLIP_LOGITS, "logsumexp"), log_mean_exp)


@pytest.mark.parametrize("method", CLIP_AGGREGATIONS)
def test_one_clip_is_left_unchanged(method):
    logits = torch.tensor([[0.5, -1.0, 2.0]])
    torch.testing.assert_close(aggregate_clip_logits(logits, method), logits[0])


def test_aggregation_rejects_bad_arguments():
    with pytest.raises(ValueError, match="clip_aggregation must be one of"):
        aggregate_clip_logits(CLIP_LOGITS, "median")
    with pytest.raises(ValueError, match="num_clips >= 1"):
        aggregate_clip_logits(torch.zeros(0, 3), "mean")


# ---------------------------------------------------------------- input pairing (no video, no model)


def test_a_list_of_frames_is_one_video_and_a_list_of_paths_is_a_batch(small_video):
    path, frames = small_video
    pair = VideoQuestionAnsweringPipeline._pair_inputs
    single = pair(list(frames), QUESTION)
    assert isinstance(single, dict) and len(single["video"]) == len(frames)
    assert pair([path, path], QUESTION) == [{"video": path, "question": QUESTION}] * 2
    assert pair([path, path], ["q one", "q two"])[1] == {"video": path, "question": "q two"}
    with pytest.raises(ValueError, match="2 videos but 1 questions"):
        pair([path, path], ["only one"])
    with pytest.raises(ValueError, match="empty list"):
        pair([], QUESTION)


# ---------------------------------------------------------------- the pipeline on a real mp4


@pytest.fixture(scope="module")
def tiny_model():
    register_tiny_vqa()
    torch.manual_seed(0)
    return TinyVqaModel(TinyVqaConfig()).eval()


@pytest.fixture(scope="module")
def processor(tiny_tokenizer):
    from hf_videolang.processing_utils import VideoTextProcessor

    return VideoTextProcessor(tiny_tokenizer, num_frames=4, image_size=32, patch_size=16, max_length=24)


@pytest.fixture(scope="module")
def vqa(tiny_model, tiny_tokenizer, processor):
    return pipeline("video-question-answering", model=tiny_model, tokenizer=tiny_tokenizer, processor=processor)


def _as_dict(results: list[dict]) -> dict[str, float]:
    return {result["answer"]: result["score"] for result in results}


def _assert_well_formed(results: list[dict], length: int, answers: list[str]) -> None:
    assert len(results) == length
    assert all(set(result) == {"answer", "score"} for result in results)
    scores = [result["score"] for result in results]
    assert scores == sorted(scores, reverse=True)
    assert len({result["answer"] for result in results}) == length
    assert {result["answer"] for result in results} <= set(answers)
    assert 0.0 < sum(scores) <= 1.0 + 1e-6


def _assert_matches(results: list[dict], expected: dict[str, float]) -> None:
    """``results`` are the best ``len(results)`` answers of ``expected`` (answer -> probability), ties in any order."""
    for result in results:
        assert result["score"] == pytest.approx(expected[result["answer"]], abs=1e-6)
    best = sorted(expected.values(), reverse=True)[: len(results)]
    assert [result["score"] for result in results] == pytest.approx(best, abs=1e-6)


def _assert_same(got: list[dict], want: list[dict]) -> None:
    """The same answers and scores, up to float rounding (batching pads the text) and the order of ties."""
    assert len(got) == len(want)
    _assert_matches(got, _as_dict(want))


def test_answers_are_the_top_k_of_a_direct_forward(vqa, tiny_model, processor, small_video):
    path, _ = small_video
    results = vqa(path, question=QUESTION, top_k=3)
    _assert_well_formed(results, 3, DEFAULT_ANSWERS)

    # The processor's own path (uniform sampling over the whole video) gives the same model input.
    batch = processor(videos=path, text=QUESTION)
    with torch.no_grad():
        probabilities = tiny_model(**batch).logits[0].softmax(-1)
    _assert_matches(results, dict(zip(DEFAULT_ANSWERS, probabilities.tolist())))


def test_top_k_defaults_to_5_and_is_capped_at_the_number_of_answers(vqa, small_video):
    path, _ = small_video
    _assert_well_formed(vqa(path, question=QUESTION), 5, DEFAULT_ANSWERS)
    everything = vqa(path, question=QUESTION, top_k=50)
    _assert_well_formed(everything, len(DEFAULT_ANSWERS), DEFAULT_ANSWERS)
    assert sum(r["score"] for r in everything) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("method", CLIP_AGGREGATIONS)
def test_num_clips_runs_one_forward_per_clip_and_aggregates_them(vqa, tiny_model, small_video, method):
    path, _ = small_video
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def record(module, args, kwargs, output):
        calls.append((kwargs["pixel_values"], output.logits))

    handle = tiny_model.register_forward_hook(record, with_kwargs=True)
    try:
        results = vqa(path, question=QUESTION, num_clips=3, clip_aggregation=method, top_k=len(DEFAULT_ANSWERS))
    finally:
        handle.remove()

    assert len(calls) == 3
    pixels = [pixel_values for pixel_values, _ in calls]
    assert all(p.shape[:2] == (1, 4) for p in pixels)  # one clip of num_frames=4 frames per forward
    assert not torch.equal(pixels[0], pixels[2])  # the clips come from different times of the moving square
    logits = torch.cat([clip_logits for _, clip_logits in calls]).double()
    if method == "mean":
        expected = logits.mean(0).softmax(-1)
    elif method == "max":
        expected = logits.max(0).values.softmax(-1)
    else:  # ClipBERT Eq. 5
        expected = logits.exp().sum(0) / logits.exp().sum()
    scores = _as_dict(results)
    for index, answer in enumerate(DEFAULT_ANSWERS):
        assert scores[answer] == pytest.approx(expected[index].item(), abs=1e-5)


class TransformProcessor:
    """Not a VideoTextProcessor: only the duck-typed contract (a public ``transform``, text through ``__call__``)."""

    num_frames = 4

    def __init__(self, tokenizer):
        from hf_videolang.video.transforms import VideoTransform

        self.tokenizer = tokenizer
        self.transform = VideoTransform(image_size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

    def __call__(self, videos=None, text=None, return_tensors="pt"):
        assert videos is None, "the pipeline sends frames through `transform`"
        return self.tokenizer(text, return_tensors=return_tensors)


def test_a_processor_with_a_transform_takes_any_num_frames(tiny_model, tiny_tokenizer, small_video):
    vqa = pipeline("video-question-answering", model=tiny_model, processor=TransformProcessor(tiny_tokenizer))
    shapes = []
    handle = tiny_model.register_forward_hook(
        lambda module, args, kwargs, output: shapes.append(tuple(kwargs["pixel_values"].shape)), with_kwargs=True
    )
    try:
        results = vqa(small_video[0], question=QUESTION, num_frames=6, num_clips=2)
    finally:
        handle.remove()
    assert shapes == [(1, 6, 3, 32, 32)] * 2
    _assert_well_formed(results, 5, DEFAULT_ANSWERS)


def test_a_processor_that_resamples_frames_gets_a_clear_error(vqa, small_video):
    # VideoTextProcessor(num_frames=4) samples 4 of the 6 frames it is given, unless it exposes a `transform`.
    if callable(getattr(vqa.processor, "transform", None)):
        pytest.skip("this processor exposes a transform, so any num_frames works")
    with pytest.raises(ValueError, match="pass num_frames=4"):
        vqa(small_video[0], question=QUESTION, num_frames=6)


def test_in_memory_and_encoded_inputs_and_batches(vqa, small_video):
    path, frames = small_video
    with open(path, "rb") as f:
        encoded = f.read()
    from_path = vqa(path, question=QUESTION)
    assert vqa(encoded, question=QUESTION) == from_path
    from_array = vqa(frames, question=QUESTION)
    assert vqa(list(frames), question=QUESTION) == from_array  # a list of frames is one video

    batched = vqa([path, frames], question=[QUESTION, "what color is the square?"], batch_size=2)
    assert len(batched) == 2
    _assert_same(batched[0], from_path)
    _assert_same(batched[1], vqa(frames, question="what color is the square?"))


def test_candidates_are_ranked_by_score_candidates(vqa, tiny_model, processor, tiny_tokenizer, small_video):
    path, _ = small_video
    results = vqa(path, question=QUESTION, candidates=CANDIDATES)
    _assert_well_formed(results, len(CANDIDATES), CANDIDATES)

    pixel_values = processor(videos=path)["pixel_values"]
    pairs = tiny_tokenizer([QUESTION] * len(CANDIDATES), CANDIDATES, padding=True, return_tensors="pt")
    with torch.no_grad():
        scores = tiny_model.score_candidates(pixel_values, pairs["input_ids"][None], pairs["attention_mask"][None])
    _assert_matches(results, dict(zip(CANDIDATES, scores[0].softmax(-1).tolist())))


def test_candidates_batched_with_different_counts_and_without_question(vqa, small_video):
    path, frames = small_video
    inputs = [
        {"video": path, "question": QUESTION, "candidates": CANDIDATES},
        {"video": frames, "question": None, "candidates": CANDIDATES[:2]},  # caption ranking
    ]
    batched = vqa(inputs, batch_size=2, num_clips=2, video_fps=8)
    assert len(batched) == 2
    for got, item in zip(batched, inputs):
        _assert_same(got, vqa(item, num_clips=2, video_fps=8))
    assert [len(results) for results in batched] == [4, 2]
    assert sum(r["score"] for r in batched[1]) == pytest.approx(1.0, abs=1e-5)


def test_bad_inputs_raise_clear_errors(vqa, small_video, tmp_path):
    path, _ = small_video
    missing = str(tmp_path / "missing.mp4")
    with pytest.raises(VideoNotFoundError, match="missing.mp4"):
        vqa(missing, question=QUESTION)
    with pytest.raises(EmptyTextError, match="question"):
        vqa(path, question="   ")
    with pytest.raises(EmptyTextError, match=r"candidates\[1\]"):
        vqa(path, question=QUESTION, candidates=["red", ""])
    with pytest.raises(ValueError, match="clip_aggregation"):
        vqa(path, question=QUESTION, clip_aggregation="median")
    with pytest.raises(ValueError, match="num_clips"):
        vqa(path, question=QUESTION, num_clips=0)
    with pytest.raises(ValueError, match="video_fps"):  # decoded frames have no frame rate to place clips with
        vqa(small_video[1], question=QUESTION, num_clips=2)


def test_model_without_answer_list_gets_a_clear_error(tiny_tokenizer, processor, small_video):
    register_tiny_vqa()
    model = TinyVqaModel(TinyVqaConfig()).eval()
    model.config.answer_list = None
    vqa = pipeline("video-question-answering", model=model, tokenizer=tiny_tokenizer, processor=processor)
    with pytest.raises(ValueError, match="answer_list"):
        vqa(small_video[0], question=QUESTION)
    assert len(vqa(small_video[0], question=QUESTION, candidates=CANDIDATES[:3])) == 3  # multiple choice still works


# ---------------------------------------------------------------- registration and loading


def test_task_builds_the_registered_class_and_registering_again_is_harmless(vqa):
    assert type(vqa) is VideoQuestionAnsweringPipeline
    register_pipeline()
    register_pipeline()
    task, entry, _ = PIPELINE_REGISTRY.check_task("video-question-answering")
    assert task == "video-question-answering" and entry["impl"] is VideoQuestionAnsweringPipeline


def test_a_saved_model_loads_by_path(tiny_model, tiny_tokenizer, processor, vqa, small_video, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    loaded = pipeline("video-question-answering", model=str(tmp_path), tokenizer=tiny_tokenizer, processor=processor)
    assert type(loaded) is VideoQuestionAnsweringPipeline and type(loaded.model) is TinyVqaModel
    path, _ = small_video
    _assert_same(loaded(path, question=QUESTION), vqa(path, question=QUESTION))


def test_a_saved_pipeline_reloads_by_task_without_remote_code(vqa, small_video, tmp_path):
    vqa.save_pretrained(tmp_path)
    assert "custom_pipelines" not in (tmp_path / "config.json").read_text()
    processor = type(vqa.processor).from_pretrained(tmp_path)
    reloaded = pipeline("video-question-answering", model=str(tmp_path), processor=processor)
    _assert_same(reloaded(small_video[0], question=QUESTION), vqa(small_video[0], question=QUESTION))


def test_no_model_gives_an_error_that_says_how_to_pass_one():
    with pytest.raises(ValueError, match=r'no default model: pass one, e\.g\. pipeline\("video-question-answering"'):
        pipeline("video-question-answering")


@pytest.mark.parametrize("batch_size", [1, 2])
def test_generators_stream_answers_in_order(vqa, small_video, batch_size):
    path, frames = small_video
    want = [vqa(path, question=QUESTION), vqa(frames, question=QUESTION), vqa(path, question="what color?")]
    videos = (video for video in [path, frames, {"video": path, "question": "what color?"}])
    got = vqa(videos, question=QUESTION, batch_size=batch_size, top_k=5)
    assert not isinstance(got, list)  # an iterator: the generator is not materialized
    got = list(got)
    assert len(got) == 3
    for answers, expected in zip(got, want):
        _assert_same(answers, expected)
    questions = (q for q in [QUESTION, "what color?"])
    paired = list(vqa((v for v in [path, path]), question=list(questions), batch_size=batch_size))
    _assert_same(paired[1], want[2])


@pytest.mark.parametrize("batch_size", [1, 2])
def test_key_dataset_inputs_work_with_batch_size(vqa, small_video, batch_size):
    from datasets import Dataset
    from transformers.pipelines.pt_utils import KeyDataset

    path, _ = small_video
    rows = Dataset.from_dict({"video": [path, path, path], "question": [QUESTION, "what color?", QUESTION]})
    got = list(vqa(KeyDataset(rows, "video"), question=rows["question"], batch_size=batch_size))
    assert len(got) == 3
    _assert_same(got[0], vqa(path, question=QUESTION))
    _assert_same(got[1], vqa(path, question="what color?"))
    _assert_same(got[2], got[0])
