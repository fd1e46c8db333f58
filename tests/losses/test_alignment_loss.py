"""Unmasked token alignment (UTA) loss."""

import math

import pytest
import torch

from hf_videolang.losses import UnmaskedTokenAlignmentLoss


def test_zero_when_student_equals_teacher_up_to_positive_scale():
    teacher = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))
    scales = torch.rand(2, 5, 1, generator=torch.Generator().manual_seed(1)) * 10 + 0.1
    assert UnmaskedTokenAlignmentLoss()(teacher * scales, teacher).item() == pytest.approx(0.0, abs=1e-6)


def test_hand_computed_value():
    student = torch.tensor([[[1.0, 0.0], [2.0, 0.0]]])  # (B=1, N=2, D=2)
    teacher = torch.tensor([[[0.0, 3.0], [1.0, 1.0]]])
    # token 0: orthogonal -> |s - t|^2 = 2; token 1: 45 degrees -> 2 - 2 cos = 2 - sqrt(2).
    expected_sum = (2.0 + 2.0 - math.sqrt(2.0)) / 2
    assert UnmaskedTokenAlignmentLoss()(student, teacher).item() == pytest.approx(expected_sum, rel=1e-6)
    mean = UnmaskedTokenAlignmentLoss(feature_reduction="mean")(student, teacher)
    assert mean.item() == pytest.approx(expected_sum / 2, rel=1e-6)  # D = 2


def test_layers_are_averaged_for_lists_and_stacks():
    generator = torch.Generator().manual_seed(2)
    students = [torch.randn(2, 3, 4, generator=generator) for _ in range(3)]
    teachers = [torch.randn(2, 3, 4, generator=generator) for _ in range(3)]
    loss_fn = UnmaskedTokenAlignmentLoss()
    per_layer = [loss_fn(s, t).item() for s, t in zip(students, teachers)]
    assert min(per_layer) > 0
    assert loss_fn(students, teachers).item() == pytest.approx(sum(per_layer) / 3, rel=1e-6)
    stacked = loss_fn(torch.stack(students), torch.stack(teachers))
    assert stacked.item() == pytest.approx(sum(per_layer) / 3, rel=1e-6)


def test_full_length_teacher_is_reduced_to_visible_tokens():
    generator = torch.Generator().manual_seed(3)
    mask = torch.tensor([[True, False, True, False], [False, True, True, False]])  # 2 visible each
    teacher_full = torch.randn(2, 4, 6, generator=generator)
    student_visible = torch.randn(2, 2, 6, generator=generator)
    loss_fn = UnmaskedTokenAlignmentLoss()
    expected = loss_fn(student_visible, teacher_full[~mask].reshape(2, 2, 6))
    assert loss_fn(student_visible, teacher_full, bool_masked_pos=mask).item() == pytest.approx(expected.item())
    # Masked teacher tokens do not matter.
    teacher_full[mask] = 1e3
    assert loss_fn(student_visible, teacher_full, bool_masked_pos=mask).item() == pytest.approx(expected.item())


def test_gradient_reaches_student_only():
    generator = torch.Generator().manual_seed(4)
    student = torch.randn(1, 3, 4, generator=generator, requires_grad=True)
    teacher = torch.randn(1, 3, 4, generator=generator, requires_grad=True)
    UnmaskedTokenAlignmentLoss()(student, teacher).backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_mismatched_layers_or_tokens_raise():
    loss_fn = UnmaskedTokenAlignmentLoss()
    with pytest.raises(ValueError, match="aligned layers"):
        loss_fn([torch.zeros(1, 2, 3)] * 2, [torch.zeros(1, 2, 3)] * 3)
    with pytest.raises(ValueError, match="differ"):
        loss_fn(torch.zeros(1, 2, 3), torch.zeros(1, 2, 4))
