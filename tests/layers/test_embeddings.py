"""Tests of patch embedding, position embeddings and stochastic depth."""

from __future__ import annotations

import math

import pytest
import torch

from hf_videolang.layers import (
    AbsolutePositionEmbedding,
    DropPath,
    Mlp,
    PatchEmbed3d,
    drop_path,
    sinusoid_position_table,
)


def test_patch_embed_flattens_frame_major():
    embed = PatchEmbed3d(image_size=16, patch_size=4, tubelet_size=1, in_channels=3, embed_dim=8, bias=False)
    video = torch.zeros(1, 3, 3, 16, 16)
    video[0, 2, :, 4:8, 8:12] = 1.0  # frame 2, patch row 1, column 2
    tokens = embed(video)
    assert tokens.shape == (1, 3 * 4 * 4, 8)
    nonzero = tokens.abs().sum(-1).nonzero()[:, 1].tolist()
    assert nonzero == [2 * 16 + 1 * 4 + 2]


def test_patch_embed_tubelet_and_errors():
    embed = PatchEmbed3d(image_size=8, patch_size=4, tubelet_size=2, embed_dim=6)
    assert embed(torch.randn(2, 4, 3, 8, 8)).shape == (2, 2 * 2 * 2, 6)
    with pytest.raises(ValueError, match="tubelet_size"):
        embed(torch.randn(1, 3, 3, 8, 8))
    with pytest.raises(ValueError, match="expects 8x8"):
        embed(torch.randn(1, 2, 3, 12, 8))
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        embed(torch.randn(3, 8, 8))


def test_sinusoid_table_values():
    table = sinusoid_position_table(50, 6)
    p = 7
    for i in range(3):
        angle = p / 10000 ** (2 * i / 6)
        assert table[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
        assert table[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    # A longer table starts with the shorter one: an image uses the first frame's rows of a video table.
    torch.testing.assert_close(sinusoid_position_table(200, 6)[:50], table)


def test_absolute_position_embedding_prefix_and_length_check():
    pos = AbsolutePositionEmbedding(12, 4)
    x = torch.zeros(2, 5, 4)
    torch.testing.assert_close(pos(x), sinusoid_position_table(12, 4)[:5].expand(2, 5, 4))
    assert "table" not in pos.state_dict()  # fixed table, not saved
    with pytest.raises(ValueError, match="longer than the position table"):
        pos(torch.zeros(1, 13, 4))


def test_learnable_position_embedding_is_a_saved_parameter():
    pos = AbsolutePositionEmbedding(6, 4, kind="learnable")
    pos(torch.zeros(1, 6, 4)).sum().backward()
    assert pos.table.grad is not None and "table" in pos.state_dict()
    with pytest.raises(ValueError, match="kind"):
        AbsolutePositionEmbedding(6, 4, kind="rope")


def test_drop_path_drops_whole_samples_and_rescales():
    torch.manual_seed(0)
    x = torch.ones(2000, 3, 4)
    out = drop_path(x, 0.25, training=True)
    per_sample = out[:, 0, 0]
    kept = per_sample != 0
    torch.testing.assert_close(per_sample[kept], torch.full((int(kept.sum()),), 1 / 0.75))
    assert torch.equal(out, per_sample[:, None, None].expand_as(out))  # one decision per sample
    assert per_sample.mean().item() == pytest.approx(1.0, abs=0.05)
    assert torch.equal(DropPath(0.25).eval()(x), x)
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_mlp_shapes():
    assert Mlp(8, 16, 5)(torch.randn(2, 3, 8)).shape == (2, 3, 5)
