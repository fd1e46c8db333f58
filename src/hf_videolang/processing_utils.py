"""``VideoTextProcessor``: the frame sampler, video transform, visual masker and tokenizer of one method, in one object.

Every method's processor (``UmtProcessor``, ``ClipBertProcessor``, ...) subclasses :class:`VideoTextProcessor` and only
changes the class-level defaults below (``num_frames = 4``, ``mask_ratio = 0.8``, ...). The settings are plain
JSON values, saved to ``processor_config.json`` by ``save_pretrained`` next to the tokenizer files, so
``from_pretrained`` rebuilds an identical processor.

Example::

    processor = VideoTextProcessor(tokenizer, num_frames=8, image_size=224)
    batch = processor(videos=["a.mp4", "b.mp4"], text=["a dog runs", "a cat sleeps"], training=True,
                      return_masks=True, generator=torch.Generator().manual_seed(0))
    batch["pixel_values"].shape  # (2, 8, 3, 224, 224)
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from typing import Any, BinaryIO, ClassVar

import numpy as np
import torch
from PIL import Image
from transformers import BatchFeature, PreTrainedTokenizerBase
from transformers.processing_utils import ProcessorMixin
from typing_extensions import Self

from .errors import EmptyTextError
from .video.io import read_frames, read_video_metadata
from .video.masking import build_masker, mask_tokens_mlm, mask_whole_words, word_ids_from_wordpieces
from .video.sampling import FrameSampler
from .video.transforms import IMAGENET_MEAN, IMAGENET_STD, VideoTransform

VideoInput = str | os.PathLike | bytes | BinaryIO | np.ndarray | torch.Tensor | Sequence[Image.Image]
"""One video: a path, encoded bytes, a binary file-like object, decoded frames ``(T, H, W, 3)`` uint8 as a NumPy array
or tensor (tensors may also be ``(T, 3, H, W)``), or a list of PIL images."""

_TEXT_MASKINGS = ("mlm", "whole_word")
_SHORT_VIDEO_POLICIES = ("error", "stretch")
# Visual masks that need model scores (UMT's teacher attention) are made by the model, not by the processor.
_MODEL_SIDE_MASKS = ("semantic",)


class VideoTextProcessor(ProcessorMixin):
    r"""Turns videos and text into model inputs: sample frames, decode, resize/crop, normalize, mask, tokenize.

    A method's processor subclasses this and overrides the class attributes that hold the defaults; an argument
    passed to ``__init__`` (or stored in ``processor_config.json``) wins over the class default, and ``None`` (the
    default of every argument below) keeps it.

    Args:
        tokenizer ([`PreTrainedTokenizerBase`]):
            The text tokenizer (a BERT WordPiece tokenizer for the five methods).
        num_frames (`int`):
            Frames per video for the ``"uniform"`` / ``"random_segment"`` / ``"fps"`` strategies.
        train_sampling (`str`):
            Frame sampling strategy in training (``"random_segment"``: one random frame per equal segment, TSN-style).
        eval_sampling (`str`):
            Frame sampling strategy at evaluation (``"uniform"``: middle frame of each segment).
        num_clips (`int`), frames_per_clip (`int`), clip_duration (`float`):
            Clip layout for the ``"clips"`` strategy (ClipBERT's sparse sampling); the clips are concatenated along
            time, so ``pixel_values`` has ``num_clips * frames_per_clip`` frames.
        target_fps (`float`, *optional*):
            Frame rate of the ``"fps"`` strategy (at most ``num_frames`` frames).
        image_size (`int`):
            Side of the square output frames.
        mean (`Sequence[float]`), std (`Sequence[float]`):
            Per-channel normalization statistics (RGB, on the [0, 1] scale).
        resize_mode (`str`):
            ``"crop"`` (resize the short side, then crop; random resized crop + flip in training) or ``"pad"``
            (ClipBERT: resize the longer side and pad).
        train_augment (`bool`):
            Whether training uses random crops and flips.
        flip_prob (`float`):
            Probability of the horizontal flip in training (0 for captions that say "left" / "right").
        mask_type (`str`):
            Visual mask kind built by ``return_masks=True``: ``"tube"``, ``"random"``, ``"block"`` (``"semantic"``
            masks need attention scores and are made inside the model).
        mask_ratio (`float`):
            Fraction of visual tokens masked per masking unit (0 disables visual masking).
        patch_size (`int`), tubelet_size (`int`):
            Patch side and tubelet length of the vision backbone; they fix the token grid of ``bool_masked_pos``.
        text_masking (`str`):
            Text corruption used by ``return_mlm=True``: ``"mlm"`` (BERT 80/10/10) or ``"whole_word"``.
        mlm_probability (`float`):
            Probability that a (word) token is selected for MLM (0 disables MLM).
        max_length (`int`):
            Maximum number of text tokens, special tokens included; longer texts are truncated.
        short_video (`str`):
            What to do with videos shorter than the requested frames: ``"error"`` or ``"stretch"``.
        do_sample_frames (`bool`):
            Whether the processor samples ``num_frames`` frames (True) or keeps every frame it is given (False: the
            frames were sampled already), as in transformers' video processors.
        size (`dict`), crop_size (`dict`), image_mean, image_std, fps:
            transformers' names, the ones ``processor_config.json`` holds: ``crop_size={"height": S, "width": S}``
            is ``image_size=S``; ``size`` is the resize target derived from it (``{"shortest_edge": S}`` for
            ``resize_mode="crop"``, ``{"longest_edge": S}`` for ``"pad"``); ``image_mean`` / ``image_std`` are
            ``mean`` / ``std``; ``fps`` is ``target_fps``. Either name may be passed (not both, unless equal).
    """

    # Defaults. A method's processor overrides these, e.g. ``class UmtProcessor(VideoTextProcessor): num_frames = 4``.
    num_frames: int = 8
    train_sampling: str = "random_segment"
    eval_sampling: str = "uniform"
    num_clips: int = 1
    frames_per_clip: int = 1
    clip_duration: float = 1.0
    target_fps: float | None = None
    image_size: int = 224
    mean: Sequence[float] = IMAGENET_MEAN
    std: Sequence[float] = IMAGENET_STD
    resize_mode: str = "crop"
    train_augment: bool = True
    flip_prob: float = 0.5
    mask_type: str = "tube"
    mask_ratio: float = 0.0
    patch_size: int = 16
    tubelet_size: int = 1
    text_masking: str = "mlm"
    mlm_probability: float = 0.15
    max_length: int = 32
    short_video: str = "error"
    do_sample_frames: bool = True

    # `None` in `__init__` means "the class default"; these are the names it resolves.
    _SETTING_NAMES: ClassVar[tuple[str, ...]] = (
        "num_frames", "train_sampling", "eval_sampling", "num_clips", "frames_per_clip", "clip_duration",
        "target_fps", "image_size", "mean", "std", "resize_mode", "train_augment", "flip_prob", "mask_type",
        "mask_ratio", "patch_size", "tubelet_size", "text_masking", "mlm_probability", "max_length", "short_video",
        "do_sample_frames",
    )  # fmt: skip
    # Saved under transformers' video-processor names (the attribute -> the name in `processor_config.json`); the
    # attribute names stay the arguments' and the class defaults' names, and old files that hold them still load.
    _TRANSFORMERS_NAMES: ClassVar[dict[str, str]] = {"mean": "image_mean", "std": "image_std", "target_fps": "fps"}

    # ProcessorMixin discovers sub-processors from the `__init__` signature (`tokenizer` here); every other argument
    # must be positional-or-keyword so that `from_pretrained` passes it back from `processor_config.json`.
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
    ) -> None:
        if tokenizer is None:
            raise ValueError(f"{type(self).__name__} needs a tokenizer, got None")
        passed = dict(locals())
        for old, new in self._TRANSFORMERS_NAMES.items():
            passed[old] = _one_of(old, passed[old], new, passed[new])
        passed["image_size"] = _one_of("image_size", image_size, "crop_size", _square_side("crop_size", crop_size))
        if passed["image_size"] is None:
            passed["image_size"] = _square_side("size", size)  # only `size` given (no crop): its edge
        for name in self._SETTING_NAMES:
            value = passed[name]
            setattr(self, name, getattr(type(self), name) if value is None else value)
        # JSON has no tuples: keep lists so that a saved and reloaded processor compares equal.
        self.mean = [float(m) for m in self.mean]
        self.std = [float(s) for s in self.std]
        self._validate_settings()
        super().__init__(tokenizer)
        self._build_components()

    # ------------------------------------------------------------------ set-up

    def with_num_frames(self, num_frames: int) -> Self:
        """A copy that samples ``num_frames`` frames per video (e.g. UMT's 8-frame stage 1, MAC's 1-frame phase)."""
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ValueError(f"num_frames must be a positive integer, got {num_frames!r}")
        clone = copy.copy(self)
        clone.num_frames = num_frames
        clone._validate_settings()
        clone._build_components()
        return clone

    def _validate_settings(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")
        if self.frames_per_video % self.tubelet_size:
            raise ValueError(
                f"the number of frames per video ({self.frames_per_video}) must be a multiple of "
                f"tubelet_size ({self.tubelet_size})"
            )
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if not 0.0 <= self.mlm_probability <= 1.0:
            raise ValueError(f"mlm_probability must be in [0, 1], got {self.mlm_probability}")
        if self.text_masking not in _TEXT_MASKINGS:
            raise ValueError(f"text_masking must be one of {_TEXT_MASKINGS}, got {self.text_masking!r}")
        if self.short_video not in _SHORT_VIDEO_POLICIES:
            raise ValueError(f"short_video must be one of {_SHORT_VIDEO_POLICIES}, got {self.short_video!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got mean={self.mean} std={self.std}")
        if self.max_length < 2:
            raise ValueError(f"max_length must leave room for [CLS] and [SEP], got {self.max_length}")

    def _build_components(self) -> None:
        """Build the sampler, transform and masker objects from the JSON settings (they are not serialized)."""
        self._train_sampler = self._make_sampler(self.train_sampling)
        self._eval_sampler = self._make_sampler(self.eval_sampling)
        self._transform = VideoTransform(
            image_size=self.image_size,
            mean=tuple(self.mean),
            std=tuple(self.std),
            mode=self.resize_mode,
            train_augment=self.train_augment,
            flip_prob=self.flip_prob,
        )
        self._masker = None
        if self.mask_type not in _MODEL_SIDE_MASKS:
            self._masker = build_masker(
                self.mask_type,
                num_frames=self.frames_per_video // self.tubelet_size,
                grid_size=self.image_size // self.patch_size,
                mask_ratio=self.mask_ratio,
            )

    def _make_sampler(self, strategy: str) -> FrameSampler:
        return FrameSampler(
            strategy,
            num_frames=self.num_frames,
            num_clips=self.num_clips,
            frames_per_clip=self.frames_per_clip,
            clip_duration=self.clip_duration,
            target_fps=self.target_fps,
            short_video=self.short_video,
        )

    # ------------------------------------------------------------------ transformers' names

    @property
    def crop_size(self) -> dict[str, int]:
        """The output frame size, ``{"height": image_size, "width": image_size}``."""
        return {"height": self.image_size, "width": self.image_size}

    @property
    def size(self) -> dict[str, int]:
        """The resize target: the short side (``resize_mode="crop"``, then a crop) or the long side (``"pad"``)."""
        return {"longest_edge" if self.resize_mode == "pad" else "shortest_edge": self.image_size}

    @property
    def image_mean(self) -> list[float]:
        return self.mean

    @property
    def image_std(self) -> list[float]:
        return self.std

    @property
    def fps(self) -> float | None:
        return self.target_fps

    def to_dict(self) -> dict[str, Any]:
        """The saved settings, under transformers' video-processor names (``size``, ``crop_size``, ``image_mean``,
        ``image_std``, ``fps``, ``do_sample_frames``, ``num_frames``)."""
        output = super().to_dict()
        for name in (*self._TRANSFORMERS_NAMES, "image_size"):
            output.pop(name, None)
        for old, new in self._TRANSFORMERS_NAMES.items():
            output[new] = getattr(self, old)
        output["size"], output["crop_size"] = self.size, self.crop_size
        return output

    def save_pretrained(self, save_directory: str | os.PathLike, *args: Any, **kwargs: Any) -> list[str]:
        """``ProcessorMixin.save_pretrained``, plus ``preprocessor_config.json``: the evaluation frame transform as a
        transformers image processor (:class:`~hf_videolang.image_processing_utils.VideoFramesImageProcessor`), which
        ``pipeline("video-classification")`` loads through ``AutoImageProcessor``."""
        from .image_processing_utils import VideoFramesImageProcessor

        saved = super().save_pretrained(save_directory, *args, **kwargs)
        VideoFramesImageProcessor.from_video_text_processor(self).save_pretrained(save_directory)
        return saved

    # ------------------------------------------------------------------ properties

    @property
    def frames_per_video(self) -> int:
        """Number of frames ``T`` in ``pixel_values`` (clips are concatenated along time)."""
        if "clips" in (self.train_sampling, self.eval_sampling):
            return self.num_clips * self.frames_per_clip
        return self.num_frames

    @property
    def num_visual_tokens(self) -> int:
        """Length of ``bool_masked_pos``: ``T // tubelet_size * (image_size // patch_size) ** 2``."""
        return self.frames_per_video // self.tubelet_size * (self.image_size // self.patch_size) ** 2

    @property
    def transform(self) -> VideoTransform:
        """The spatial part alone: ``transform(frames, training, generator)`` maps decoded uint8 frames
        ``(T, H, W, 3)`` to normalized float ``(T, 3, image_size, image_size)``, keeping every frame (no sampling)."""
        return self._transform

    def sampler(self, training: bool = False) -> FrameSampler:
        """The frame sampler of training or of evaluation."""
        return self._train_sampler if training else self._eval_sampler

    @property
    def makes_visual_masks(self) -> bool:
        """Whether ``return_masks=True`` works (``"semantic"`` masks are made inside the model instead)."""
        return self._masker is not None

    @property
    def model_input_names(self) -> list[str]:
        return ["pixel_values", "input_ids", "attention_mask", "bool_masked_pos", "mlm_input_ids", "mlm_labels"]

    # ------------------------------------------------------------------ video

    def load_video(
        self,
        video: VideoInput,
        training: bool = False,
        generator: torch.Generator | None = None,
        do_sample_frames: bool | None = None,
    ) -> torch.Tensor:
        """Sample, decode and transform one video.

        Args:
            video: anything :func:`~hf_videolang.video.io.read_frames` accepts (path, bytes, file-like, decoded
                frames as an array/tensor, list of PIL images).
            training: use the training sampler and augmentation (random) instead of the deterministic eval ones.
            generator: source of randomness in training; the same seed gives the same frames and crops.
            do_sample_frames: False keeps every frame of ``video`` (default: ``self.do_sample_frames``).

        Returns:
            `torch.Tensor` of shape ``(T, 3, image_size, image_size)``, float32, normalized.
        """
        metadata = read_video_metadata(video)
        if not (self.do_sample_frames if do_sample_frames is None else do_sample_frames):
            frames = torch.from_numpy(read_frames(video, list(range(metadata.num_frames))))
            return self._transform(frames, training=training, generator=generator)
        indices = self.sampler(training)(metadata, training=training, generator=generator)
        if indices and isinstance(indices[0], (list, tuple)):  # "clips": one list per clip, concatenated in time
            indices = [index for clip in indices for index in clip]
        # Frames far larger than the output are decoded at twice its size (FFmpeg's scaler), never as full-size
        # floats: an 8192x8192 video then costs its decoder's two pictures, not gigabytes.
        frames = torch.from_numpy(read_frames(video, indices, downscale_to=2 * self.image_size))  # (T, H, W, 3)
        return self._transform(frames, training=training, generator=generator)

    def _load_videos(
        self,
        videos: VideoInput | Sequence[VideoInput],
        training: bool,
        generator: torch.Generator | None,
        do_sample_frames: bool | None = None,
    ) -> torch.Tensor:
        video_list = _as_video_list(videos)
        if not video_list:
            raise ValueError("videos is an empty list")
        clips = [self.load_video(video, training, generator, do_sample_frames) for video in video_list]
        lengths = sorted({clip.shape[0] for clip in clips})
        if len(lengths) > 1:
            raise ValueError(
                f"with do_sample_frames=False every video keeps its own frames, and these have {lengths} frames: "
                "pass videos of equal length, or let the processor sample num_frames frames"
            )
        return torch.stack(clips)

    def make_visual_masks(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Boolean visual masks ``(batch_size, num_visual_tokens)``, True = masked, frame-major order."""
        if self._masker is None:
            raise ValueError(f"mask_type={self.mask_type!r} masks are computed inside the model, not by the processor")
        return self._masker(batch_size, generator=generator)

    # ------------------------------------------------------------------ text

    def _tokenize(self, texts: list[str], return_mlm: bool, **tokenizer_kwargs: Any) -> BatchFeature:
        """Tokenize to PyTorch tensors; ``tokenizer_kwargs`` (``padding``, ``truncation``, ``max_length``) override the
        defaults: pad to the longest text, truncate to ``self.max_length``."""
        settings = {"padding": "longest", "truncation": True, "max_length": self.max_length}
        settings.update({key: value for key, value in tokenizer_kwargs.items() if value is not None})
        return self.tokenizer(texts, **settings, return_tensors="pt", return_special_tokens_mask=return_mlm)

    def mask_text(
        self, encoding: BatchFeature, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Corrupt tokenized text for masked language modeling.

        Returns:
            ``(mlm_input_ids, mlm_labels)``, both ``(B, L)``; labels are -100 where no prediction is asked.
        """
        input_ids = encoding["input_ids"]
        common = {
            "special_tokens_mask": encoding["special_tokens_mask"],
            "attention_mask": encoding["attention_mask"],  # padding is never masked
            "mask_token_id": self.tokenizer.mask_token_id,
            "probability": self.mlm_probability,
            "generator": generator,
        }
        if self.text_masking == "whole_word":
            if encoding.encodings is not None:  # fast tokenizer: exact word boundaries
                word_ids = [encoding.word_ids(row) for row in range(input_ids.shape[0])]
            else:
                word_ids = word_ids_from_wordpieces(input_ids, self.tokenizer, encoding["special_tokens_mask"])
            return mask_whole_words(input_ids, word_ids=word_ids, **common)
        return mask_tokens_mlm(input_ids, vocab_size=len(self.tokenizer), **common)

    # ------------------------------------------------------------------ call

    def __call__(
        self,
        videos: VideoInput | Sequence[VideoInput] | None = None,
        text: str | Sequence[str] | None = None,
        training: bool = False,
        return_masks: bool = False,
        return_mlm: bool = False,
        generator: torch.Generator | None = None,
        return_tensors: str | None = "pt",
        num_frames: int | None = None,
        do_sample_frames: bool | None = None,
        padding: bool | str | None = None,
        truncation: bool | str | None = None,
        max_length: int | None = None,
    ) -> BatchFeature:
        """Prepare a batch of videos and/or texts.

        Args:
            videos: one video or a list of videos (see :data:`VideoInput`).
            text: one text or a list of texts. The number of texts may differ from the number of videos (e.g. the
                options of a multiple-choice question).
            training: random frame sampling and augmentation instead of the deterministic evaluation ones.
            return_masks: add ``bool_masked_pos`` (needs ``videos``).
            return_mlm: add ``mlm_input_ids`` / ``mlm_labels`` (needs ``text``).
            generator: the randomness of sampling, augmentation and masking; the same seed gives the same batch.
            return_tensors: ``"pt"`` (PyTorch, also for None) or ``"np"`` (NumPy).
            num_frames: frames per video for this call (default: ``self.num_frames``), as transformers' video
                processors take it.
            do_sample_frames: False keeps every frame of each video as given (default: ``self.do_sample_frames``).
            padding, truncation, max_length: passed to the tokenizer (defaults: ``"longest"``, True and
                ``self.max_length``), e.g. ``padding="max_length"`` for fixed-length text.

        Returns:
            [`BatchFeature`] with, as requested:

            - ``pixel_values``: ``(B, T, 3, image_size, image_size)`` float32
            - ``input_ids``, ``attention_mask``: ``(N, L)`` int64, padded to the longest text
            - ``bool_masked_pos``: ``(B, T // tubelet_size * (image_size // patch_size) ** 2)`` bool
            - ``mlm_input_ids``, ``mlm_labels``: ``(N, L)`` int64 (labels -100 where not masked)

        Raises:
            EmptyTextError: a text is empty or only whitespace.
            VideoError: a video cannot be read (see :mod:`hf_videolang.errors`).
        """
        tokenizer_kwargs = {"padding": padding, "truncation": truncation, "max_length": max_length}
        if num_frames not in (None, self.num_frames):
            return self.with_num_frames(num_frames)(
                videos, text, training=training, return_masks=return_masks, return_mlm=return_mlm,
                generator=generator, return_tensors=return_tensors, do_sample_frames=do_sample_frames,
                **tokenizer_kwargs,
            )  # fmt: skip
        if return_tensors not in ("pt", "np", None):
            raise ValueError(
                f"{type(self).__name__} returns PyTorch (return_tensors='pt') or NumPy ('np') arrays, got "
                f"return_tensors={return_tensors!r}"
            )
        if videos is None and text is None:
            raise ValueError("pass videos, text, or both")
        if return_masks and videos is None:
            raise ValueError("return_masks=True needs videos")
        if return_masks and not self.makes_visual_masks:
            raise ValueError(
                f"mask_type={self.mask_type!r} masks are computed inside the model from its attention scores; "
                "call the processor with return_masks=False"
            )
        if return_mlm and text is None:
            raise ValueError("return_mlm=True needs text")

        data: dict[str, Any] = {}
        if videos is not None:
            pixel_values = self._load_videos(videos, training, generator, do_sample_frames)
            data["pixel_values"] = pixel_values
            if return_masks:
                if pixel_values.shape[1] != self.frames_per_video:
                    raise ValueError(
                        f"return_masks=True makes masks for {self.frames_per_video} frames, but the videos kept "
                        f"{pixel_values.shape[1]} (do_sample_frames=False): pass num_frames={pixel_values.shape[1]}"
                    )
                data["bool_masked_pos"] = self.make_visual_masks(pixel_values.shape[0], generator=generator)
        if text is not None:
            texts = _as_text_list(text)
            encoding = self._tokenize(texts, return_mlm=return_mlm, **tokenizer_kwargs)
            data["input_ids"] = encoding["input_ids"]
            data["attention_mask"] = encoding["attention_mask"]
            if return_mlm:
                data["mlm_input_ids"], data["mlm_labels"] = self.mask_text(encoding, generator=generator)
        if return_tensors == "np":
            data = {key: value.numpy() for key, value in data.items()}
        return BatchFeature(data, tensor_type=return_tensors or "pt")


def _one_of(name: str, value: Any, alias: str, alias_value: Any) -> Any:
    """The value of a setting passed under its own name or under transformers' name (not both, unless equal)."""
    if value is not None and alias_value is not None and _plain(value) != _plain(alias_value):
        raise ValueError(f"got {name}={value!r} and {alias}={alias_value!r}, which disagree: pass one of them")
    return alias_value if value is None else value


def _plain(value: Any) -> Any:
    return [float(v) for v in value] if isinstance(value, (list, tuple)) else value


def _square_side(name: str, size: dict[str, int] | int | None) -> int | None:
    """The side of a square frame size given as transformers writes it: ``{"height": S, "width": S}``,
    ``{"shortest_edge": S}`` / ``{"longest_edge": S}``, or an int."""
    if size is None or isinstance(size, int):
        return size
    if isinstance(size, dict):
        if "height" in size or "width" in size:
            if size.get("height") != size.get("width"):
                raise ValueError(f"{name} must be square (the processor makes square frames), got {size}")
            return int(size["height"])
        for key in ("shortest_edge", "longest_edge"):
            if key in size:
                return int(size[key])
    raise ValueError(f"{name} must be an int or a dict with height/width or shortest_edge/longest_edge, got {size!r}")


def _as_video_list(videos: VideoInput | Sequence[VideoInput]) -> list[VideoInput]:
    """Tell one video from a batch of videos."""
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        return list(videos) if videos.ndim == 5 else [videos]  # (B, T, ...) is a batch
    if isinstance(videos, (str, bytes, os.PathLike)) or hasattr(videos, "read"):
        return [videos]
    videos = list(videos)
    first = videos[0] if videos else None
    # A list of frames (PIL images or (H, W, 3) arrays) is one video.
    if isinstance(first, Image.Image) or (isinstance(first, (np.ndarray, torch.Tensor)) and first.ndim == 3):
        return [videos]
    return videos


def _as_text_list(text: str | Sequence[str]) -> list[str]:
    texts = [text] if isinstance(text, str) else list(text)
    if not texts:
        raise EmptyTextError("text is an empty list")
    for index, item in enumerate(texts):
        if not isinstance(item, str):
            raise TypeError(f"text[{index}] must be a string, got {type(item).__name__}")
        if not item.strip():
            raise EmptyTextError(f"text[{index}] is empty or only whitespace: {item!r}")
    return texts

