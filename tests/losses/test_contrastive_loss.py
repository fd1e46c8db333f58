"""VideoTextContrastiveLoss (symmetric InfoNCE) against hand-computed values."""

import math

import pytest
import torch

from hf_videolang.losses import VideoTextContrastiveLoss


def _nll(logits: list[float], target: int) -> float:
    """-log softmax(logits)[target], written out."""
    return -(logits[target] - math.log(sum(math.exp(x) for x in logits)))


def test_matches_hand_computation_2x2():
    video = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    loss = VideoTextContrastiveLoss()(video, text, torch.tensor(0.0))  # scale exp(0) = 1
    # cosines: v1.t1 = 1, v1.t2 = 0.6, v2.t1 = 0, v2.t2 = 0.8
    v2t = (_nll([1.0, 0.6], 0) + _nll([0.0, 0.8], 1)) / 2
    t2v = (_nll([1.0, 0.0], 0) + _nll([0.6, 0.8], 1)) / 2
    assert loss.item() == pytest.approx((v2t + t2v) / 2, rel=1e-6)


def test_matches_hand_computation_3x3_with_scale_and_unnormalized_inputs():
    unit_video = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    unit_text = torch.tensor([[0.8, 0.6, 0.0], [0.0, 0.6, 0.8], [0.6, 0.0, 0.8]])
    # Arbitrary positive row scales: the loss normalizes its inputs.
    video = unit_video * torch.tensor([[2.0], [0.5], [7.0]])
    text = unit_text * torch.tensor([[3.0], [1.5], [0.1]])
    scale = 5.0
    loss = VideoTextContrastiveLoss()(video, text, torch.tensor(math.log(scale)))
    cos = (unit_video @ unit_text.T).tolist()
    v2t = sum(_nll([scale * c for c in cos[i]], i) for i in range(3)) / 3
    t2v = sum(_nll([scale * cos[j][i] for j in range(3)], i) for i in range(3)) / 3
    assert v2t != pytest.approx(t2v)  # the two directions differ here, so both are really computed
    assert loss.item() == pytest.approx((v2t + t2v) / 2, rel=1e-5)


def test_perfect_alignment_with_high_scale_is_near_zero_and_low_scale_is_not():
    emb = torch.eye(4)
    loss_fn = VideoTextContrastiveLoss()
    assert loss_fn(emb, emb, torch.tensor(math.log(100.0))).item() < 1e-6
    # scale 1: log(1 + 3 e^-1) per row.
    assert loss_fn(emb, emb, torch.tensor(0.0)).item() == pytest.approx(math.log(1 + 3 * math.exp(-1)), rel=1e-6)


def test_symmetric_in_video_and_text():
    generator = torch.Generator().manual_seed(0)
    video, text = torch.randn(5, 8, generator=generator), torch.randn(5, 8, generator=generator)
    loss_fn = VideoTextContrastiveLoss()
    scale = torch.tensor(2.0)
    assert loss_fn(video, text, scale).item() == pytest.approx(loss_fn(text, video, scale).item(), rel=1e-6)


def test_logit_scale_is_clamped_at_100():
    generator = torch.Generator().manual_seed(1)
    video, text = torch.randn(4, 6, generator=generator), torch.randn(4, 6, generator=generator)
    loss_fn = VideoTextContrastiveLoss()
    clamped = loss_fn(video, text, torch.tensor(math.log(1000.0)))
    assert clamped.item() == pytest.approx(loss_fn(video, text, torch.tensor(math.log(100.0))).item(), rel=1e-6)


def test_duplicate_video_ids_are_positives_not_negatives():
    # Rows 0 and 1 are two captions of the same video (different clips, so different embeddings); row 2 is
    # another video. With identical embeddings the two target rules would give the same value.
    video = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    text = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    ids = torch.tensor([7, 7, 3])
    loss = VideoTextContrastiveLoss()(video, text, torch.tensor(0.0), video_ids=ids)
    cos = (video @ text.T).tolist()

    def soft_nll(logits: list[float], targets: list[float]) -> float:
        log_z = math.log(sum(math.exp(x) for x in logits))
        return -sum(q * (x - log_z) for x, q in zip(logits, targets))

    targets = [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]
    v2t = sum(soft_nll(cos[i], targets[i]) for i in range(3)) / 3
    t2v = sum(soft_nll([cos[j][i] for j in range(3)], targets[i]) for i in range(3)) / 3
    assert loss.item() == pytest.approx((v2t + t2v) / 2, rel=1e-6)
    without_ids = VideoTextContrastiveLoss()(video, text, torch.tensor(0.0))
    assert without_ids.item() != pytest.approx(loss.item(), rel=1e-3)


def test_unique_video_ids_equal_plain_infonce():
    generator = torch.Generator().manual_seed(2)
    video, text = torch.randn(6, 4, generator=generator), torch.randn(6, 4, generator=generator)
    loss_fn = VideoTextContrastiveLoss()
    with_ids = loss_fn(video, text, torch.tensor(1.5), video_ids=torch.tensor([5, 4, 3, 2, 1, 0]))
    assert with_ids.item() == pytest.approx(loss_fn(video, text, torch.tensor(1.5)).item(), rel=1e-6)


def test_return_logits_and_gradients_reach_every_input():
    generator = torch.Generator().manual_seed(3)
    video = torch.randn(3, 4, generator=generator, requires_grad=True)
    text = torch.randn(3, 4, generator=generator, requires_grad=True)
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))
    out = VideoTextContrastiveLoss()(video, text, logit_scale, return_logits=True)
    expected = 10.0 * torch.nn.functional.normalize(video, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
    torch.testing.assert_close(out["logits_per_video"], expected)
    torch.testing.assert_close(out["logits_per_text"], expected.T)
    out["loss"].backward()
    for grad in (video.grad, text.grad, logit_scale.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("video", "text", "ids", "match"),
    [
        (torch.zeros(3, 4), torch.zeros(2, 4), None, "same shape"),
        (torch.zeros(3), torch.zeros(3), None, "video_emb"),
        (torch.zeros(3, 4), torch.zeros(3, 4), torch.zeros(2, dtype=torch.long), "video_ids"),
    ],
)
def test_shape_errors_name_the_input(video, text, ids, match):
    with pytest.raises(ValueError, match=match):
        VideoTextContrastiveLoss()(video, text, torch.tensor(0.0), video_ids=ids)


def test_negative_captions_join_their_video_row_softmax_only():
    generator = torch.Generator().manual_seed(4)
    video, text = torch.randn(3, 4, generator=generator), torch.randn(3, 4, generator=generator)
    negatives = torch.randn(3, 2, 4, generator=generator)
    loss = VideoTextContrastiveLoss()(video, text, torch.tensor(0.0), negative_text_emb=negatives)
    v, t, n = (torch.nn.functional.normalize(x, dim=-1) for x in (video, text, negatives))
    cos, neg_cos = (v @ t.T).tolist(), torch.einsum("bd,bkd->bk", v, n).tolist()
    v2t = sum(_nll(cos[i] + neg_cos[i], i) for i in range(3)) / 3  # row i: every caption, then its own negatives
    t2v = sum(_nll([cos[j][i] for j in range(3)], i) for i in range(3)) / 3  # unchanged
    assert loss.item() == pytest.approx((v2t + t2v) / 2, rel=1e-5)
    with_ids = VideoTextContrastiveLoss()(video, text, torch.tensor(0.0), video_ids=torch.tensor([0, 1, 2]),
                                          negative_text_emb=negatives)  # fmt: skip
    assert with_ids.item() == pytest.approx(loss.item(), rel=1e-6)
    with pytest.raises(ValueError, match="negative_text_emb"):
        VideoTextContrastiveLoss()(video, text, torch.tensor(0.0), negative_text_emb=negatives[:2])
