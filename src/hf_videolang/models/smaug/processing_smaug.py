"""``SmaugProcessor``: Singularity's frame sampling, the tube masker and BERT's tokenizer, for SMAUG.

Defaults follow SMAUG §3.1.1 / §3.5 / §4.2 and Singularity (``configs/pretrain.yaml``: ``sample_type: rand`` in
training, ``sample_type_test: middle`` at evaluation, ``max_txt_l: 32``): 4 frames (1 for single-frame
pre-training, ``with_num_frames(1)``), one random frame per segment in training and the middle of each segment at
evaluation, 224 px frames with random resized crop and flip (§3.5), 16 px patches, tube masking of 50 % of each
frame's patches (the same positions in every frame, §3.1.1) and BERT's 15 % MLM (80/10/10).
"""

from __future__ import annotations

from typing import Any

from transformers import PreTrainedTokenizerBase

from ...processing_utils import VideoTextProcessor


class SmaugProcessor(VideoTextProcessor):
    r"""SMAUG's processor (see [`VideoTextProcessor`] for the arguments; ``None`` keeps the defaults below).

    ``processor(videos, text, training=True, return_masks=True, return_mlm=True)`` returns ``pixel_values``,
    ``input_ids``, ``attention_mask``, ``bool_masked_pos`` (tube mask, SMAUG §3.1.1) and ``mlm_input_ids`` /
    ``mlm_labels`` (15 %), what `SmaugForPreTraining` reads.
    """

    num_frames = 4  # SMAUG §3.5: "four frames for the multiple-frame setting" (1 for single-frame)
    train_sampling = "random_segment"  # Singularity's `sample_type: rand`
    eval_sampling = "uniform"  # Singularity's `sample_type_test: middle`
    image_size = 224  # SMAUG §3.5
    patch_size = 16  # ViT-B/16
    tubelet_size = 1  # per-frame patchify (SMAUG §3.1.1)
    mask_type = "tube"  # SMAUG §3.1.1, Table 8
    mask_ratio = 0.5  # SMAUG §4.2, Table 4
    text_masking = "mlm"  # BERT's 80/10/10 (Singularity's MLM)
    mlm_probability = 0.15  # SMAUG §4.2
    max_length = 32  # Singularity's `max_txt_l`

    @classmethod
    def from_config(cls, config: Any, tokenizer: PreTrainedTokenizerBase, **overrides: Any) -> SmaugProcessor:
        """A processor matching a `SmaugConfig` (frames, image and patch size, mask ratios, text length).

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


__all__ = ["SmaugProcessor"]
