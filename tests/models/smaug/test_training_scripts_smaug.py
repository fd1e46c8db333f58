"""End-to-end runs of the SMAUG training scripts on a tiny corpus and model (CPU, two steps each): single-frame
pre-training, 4-frame pre-training from it, retrieval and QA fine-tuning from that."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from hf_videolang.data import make_corpus
from hf_videolang.models.smaug import SmaugConfig, SmaugForPreTraining, SmaugForVideoQuestionAnswering, SmaugProcessor

SCRIPTS = Path(__file__).resolve().parents[3] / "training_scripts"


def _script(name: str):
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("smaug_scripts")
    make_corpus(root / "corpus", num_videos=12, num_frames=8, size=32)
    tiny_tokenizer.save_pretrained(root / "tokenizer")
    SmaugConfig(
        vision_config=dict(image_size=32, patch_size=8, num_frames=4, hidden_size=32, num_hidden_layers=4,
                           num_attention_heads=4, intermediate_size=64, sparsification_layers=[2, 3],
                           temporal_num_hidden_layers=1, decoder_hidden_size=16, decoder_num_attention_heads=2,
                           decoder_intermediate_size=32, decoder_num_hidden_layers=1),
        text_config=dict(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=64),
        num_text_layers=2, projection_dim=16, selector_hidden_size=16, selector_intermediate_size=32,
    ).save_pretrained(root / "config")  # fmt: skip
    return root


def _args(root: Path, out: str, task: str = "retrieval", **extra) -> list[str]:
    args = dict(train_file=str(root / "corpus" / f"train_{task}.jsonl"),
                validation_file=str(root / "corpus" / f"val_{task}.jsonl"), output_dir=str(root / out),
                max_steps=2, per_device_train_batch_size=2, per_device_eval_batch_size=4, dataloader_num_workers=0,
                report_to="none", use_cpu=True, logging_steps=1, save_strategy="no", disable_tqdm=True, seed=0,
                **extra)  # fmt: skip
    return [item for key, value in args.items() for item in (f"--{key}", str(value))]


def test_pretraining_single_then_multi_frame_then_finetuning(setup):
    pretrain = _script("smaug_pretrain")
    single = pretrain.main(_args(setup, "pt1", num_frames=1, config_name=str(setup / "config"),
                                 tokenizer_name=str(setup / "tokenizer")))  # fmt: skip
    assert single["num_frames"] == 1
    assert all(math.isfinite(single[term]) for term in ("loss_vtc", "loss_vtm", "loss_mlm", "loss_mvm"))
    assert {"eval_t2v_R@1", "eval_t2v_MdR"} <= set(single)
    multi = pretrain.main(_args(setup, "pt4", num_frames=4, model_name_or_path=str(setup / "pt1")))
    assert multi["num_frames"] == 4 and math.isfinite(multi["loss_mvm"])
    assert SmaugProcessor.from_pretrained(setup / "pt4").num_frames == 4
    first = SmaugForPreTraining.from_pretrained(setup / "pt1").state_dict()
    second = SmaugForPreTraining.from_pretrained(setup / "pt4").state_dict()
    assert not torch.equal(first["smaug.frame_selector.score.weight"], second["smaug.frame_selector.score.weight"])

    retrieval = _script("smaug_finetune_retrieval").main(
        _args(setup, "ret", num_frames=4, model_name_or_path=str(setup / "pt4"), rerank_top_k=2))
    assert math.isfinite(retrieval["loss_vtc"]) and math.isfinite(retrieval["loss_vtm"])
    assert "eval_t2v_R@1" in retrieval

    qa = _script("smaug_finetune_qa").main(_args(setup, "qa", task="qa", num_frames=4,
                                                 model_name_or_path=str(setup / "pt4")))  # fmt: skip
    assert math.isfinite(qa["train_loss"]) and "eval_accuracy" in qa
    model = SmaugForVideoQuestionAnswering.from_pretrained(setup / "qa")
    assert model.config.answer_list and json.loads((setup / "qa" / "metrics.json").read_text())


def test_arguments_are_checked(setup):
    pretrain = _script("smaug_pretrain")
    with pytest.raises(ValueError, match="not both"):
        pretrain.main(_args(setup, "bad", config_name=str(setup / "config"), preset="smaug-b16"))
    with pytest.raises(ValueError, match="tokenizer_name"):
        pretrain.main(_args(setup, "bad", config_name=str(setup / "config")))
