"""``MacProcessor``: frame sampler, video transform, random masker and whole-word text masking of MAC.

Defaults follow MAC §3.1 and §4.3: 4 frames per video, one random frame per segment in training and the middle frame
of each segment at evaluation (MAC §4.3: frames are sampled "randomly" in pre-training and "uniformly" in
fine-tuning), 224 px frames with random crop and horizontal flip, 16 px patches, 60 % of each frame's patches masked
at random and 15 % of the words replaced, whole, by [MASK] only.
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase

from ...processing_utils import VideoTextProcessor


class MacProcessor(VideoTextProcessor):
    r"""MAC's processor (see [`VideoTextProcessor`] for the arguments; ``None`` keeps the defaults below).

    ``processor(videos, text, training=True, return_masks=True, return_mlm=True)`` returns the masked views MAC
    trains on: ``bool_masked_pos`` (random per frame, equal counts, MAC §3.1) and ``mlm_input_ids`` (whole words
    replaced by [MASK], MAC §3.1 "Text Masking"; ``mlm_labels`` is made too but MAC does not use it).
    `VideoTextCollator(processor, task="pretrain")` asks for both in training.
    """

    num_frames = 4  # MAC §4.3: 4 frames in the temporal phase and in fine-tuning
    train_sampling = "random_segment"  # MAC §4.3, "randomly sample 4 frames"
    eval_sampling = "uniform"  # MAC §4.3, "uniformly sample 4 frames"
    image_size = 224  # MAC §4.3
    patch_size = 16  # MAC §4.3
    tubelet_size = 1
    mask_type = "random"  # MAC §3.1 / Table 6: random masking, per frame
    mask_ratio = 0.6  # MAC §3.1, §4.3
    text_masking = "whole_word"  # MAC §3.1: whole words, [MASK] only
    mlm_probability = 0.15  # MAC §3.1, §4.3
    max_length = 128  # MAC Table 4, "128 of text length"

    @classmethod
    def from_config(cls, config: Any, tokenizer: PreTrainedTokenizerBase, **overrides: Any) -> MacProcessor:
        """A processor matching a `MacConfig`: its frame count, image and patch size, mask ratios and text length.

        Keyword overrides (any `VideoTextProcessor` argument) win over the config.
        """
        vision = config.vision_config
        settings = dict(
            num_frames=vision.num_frames,
            image_size=vision.image_size,
            patch_size=vision.patch_size,
            mask_ratio=config.video_mask_ratio,
            mlm_probability=config.text_mask_ratio,
            max_length=config.max_text_length,
        )
        settings.update(overrides)
        return cls(tokenizer, **settings)


__all__ = ["MacProcessor"]
