"""Shared neural-network building blocks (timm-style: plain arguments, one concern per module)."""

from .attention import Attention, eager_attention_forward
from .drop import DropPath, drop_path
from .mlp import Mlp
from .patch_embed import PatchEmbed3d
from .pooling import TextPooling, pool_tokens
from .pos_embed import AbsolutePositionEmbedding, sinusoid_position_table
from .vit_block import Block, LayerScale

__all__ = [
    "AbsolutePositionEmbedding",
    "Attention",
    "Block",
    "DropPath",
    "LayerScale",
    "Mlp",
    "PatchEmbed3d",
    "TextPooling",
    "drop_path",
    "eager_attention_forward",
    "pool_tokens",
    "sinusoid_position_table",
]
