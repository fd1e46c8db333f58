"""End-to-end runs of the E-ViLM training scripts on a tiny corpus and tiny models (CPU, two steps each):
tokenizer -> pre-training (MLM + VTM + MVM) -> QA and retrieval fine-tuning, each reading the previous folder."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel

from hf_videolang.data import make_corpus
from hf_videolang.models.evilm import EvilmConfig, EvilmForVideoQuestionAnswering

SCRIPTS = Path(__file__).resolve().parents[2] / "training_scripts"
SIZE = 64


def _script(name: str):
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module(name)


def _common(root: Path, out: str) -> list[str]:
    args = dict(output_dir=str(root / out), max_steps=2, per_device_train_batch_size=2, per_device_eval_batch_size=4,
                dataloader_num_workers=0, report_to="none", use_cpu=True, logging_steps=1, save_strategy="no",
                disable_tqdm=True, seed=0)  # fmt: skip
    return [item for key, value in args.items() for item in (f"--{key}", str(value))]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("evilm_scripts")
    make_corpus(root / "corpus", num_videos=12, num_frames=8, size=32)
    tiny_tokenizer.save_pretrained(root / "tokenizer")
    torch.manual_seed(0)
    text = BertConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=32)  # fmt: skip
    BertModel(text, add_pooling_layer=False).save_pretrained(root / "bert")
    EvilmConfig(
        vision_config=dict(depths=[1, 1, 1, 1], hidden_sizes=[16, 32, 48, 64], num_attention_heads=[4] * 4),
        text_config=text.to_dict(), hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
        num_frames=2, image_size=SIZE, codebook_size=16, max_text_length=16,
    ).save_pretrained(root / "config")  # fmt: skip
    from transformers import CLIPVisionConfig, CLIPVisionModel

    clip = CLIPVisionModel(CLIPVisionConfig(image_size=32, patch_size=16, hidden_size=32, intermediate_size=64,
                                            num_hidden_layers=1, num_attention_heads=4))  # fmt: skip
    clip.save_pretrained(root / "clip")
    return root


def test_scripts_chain_from_tokenizer_to_fine_tuning(setup):
    corpus = setup / "corpus"
    tokenizer_metrics = _script("evilm_train_tokenizer").main(
        ["--clip_vision_name_or_path", str(setup / "clip"), "--tokenizer_name", str(setup / "tokenizer"),
         "--codebook_size", "16", "--train_file", str(corpus / "train_retrieval.jsonl"), "--num_frames", "2"]
        + _common(setup, "video_tokenizer"))  # fmt: skip
    assert math.isfinite(tokenizer_metrics["loss_token"])

    pretrain = _script("evilm_pretrain").main(
        ["--config_name", str(setup / "config"), "--text_encoder_name_or_path", str(setup / "bert"),
         "--tokenizer_name", str(setup / "tokenizer"), "--vocabulary_keep_ratio", "1.0",
         "--video_tokenizer_name_or_path", str(setup / "video_tokenizer"),
         "--train_file", str(corpus / "train_retrieval.jsonl")] + _common(setup, "pretrain"))  # fmt: skip
    assert all(math.isfinite(pretrain[name]) for name in ("loss_mlm", "loss_vtm", "loss_mvm"))

    qa = _script("evilm_finetune_qa").main(
        ["--model_name_or_path", str(setup / "pretrain"), "--train_file", str(corpus / "train_qa.jsonl"),
         "--validation_file", str(corpus / "val_qa.jsonl")] + _common(setup, "qa"))  # fmt: skip
    assert 0.0 <= qa["eval_accuracy"] <= 100.0
    model = EvilmForVideoQuestionAnswering.from_pretrained(setup / "qa")
    assert model.config.answer_list and model.config.answer_list == sorted(model.config.answer_list)

    retrieval = _script("evilm_finetune_retrieval").main(
        ["--model_name_or_path", str(setup / "pretrain"), "--train_file", str(corpus / "train_retrieval.jsonl"),
         "--validation_file", str(corpus / "val_retrieval.jsonl")] + _common(setup, "retrieval"))  # fmt: skip
    assert 0.0 <= retrieval["eval_t2v_R@1"] <= 100.0


def test_pretraining_without_a_video_tokenizer_says_what_to_pass(setup):
    with pytest.raises(ValueError, match="--video_tokenizer_name_or_path"):
        _script("evilm_pretrain").main(
            ["--config_name", str(setup / "config"), "--tokenizer_name", str(setup / "tokenizer"),
             "--vocabulary_keep_ratio", "1.0", "--train_file", str(setup / "corpus" / "train_retrieval.jsonl")]
            + _common(setup, "pretrain_fail"))  # fmt: skip
