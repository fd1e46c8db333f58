"""End-to-end runs of the ClipBERT training scripts on a tiny corpus and model (CPU, two steps each): image-text
pre-training (1-frame clips), then retrieval and QA fine-tuning from it with 2x2 sparse clips."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from hf_videolang.data import make_corpus
from hf_videolang.models.clipbert import (
    ClipBertConfig,
    ClipBertForPreTraining,
    ClipBertForVideoQuestionAnswering,
    ClipBertForVideoTextRetrieval,
    ClipBertProcessor,
)

SCRIPTS = Path(__file__).resolve().parents[3] / "training_scripts"


def _script(name: str):
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module(name)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_tokenizer):
    root = tmp_path_factory.mktemp("clipbert_scripts")
    make_corpus(root / "corpus", num_videos=12, num_frames=16, size=32)
    tiny_tokenizer.save_pretrained(root / "tokenizer")
    ClipBertConfig(
        vision_config=dict(embedding_size=8, hidden_sizes=[8, 16, 16, 32], depths=[1, 1, 1, 1], layer_type="basic"),
        text_config=dict(vocab_size=len(tiny_tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=64),
        image_size=64, frames_per_clip=2, num_train_clips=2, num_test_clips=2,
    ).save_pretrained(root / "config")  # fmt: skip
    return root


def _args(root: Path, out: str, task: str = "retrieval", **extra) -> list[str]:
    args = dict(train_file=str(root / "corpus" / f"train_{task}.jsonl"),
                validation_file=str(root / "corpus" / f"val_{task}.jsonl"), output_dir=str(root / out),
                max_steps=2, per_device_train_batch_size=4, per_device_eval_batch_size=4, dataloader_num_workers=0,
                report_to="none", use_cpu=True, logging_steps=1, save_strategy="no", disable_tqdm=True, seed=0,
                **extra)  # fmt: skip
    return [item for key, value in args.items() for item in (f"--{key}", str(value))]


def test_pretraining_then_retrieval_and_qa_finetuning(setup):
    pretrain = _script("clipbert_pretrain").main(
        _args(setup, "pt", config_name=str(setup / "config"), tokenizer_name=str(setup / "tokenizer")))
    assert all(math.isfinite(pretrain[term]) for term in ("loss_mlm", "loss_itm", "eval_loss_mlm", "eval_loss_itm"))
    saved = ClipBertProcessor.from_pretrained(setup / "pt")
    assert (saved.num_clips, saved.frames_per_clip, saved.num_test_clips) == (2, 2, 2)  # the video layout is kept
    before = ClipBertConfig.from_pretrained(setup / "config")
    torch.manual_seed(0)
    fresh = ClipBertForPreTraining(before).state_dict()
    trained = ClipBertForPreTraining.from_pretrained(setup / "pt").state_dict()
    assert not torch.equal(fresh["clipbert.visual_embeddings.row_position_embeddings.weight"],
                           trained["clipbert.visual_embeddings.row_position_embeddings.weight"])  # fmt: skip

    retrieval = _script("clipbert_finetune_retrieval").main(
        _args(setup, "ret", model_name_or_path=str(setup / "pt"), num_train_clips=2, num_test_clips=3))
    assert math.isfinite(retrieval["train_loss"])
    assert {"eval_t2v_R@1", "eval_t2v_MdR", "eval_v2t_R@1"} <= set(retrieval)
    model = ClipBertForVideoTextRetrieval.from_pretrained(setup / "ret")
    assert model.config.num_test_clips == 3 and ClipBertProcessor.from_pretrained(setup / "ret").num_test_clips == 3

    qa = _script("clipbert_finetune_qa").main(_args(setup, "qa", task="qa", model_name_or_path=str(setup / "pt"),
                                                    answer_list=str(setup / "corpus" / "answers.json")))  # fmt: skip
    assert math.isfinite(qa["train_loss"]) and 0.0 <= qa["eval_accuracy"] <= 100.0
    model = ClipBertForVideoQuestionAnswering.from_pretrained(setup / "qa")
    assert model.config.answer_list == json.loads((setup / "corpus" / "answers.json").read_text())
    assert json.loads((setup / "qa" / "metrics.json").read_text())["eval_accuracy"] == qa["eval_accuracy"]


def test_arguments_are_checked(setup):
    pretrain = _script("clipbert_pretrain")
    with pytest.raises(ValueError, match="not both"):
        pretrain.main(_args(setup, "bad", config_name=str(setup / "config"), preset="clipbert-base"))
    with pytest.raises(ValueError, match="tokenizer_name"):
        pretrain.main(_args(setup, "bad", config_name=str(setup / "config")))
    with pytest.raises(ValueError, match="num_train_clips"):
        pretrain.main(_args(setup, "bad", config_name=str(setup / "config"), num_train_clips=0))
