"""EdgeNeXt (Maaz et al., 2022), the per-frame video encoder of E-ViLM (E-ViLM §3.1, §4).

Written from the EdgeNeXt authors' code (mmaaz60/EdgeNeXt, ``models/{edgenext,conv_encoder,sdta_encoder,layers}.py``)
and timm's port (``timm/models/edgenext.py``). Module and parameter names follow timm inside the backbone, so that
timm's and the authors' ImageNet checkpoints load through :func:`convert_edgenext_state_dict`:

- conv encoder: depth-wise ``k x k`` conv -> LayerNorm -> point-wise MLP -> layer scale, residual;
- SDTA encoder: the channels split into ``s`` groups, each but the last through a 3x3 depth-wise conv fed with the
  previous group's output (Res2Net-style), an optional Fourier positional encoding, then transposed (channel)
  attention with a learnable per-head temperature, and the point-wise MLP, each with layer scale.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2CLS
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from ...layers import DropPath, Mlp
from .configuration_edgenext import EdgeNextConfig

# ---------------------------------------------------------------------------------------------------- outputs


@dataclass
class EdgeNextModelOutput(ModelOutput):
    """
    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(B, C, H / 32, W / 32)`): the last stage's grid.
        pooler_output (`torch.FloatTensor` of shape `(B, C)`): the grid's mean, LayerNorm-ed (the authors'
            ``forward_features``).
        hidden_states (`tuple(torch.FloatTensor)`, *optional*): the stem output and every stage's output, with
            `output_hidden_states=True`.
        attentions (`tuple(torch.FloatTensor)`, *optional*): per SDTA block the channel attention `(B, heads, C / heads,
            C / heads)`, with `output_attentions=True`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class EdgeNextImageClassifierOutput(ModelOutput):
    """
    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*): cross-entropy, when `labels` are given.
        logits (`torch.FloatTensor` of shape `(B, num_labels)`).
        hidden_states, attentions: as in :class:`EdgeNextModelOutput`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ---------------------------------------------------------------------------------------------------- layers


class EdgeNextLayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a `(B, C, H, W)` map (the authors'
    ``LayerNorm(data_format="channels_first")``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class EdgeNextPositionalEncodingFourier(nn.Module):
    """Sine/cosine encoding of the normalized (row, column) position, projected by a 1x1 conv (DETR / XCiT style).

    Returns `(B, dim, H, W)`.
    """

    def __init__(self, dim: int, hidden_dim: int = 32, temperature: float = 10000.0) -> None:
        super().__init__()
        self.token_projection = nn.Conv2d(hidden_dim * 2, dim, kernel_size=1)
        self.hidden_dim = hidden_dim
        self.temperature = temperature

    def forward(self, batch: int, height: int, width: int) -> torch.Tensor:
        device, dtype = self.token_projection.weight.device, self.token_projection.weight.dtype
        eps, scale = 1e-6, 2 * math.pi
        y_embed = torch.arange(1, height + 1, device=device, dtype=torch.float32)[:, None].expand(height, width)
        x_embed = torch.arange(1, width + 1, device=device, dtype=torch.float32)[None, :].expand(height, width)
        y_embed = y_embed / (height + eps) * scale
        x_embed = x_embed / (width + eps) * scale
        dim_t = torch.arange(self.hidden_dim, device=device, dtype=torch.float32)
        dim_t = self.temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / self.hidden_dim)
        pos_x = x_embed[..., None] / dim_t
        pos_y = y_embed[..., None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=3).flatten(2)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=3).flatten(2)
        pos = torch.cat((pos_y, pos_x), dim=2).permute(2, 0, 1)[None].expand(batch, -1, -1, -1)
        return self.token_projection(pos.to(dtype))


class EdgeNextTransposedAttention(nn.Module):
    """Transposed ("cross-covariance") attention: heads attend over channels, not positions (EdgeNeXt §3.2, XCA).

    `q`, `k`, `v` are `(B, heads, C / heads, N)`; `q` and `k` are L2-normalized along `N`, so the `(C/h, C/h)`
    attention is a cosine similarity scaled by a learnable per-head temperature. Folding the temperature into `q`
    makes it an ordinary scaled-dot-product attention with scale 1, so SDPA computes it.
    """

    def __init__(self, config: EdgeNextConfig, dim: int, num_heads: int) -> None:
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, tokens, channels = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, channels // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 4, 1).unbind(0)  # each (B, heads, C/heads, N)
        q = F.normalize(q, dim=-1) * self.temperature
        k = F.normalize(k, dim=-1)
        if self.config._attn_implementation == "sdpa":
            out, weights = F.scaled_dot_product_attention(q, k, v, scale=1.0), None
        else:
            weights = (q @ k.transpose(-2, -1)).softmax(dim=-1)
            out = weights @ v
        out = out.permute(0, 3, 1, 2).reshape(batch, tokens, channels)
        return self.proj(out), weights


class EdgeNextConvEncoder(GradientCheckpointingLayer):
    """Depth-wise conv -> LayerNorm -> point-wise MLP -> layer scale, with a residual (the authors' ``ConvEncoder``)."""

    def __init__(self, config: EdgeNextConfig, dim: int, kernel_size: int, drop_path: float) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size=kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = Mlp(dim, int(config.mlp_ratio * dim), act_layer=ACT2CLS[config.hidden_act])
        self.gamma = nn.Parameter(torch.full((dim,), config.layer_scale_init_value))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv_dw(x).permute(0, 2, 3, 1)
        y = self.gamma * self.mlp(self.norm(y))
        return x + self.drop_path(y.permute(0, 3, 1, 2))


class EdgeNextSdtaEncoder(GradientCheckpointingLayer):
    """Split depth-wise transposed attention encoder (EdgeNeXt §3.2, the authors' ``SDTAEncoder``)."""

    def __init__(self, config: EdgeNextConfig, dim: int, stage: int, drop_path: float) -> None:
        super().__init__()
        scales = config.d2_scales[stage]
        self.width = max(math.ceil(dim / scales), dim // scales)
        self.convs = nn.ModuleList(
            nn.Conv2d(self.width, self.width, kernel_size=3, padding=1, groups=self.width)
            for _ in range(max(1, scales - 1))
        )
        self.pos_embd = EdgeNextPositionalEncodingFourier(dim) if config.use_pos_embedding[stage] else None
        self.norm_xca = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.gamma_xca = nn.Parameter(torch.full((dim,), config.layer_scale_init_value))
        self.xca = EdgeNextTransposedAttention(config, dim, config.num_attention_heads[stage])
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = Mlp(dim, int(config.mlp_ratio * dim), act_layer=ACT2CLS[config.hidden_act])
        self.gamma = nn.Parameter(torch.full((dim,), config.layer_scale_init_value))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        groups = torch.split(x, self.width, dim=1)
        outputs, group = [], None
        for index, conv in enumerate(self.convs):
            group = groups[index] if index == 0 else group + groups[index]
            group = conv(group)
            outputs.append(group)
        x = torch.cat([*outputs, *groups[len(self.convs):]], dim=1)

        batch, channels, height, width = x.shape
        x = x.reshape(batch, channels, height * width).transpose(1, 2)
        if self.pos_embd is not None:
            x = x + self.pos_embd(batch, height, width).reshape(batch, channels, -1).transpose(1, 2)
        attended, _ = self.xca(self.norm_xca(x))
        x = x + self.drop_path(self.gamma_xca * attended)
        x = x.reshape(batch, height, width, channels)
        x = self.gamma * self.mlp(self.norm(x))
        return shortcut + self.drop_path(x.permute(0, 3, 1, 2))


class EdgeNextStage(nn.Module):
    """Optional 2x2 stride-2 downsampling (LayerNorm, conv), then the stage's conv and SDTA encoders."""

    def __init__(self, config: EdgeNextConfig, stage: int, in_channels: int, drop_paths: list[float]) -> None:
        super().__init__()
        dim = config.hidden_sizes[stage]
        if stage == 0:
            self.downsample = nn.Identity()
        else:
            self.downsample = nn.Sequential(
                EdgeNextLayerNorm2d(in_channels, eps=config.layer_norm_eps),
                nn.Conv2d(in_channels, dim, kernel_size=2, stride=2),
            )
        depth, num_global = config.depths[stage], config.global_block_counts[stage]
        self.blocks = nn.Sequential(
            *(
                EdgeNextConvEncoder(config, dim, config.kernel_sizes[stage], drop_paths[i])
                if i < depth - num_global
                else EdgeNextSdtaEncoder(config, dim, stage, drop_paths[i])
                for i in range(depth)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


# ---------------------------------------------------------------------------------------------------- models


class EdgeNextPreTrainedModel(PreTrainedModel):
    """Weight initialization and shared settings of the EdgeNeXt models."""

    config_class = EdgeNextConfig
    base_model_prefix = "edgenext"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ["EdgeNextConvEncoder", "EdgeNextSdtaEncoder"]
    _can_record_outputs = {
        "hidden_states": EdgeNextStage,
        "attentions": OutputRecorder(EdgeNextTransposedAttention, index=1),
    }

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The authors' ``_init_weights``: truncated normal (std 0.02) for convs and linears, zero biases.
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            init.trunc_normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, (EdgeNextConvEncoder, EdgeNextSdtaEncoder)):
            init.constant_(module.gamma, self.config.layer_scale_init_value)
            if isinstance(module, EdgeNextSdtaEncoder):
                init.constant_(module.gamma_xca, self.config.layer_scale_init_value)
        elif isinstance(module, EdgeNextTransposedAttention):
            init.ones_(module.temperature)


class EdgeNextModel(EdgeNextPreTrainedModel):
    """EdgeNeXt without its classifier: `(B, 3, H, W)` -> the `(B, C, H/32, W/32)` grid and its pooled vector.

    ``add_pooling_layer=False`` leaves out the pooled vector's LayerNorm, for users of the grid only (E-ViLM).
    """

    def __init__(self, config: EdgeNextConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.stem = nn.Sequential(
            nn.Conv2d(config.num_channels, config.hidden_sizes[0], kernel_size=4, stride=4),
            EdgeNextLayerNorm2d(config.hidden_sizes[0], eps=config.layer_norm_eps),
        )
        total = sum(config.depths)  # stochastic depth rising linearly over all blocks (plain Python: meta-safe)
        rates = [config.drop_path_rate * i / max(1, total - 1) for i in range(total)]
        stages, start, in_channels = [], 0, config.hidden_sizes[0]
        for stage, depth in enumerate(config.depths):
            stages.append(EdgeNextStage(config, stage, in_channels, rates[start : start + depth]))
            start, in_channels = start + depth, config.hidden_sizes[stage]
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(config.hidden_sizes[-1], eps=config.layer_norm_eps) if add_pooling_layer else None
        self.post_init()

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(self, pixel_values: torch.Tensor, **kwargs) -> EdgeNextModelOutput:
        if pixel_values.ndim != 4:
            raise ValueError(
                f"EdgeNextModel: pixel_values must be (B, C, H, W), got shape {tuple(pixel_values.shape)}."
            )
        grid = self.stages(self.stem(pixel_values))
        pooled = self.norm(grid.mean((-2, -1))) if self.norm is not None else None
        return EdgeNextModelOutput(last_hidden_state=grid, pooler_output=pooled)


class EdgeNextForImageClassification(EdgeNextPreTrainedModel):
    """EdgeNeXt with its ImageNet classifier (a linear layer on the pooled vector)."""

    def __init__(self, config: EdgeNextConfig) -> None:
        super().__init__(config)
        self.edgenext = EdgeNextModel(config)
        self.classifier = nn.Linear(config.hidden_sizes[-1], config.num_labels) if config.num_labels else nn.Identity()
        self.post_init()

    @can_return_tuple
    def forward(
        self, pixel_values: torch.Tensor, labels: torch.LongTensor | None = None, **kwargs
    ) -> EdgeNextImageClassifierOutput:
        outputs = self.edgenext(pixel_values, **kwargs)
        logits = self.classifier(outputs.pooler_output)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return EdgeNextImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


# ---------------------------------------------------------------------------------------------------- reference weights


@dataclass
class EdgeNextConversionReport:
    """What :func:`convert_edgenext_state_dict` did: the layout it recognized and the keys it left out."""

    layout: str
    ignored: list[str] = field(default_factory=list)


def _from_authors_key(key: str) -> str:
    # mmaaz60/EdgeNeXt -> timm names (timm's ``checkpoint_filter_fn``).
    key = key.replace("downsample_layers.0.", "stem.")
    key = re.sub(r"^stages\.(\d+)\.(\d+)\.", r"stages.\1.blocks.\2.", key)
    key = re.sub(r"^downsample_layers\.(\d+)\.(\d+)\.", r"stages.\1.downsample.\2.", key)
    key = key.replace("dwconv", "conv_dw").replace("pwconv1", "mlp.fc1").replace("pwconv2", "mlp.fc2")
    if key.startswith("norm."):
        key = "head.norm." + key[len("norm."):]
    elif key.startswith("head."):
        key = "head.fc." + key[len("head."):]
    return key


def convert_edgenext_state_dict(
    state_dict: dict[str, torch.Tensor], *, with_classifier: bool = True
) -> tuple[dict[str, torch.Tensor], EdgeNextConversionReport]:
    """Map an EdgeNeXt checkpoint of timm or of the EdgeNeXt authors to the keys of this package's models.

    Accepts a bare state dict or the authors' training checkpoint (``{"model": ...}`` / ``{"model_ema": ...}``,
    EMA preferred as timm does). Returns keys of :class:`EdgeNextForImageClassification` (``edgenext.*`` and
    ``classifier.*``), or of :class:`EdgeNextModel` with ``with_classifier=False`` (the classifier is then reported
    as ignored). Nothing is dropped silently: every key that has no place is listed in the report.
    """
    for wrapper in ("model_ema", "model", "state_dict"):
        if isinstance(state_dict.get(wrapper), dict):
            state_dict = state_dict[wrapper]
            break
    layout = "timm" if ("head.norm.weight" in state_dict or "head.fc.weight" in state_dict) else "authors"
    if layout == "authors" and not any(k.startswith("downsample_layers.") for k in state_dict):
        raise ValueError(
            "convert_edgenext_state_dict: this is neither a timm EdgeNeXt state dict (no 'head.norm.weight') nor "
            "one of the EdgeNeXt authors (no 'downsample_layers.*' keys)."
        )
    prefix = "edgenext." if with_classifier else ""
    converted, report = {}, EdgeNextConversionReport(layout=layout)
    for key, value in state_dict.items():
        name = _from_authors_key(key) if layout == "authors" else key
        if name.startswith("head.norm."):
            converted[prefix + "norm." + name[len("head.norm."):]] = value
        elif name.startswith("head.fc."):
            if with_classifier:
                converted["classifier." + name[len("head.fc."):]] = value
            else:
                report.ignored.append(key)
        elif name.startswith(("stem.", "stages.")):
            converted[prefix + name] = value
        else:
            report.ignored.append(key)
    return converted, report


__all__ = [
    "EdgeNextConversionReport",
    "EdgeNextForImageClassification",
    "EdgeNextImageClassifierOutput",
    "EdgeNextModel",
    "EdgeNextModelOutput",
    "EdgeNextPreTrainedModel",
    "convert_edgenext_state_dict",
]
