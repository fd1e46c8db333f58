"""Hard-negative mining and the VTM loss."""

import math

import pytest
import torch

from hf_videolang.losses import VideoTextMatchingLoss, sample_hard_negatives


def test_hard_negatives_never_pick_a_positive():
    generator = torch.Generator().manual_seed(0)
    video_ids = torch.tensor([0, 0, 1, 1, 2, 3])
    sim = torch.randn(6, 6, generator=generator) * 3
    sim[video_ids[:, None] == video_ids[None, :]] += 20.0  # positives most similar: the tempting mistake
    for _ in range(200):
        neg_text, neg_video = sample_hard_negatives(sim, video_ids=video_ids, generator=generator)
        assert (video_ids[neg_text] != video_ids).all()
        assert (video_ids[neg_video] != video_ids).all()


def test_without_ids_only_the_diagonal_is_excluded():
    sim = torch.zeros(3, 3)
    generator = torch.Generator().manual_seed(1)
    seen = set()
    for _ in range(100):
        neg_text, neg_video = sample_hard_negatives(sim, generator=generator)
        assert (neg_text != torch.arange(3)).all() and (neg_video != torch.arange(3)).all()
        seen.update(neg_text.tolist())
    assert seen == {0, 1, 2}


def test_deterministic_per_generator():
    sim = torch.randn(8, 8, generator=torch.Generator().manual_seed(2))
    first = sample_hard_negatives(sim, generator=torch.Generator().manual_seed(5))
    again = sample_hard_negatives(sim, generator=torch.Generator().manual_seed(5))
    other = [sample_hard_negatives(sim, generator=torch.Generator().manual_seed(s)) for s in range(6, 12)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert any(not torch.equal(first[0], o[0]) for o in other)


def test_sampling_frequencies_follow_softmax_over_negatives():
    # Video 0: text 1 is a much harder negative than texts 2 and 3; the positive (column 0) is huge.
    sim = torch.tensor(
        [[50.0, 2.0, 0.0, 0.0], [0.0, 50.0, 0.0, 0.0], [0.0, 0.0, 50.0, 0.0], [0.0, 0.0, 0.0, 50.0]]
    )
    generator = torch.Generator().manual_seed(3)
    draws = torch.stack([sample_hard_negatives(sim, generator=generator)[0][0] for _ in range(2000)])
    expected_hard = math.exp(2.0) / (math.exp(2.0) + 2.0)  # softmax restricted to the negatives
    assert (draws == 1).float().mean().item() == pytest.approx(expected_hard, abs=0.03)
    assert (draws == 0).sum() == 0


def test_no_negative_available_raises():
    with pytest.raises(ValueError, match="no negative"):
        sample_hard_negatives(torch.zeros(3, 3), video_ids=torch.tensor([4, 4, 4]))
    with pytest.raises(ValueError, match="square"):
        sample_hard_negatives(torch.zeros(3, 4))


def test_matching_loss_matches_hand_computation():
    pos = torch.tensor([[0.0, 2.0]])
    neg = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    loss = VideoTextMatchingLoss()(pos, neg)
    expected = (
        -math.log(math.exp(2) / (1 + math.exp(2)))  # positive: class 1 = matched
        - math.log(math.exp(1) / (math.exp(1) + 1))  # negatives: class 0
        - math.log(0.5)
    ) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_matching_loss_rejects_non_binary_heads():
    with pytest.raises(ValueError, match="2 classes"):
        VideoTextMatchingLoss()(torch.zeros(2, 3), torch.zeros(4, 3))
