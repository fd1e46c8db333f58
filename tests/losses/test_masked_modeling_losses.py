"""MLM, pixel MVM (with patchify) and token MVM losses."""

import math

import pytest
import torch
import torch.nn.functional as F

from hf_videolang.losses import (
    MaskedLanguageModelingLoss,
    PixelMaskedVideoLoss,
    TokenMaskedVideoLoss,
    patchify,
    unpatchify,
)


@pytest.mark.parametrize(("patch_size", "tubelet"), [(4, 1), (4, 2), ((2, 4), 2)])
def test_patchify_unpatchify_round_trip_is_exact(patch_size, tubelet):
    video = torch.randn(2, 4, 3, 8, 12, generator=torch.Generator().manual_seed(0))
    patches = patchify(video, patch_size, tubelet)
    ph, pw = (patch_size, patch_size) if isinstance(patch_size, int) else patch_size
    assert patches.shape == (2, (4 // tubelet) * (8 // ph) * (12 // pw), tubelet * ph * pw * 3)
    assert torch.equal(unpatchify(patches, patch_size, tubelet, 4, 8, 12), video)


def test_patchify_layout_is_frame_major_and_channels_last():
    video = torch.randn(1, 4, 3, 8, 12, generator=torch.Generator().manual_seed(1))
    patches = patchify(video, 4, tubelet_size=2)  # grid t=2, h=2, w=3
    t, row, col = 1, 1, 2
    index = t * (2 * 3) + row * 3 + col
    block = video[0, 2 * t : 2 * t + 2, :, 4 * row : 4 * row + 4, 4 * col : 4 * col + 4]  # (u, C, ph, pw)
    assert torch.equal(patches[0, index], block.permute(0, 2, 3, 1).reshape(-1))


def test_patchify_rejects_indivisible_sizes():
    with pytest.raises(ValueError, match="divisible"):
        patchify(torch.zeros(1, 3, 3, 8, 8), 4, tubelet_size=2)


def test_pixel_loss_hand_value_with_norm_pix():
    # One frame, one channel, 2x4 pixels, 2x2 patches -> 2 patches of 4 values; only patch 0 is masked.
    video = torch.tensor([[1.0, 2.0, 9.0, 9.0], [3.0, 4.0, 9.0, 9.0]]).reshape(1, 1, 1, 2, 4)
    mask = torch.tensor([[True, False]])
    pred = torch.zeros(1, 2, 4)
    # Patch 0 = [1, 2, 3, 4]: normalized by its mean 2.5 and unbiased variance 5/3, the squared values average
    # to (n - 1) / n = 0.75 (up to eps); patch 1 (constant, unmasked) is ignored.
    loss = PixelMaskedVideoLoss(patch_size=2)(pred, video, mask)
    assert loss.item() == pytest.approx(0.75, rel=1e-5)
    raw = PixelMaskedVideoLoss(patch_size=2, norm_pix=False)(pred, video, mask)
    assert raw.item() == pytest.approx((1 + 4 + 9 + 16) / 4)


def _pixel_case():
    generator = torch.Generator().manual_seed(2)
    video = torch.randn(2, 2, 3, 8, 8, generator=generator)
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, [0, 3, 5, 6]] = True
    pred = torch.randn(2, 8, 4 * 4 * 3, generator=generator)
    return video, mask, pred


def test_pixel_loss_is_zero_for_a_perfect_prediction():
    video, mask, _ = _pixel_case()
    loss_fn = PixelMaskedVideoLoss(patch_size=4)
    assert loss_fn(loss_fn.target_patches(video), video, mask).item() == pytest.approx(0.0, abs=1e-10)
    raw = PixelMaskedVideoLoss(patch_size=4, norm_pix=False)
    assert raw(patchify(video, 4), video, mask).item() == 0.0
    # Under norm_pix the target is the normalized patch, so predicting raw pixels is penalized.
    shifted = video * 5 + 3
    assert loss_fn(patchify(shifted, 4), shifted, mask).item() > 1.0


def test_pixel_loss_only_counts_masked_patches():
    video, mask, pred = _pixel_case()
    loss_fn = PixelMaskedVideoLoss(patch_size=4)
    base = loss_fn(pred, video, mask)
    changed_visible = pred.clone()
    changed_visible[0, 1] += 100.0  # patch 1 is visible
    assert loss_fn(changed_visible, video, mask).item() == pytest.approx(base.item(), rel=1e-6)
    changed_masked = pred.clone()
    changed_masked[0, 3] += 1.0
    assert loss_fn(changed_masked, video, mask).item() > base.item()


def test_pixel_loss_accepts_masked_only_predictions_and_patches():
    video, mask, pred = _pixel_case()
    loss_fn = PixelMaskedVideoLoss(patch_size=4)
    full = loss_fn(pred, video, mask)
    masked_only = pred[mask].reshape(2, 4, -1)
    assert loss_fn(masked_only, video, mask).item() == pytest.approx(full.item(), rel=1e-6)
    assert loss_fn(pred, patchify(video, 4), mask).item() == pytest.approx(full.item(), rel=1e-6)


def test_pixel_loss_shape_errors():
    video, mask, pred = _pixel_case()
    with pytest.raises(ValueError, match="patch dimension"):
        PixelMaskedVideoLoss(patch_size=2)(pred, video, torch.zeros(2, 32, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        PixelMaskedVideoLoss(patch_size=4)(pred, video, mask.long())


def test_token_loss_hand_value_and_masking():
    logits = torch.zeros(1, 3, 4)  # uniform over a 4-code codebook
    logits[0, 1, 2] = 100.0  # confident on token 1, which is visible
    targets = torch.tensor([[1, 0, 3]])
    mask = torch.tensor([[True, False, True]])
    loss_fn = TokenMaskedVideoLoss()
    assert loss_fn(logits, targets, mask).item() == pytest.approx(math.log(4), rel=1e-6)
    logits[0, 2, 3] = 2.0  # masked token 2 moves toward its target
    expected = (math.log(4) - math.log(math.exp(2) / (math.exp(2) + 3))) / 2
    assert loss_fn(logits, targets, mask).item() == pytest.approx(expected, rel=1e-6)
    assert loss_fn(logits[mask].reshape(1, 2, 4), targets, mask).item() == pytest.approx(expected, rel=1e-6)


def test_mlm_loss_equals_cross_entropy_on_labelled_tokens_and_zero_without_any():
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 5, 7, generator=generator, requires_grad=True)
    labels = torch.full((2, 5), -100)
    labels[0, 1], labels[1, 4], labels[1, 0] = 3, 6, 0
    loss = MaskedLanguageModelingLoss()(logits, labels)
    picked = torch.stack([logits[0, 1], logits[1, 4], logits[1, 0]])
    assert loss.item() == pytest.approx(F.cross_entropy(picked, torch.tensor([3, 6, 0])).item(), rel=1e-6)
    empty = MaskedLanguageModelingLoss()(logits, torch.full((2, 5), -100))
    assert empty.item() == 0.0
    empty.backward()  # still part of the graph
    assert logits.grad is not None and torch.all(logits.grad == 0)
