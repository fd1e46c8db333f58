"""Configuration of EdgeNeXt, "EdgeNeXt: Efficiently Amalgamated CNN-Transformer Architecture for Mobile Vision
Applications" (Maaz et al., 2022), the per-frame video encoder of E-ViLM (E-ViLM §3.1, §4 "EdgeNeXt-S").

Defaults are EdgeNeXt-S as the EdgeNeXt authors build it (mmaaz60/EdgeNeXt, ``models/model.py``,
``edgenext_small``; timm's ``edgenext_small`` is the same network): 5.59 M parameters with the 1000-class head and
1.26 GMACs per 256 px image.
"""

from __future__ import annotations

import copy
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers.configuration_utils import PreTrainedConfig

_STAGES = 4


@strict
class EdgeNextConfig(PreTrainedConfig):
    r"""EdgeNeXt: a stride-4 patchify stem, then 4 stages of depth-wise convolution encoders, the last
    ``global_block_counts[i]`` blocks of stage ``i`` being split depth-wise transposed attention (SDTA) encoders.

    Args:
        num_channels (`int`, defaults to 3): input channels.
        hidden_sizes (`list[int]`, defaults to `[48, 96, 160, 304]`): stage widths (EdgeNeXt-S).
        depths (`list[int]`, defaults to `[3, 3, 9, 3]`): blocks per stage.
        global_block_counts (`list[int]`, defaults to `[0, 1, 1, 1]`): trailing SDTA blocks per stage.
        kernel_sizes (`list[int]`, defaults to `[3, 5, 7, 9]`): depth-wise kernel of the conv encoders per stage.
        num_attention_heads (`list[int]`, defaults to `[8, 8, 8, 8]`): heads of the transposed attention.
        d2_scales (`list[int]`, defaults to `[2, 2, 3, 4]`): channel splits of the SDTA depth-wise convolutions.
        use_pos_embedding (`list[bool]`, defaults to `[False, True, False, False]`): Fourier positional encoding in
            the SDTA blocks of each stage (only stage 2 in EdgeNeXt-S).
        mlp_ratio (`float`, defaults to 4): expansion of the point-wise MLPs.
        hidden_act (`str`, defaults to `"gelu"`).
        layer_scale_init_value (`float`, defaults to 1e-6): layer-scale init (``gamma``, ``gamma_xca``).
        layer_norm_eps (`float`, defaults to 1e-6).
        drop_path_rate (`float`, defaults to 0.0): stochastic depth, linear over all blocks (the authors' ImageNet
            recipe uses 0.1; E-ViLM does not state one).
        initializer_range (`float`, defaults to 0.02): std of the truncated-normal init of convs and linears.
        image_size (`int`, defaults to 256): the ImageNet resolution of EdgeNeXt-S (informative only).
    """

    model_type = "hfvl_edgenext"

    num_channels: int = 3
    hidden_sizes: list[int] | tuple[int, ...] = (48, 96, 160, 304)
    depths: list[int] | tuple[int, ...] = (3, 3, 9, 3)
    global_block_counts: list[int] | tuple[int, ...] = (0, 1, 1, 1)
    kernel_sizes: list[int] | tuple[int, ...] = (3, 5, 7, 9)
    num_attention_heads: list[int] | tuple[int, ...] = (8, 8, 8, 8)
    d2_scales: list[int] | tuple[int, ...] = (2, 2, 3, 4)
    use_pos_embedding: list[bool] | tuple[bool, ...] = (False, True, False, False)
    mlp_ratio: float | int = 4
    hidden_act: str = "gelu"
    layer_scale_init_value: float = 1e-6
    layer_norm_eps: float = 1e-6
    drop_path_rate: float | int = 0.0
    initializer_range: float = 0.02
    image_size: int = 256

    def __post_init__(self, **kwargs: Any) -> None:
        for name in ("hidden_sizes", "depths", "global_block_counts", "kernel_sizes", "num_attention_heads",
                     "d2_scales", "use_pos_embedding"):  # fmt: skip
            value = list(getattr(self, name))
            if len(value) != _STAGES:
                raise ValueError(f"EdgeNextConfig: {name} needs one entry per stage ({_STAGES}), got {value}.")
            setattr(self, name, value)
        for stage, (depth, blocks) in enumerate(zip(self.depths, self.global_block_counts)):
            if not 0 <= blocks <= depth:
                raise ValueError(
                    f"EdgeNextConfig: stage {stage} has depth {depth} but global_block_counts[{stage}]={blocks}; "
                    "the SDTA blocks are the last blocks of a stage, so 0 <= count <= depth."
                )
        for stage, (width, heads) in enumerate(zip(self.hidden_sizes, self.num_attention_heads)):
            if self.global_block_counts[stage] and width % heads:
                raise ValueError(
                    f"EdgeNextConfig: hidden_sizes[{stage}]={width} is not divisible by "
                    f"num_attention_heads[{stage}]={heads}."
                )
        super().__post_init__(**kwargs)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> EdgeNextConfig:
        """One of :data:`EDGENEXT_PRESETS` (the EdgeNeXt authors' variants), with keyword overrides."""
        if name not in EDGENEXT_PRESETS:
            raise ValueError(
                f"EdgeNextConfig.from_preset: unknown preset {name!r}; choose one of {sorted(EDGENEXT_PRESETS)}."
            )
        return cls(**{**copy.deepcopy(EDGENEXT_PRESETS[name]), **overrides})


# The authors' variants (mmaaz60/EdgeNeXt ``models/model.py``; timm ``edgenext.py``).
EDGENEXT_PRESETS: dict[str, dict[str, Any]] = {
    "edgenext-xx-small": dict(depths=[2, 2, 6, 2], hidden_sizes=[24, 48, 88, 168], num_attention_heads=[4] * 4),
    "edgenext-x-small": dict(depths=[3, 3, 9, 3], hidden_sizes=[32, 64, 100, 192], num_attention_heads=[4] * 4),
    "edgenext-small": dict(),
    "edgenext-base": dict(hidden_sizes=[80, 160, 288, 584]),
}

__all__ = ["EDGENEXT_PRESETS", "EdgeNextConfig"]
