"""``UmtProcessor``: frame sampler, video transform, visual masker and BERT tokenizer of UMT.

Defaults follow UMT §4.1 and the authors' configs (OpenGVLab/unmasked_teacher@4fb4049, ``multi_modality/exp/``):
4 frames per video (stage 2; stage 1 uses 8, ``UmtProcessor(tokenizer, num_frames=8)``), one random frame per
segment in training and the middle frame of each segment at evaluation (``sample_type="rand"`` / ``"middle"``),
224 px frames normalized with ImageNet statistics (the authors' ViT setting), 80 % of each frame's tokens masked
and 50 % of the text tokens selected for MLM.
"""

from __future__ import annotations

from ...processing_utils import VideoTextProcessor


class UmtProcessor(VideoTextProcessor):
    r"""UMT's processor (see [`VideoTextProcessor`] for the arguments; ``None`` keeps the defaults below).

    Masks: UMT's own masking is *semantic* (UMT §3.1): the model draws it from the CLIP teacher's class-token
    attention when no ``bool_masked_pos`` is given, so the default ``mask_type="semantic"`` makes no masks here.
    ``mask_type="random"`` (per-frame random, Table 1) or ``"tube"`` lets the processor draw them at ``mask_ratio``.

    Also usable as the ``video_processor`` of transformers' ``video-classification`` pipeline, which calls
    ``processor(video, num_frames=..., do_sample_frames=True, return_tensors="pt")``.
    """

    num_frames = 4  # stage 2 (UMT §4.1); 8 in stage 1
    train_sampling = "random_segment"
    eval_sampling = "uniform"
    image_size = 224
    patch_size = 16
    tubelet_size = 1  # UMT §3.1: no temporal downsampling
    mask_type = "semantic"
    mask_ratio = 0.8  # UMT §4.1, videos
    text_masking = "mlm"
    mlm_probability = 0.5  # UMT §4.1 / Table 5 (the authors' mlm_masking_prob)
    max_length = 32  # the authors' max_txt_l


__all__ = ["UmtProcessor"]
