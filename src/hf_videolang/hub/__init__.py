"""Hugging Face Hub side of hf-videolang: remote-code bundling, model cards and ``hf-videolang push``."""

from .model_card import CardSourceError, render_model_card
from .push import PushError, push_to_hub
from .remote_code import RemoteCodeError, collect_remote_code, save_with_remote_code

__all__ = [
    "CardSourceError",
    "PushError",
    "RemoteCodeError",
    "collect_remote_code",
    "push_to_hub",
    "render_model_card",
    "save_with_remote_code",
]
