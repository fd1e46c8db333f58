"""Configuration of E-ViLM's semantic vector-quantized video tokenizer (E-ViLM §3.3, Eq. 4-7; §4.1).

No code was released. The numbers stated in the paper are defaults here; what it leaves open (the decoder's
width, how the encoder's width is brought to the 32-d code space) is chosen as a VQ tokenizer usually does and
listed in the model card's Deviations.
"""

from __future__ import annotations

from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import CLIPVisionConfig
from transformers.configuration_utils import PreTrainedConfig


@strict
class EvilmTokenizerConfig(PreTrainedConfig):
    r"""The tokenizer: a CLIP-ViT encoder ``E``, an l2-normalized codebook, and a Transformer decoder ``D`` with a
    multi-label word head that is trained with the tokenizer and dropped after it (E-ViLM §3.3).

    Args:
        vision_config (`dict` or `CLIPVisionConfig`): the encoder, a ViT "pre-trained by [59]" (CLIP; E-ViLM §4.1),
            so a `CLIPVisionModel` checkpoint loads into it. Defaults to CLIP ViT-B/16.
        codebook_size (`int`, defaults to 9420): ``M``, "9,420 learnable prototype embedding" (§4.1).
        codebook_dim (`int`, defaults to 32): ``D`` of the codes, "in the dimension of 32" (§4.1).
        decoder_num_layers (`int`, defaults to 8): "8 layers of transformer architecture" (§4.1).
        decoder_hidden_size (`int`, defaults to 512), decoder_num_heads (`int`, defaults to 8),
            decoder_mlp_ratio (`float`, defaults to 4): not stated in the paper.
        vocab_size (`int`, defaults to 30522): ``K``, the words the head predicts (the caption tokenizer's
            vocabulary; BERT uncased by default).
        commitment_weight (`float`, defaults to 1.0), codebook_weight (`float`, defaults to 1.0): weights of
            Eq. 7's two stop-gradient terms (1 as printed).
        focal_gamma (`float`, defaults to 0.0), focal_gamma_negative (`float`, defaults to 1.0): Eq. 6 as printed:
            ``log p`` for a caption word, ``p log(1 - p)`` for any other word.
        dead_code_threshold (`float`, defaults to 0.0): restart a code with a random encoder output of the batch
            when the moving average of its use per batch falls below this (0: never; not in the paper, which
            reports 92 % utilization without saying how; restarts as in Jukebox / SoundStream keep a small
            codebook from collapsing onto a few codes).
        max_frames (`int`, defaults to 4): frames the decoder's position table covers (E-ViLM samples 4, §4.1).
        layer_norm_eps (`float`, defaults to 1e-5), initializer_range (`float`, defaults to 0.02).
    """

    model_type = "hfvl_evilm_tokenizer"
    sub_configs: ClassVar[dict] = {"vision_config": CLIPVisionConfig}

    vision_config: dict | PreTrainedConfig | None = None
    codebook_size: int = 9420
    codebook_dim: int = 32
    decoder_num_layers: int = 8
    decoder_hidden_size: int = 512
    decoder_num_heads: int = 8
    decoder_mlp_ratio: float | int = 4
    vocab_size: int = 30522
    commitment_weight: float | int = 1.0
    codebook_weight: float | int = 1.0
    focal_gamma: float | int = 0.0
    focal_gamma_negative: float | int = 1.0
    dead_code_threshold: float | int = 0.0
    max_frames: int = 4
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs: Any) -> None:
        if self.vision_config is None:
            self.vision_config = CLIPVisionConfig(patch_size=16)
        elif isinstance(self.vision_config, dict):
            self.vision_config = CLIPVisionConfig(**self.vision_config)
        super().__post_init__(**kwargs)
        for name in ("codebook_size", "codebook_dim", "decoder_num_layers", "vocab_size", "max_frames"):
            if getattr(self, name) <= 0:
                raise ValueError(f"EvilmTokenizerConfig: {name} must be positive, got {getattr(self, name)}.")
        if self.decoder_hidden_size % self.decoder_num_heads:
            raise ValueError(
                f"EvilmTokenizerConfig: decoder_hidden_size={self.decoder_hidden_size} is not divisible by "
                f"decoder_num_heads={self.decoder_num_heads}."
            )

    @property
    def regions_per_frame(self) -> int:
        """``H/h x W/w``: the patches of one frame, each of which gets one code (Eq. 4)."""
        return (self.vision_config.image_size // self.vision_config.patch_size) ** 2


__all__ = ["EvilmTokenizerConfig"]
