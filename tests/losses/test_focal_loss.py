"""Multi-label focal loss."""

import math

import pytest
import torch
import torch.nn.functional as F

from hf_videolang.losses import MultiLabelFocalLoss


def _case():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, generator=generator) * 3
    targets = (torch.rand(3, 6, generator=generator) > 0.7).float()
    return logits, targets


def test_gamma_zero_without_alpha_is_binary_cross_entropy():
    logits, targets = _case()
    loss = MultiLabelFocalLoss(alpha=None, gamma=0.0)(logits, targets)
    assert loss.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, targets).item(), rel=1e-6)


def test_alpha_half_is_half_binary_cross_entropy():
    logits, targets = _case()
    loss = MultiLabelFocalLoss(alpha=0.5, gamma=0.0)(logits, targets)
    assert loss.item() == pytest.approx(0.5 * F.binary_cross_entropy_with_logits(logits, targets).item(), rel=1e-6)


def test_modulating_factor_down_weights_easy_examples():
    logits = torch.tensor([[4.0, -4.0, -4.0, 4.0]])  # easy pos, hard pos, easy neg, hard neg
    targets = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    focal = MultiLabelFocalLoss(gamma=2.0, reduction="none")(logits, targets)[0]
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")[0]
    p = torch.sigmoid(logits)[0]
    factors = torch.stack([(1 - p[0]) ** 2, (1 - p[1]) ** 2, p[2] ** 2, p[3] ** 2])
    torch.testing.assert_close(focal, factors * bce)
    ratio = (focal / bce).tolist()
    assert ratio[0] < 1e-3 and ratio[2] < 1e-3  # easy: almost nothing left
    assert ratio[1] > 0.9 and ratio[3] > 0.9  # hard: almost full BCE


def test_evilm_eq6_as_printed():
    # E-ViLM Eq. 6: -log p for positives, -p log(1 - p) for negatives.
    logits = torch.tensor([[0.5, -1.0]])
    targets = torch.tensor([[1.0, 0.0]])
    loss = MultiLabelFocalLoss(alpha=None, gamma=0.0, gamma_negative=1.0)(logits, targets)
    p_pos, p_neg = 1 / (1 + math.exp(-0.5)), 1 / (1 + math.exp(1.0))
    expected = (-math.log(p_pos) - p_neg * math.log(1 - p_neg)) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_extreme_logits_stay_finite():
    logits = torch.tensor([[200.0, -200.0, 200.0, -200.0]], requires_grad=True)
    targets = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    loss = MultiLabelFocalLoss(alpha=0.25)(logits, targets)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert loss.item() > 10  # the two confidently wrong classes dominate


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="alpha"):
        MultiLabelFocalLoss(alpha=1.5)
    with pytest.raises(ValueError, match="targets"):
        MultiLabelFocalLoss()(torch.zeros(2, 3), torch.zeros(2, 4))
