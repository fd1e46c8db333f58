"""Tests of the shared attention module and the ViT block built on it."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from hf_videolang.layers import Attention, Block, eager_attention_forward


def _attention(qkv_bias: str = "qv") -> Attention:
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4, qkv_bias=qkv_bias)
    if attn.q_bias is not None:  # non-zero biases so the "qv" layout is exercised
        torch.nn.init.normal_(attn.q_bias)
        torch.nn.init.normal_(attn.v_bias)
    return attn.eval()


@pytest.mark.parametrize("qkv_bias", ["qkv", "qv", "none"])
def test_sdpa_matches_eager(qkv_bias):
    attn = _attention(qkv_bias)
    x = torch.randn(2, 7, 32)
    eager, _ = attn(x, attn_implementation="eager")
    sdpa, _ = attn(x, attn_implementation="sdpa")
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=1e-5)


def test_sdpa_matches_eager_with_boolean_mask():
    attn = _attention()
    x = torch.randn(2, 6, 32)
    mask = torch.ones(2, 1, 1, 6, dtype=torch.bool)
    mask[0, ..., 4:] = False  # sample 0 may not attend to its last two tokens
    eager, weights = attn(x, attention_mask=mask, attn_implementation="eager", output_attentions=True)
    sdpa, _ = attn(x, attention_mask=mask, attn_implementation="sdpa")
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=1e-5)
    assert weights[0, :, :, 4:].abs().max() == 0
    assert weights[1, :, :, 4:].min() > 0


def test_eager_weights_are_the_softmax_of_scaled_query_key_products():
    attn = _attention()
    x = torch.randn(1, 5, 32)
    _, weights = attn(x, output_attentions=True)
    # Recompute from the parameters: query bias, no key bias.
    q = x @ attn.qkv.weight[:32].T + attn.q_bias
    k = x @ attn.qkv.weight[32:64].T
    q = q.view(1, 5, 4, 8).transpose(1, 2)
    k = k.view(1, 5, 4, 8).transpose(1, 2)
    expected = torch.softmax(q @ k.transpose(-2, -1) / 8**0.5, dim=-1)
    torch.testing.assert_close(weights, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 4, 5))


def test_output_attentions_forces_eager_even_when_sdpa_is_the_default():
    attn = _attention()
    out, weights = attn(torch.randn(2, 3, 32), attn_implementation="sdpa", output_attentions=True)
    assert weights is not None and weights.shape == (2, 4, 3, 3)
    assert out.shape == (2, 3, 32)


def test_qv_layout_has_no_key_bias():
    attn = _attention("qv")
    assert attn.qkv.bias is None
    bias = attn._qkv_bias()
    assert torch.equal(bias[32:64], torch.zeros(32))
    assert torch.equal(bias[:32], attn.q_bias) and torch.equal(bias[64:], attn.v_bias)


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="qkv_bias"):
        Attention(32, 4, qkv_bias="k")
    with pytest.raises(ValueError, match="divisible"):
        Attention(30, 4)


def test_eager_function_returns_transformers_layout():
    q = k = v = torch.randn(2, 3, 4, 5)  # (B, H, N, Dh)
    out, weights = eager_attention_forward(torch.nn.Identity(), q, k, v, None, scaling=1.0)
    assert out.shape == (2, 4, 3, 5) and weights.shape == (2, 3, 4, 4)


def test_block_is_two_residual_lines():
    torch.manual_seed(0)
    block = Block(32, 4, qkv_bias="qv").eval()
    x = torch.randn(2, 5, 32)
    y, weights = block(x)
    expected = x + block.attn(block.norm1(x))[0]
    expected = expected + block.mlp(block.norm2(expected))
    torch.testing.assert_close(y, expected)
    assert weights is None


def test_block_drop_path_is_identity_in_eval_and_active_in_training():
    torch.manual_seed(0)
    block = Block(16, 2, drop_path=0.5)
    x = torch.randn(64, 3, 16)
    block.eval()
    torch.testing.assert_close(block(x)[0], block(x)[0])
    block.train()
    out = block(x)[0]
    no_branch = torch.isclose(out, x).all(dim=(1, 2))
    # Both residual branches are dropped for some samples (prob 0.25) and kept for others.
    assert 0 < int(no_branch.sum()) < 64


def test_block_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    block = Block(16, 2)
    x = torch.randn(2, 4, 16, requires_grad=True)
    block(x)[0].square().sum().backward()
    reference = [p.grad.clone() for p in block.parameters()]
    block.zero_grad()
    block.gradient_checkpointing = True
    block._gradient_checkpointing_func = partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)
    block(x)[0].square().sum().backward()
    for expected, p in zip(reference, block.parameters()):
        torch.testing.assert_close(p.grad, expected)
