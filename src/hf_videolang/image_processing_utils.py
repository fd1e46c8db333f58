"""``VideoFramesImageProcessor``: the spatial half of a :class:`~hf_videolang.processing_utils.VideoTextProcessor` as
a transformers image processor.

transformers' ``pipeline("video-classification")`` decodes a video itself and hands its frames to the model's image
processor (its video-processor path needs torchvision, which does not load with the CPU torch here). Every
``VideoTextProcessor.save_pretrained`` therefore also writes this processor's ``preprocessor_config.json``, and the
package registers it with ``AutoImageProcessor`` for the configs that have a video classification head, so a saved
``UmtForVideoClassification`` folder works in that pipeline as saved. The frames get exactly the evaluation
transform of the processor they came from (resize + centre crop, or ClipBERT's resize + pad, then normalization).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature
from transformers.image_processing_utils import BaseImageProcessor

from .video.transforms import IMAGENET_MEAN, IMAGENET_STD, VideoTransform


class VideoFramesImageProcessor(BaseImageProcessor):
    r"""A list of one video's decoded frames -> ``pixel_values`` of shape ``(1, T, 3, S, S)``.

    Args:
        crop_size (`dict` or `int`, defaults to 224): the output side ``S``, ``{"height": S, "width": S}``.
        image_mean (`Sequence[float]`), image_std (`Sequence[float]`): normalization on the [0, 1] scale.
        resize_mode (`str`, defaults to `"crop"`): ``"crop"`` (shorter side to ``S``, centre crop) or ``"pad"``
            (longer side to ``S``, zero padding bottom / right).
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        crop_size: dict[str, int] | int = 224,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
        resize_mode: str = "crop",
        **kwargs: Any,
    ) -> None:
        kwargs.pop("size", None)  # derived from crop_size and resize_mode; saved for readers only
        super().__init__(**kwargs)
        side = crop_size if isinstance(crop_size, int) else crop_size.get("height")
        if not isinstance(side, int) or (isinstance(crop_size, dict) and crop_size.get("width", side) != side):
            raise ValueError(f"VideoFramesImageProcessor: crop_size must be square, got {crop_size!r}")
        self.crop_size = {"height": side, "width": side}
        self.image_mean = [float(m) for m in image_mean]
        self.image_std = [float(s) for s in image_std]
        self.resize_mode = resize_mode
        self._transform = VideoTransform(side, mean=tuple(self.image_mean), std=tuple(self.image_std),
                                         mode=resize_mode, train_augment=False)  # fmt: skip

    @classmethod
    def from_video_text_processor(cls, processor: Any) -> VideoFramesImageProcessor:
        """The image processor that transforms frames exactly as ``processor`` does at evaluation."""
        return cls(crop_size=processor.crop_size, image_mean=processor.mean, image_std=processor.std,
                   resize_mode=processor.resize_mode)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        output = {k: v for k, v in super().to_dict().items() if not k.startswith("_")}
        output["size"] = {("longest_edge" if self.resize_mode == "pad" else "shortest_edge"): self.crop_size["height"]}
        return output

    def preprocess(self, images: Any, return_tensors: str | None = "pt", **kwargs: Any) -> BatchFeature:
        """``images``: the frames of one video, a list of ``(H, W, 3)`` uint8 arrays / PIL images, or one
        ``(T, H, W, 3)`` array or tensor."""
        if kwargs:
            raise TypeError(f"VideoFramesImageProcessor got unexpected arguments {sorted(kwargs)}")
        if isinstance(images, (list, tuple)):
            if not images:
                raise ValueError("VideoFramesImageProcessor: got an empty list of frames")
            frames = np.stack([np.asarray(frame.convert("RGB") if hasattr(frame, "convert") else frame)
                               for frame in images])  # fmt: skip
        else:
            frames = np.asarray(images)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"VideoFramesImageProcessor: expected frames (T, H, W, 3), got shape {frames.shape}")
        pixel_values = self._transform(torch.from_numpy(np.ascontiguousarray(frames)), training=False).unsqueeze(0)
        if return_tensors == "np":
            return BatchFeature({"pixel_values": pixel_values.numpy()}, tensor_type="np")
        return BatchFeature({"pixel_values": pixel_values}, tensor_type=return_tensors or "pt")

    def __call__(self, images: Any, **kwargs: Any) -> BatchFeature:
        return self.preprocess(images, **kwargs)


__all__ = ["VideoFramesImageProcessor"]
