"""End-to-end run of the MAC pre-training script on a tiny corpus and a tiny model (CPU, two steps per phase).

The phases chain as in the paper (MAC §4.3): 1 frame (spatial), then 4 frames (temporal) from its output folder.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hf_videolang.data import make_corpus
from hf_videolang.models.mac import MacConfig, MacForVideoTextRetrieval, MacProcessor

SCRIPTS = Path(__file__).resolve().parents[2] / "training_scripts"


def _script():
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module("mac_pretrain")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("mac_scripts")
    make_corpus(root / "corpus", num_videos=12, num_frames=8, size=32)
    tiny_tokenizer.save_pretrained(root / "tokenizer")
    MacConfig(
        vision_config=dict(image_size=32, patch_size=8, num_frames=4, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64, drop_path_rate=0.0),
        text_config=dict(vocab_size=len(tiny_tokenizer), dim=32, n_layers=1, n_heads=4, hidden_dim=64,
                         max_position_embeddings=64),
        projection_dim=16,
    ).save_pretrained(root / "config")  # fmt: skip
    return root


def _args(root: Path, out: str, **extra) -> list[str]:
    args = dict(train_file=str(root / "corpus" / "train_retrieval.jsonl"),
                validation_file=str(root / "corpus" / "val_retrieval.jsonl"), output_dir=str(root / out),
                max_steps=2, per_device_train_batch_size=2, per_device_eval_batch_size=4, dataloader_num_workers=0,
                report_to="none", use_cpu=True, logging_steps=1, save_strategy="no", disable_tqdm=True, seed=0,
                **extra)  # fmt: skip
    return [item for key, value in args.items() for item in (f"--{key}", str(value))]


def test_spatial_then_temporal_phase(setup):
    script = _script()
    spatial = script.main(_args(setup, "spatial", phase="spatial", config_name=str(setup / "config"),
                                tokenizer_name=str(setup / "tokenizer")))  # fmt: skip
    assert math.isfinite(spatial["loss_vtc"]) and spatial["num_frames"] == 1
    assert {"eval_t2v_R@1", "eval_t2v_MdR"} <= set(spatial)
    assert MacProcessor.from_pretrained(setup / "spatial").num_frames == 1

    temporal = script.main(_args(setup, "temporal", phase="temporal", model_name_or_path=str(setup / "spatial")))
    assert math.isfinite(temporal["loss_vtc"]) and temporal["num_frames"] == 4
    saved = json.loads((setup / "temporal" / "metrics.json").read_text())
    assert saved["num_frames"] == 4
    first = MacForVideoTextRetrieval.from_pretrained(setup / "spatial").state_dict()
    second = MacForVideoTextRetrieval.from_pretrained(setup / "temporal").state_dict()
    # The temporal phase starts from the spatial checkpoint and trains it further.
    assert first.keys() == second.keys()
    assert not torch.equal(first["mac.vision_projection.weight"], second["mac.vision_projection.weight"])


def test_arguments_are_checked(setup):
    script = _script()
    with pytest.raises(ValueError, match="--phase"):
        script.main(_args(setup, "bad", phase="both", config_name=str(setup / "config")))
    with pytest.raises(ValueError, match="tokenizer_name"):
        script.main(_args(setup, "bad", config_name=str(setup / "config")))


def test_spatial_phase_trains_on_a_jpeg_image_text_file(setup, tmp_path):
    # MAC §4.1's phase 1 is image-text data (CC3M-style): JPEG files under an "image" key, read as 1-frame videos.
    from PIL import Image

    rng = np.random.default_rng(0)
    rows = []
    for i, colour in enumerate(["red", "green", "blue", "yellow"]):
        pixels = np.zeros((40, 48, 3), dtype=np.uint8)
        pixels[..., i % 3] = 200
        pixels[8:24, 8 + 4 * i : 24 + 4 * i] = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(tmp_path / f"{i:04d}.jpg", quality=90)
        rows.append({"image": f"{i:04d}.jpg", "caption": f"a {colour} picture"})
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")

    args = _args(setup, "images", phase="spatial", config_name=str(setup / "config"),
                 tokenizer_name=str(setup / "tokenizer"))  # fmt: skip
    args[args.index("--train_file") + 1] = str(tmp_path / "pairs.jsonl")
    args[args.index("--validation_file") + 1] = str(tmp_path / "pairs.jsonl")
    metrics = _script().main(args)
    assert metrics["num_frames"] == 1 and math.isfinite(metrics["loss_vtc"])
    assert {"eval_t2v_R@1", "eval_t2v_MdR"} <= set(metrics)
