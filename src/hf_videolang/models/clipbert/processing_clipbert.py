"""``ClipBertProcessor``: ClipBERT's sparse clip sampler, longer-side resize + zero padding, and BERT tokenizer.

Defaults follow ClipBERT §3 and §4.4: ``N_train`` random 1-second clips of ``T`` uniformly spaced frames in training
("ClipBERT 8x2"), ``N_test = 16`` uniformly spaced clips at inference, frames resized so the longer side is
L = 448 and zero-padded (bottom / right, the authors' ``ImagePad``) to L x L, no other augmentation, at most 20
text tokens. Pixels are normalized as the authors' ``ImageNorm``: 0-255 RGB minus the ImageNet mean, std 1
(``img_pixel_mean = [123.675, 116.28, 103.53]``, ``img_pixel_std = [1, 1, 1]``); the RGB -> BGR swap the authors
do inside the model is folded into the converted first conv.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import PreTrainedTokenizerBase

from ...processing_utils import VideoTextProcessor
from ...video.sampling import FrameSampler
from ...video.transforms import IMAGENET_MEAN


class ClipBertProcessor(VideoTextProcessor):
    r"""ClipBERT's processor (see [`VideoTextProcessor`] for the arguments; ``None`` keeps the defaults below).

    ``pixel_values`` holds the clips concatenated in time, ``(B, N * T, 3, L, L)``: ``N = num_clips`` (N_train) in
    training and ``N = num_test_clips`` (N_test) at evaluation; the ClipBERT models split them by ``T``.

    Args:
        num_test_clips (`int`): N_test, clips uniformly spaced over the video at evaluation (ClipBERT §4.4: 16).
    """

    train_sampling = "clips"  # ClipBERT §3 "Sparse Sampling for Training": random clips
    eval_sampling = "clips"  # §3: "At inference, we uniformly sample N_test clips"
    num_clips = 8  # N_train, §4.4 "ClipBERT 8x2"
    frames_per_clip = 2  # T, §4.4 "ClipBERT 8x2"; Table 2
    num_test_clips = 16  # N_test, §4.4
    clip_duration = 1.0  # §4.4, "1-second clips"
    num_frames = 16  # unused by the "clips" sampler; kept equal to N_train * T
    image_size = 448  # L, §3 "Implementation Details"
    resize_mode = "pad"  # §3: longer side to L, shorter side zero-padded
    train_augment = False  # the authors' training transform is resize + pad only
    flip_prob = 0.0
    mean = IMAGENET_MEAN  # x 255 = the authors' img_pixel_mean (RGB)
    std = (1 / 255, 1 / 255, 1 / 255)  # the authors' img_pixel_std = 1 on the 0-255 scale
    patch_size = 32  # the ResNet stride; no visual masking in ClipBERT
    mask_type = "random"
    mask_ratio = 0.0
    text_masking = "mlm"  # BERT's 80/10/10 token masking (§3, "randomly mask 15% of the tokens")
    mlm_probability = 0.15
    max_length = 20  # §3, "keep at most 20 tokens"
    short_video = "stretch"  # GIFs shorter than the clips repeat frames instead of failing

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        num_frames: int | None = None,
        train_sampling: str | None = None,
        eval_sampling: str | None = None,
        num_clips: int | None = None,
        frames_per_clip: int | None = None,
        clip_duration: float | None = None,
        target_fps: float | None = None,
        image_size: int | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        resize_mode: str | None = None,
        train_augment: bool | None = None,
        flip_prob: float | None = None,
        mask_type: str | None = None,
        mask_ratio: float | None = None,
        patch_size: int | None = None,
        tubelet_size: int | None = None,
        text_masking: str | None = None,
        mlm_probability: float | None = None,
        max_length: int | None = None,
        short_video: str | None = None,
        do_sample_frames: bool | None = None,
        size: dict[str, int] | int | None = None,
        crop_size: dict[str, int] | int | None = None,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        fps: float | None = None,
        num_test_clips: int | None = None,
    ) -> None:
        self.num_test_clips = type(self).num_test_clips if num_test_clips is None else num_test_clips
        if not isinstance(self.num_test_clips, int) or self.num_test_clips < 1:
            raise ValueError(f"ClipBertProcessor: num_test_clips must be a positive integer, got {num_test_clips!r}")
        super().__init__(
            tokenizer, num_frames, train_sampling, eval_sampling, num_clips, frames_per_clip, clip_duration,
            target_fps, image_size, mean, std, resize_mode, train_augment, flip_prob, mask_type, mask_ratio,
            patch_size, tubelet_size, text_masking, mlm_probability, max_length, short_video, do_sample_frames,
            size, crop_size, image_mean, image_std, fps,
        )  # fmt: skip

    def _build_components(self) -> None:
        super()._build_components()
        if self.eval_sampling == "clips":
            self._eval_sampler = FrameSampler(
                "clips",
                num_frames=self.num_test_clips * self.frames_per_clip,
                num_clips=self.num_test_clips,
                frames_per_clip=self.frames_per_clip,
                clip_duration=self.clip_duration,
                short_video=self.short_video,
            )

    def clips_per_video(self, training: bool) -> int:
        """``N``: ``num_clips`` (N_train) in training, ``num_test_clips`` (N_test) at evaluation."""
        return self.num_clips if training else self.num_test_clips

    @classmethod
    def from_config(cls, config: Any, tokenizer: PreTrainedTokenizerBase, **overrides: Any) -> ClipBertProcessor:
        """A processor matching a `ClipBertConfig`: its L, T, N_train, N_test, clip duration and text length.

        Keyword overrides (any processor argument) win over the config.
        """
        settings = dict(
            image_size=config.image_size,
            frames_per_clip=config.frames_per_clip,
            num_clips=config.num_train_clips,
            num_frames=config.num_train_clips * config.frames_per_clip,
            num_test_clips=config.num_test_clips,
            clip_duration=config.clip_duration,
            mlm_probability=config.mlm_probability,
            max_length=config.max_text_length,
        )
        settings.update(overrides)
        return cls(tokenizer, **settings)


__all__ = ["ClipBertProcessor"]
