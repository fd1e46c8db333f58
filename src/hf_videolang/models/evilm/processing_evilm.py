"""``EvilmProcessor`` and ``truncate_vocabulary``: E-ViLM's frame sampler, transforms, block masker and tokenizer.

Defaults follow E-ViLM §4.1: 4 sparsely sampled frames resized to 256 px after random augmentation, block-wise
masking of 40 % of the regions (one region per 32 px cell of EdgeNeXt's output grid, so a masked region is exactly
the input of one video token) and 15 % of the words masked for MLM.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from transformers import BertTokenizerFast, PreTrainedTokenizerBase

from ...processing_utils import VideoTextProcessor


class EvilmProcessor(VideoTextProcessor):
    r"""E-ViLM's processor (see [`VideoTextProcessor`] for the arguments; ``None`` keeps the defaults below).

    ``processor(videos, text, training=True, return_masks=True, return_mlm=True)`` returns what
    `EvilmForPreTraining` reads: ``bool_masked_pos`` (block-wise, ``T * 8 * 8`` regions at 256 px) and
    ``mlm_input_ids`` / ``mlm_labels`` (BERT's 80/10/10 corruption of 15 % of the tokens).
    """

    num_frames = 4  # §4.1: "we sparsely sample 4 video frames"
    train_sampling = "random_segment"
    eval_sampling = "uniform"
    image_size = 256  # §4.1: "resize them into 256x256"
    patch_size = 32  # EdgeNeXt's output stride: one masking region per video token
    tubelet_size = 1
    mask_type = "block"  # §4.1: "We adopt block-wise masking [6]"
    mask_ratio = 0.4  # §4.1: "with masking ratio 40%"
    text_masking = "mlm"
    mlm_probability = 0.15  # §4.1: "we randomly mask 15% of the words"
    max_length = 40

    @classmethod
    def from_config(cls, config: Any, tokenizer: PreTrainedTokenizerBase, **overrides: Any) -> EvilmProcessor:
        """A processor matching an `EvilmConfig` (frames, image size, region size, mask ratios, text length)."""
        settings = dict(
            num_frames=config.num_frames,
            image_size=config.image_size,
            patch_size=config.video_stride,
            mask_ratio=config.video_mask_ratio,
            mlm_probability=config.text_mask_ratio,
            max_length=config.max_text_length,
        )
        settings.update(overrides)
        return cls(tokenizer, **settings)


@dataclass
class TruncatedVocabulary:
    """What :func:`truncate_vocabulary` built: the new tokenizer and, for each new id, the old id it came from."""

    tokenizer: BertTokenizerFast
    kept_ids: list[int]
    token_counts: dict[str, int] = field(default_factory=dict)

    def truncate_embeddings(self, embeddings: nn.Embedding) -> nn.Embedding:
        """The rows of `embeddings` (indexed by old ids) for the kept tokens, in the new order."""
        index = torch.tensor(self.kept_ids, device=embeddings.weight.device)
        new = nn.Embedding(len(self.kept_ids), embeddings.embedding_dim, padding_idx=self.tokenizer.pad_token_id)
        with torch.no_grad():
            new.weight.copy_(embeddings.weight[index])
        return new


def truncate_vocabulary(
    tokenizer: PreTrainedTokenizerBase,
    texts: Iterable[str],
    keep_ratio: float | None = 0.3,
    max_size: int | None = None,
) -> TruncatedVocabulary:
    """Keep the most frequent WordPieces of `texts` (E-ViLM §4.1: "retaining only the top 30% most frequent words").

    The corpus is tokenized with `tokenizer`; its tokens are ranked by count (ties by their original id, so the
    result is deterministic) and the top ones kept, with every special token. Words that the smaller vocabulary
    can no longer spell become ``[UNK]`` (WordPiece's rule for unknown words).

    Args:
        tokenizer: a BERT WordPiece tokenizer (fast or slow).
        texts: the training captions.
        keep_ratio: fraction of the tokens *seen in the corpus* to keep (0.3 as the paper); None to use `max_size`.
        max_size: cap on the number of kept non-special tokens.

    Returns:
        A :class:`TruncatedVocabulary` whose `truncate_embeddings` slices a pretrained embedding to match.
    """
    if keep_ratio is None and max_size is None:
        raise ValueError("truncate_vocabulary: give keep_ratio, max_size or both.")
    if keep_ratio is not None and not 0.0 < keep_ratio <= 1.0:
        raise ValueError(f"truncate_vocabulary: keep_ratio must be in (0, 1], got {keep_ratio}.")
    vocab = tokenizer.get_vocab()
    if "[UNK]" not in vocab or not any(token.startswith("##") for token in vocab):
        raise ValueError("truncate_vocabulary needs a BERT WordPiece tokenizer (with [UNK] and ## pieces).")
    counts: collections.Counter[str] = collections.Counter()
    for text in texts:
        counts.update(tokenizer.tokenize(text))
    special = [token for token in tokenizer.all_special_tokens if token in vocab]
    ranked = sorted((t for t in counts if t not in special), key=lambda t: (-counts[t], vocab[t]))
    size = len(ranked)
    if keep_ratio is not None:
        size = max(1, int(round(keep_ratio * size)))
    if max_size is not None:
        size = min(size, max_size)
    kept_tokens = sorted(special, key=vocab.__getitem__) + ranked[:size]
    new = BertTokenizerFast(
        vocab={token: index for index, token in enumerate(kept_tokens)},
        do_lower_case=getattr(tokenizer, "do_lower_case", True),
    )
    new.model_max_length = tokenizer.model_max_length
    return TruncatedVocabulary(
        tokenizer=new, kept_ids=[vocab[t] for t in kept_tokens], token_counts={t: counts[t] for t in ranked[:size]}
    )


def save_truncation_report(result: TruncatedVocabulary, path: str | os.PathLike) -> None:
    """Write the kept tokens and their counts as JSON (what a user checks before training on it)."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"vocab_size": len(result.kept_ids), "counts": result.token_counts}, handle, indent=1)


__all__ = ["EvilmProcessor", "TruncatedVocabulary", "save_truncation_report", "truncate_vocabulary"]
