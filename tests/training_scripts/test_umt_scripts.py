"""End-to-end runs of the UMT training scripts on a tiny corpus and tiny models (CPU, two steps each).

The scripts chain as in the paper: stage 1 -> stage 2 -> retrieval / QA fine-tuning, each reading the previous
script's output folder.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from hf_videolang.data import load_annotations, make_corpus
from hf_videolang.evaluation.retrieval import evaluate_retrieval
from hf_videolang.models.umt import (
    UmtConfig,
    UmtForPreTraining,
    UmtForVideoQuestionAnswering,
    UmtForVideoTextRetrieval,
    UmtProcessor,
)

SCRIPTS = Path(__file__).resolve().parents[2] / "training_scripts"
SIZE, PATCH, FRAMES = 32, 8, 2


def _script(name: str):
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module(name)


def _tiny_config(stage: int, vocab_size: int) -> UmtConfig:
    vision = dict(image_size=SIZE, patch_size=PATCH, num_frames=FRAMES, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64, drop_path_rate=0.0)  # fmt: skip
    teacher = dict(hidden_size=24, intermediate_size=48, num_hidden_layers=3, num_attention_heads=2,
                   patch_size=PATCH, image_size=SIZE, projection_dim=16)  # fmt: skip
    kwargs = dict(vision_config=vision, teacher_config=teacher, uta_num_layers=2, projection_dim=16,
                  pretraining_stage=stage)  # fmt: skip
    if stage == 2:
        text = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                    intermediate_size=64, max_position_embeddings=32)  # fmt: skip
        kwargs.update(text_config=text, multimodal_config=text)
    return UmtConfig(**kwargs)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_tokenizer):
    """Corpus, tokenizer, CLIP teacher and tiny stage-1 / stage-2 configs, all saved to folders."""
    root = tmp_path_factory.mktemp("umt_scripts")
    corpus = root / "corpus"
    make_corpus(corpus, num_videos=12, num_frames=8, size=SIZE)
    tiny_tokenizer.save_pretrained(root / "tokenizer")
    torch.manual_seed(0)
    clip_config = CLIPVisionConfig(**_tiny_config(1, 0).teacher_config.to_dict())
    CLIPVisionModelWithProjection(clip_config).save_pretrained(root / "clip")
    for stage in (1, 2):
        _tiny_config(stage, len(tiny_tokenizer)).save_pretrained(root / f"config_stage{stage}")
    return root


def _common(root: Path, out: str, **extra) -> list[str]:
    args = dict(output_dir=str(root / out), max_steps=2, per_device_train_batch_size=2, per_device_eval_batch_size=4,
                dataloader_num_workers=0, report_to="none", use_cpu=True, logging_steps=1, save_strategy="no",
                disable_tqdm=True, seed=0, **extra)  # fmt: skip
    return [item for key, value in args.items() for item in (f"--{key}", str(value))]


@pytest.fixture(scope="module")
def stage1(setup):
    # Through a single .json arguments file, the other way HfArgumentParser reads arguments.
    args = dict(config_name=str(setup / "config_stage1"), teacher_name_or_path=str(setup / "clip"),
                tokenizer_name=str(setup / "tokenizer"), train_file=str(setup / "corpus" / "train_retrieval.jsonl"),
                output_dir=str(setup / "stage1"), max_steps=2, per_device_train_batch_size=2,
                dataloader_num_workers=0, report_to="none", use_cpu=True, logging_steps=1, save_strategy="no",
                disable_tqdm=True)  # fmt: skip
    (setup / "stage1.json").write_text(json.dumps(args))
    return _script("umt_pretrain_stage1").main([str(setup / "stage1.json")])


@pytest.fixture(scope="module")
def stage2(setup, stage1):
    argv = ["--model_name_or_path", str(setup / "stage1"), "--config_name", str(setup / "config_stage2"),
            "--train_file", str(setup / "corpus" / "train_retrieval.jsonl"),
            "--validation_file", str(setup / "corpus" / "val_retrieval.jsonl"), "--num_frames", str(FRAMES)]
    return _script("umt_pretrain_stage2").main(argv + _common(setup, "stage2"))


def _finite(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _assert_teacher_is_clip(model: UmtForPreTraining, clip_dir: Path) -> None:
    clip = CLIPVisionModelWithProjection.from_pretrained(clip_dir)
    for name, tensor in clip.state_dict().items():
        torch.testing.assert_close(model.teacher.clip.state_dict()[name], tensor, rtol=0, atol=0)


def test_stage1_trains_uta_only_and_saves(setup, stage1):
    assert _finite(stage1["loss_uta"]) and stage1["loss_uta"] > 0
    model = UmtForPreTraining.from_pretrained(setup / "stage1")
    assert model.config.pretraining_stage == 1 and model.config.text_config is None
    # The frozen teacher is the CLIP checkpoint, bit for bit, after training.
    _assert_teacher_is_clip(model, setup / "clip")
    processor = UmtProcessor.from_pretrained(setup / "stage1")
    assert processor.num_frames == FRAMES and processor.image_size == SIZE


def test_stage2_starts_from_stage1_and_logs_every_term(setup, stage2):
    for name in ("loss_vtc", "loss_vtm", "loss_mlm", "loss_uta"):
        assert _finite(stage2[name]), name
    assert stage2["loss_vtm"] > 0 and stage2["loss_mlm"] > 0
    for name in ("t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_MdR"):
        assert 0 <= stage2[f"eval_{name}"] <= 100
    assert stage2["eval_t2v_R@1"] <= stage2["eval_t2v_R@5"] <= stage2["eval_t2v_R@10"]
    model = UmtForPreTraining.from_pretrained(setup / "stage2")
    assert model.config.pretraining_stage == 2 and model.config.text_config.num_hidden_layers == 1
    _assert_teacher_is_clip(model, setup / "clip")
    saved = json.loads((setup / "stage2" / "metrics.json").read_text())
    assert saved["eval_t2v_R@1"] == pytest.approx(stage2["eval_t2v_R@1"])


def test_retrieval_finetuning_saves_a_retrieval_model_that_reproduces_its_metrics(setup, stage2):
    val = setup / "corpus" / "val_retrieval.jsonl"
    argv = ["--model_name_or_path", str(setup / "stage2"), "--train_file", str(val.parent / "train_retrieval.jsonl"),
            "--validation_file", str(val), "--num_frames", str(FRAMES), "--rerank_top_k", "2"]  # fmt: skip
    metrics = _script("umt_finetune_retrieval").main(argv + _common(setup, "retrieval"))
    assert _finite(metrics["loss_vtc"]) and _finite(metrics["loss_vtm"])
    assert "loss_uta" not in metrics and "loss_mlm" not in metrics  # dropped for fine-tuning
    model = UmtForVideoTextRetrieval.from_pretrained(setup / "retrieval").eval()
    assert model.config.teacher_config is None and model.config.uta_loss_weight == 0
    processor = UmtProcessor.from_pretrained(setup / "retrieval")
    again = evaluate_retrieval(model, processor, load_annotations(val), batch_size=4, rerank_top_k=2, progress=False)
    for name in ("t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_MdR"):
        assert metrics[f"eval_{name}"] == pytest.approx(again.metrics[name])


def test_qa_finetuning_sets_the_answer_list_and_reports_accuracy(setup, stage2):
    corpus = setup / "corpus"
    argv = ["--model_name_or_path", str(setup / "stage2"), "--train_file", str(corpus / "train_qa.jsonl"),
            "--validation_file", str(corpus / "val_qa.jsonl"), "--num_frames", str(FRAMES)]  # fmt: skip
    metrics = _script("umt_finetune_qa").main(argv + _common(setup, "qa"))
    assert _finite(metrics["train_loss"]) and metrics["train_loss"] > 0
    assert 0 <= metrics["eval_accuracy"] <= 100
    val_types = {json.loads(line)["type"] for line in (corpus / "val_qa.jsonl").read_text().splitlines()}
    for name in ("accuracy", "accuracy_multi_frame", *(f"accuracy_type_{kind}" for kind in val_types)):
        assert {f"eval_{name}", f"eval_prior_{name}", f"eval_chance_{name}"} <= set(metrics), name
    model = UmtForVideoQuestionAnswering.from_pretrained(setup / "qa")
    train_answers = [json.loads(line)["answer"] for line in (corpus / "train_qa.jsonl").read_text().splitlines()]
    assert sorted(model.config.answer_list) == sorted({str(a).strip() for a in train_answers})
    assert len(model.config.answer_token_ids) == len(model.config.answer_list)


def test_missing_training_data_is_a_clear_error(setup):
    with pytest.raises(ValueError, match="--train_file"):
        _script("umt_pretrain_stage1").main(["--preset", "umt-b16"] + _common(setup, "none"))


def test_finetuning_rejects_a_stage1_checkpoint(setup, stage1):
    argv = ["--model_name_or_path", str(setup / "stage1"), "--train_file", str(setup / "corpus" / "train_qa.jsonl")]
    with pytest.raises(ValueError, match="stage-1 checkpoint"):
        _script("umt_finetune_qa").main(argv + _common(setup, "none"))


def test_stage2_model_takes_student_teacher_and_alignment_head_from_stage1(setup, stage1):
    from common import ModelArguments

    stage2_script = _script("umt_pretrain_stage2")
    args = ModelArguments(model_name_or_path=str(setup / "stage1"), config_name=str(setup / "config_stage2"))
    model = stage2_script.build_model(args)
    source = UmtForPreTraining.from_pretrained(setup / "stage1")
    for name in ("umt.vision_model", "teacher", "uta_head"):
        expected = source.get_submodule(name).state_dict()
        for key, tensor in model.get_submodule(name).state_dict().items():
            torch.testing.assert_close(tensor, expected[key], rtol=0, atol=0, msg=f"{name}.{key}")
    assert model.config.pretraining_stage == 2 and model.config.multimodal_config.num_hidden_layers == 1
    # The new MLM decoder shares the new word embeddings (as BertForMaskedLM).
    decoder = model.mlm_head.predictions.decoder.weight
    assert decoder.data_ptr() == model.umt.text_model.embeddings.word_embeddings.weight.data_ptr()
