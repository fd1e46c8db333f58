"""Training objectives shared by every method: one `nn.Module` per loss, gathering across ranks where needed.

Inputs are features already projected by the model; each module returns a scalar tensor (the contrastive loss
can also return its logits). See `docs/design.md` ("Losses").
"""

from .alignment import UnmaskedTokenAlignmentLoss
from .contrastive import VideoTextContrastiveLoss
from .distributed import gather_features, get_rank_and_world_size
from .focal import MultiLabelFocalLoss
from .masked_modeling import (
    MaskedLanguageModelingLoss,
    PixelMaskedVideoLoss,
    TokenMaskedVideoLoss,
    patchify,
    unpatchify,
)
from .matching import VideoTextMatchingLoss, place_above, sample_hard_negatives

__all__ = [
    "MaskedLanguageModelingLoss",
    "MultiLabelFocalLoss",
    "PixelMaskedVideoLoss",
    "TokenMaskedVideoLoss",
    "UnmaskedTokenAlignmentLoss",
    "VideoTextContrastiveLoss",
    "VideoTextMatchingLoss",
    "gather_features",
    "get_rank_and_world_size",
    "patchify",
    "place_above",
    "sample_hard_negatives",
    "unpatchify",
]
