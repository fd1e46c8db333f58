"""Training spine: the collator that decodes in DataLoader workers and the Trainer that logs every loss term."""

from .collator import (
    AnswerTargetCollator,
    CaptionWordsCollator,
    MatchingPairsCollator,
    NegativeCaptionCollator,
    VideoTextCollator,
)
from .trainer import LossTermAverager, VideoTextTrainer, VideoTextTrainingArguments

__all__ = [
    "AnswerTargetCollator",
    "CaptionWordsCollator",
    "LossTermAverager", 
    "MatchingPairsCollator",
    "NegativeCaptionCollator",
    "VideoTextCollator",
    "VideoTextTrainer",
    "VideoTextTrainingArguments",
]
