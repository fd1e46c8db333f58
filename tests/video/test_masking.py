"""Tests of hf_videolang.video.masking: exact counts, mask structure, score-guided sampling and text corruption."""

from __future__ import annotations

import json
import random

import pytest
import torch

from hf_videolang.video.masking import (
    IGNORE_INDEX,
    BlockMasker,
    MaskingConfig,
    RandomMasker,
    SemanticMasker,
    TubeMasker,
    build_masker,
    cls_attention_scores,
    mask_tokens_mlm,
    mask_whole_words,
    num_masked_per_frame,
    word_ids_from_wordpieces,
)

GRID_MASKERS = (TubeMasker, RandomMasker, BlockMasker)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


WORDPIECE_VOCAB = (
    "[PAD] [UNK] [CLS] [SEP] [MASK] the a man dog cat circle square ball red blue moves left up down and then "
    "small play color un ##s ##ing ##ed ##able ?"
).split()


@pytest.fixture(scope="module")
def wordpiece_tokenizer():
    """A real BERT WordPiece tokenizer whose vocabulary splits plurals and verb forms into several pieces."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast(vocab={token: index for index, token in enumerate(WORDPIECE_VOCAB)}, do_lower_case=True)


def masked_neighbours(masks: torch.Tensor, height: int, width: int) -> float:
    """Mean number of masked 4-neighbours of a masked token (masks flattened frame-major)."""
    grid = masks.view(-1, 1, height, width).float()
    padded = torch.nn.functional.pad(grid, (1, 1, 1, 1))[:, 0]
    neighbours = padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]
    return ((neighbours * grid[:, 0]).sum() / grid.sum()).item()


# ---------------------------------------------------------------------------------------------------- counts


def test_num_masked_per_frame_rounding_rule():
    assert num_masked_per_frame(0.8, 196) == 157  # 156.8
    assert num_masked_per_frame(0.6, 49) == 29  # 29.4
    assert num_masked_per_frame(0.4, 64) == 26  # 25.6
    assert num_masked_per_frame(0.5, 5) == 2  # 2.5: halves round to even
    assert num_masked_per_frame(0.5, 7) == 4  # 3.5
    assert num_masked_per_frame(0.0, 16) == 0
    for bad_ratio in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="mask_ratio"):
            num_masked_per_frame(bad_ratio, 16)
    with pytest.raises(ValueError, match="tokens_per_frame"):
        num_masked_per_frame(0.5, 0)


def test_masking_config_validation():
    config = MaskingConfig(num_frames=4, grid_size=(3, 5), mask_ratio=0.6)
    assert config.grid_size == (3, 5) and config.num_tokens == 60 and config.num_masked_per_frame == 9
    assert MaskingConfig(2, 7, 0.5).grid_size == (7, 7)
    with pytest.raises(ValueError, match="grid_size"):
        MaskingConfig(2, (0, 4), 0.5)
    with pytest.raises(ValueError, match="num_frames"):
        MaskingConfig(0, 4, 0.5)
    with pytest.raises(ValueError, match="mask_ratio"):
        MaskingConfig(2, 4, 1.0)
    with pytest.raises(ValueError, match="visible"):  # 0.9 * 2 = 1.8 rounds to all 2 tokens
        MaskingConfig(2, (1, 2), 0.9)


@pytest.mark.parametrize("masker_cls", GRID_MASKERS)
@pytest.mark.parametrize("grid_size", [(4, 4), (3, 5), 7])
@pytest.mark.parametrize("mask_ratio", [0.0, 0.4, 0.5, 0.75, 0.9])
def test_grid_maskers_mask_exactly_the_rounded_count_per_frame(masker_cls, grid_size, mask_ratio):
    num_frames = 3
    masker = masker_cls(num_frames, grid_size, mask_ratio)
    masks = masker(6, generator=seeded())
    tokens = masker.config.tokens_per_frame
    assert masks.shape == (6, num_frames * tokens) and masks.dtype == torch.bool
    expected = num_masked_per_frame(mask_ratio, tokens)
    assert (masks.view(6, num_frames, tokens).sum(-1) == expected).all()


@pytest.mark.parametrize("mask_ratio", [0.0, 0.5, 0.8])
def test_semantic_masker_masks_exactly_the_rounded_count_per_frame(mask_ratio):
    scores = torch.rand(5, 3, 20, generator=seeded(1))
    masks = SemanticMasker(mask_ratio)(scores, generator=seeded())
    assert masks.shape == (5, 60) and masks.dtype == torch.bool
    assert (masks.view(5, 3, 20).sum(-1) == num_masked_per_frame(mask_ratio, 20)).all()


@pytest.mark.parametrize("masker_cls", GRID_MASKERS)
def test_grid_maskers_are_seeded(masker_cls):
    masker = masker_cls(2, 6, 0.5)
    assert torch.equal(masker(4, generator=seeded(7)), masker(4, generator=seeded(7)))
    assert not torch.equal(masker(4, generator=seeded(7)), masker(4, generator=seeded(8)))


# ---------------------------------------------------------------------------------------------------- structure


def test_tube_masks_are_identical_across_frames_and_differ_across_samples():
    masks = TubeMasker(4, (5, 6), 0.5)(8, generator=seeded()).view(8, 4, 30)
    assert (masks == masks[:, :1]).all()
    assert len({tuple(m[0].tolist()) for m in masks}) > 1


def test_random_masks_differ_across_frames():
    masks = RandomMasker(4, 8, 0.5)(8, generator=seeded()).view(8, 4, 64)
    different = (masks[:, 1:] != masks[:, :1]).any(-1)
    assert different.all()  # two equal 32-of-64 subsets have probability ~1e-18


@pytest.mark.parametrize("grid_size", [(14, 14), (8, 8)])
def test_block_masks_are_far_more_contiguous_than_random_masks(grid_size):
    block = BlockMasker(2, grid_size, 0.4)(32, generator=seeded())
    rand = RandomMasker(2, grid_size, 0.4)(32, generator=seeded())
    block_neighbours = masked_neighbours(block, *grid_size)
    random_neighbours = masked_neighbours(rand, *grid_size)
    assert block_neighbours > 1.6 * random_neighbours
    # Blocks are not all the same: frames of one sample and samples differ.
    frames = block.view(64, -1)
    assert len({tuple(f.tolist()) for f in frames}) > 50


def test_block_masker_respects_max_block_area():
    # With blocks of at most 4 patches (min 1), a 40 % target needs several blocks and stays exact.
    masker = BlockMasker(1, 10, 0.4, min_num_patches=1, max_num_patches=4)
    masks = masker(16, generator=seeded())
    assert (masks.sum(-1) == 40).all()
    with pytest.raises(ValueError, match="max_num_patches"):
        BlockMasker(1, 10, 0.4, min_num_patches=8, max_num_patches=4)
    with pytest.raises(ValueError, match="min_aspect"):
        BlockMasker(1, 10, 0.4, min_aspect=2.0)


# ---------------------------------------------------------------------------------------------------- semantic


def test_semantic_masking_keeps_high_score_tokens_far_more_often():
    tokens = 16
    scores = torch.ones(tokens)
    scores[:4] = 0.2  # bottom quartile
    scores[12:] = 5.0  # top quartile
    batch = scores.expand(500, 4, tokens)  # 2000 frames
    masks = SemanticMasker(0.75)(batch, generator=seeded()).view(-1, tokens)  # keep 4 of 16
    kept = (~masks).float().mean(0)
    assert kept[12:].mean() > 3 * kept[:4].mean()
    # Middle tokens (score 1) are kept more than the bottom (0.2) and less than the top (5).
    assert kept[:4].mean() < kept[4:12].mean() < kept[12:].mean()


def test_semantic_masking_never_keeps_zero_score_tokens_when_enough_are_positive():
    scores = torch.zeros(50, 2, 9)
    scores[..., [0, 4, 8]] = torch.rand(50, 2, 3, generator=seeded()) + 0.1
    masks = SemanticMasker(2 / 3)(scores, generator=seeded()).view(50, 2, 9)  # keep exactly 3
    assert (~masks[..., [0, 4, 8]]).all()
    assert masks[..., [1, 2, 3, 5, 6, 7]].all()


def test_semantic_masking_is_seeded_and_validates_scores():
    scores = torch.rand(3, 2, 16, generator=seeded())
    masker = SemanticMasker(0.5, num_frames=2, grid_size=4)
    assert torch.equal(masker(scores, generator=seeded(1)), masker(scores, generator=seeded(1)))
    assert not torch.equal(masker(scores, generator=seeded(1)), masker(scores, generator=seeded(2)))
    with pytest.raises(ValueError, match="non-negative"):
        masker(scores - 1.0)
    with pytest.raises(ValueError, match="num_frames=2"):
        masker(torch.rand(3, 4, 16))
    with pytest.raises(ValueError, match="4x4 grid"):
        masker(torch.rand(3, 2, 9))
    with pytest.raises(ValueError, match="shape"):
        masker(torch.rand(3, 32))
    # All-zero scores carry no preference: uniform sampling, still the exact count.
    assert (masker(torch.zeros(3, 2, 16)).view(3, 2, 16).sum(-1) == 8).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_semantic_masking_on_cuda_scores():
    scores = torch.rand(4, 2, 16, device="cuda")
    generator = torch.Generator(device="cuda").manual_seed(0)
    masks = SemanticMasker(0.75)(scores, generator=generator)
    assert masks.device.type == "cuda"
    assert (masks.view(4, 2, 16).sum(-1) == 12).all()
    with pytest.raises(ValueError, match="generator is on cpu"):
        SemanticMasker(0.75)(scores, generator=seeded())


def test_cls_attention_scores_average_class_row_over_heads():
    attention = torch.rand(6, 3, 5, 5, generator=seeded()).softmax(-1)  # B=2 videos x T=3 frames, 1 + 4 tokens
    scores = cls_attention_scores(attention, num_frames=3)
    assert scores.shape == (2, 3, 4)
    assert torch.allclose(scores[1, 2], attention[5, :, 0, 1:].mean(0))
    with pytest.raises(ValueError, match="num_frames=4"):
        cls_attention_scores(attention, num_frames=4)


# ---------------------------------------------------------------------------------------------------- factory


@pytest.mark.parametrize("mask_type", ["tube", "random", "block"])
def test_build_masker_round_trips_through_to_dict(mask_type):
    masker = build_masker(mask_type, num_frames=2, grid_size=(3, 4), mask_ratio=0.5)
    assert masker.mask_type == mask_type
    settings = json.loads(json.dumps(masker.to_dict()))
    rebuilt = build_masker(**settings)
    assert type(rebuilt) is type(masker) and rebuilt.to_dict() == masker.to_dict()
    assert torch.equal(rebuilt(3, generator=seeded(4)), masker(3, generator=seeded(4)))


def test_build_masker_semantic_and_errors():
    semantic = build_masker("semantic", mask_ratio=0.8, num_frames=2, grid_size=4)
    assert isinstance(semantic, SemanticMasker)
    assert build_masker(**semantic.to_dict()).to_dict() == semantic.to_dict()
    with pytest.raises(ValueError, match="unknown mask_type 'attention'.*'block'.*'tube'"):
        build_masker("attention", mask_ratio=0.5)
    with pytest.raises(ValueError, match="does not take \\['min_aspect'\\]"):
        build_masker("tube", num_frames=2, grid_size=4, mask_ratio=0.5, min_aspect=0.3)


# ---------------------------------------------------------------------------------------------------- text: MLM

CLS, SEP, PAD, MASK, VOCAB = 2, 3, 0, 4, 60


def synthetic_text_batch(batch: int = 1000, length: int = 24, seed: int = 0):
    """Ids in [5, VOCAB) framed by [CLS] ... [SEP] and right-padded to random lengths."""
    generator = seeded(seed)
    ids = torch.randint(5, VOCAB, (batch, length), generator=generator)
    lengths = torch.randint(4, length + 1, (batch,), generator=generator)
    positions = torch.arange(length).expand(batch, length)
    ids[:, 0] = CLS
    ids[positions == (lengths - 1).unsqueeze(1)] = SEP
    ids[positions >= lengths.unsqueeze(1)] = PAD
    special = (ids == CLS) | (ids == SEP) | (ids == PAD)
    return ids, special


def test_mlm_never_touches_special_tokens_and_labels_are_correct():
    ids, special = synthetic_text_batch()
    original = ids.clone()
    masked, labels = mask_tokens_mlm(ids, special, MASK, VOCAB, probability=0.15, generator=seeded())
    assert torch.equal(ids, original)  # the input is not modified
    assert torch.equal(masked[special], ids[special])
    assert (labels[special] == IGNORE_INDEX).all()
    selected = labels != IGNORE_INDEX
    assert torch.equal(labels[selected], ids[selected])
    assert torch.equal(masked[~selected], ids[~selected])  # unselected tokens are unchanged
    rate = selected.sum().item() / (~special).sum().item()
    assert abs(rate - 0.15) < 0.01


def test_mlm_80_10_10_proportions():
    ids, special = synthetic_text_batch(batch=2000)
    masked, labels = mask_tokens_mlm(ids, special, MASK, VOCAB, probability=0.15, generator=seeded(1))
    selected = labels != IGNORE_INDEX
    total = selected.sum().item()
    assert total > 3000
    as_mask = (masked[selected] == MASK).sum().item() / total
    kept = (masked[selected] == ids[selected]).sum().item() / total
    replaced = 1 - as_mask - kept
    assert abs(as_mask - 0.8) < 0.03
    assert abs(kept - 0.1) < 0.03  # includes the rare random draw of the original id (1 / 60 of 10 %)
    assert abs(replaced - 0.1) < 0.03
    # Random replacements come from the vocabulary.
    assert masked.min() >= 0 and masked.max() < VOCAB


def test_mlm_is_seeded_and_respects_attention_mask():
    ids, special = synthetic_text_batch(batch=50)
    first = mask_tokens_mlm(ids, special, MASK, VOCAB, 0.3, generator=seeded(5))
    second = mask_tokens_mlm(ids, special, MASK, VOCAB, 0.3, generator=seeded(5))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    # Padding flagged only by the attention mask is never masked, even with probability 1.
    attention_mask = (ids != PAD).long()
    no_pad_flag = (ids == CLS) | (ids == SEP)
    masked, labels = mask_tokens_mlm(ids, no_pad_flag, MASK, VOCAB, 1.0, seeded(), attention_mask=attention_mask)
    assert (labels[ids == PAD] == IGNORE_INDEX).all() and (masked[ids == PAD] == PAD).all()
    assert (labels[attention_mask.bool() & ~no_pad_flag] != IGNORE_INDEX).all()


def test_mlm_with_real_tokenizer(wordpiece_tokenizer):
    encoding = wordpiece_tokenizer(
        ["the dog moves left", "a small red circle moves up and then down"],
        padding="longest",
        return_tensors="pt",
        return_special_tokens_mask=True,
    )
    ids = encoding["input_ids"]
    mask_id, vocab_size = wordpiece_tokenizer.mask_token_id, len(wordpiece_tokenizer)
    masked, labels = mask_tokens_mlm(ids, encoding["special_tokens_mask"], mask_id, vocab_size, 1.0, seeded())
    special = encoding["special_tokens_mask"].bool()
    assert (labels[special] == IGNORE_INDEX).all()
    assert torch.equal(labels[~special], ids[~special])


# ---------------------------------------------------------------------------------------------------- text: whole words

WORDS = "dogs cats circles squares unable playing colored balls the a man red moves left up".split()


def random_captions(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) + " ?" for _ in range(count)]


def word_groups(word_ids: list[int | None]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for position, word in enumerate(word_ids):
        if word is not None:
            groups.setdefault(word, []).append(position)
    return groups


def test_whole_word_masking_never_splits_words_and_uses_only_mask(wordpiece_tokenizer):
    captions = random_captions(600)
    encoding = wordpiece_tokenizer(captions, padding="longest", return_tensors="pt", return_special_tokens_mask=True)
    ids = encoding["input_ids"]
    word_ids = [encoding.word_ids(i) for i in range(len(captions))]
    mask_id = wordpiece_tokenizer.mask_token_id
    masked, labels = mask_whole_words(
        ids, word_ids, encoding["special_tokens_mask"], mask_id, probability=0.15, generator=seeded()
    )
    assert wordpiece_tokenizer.unk_token_id not in ids  # every word is in the vocabulary, so pieces are real

    changed = masked != ids
    assert (masked[changed] == mask_id).all()  # [MASK] only, no random replacement
    assert torch.equal(changed, labels != IGNORE_INDEX)  # every selected token becomes [MASK]
    assert torch.equal(labels[changed], ids[changed])
    assert not changed[encoding["special_tokens_mask"].bool()].any()

    num_words = num_masked_words = multi_piece_masked = 0
    for row, row_word_ids in enumerate(word_ids):
        for positions in word_groups(row_word_ids).values():
            states = changed[row, positions]
            assert states.all() or not states.any(), f"word split in row {row}: {states.tolist()}"
            num_words += 1
            num_masked_words += int(states.all())
            multi_piece_masked += int(states.all() and len(positions) > 1)
    assert multi_piece_masked > 20  # the check above covered words of several pieces
    assert abs(num_masked_words / num_words - 0.15) < 0.02


def test_whole_word_masking_treats_the_words_of_a_pair_independently(wordpiece_tokenizer):
    # Word ids restart at 0 in the second text of a pair; word 0 of each text must be drawn separately.
    encoding = wordpiece_tokenizer(
        ["red circle"] * 400, ["blue square"] * 400, return_tensors="pt", return_special_tokens_mask=True
    )
    word_ids = [encoding.word_ids(i) for i in range(400)]
    assert word_ids[0] == [None, 0, 1, None, 0, 1, None]
    mask_id = wordpiece_tokenizer.mask_token_id
    special = encoding["special_tokens_mask"]
    masked, _ = mask_whole_words(encoding["input_ids"], word_ids, special, mask_id, 0.5, seeded())
    first_red = masked[:, 1] == mask_id  # [CLS] red circle [SEP] blue square [SEP]
    first_blue = masked[:, 4] == mask_id
    assert (first_red != first_blue).sum() > 100


def test_whole_word_masking_skips_words_with_protected_tokens():
    ids = torch.tensor([[CLS, 10, 11, 12, 13, 14, SEP]])
    word_ids = torch.tensor([[-1, 0, 0, 1, 2, 2, -1]])
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[0, [0, 6, 5]] = True  # the second piece of word 2 is protected
    masked, labels = mask_whole_words(ids, word_ids, special, MASK, probability=1.0, generator=seeded())
    assert masked.tolist() == [[CLS, MASK, MASK, MASK, 13, 14, SEP]]
    assert labels.tolist() == [[IGNORE_INDEX, 10, 11, 12, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]


def test_whole_word_masking_is_seeded():
    ids, special = synthetic_text_batch(batch=40)
    word_ids = torch.where(special, -1, torch.arange(ids.shape[1]).expand_as(ids) // 2)
    first = mask_whole_words(ids, word_ids, special, MASK, 0.3, seeded(3))
    assert all(torch.equal(a, b) for a, b in zip(first, mask_whole_words(ids, word_ids, special, MASK, 0.3, seeded(3))))
    assert not torch.equal(first[0], mask_whole_words(ids, word_ids, special, MASK, 0.3, seeded(4))[0])


def test_word_ids_from_wordpieces_matches_fast_tokenizer(wordpiece_tokenizer):
    captions = random_captions(30, seed=1)
    encoding = wordpiece_tokenizer(captions, padding="longest", return_tensors="pt", return_special_tokens_mask=True)
    derived = word_ids_from_wordpieces(encoding["input_ids"], wordpiece_tokenizer)
    for row in range(len(captions)):
        expected = [-1 if w is None else w for w in encoding.word_ids(row)]
        assert derived[row].tolist() == expected
    # Some captions do contain continuation pieces, so the "##" rule was exercised.
    pieces = wordpiece_tokenizer.convert_ids_to_tokens(encoding["input_ids"].flatten().tolist())
    assert any(piece.startswith("##") for piece in pieces)


def test_floor_rounding_keeps_the_umt_authors_visible_count():
    # UMT's umt.py: N_vis = N - int(N * mask_ratio): 40 of 196 at 80 % (round() would keep 39).
    assert 196 - num_masked_per_frame(0.8, 196, rounding="floor") == 40
    assert 196 - num_masked_per_frame(0.8, 196) == 39
    assert num_masked_per_frame(0.5, 5, rounding="floor") == 2 and num_masked_per_frame(0.5, 7, rounding="floor") == 3
    with pytest.raises(ValueError, match="rounding"):
        num_masked_per_frame(0.5, 4, rounding="ceil")


def test_semantic_masker_keeps_40_of_196_per_frame_at_80_percent_like_the_umt_authors():
    scores = torch.rand(2, 3, 196, generator=torch.Generator().manual_seed(0))
    mask = SemanticMasker(0.8)(scores, generator=torch.Generator().manual_seed(1))
    assert ((~mask).view(2, 3, 196).sum(-1) == 40).all()
    assert SemanticMasker(0.8).to_dict()["rounding"] == "floor"
    assert build_masker(**SemanticMasker(0.8, rounding="round").to_dict()).rounding == "round"


@pytest.mark.parametrize("cls", [TubeMasker, RandomMasker])
def test_grid_maskers_take_the_floor_rule_and_keep_it_in_their_dict(cls):
    masker = cls(num_frames=2, grid_size=14, mask_ratio=0.8, rounding="floor")
    mask = masker(3, generator=torch.Generator().manual_seed(0))
    assert ((~mask).view(3, 2, 196).sum(-1) == 40).all()
    assert build_masker(**masker.to_dict()).config.rounding == "floor"
    assert "rounding" not in cls(num_frames=2, grid_size=14, mask_ratio=0.8).to_dict()  # MAC's default unchanged
