"""Tests of the retrieval evaluation loop: encode once, rank, re-rank the top k."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hf_videolang.evaluation.metrics import retrieval_metrics
from hf_videolang.evaluation.retrieval import build_retrieval_index, evaluate_retrieval, place_above
from hf_videolang.processing_utils import VideoTextProcessor
from hf_videolang.video.writer import write_video

PALETTE = {
    "red": (220, 30, 30),
    "green": (30, 200, 30),
    "blue": (30, 30, 220),
    "yellow": (230, 230, 30),
    "purple": (150, 30, 180),
    "orange": (240, 140, 20),
    "white": (235, 235, 235),
    "black": (15, 15, 15),
}


@pytest.fixture(scope="module")
def colour_dataset(tmp_path_factory) -> list[dict]:
    """8 solid-colour 16x16 mp4s with two captions each (one row per caption): 16 texts, 8 distinct videos."""
    folder = tmp_path_factory.mktemp("colour_videos")
    rows = []
    for name, rgb in PALETTE.items():
        path = write_video(folder / f"{name}.mp4", np.full((4, 16, 16, 3), rgb, dtype=np.uint8), fps=4)
        rows.append({"video": path, "caption": f"a {name} video"})
        rows.append({"video": path, "caption": f"the {name} clip"})
    return rows


@pytest.fixture()
def processor(tiny_tokenizer) -> VideoTextProcessor:
    return VideoTextProcessor(tiny_tokenizer, num_frames=2, image_size=16, patch_size=8, max_length=8)


class ColourOracle(nn.Module):
    """Embeddings one-hot by video: the nearest palette colour of the frames, the colour word of the text."""

    def __init__(self, processor: VideoTextProcessor) -> None:
        super().__init__()
        rgb = torch.tensor(list(PALETTE.values()), dtype=torch.float32) / 255
        self.register_buffer("palette", (rgb - torch.tensor(processor.mean)) / torch.tensor(processor.std))
        ids = processor.tokenizer.convert_tokens_to_ids(list(PALETTE))
        self.register_buffer("colour_ids", torch.tensor(ids))
        self.videos_encoded = 0
        self.texts_encoded = 0

    def colour_of_video(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return torch.cdist(pixel_values.mean(dim=(1, 3, 4)), self.palette).argmin(dim=1)

    def colour_of_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        hits = input_ids.unsqueeze(-1) == self.colour_ids  # (B, L, K)
        assert (hits.any(dim=(1, 2))).all(), "every caption names a colour"
        return hits.any(dim=1).float().argmax(dim=1)

    def get_video_features(self, pixel_values):
        self.videos_encoded += pixel_values.shape[0]
        return F.one_hot(self.colour_of_video(pixel_values), len(PALETTE)).float()

    def get_text_features(self, input_ids, attention_mask):
        self.texts_encoded += input_ids.shape[0]
        return F.one_hot(self.colour_of_text(input_ids), len(PALETTE)).float()


class RandomDualEncoderWithOracleReranker(ColourOracle):
    """Dual-encoder embeddings unrelated to the pairing; a re-ranker that knows the true pairs."""

    def __init__(self, processor: VideoTextProcessor, seed: int = 0) -> None:
        super().__init__(processor)
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("video_table", torch.randn(len(PALETTE), 16, generator=generator))
        self.register_buffer("token_table", torch.randn(len(processor.tokenizer), 16, generator=generator))
        self.reranked_pairs = 0

    def get_video_features(self, pixel_values):
        return self.video_table[self.colour_of_video(pixel_values)]

    def get_text_features(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        return (self.token_table[input_ids] * mask).sum(1) / mask.sum(1)

    def get_video_states(self, pixel_values):
        return self.colour_of_video(pixel_values)  # (N,): all the re-ranker needs

    def rerank(self, video_states, text_inputs):
        self.reranked_pairs += video_states.shape[0]
        return (self.colour_of_text(text_inputs["input_ids"]) == video_states).float()


def test_one_hot_model_retrieves_perfectly_and_encodes_each_item_once(processor, colour_dataset):
    model = ColourOracle(processor).train()
    result = evaluate_retrieval(model, processor, colour_dataset, batch_size=3, progress=False)

    assert model.videos_encoded == 8 and model.texts_encoded == 16
    assert model.training  # the training mode is restored
    assert result.similarity.shape == (16, 8)
    assert result.text_to_video.tolist() == [i // 2 for i in range(16)]
    assert result.videos == [row["video"] for row in colour_dataset[::2]]
    for direction in ("t2v", "v2t"):
        assert result.metrics[f"{direction}_R@1"] == 100.0
        assert result.metrics[f"{direction}_MdR"] == 1.0
    assert result.reranked_t2v is None


def test_random_model_is_near_chance(processor, tmp_path):
    """30 random-colour videos and random captions through a randomly initialized dual encoder: chance-level."""
    rng = np.random.default_rng(0)
    words = ["man", "woman", "dog", "cat", "ball", "circle", "square", "triangle", "running", "playing"]
    rows = []
    for index in range(30):
        frames = np.repeat(rng.integers(0, 256, size=(1, 16, 16, 3), dtype=np.uint8), 4, axis=0)
        caption = " ".join(rng.choice(words, size=3))
        rows.append({"video": write_video(tmp_path / f"{index}.mp4", frames, fps=4), "caption": caption})

    class RandomDualEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.video_proj = nn.Linear(3, 32)
            self.token_embed = nn.Embedding(len(processor.tokenizer), 32)

        def get_video_features(self, pixel_values):
            return self.video_proj(pixel_values.mean(dim=(1, 3, 4)))

        def get_text_features(self, input_ids, attention_mask):
            return self.token_embed(input_ids).mean(1)

    metrics = evaluate_retrieval(RandomDualEncoder(), processor, rows, batch_size=8, progress=False).metrics
    # Chance: R@1 = 3.3 %, R@10 = 33 %, median rank 15.5 (of 30).
    assert metrics["t2v_R@1"] <= 20 and metrics["v2t_R@1"] <= 20
    assert 5 <= metrics["t2v_R@10"] <= 70 and 5 <= metrics["v2t_R@10"] <= 70
    assert metrics["t2v_MdR"] >= 5 and metrics["v2t_MdR"] >= 5


@pytest.mark.parametrize("top_k", [3, 16])
def test_reranking_the_top_k(processor, colour_dataset, top_k):
    model = RandomDualEncoderWithOracleReranker(processor)
    result = evaluate_retrieval(model, processor, colour_dataset, batch_size=5, rerank_top_k=top_k, progress=False)

    # The k best videos of each of the 16 texts, and the k best texts of each of the 8 videos (k capped by the corpus).
    assert model.reranked_pairs == 16 * min(top_k, 8) + 8 * min(top_k, 16)
    dual = retrieval_metrics(result.similarity, result.text_to_video, ks=(1, top_k))
    assert dual["t2v_R@1"] < 100 and dual["v2t_R@1"] < 100  # the dual encoder alone is not perfect
    # The oracle re-ranker puts the true match first exactly when it is among the k candidates.
    assert result.metrics["t2v_R@1"] == pytest.approx(dual[f"t2v_R@{top_k}"])
    assert result.metrics["v2t_R@1"] == pytest.approx(dual[f"v2t_R@{top_k}"])
    if top_k == 16:  # every candidate re-ranked
        assert result.metrics["t2v_R@1"] == result.metrics["v2t_R@1"] == 100.0
    else:
        assert result.metrics["t2v_R@1"] < 100.0
    assert result.metrics["rsum"] == pytest.approx(sum(v for k, v in result.metrics.items() if "_R@" in k))


def test_place_above_keeps_the_order_of_the_rest():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.3]])
    out = place_above(scores, torch.tensor([[1, 3]]), torch.tensor([[-2.0, -1.0]]))
    assert out.argsort(dim=1, descending=True).tolist() == [[3, 1, 0, 2]]
    assert out[0, 1] == -2.0 and out[0, 3] == -1.0


def test_index_and_errors(processor):
    rows = [
        {"video": "a.mp4", "caption": ["x", "y"]},
        {"video": "b.mp4", "caption": "z"},
        {"video": "a.mp4", "caption": "w"},
    ]
    index = build_retrieval_index(rows)
    assert index.videos == ["a.mp4", "b.mp4"]
    assert index.texts == ["x", "y", "z", "w"]
    assert index.text_to_video.tolist() == [0, 0, 1, 0]
    with pytest.raises(KeyError, match="caption"):
        build_retrieval_index([{"video": "a.mp4"}])
    with pytest.raises(AttributeError, match="rerank"):
        evaluate_retrieval(ColourOracle(processor), processor, rows, rerank_top_k=1, progress=False)
