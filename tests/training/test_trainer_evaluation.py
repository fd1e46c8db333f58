"""Evaluation inside ``Trainer``: task metrics from ``evaluate()``, deterministic batches, best-model selection."""

from __future__ import annotations

import datasets
import pytest
import torch
from transformers import EarlyStoppingCallback, Trainer, TrainingArguments

from hf_videolang.evaluation import build_retrieval_compute_metrics
from hf_videolang.evaluation.retrieval import evaluate_retrieval
from hf_videolang.models.mac import MacConfig, MacForVideoTextRetrieval, MacProcessor
from hf_videolang.models.umt import UmtConfig, UmtForVideoTextRetrieval, UmtProcessor
from hf_videolang.training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments
from hf_videolang.training.trainer import evaluation_collator

SIZE, PATCH, FRAMES, VOCAB = 32, 8, 2, 100
RETRIEVAL_KEYS = [f"eval_{d}_{m}" for d in ("t2v", "v2t") for m in ("R@1", "R@5", "R@10", "MdR", "MnR")]


def tiny_mac(seed: int = 0) -> MacForVideoTextRetrieval:
    torch.manual_seed(seed)
    vision = dict(image_size=SIZE, patch_size=PATCH, num_frames=FRAMES, hidden_size=32, num_hidden_layers=1,
                  num_attention_heads=4, intermediate_size=64, drop_path_rate=0.0)  # fmt: skip
    text = dict(vocab_size=VOCAB, dim=32, n_layers=1, n_heads=4, hidden_dim=64, max_position_embeddings=32,
                dropout=0.0, attention_dropout=0.0)  # fmt: skip
    return MacForVideoTextRetrieval(MacConfig(vision_config=vision, text_config=text, projection_dim=16))


def tiny_umt(seed: int = 0) -> UmtForVideoTextRetrieval:
    torch.manual_seed(seed)
    vision = dict(image_size=SIZE, patch_size=PATCH, num_frames=FRAMES, hidden_size=32, num_hidden_layers=1,
                  num_attention_heads=4, intermediate_size=64, drop_path_rate=0.0)  # fmt: skip
    text = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
    config = UmtConfig(vision_config=vision, text_config=text, multimodal_config=text, teacher_config=None,
                       uta_loss_weight=0.0, projection_dim=16)  # fmt: skip
    return UmtForVideoTextRetrieval(config)


@pytest.fixture()
def mac_processor(tiny_tokenizer) -> MacProcessor:
    return MacProcessor.from_config(tiny_mac().config, tiny_tokenizer, num_frames=FRAMES)


@pytest.fixture()
def corpus(square_corpus) -> datasets.Dataset:
    return datasets.Dataset.from_list(square_corpus)


def _args(tmp_path, **overrides) -> dict:
    args = dict(output_dir=str(tmp_path), per_device_train_batch_size=4, per_device_eval_batch_size=4,
                max_steps=4, learning_rate=1e-3, report_to=[], disable_tqdm=True, save_strategy="no",
                use_cpu=True, seed=0)  # fmt: skip
    args.update(overrides)
    return args


def test_evaluation_collator_samples_uniformly_without_masks(mac_processor, square_corpus):
    training = VideoTextCollator(mac_processor, task="pretrain", training=True)
    evaluation = evaluation_collator(training)
    assert training.training and (training.return_masks or training.return_mlm)
    assert not evaluation.training and not evaluation.return_masks and not evaluation.return_mlm
    first, second = evaluation(square_corpus[:3]), evaluation(square_corpus[:3])
    assert "bool_masked_pos" not in first and "mlm_input_ids" not in first
    assert torch.equal(first["pixel_values"], second["pixel_values"])


def test_evaluate_reports_retrieval_metrics_and_is_deterministic(tmp_path, mac_processor, corpus):
    model = tiny_mac()
    collator = VideoTextCollator(mac_processor, task="pretrain", seed=0)
    trainer = VideoTextTrainer(
        model=model, args=VideoTextTrainingArguments(**_args(tmp_path)), train_dataset=corpus, eval_dataset=corpus,
        data_collator=collator, processing_class=mac_processor,
    )  # fmt: skip
    # MAC's forward takes `mlm_labels`; Trainer would infer label_names=["mlm_labels"] from it.
    assert trainer.label_names == ["video_ids"]
    first, second = trainer.evaluate(), trainer.evaluate()
    for key in RETRIEVAL_KEYS:
        assert key in first
        assert first[key] == second[key]
    reference = evaluate_retrieval(model, mac_processor, corpus, batch_size=4, progress=False).metrics
    assert first["eval_t2v_R@1"] == pytest.approx(reference["t2v_R@1"])
    assert first["eval_v2t_MnR"] == pytest.approx(reference["v2t_MnR"])
    assert any("eval_t2v_R@1" in entry for entry in trainer.state.log_history)  # went through log() / report_to


def test_evaluate_reports_umt_losses_and_retrieval_metrics(tmp_path, tiny_tokenizer, corpus):
    processor = UmtProcessor(tiny_tokenizer, image_size=SIZE, patch_size=PATCH).with_num_frames(FRAMES)
    trainer = VideoTextTrainer(
        model=tiny_umt(), args=VideoTextTrainingArguments(**_args(tmp_path)), eval_dataset=corpus,
        data_collator=VideoTextCollator(processor, task="retrieval"), processing_class=processor,
    )  # fmt: skip
    metrics = trainer.evaluate()
    assert {"eval_loss", "eval_loss_vtc", "eval_t2v_R@1", "eval_v2t_MnR"} <= set(metrics)


def test_best_model_and_early_stopping_on_t2v_recall(tmp_path, mac_processor, corpus):
    args = VideoTextTrainingArguments(**_args(
        tmp_path, eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2,
        metric_for_best_model="t2v_R@1", load_best_model_at_end=True, save_total_limit=1,
    ))  # fmt: skip
    trainer = VideoTextTrainer(
        model=tiny_mac(), args=args, train_dataset=corpus, eval_dataset=corpus,
        data_collator=VideoTextCollator(mac_processor, task="pretrain"), processing_class=mac_processor,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=5)],
    )  # fmt: skip
    trainer.train()
    assert trainer.state.best_metric is not None
    assert trainer.state.best_model_checkpoint is not None


class ReturnLossCollator:
    """Adds ``return_loss=True``: UMT's retrieval head computes its loss only in training unless asked."""

    def __init__(self, collator: VideoTextCollator) -> None:
        self.collator = collator

    def __call__(self, rows):
        return {**self.collator(rows), "return_loss": True}


def _plain_trainer_run(tmp_path, model, processor, corpus) -> Trainer:
    args = TrainingArguments(**_args(
        tmp_path, eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2,
        metric_for_best_model="t2v_R@1", load_best_model_at_end=True, save_total_limit=1,
        label_names=["video_ids"], remove_unused_columns=False,
    ))  # fmt: skip
    trainer = Trainer(
        model=model, args=args, train_dataset=corpus, eval_dataset=corpus,
        data_collator=ReturnLossCollator(VideoTextCollator(processor, task="retrieval", training=False)),
        compute_metrics=build_retrieval_compute_metrics(),
    )  # fmt: skip
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer.train()
    assert any(not torch.equal(before[name], p) for name, p in model.named_parameters())
    return trainer


def test_plain_trainer_fine_tunes_mac_retrieval_with_best_model(tmp_path, mac_processor, corpus):
    trainer = _plain_trainer_run(tmp_path, tiny_mac(), mac_processor, corpus)
    metrics = trainer.evaluate()
    assert 0.0 <= metrics["eval_t2v_R@1"] <= 100.0 and "eval_v2t_MdR" in metrics
    assert trainer.state.best_metric is not None


def test_plain_trainer_fine_tunes_umt_retrieval_with_best_model(tmp_path, tiny_tokenizer, corpus):
    model = tiny_umt()
    processor = UmtProcessor(tiny_tokenizer, image_size=SIZE, patch_size=PATCH).with_num_frames(FRAMES)
    trainer = _plain_trainer_run(tmp_path, model, processor, corpus)
    assert "eval_t2v_R@1" in trainer.evaluate()


def test_retrieval_compute_metrics_defaults_find_embeddings_of_model_outputs():
    from transformers import EvalPrediction

    video, text = torch.randn(6, 4).numpy(), torch.randn(6, 4).numpy()
    loss_terms, logits = torch.randn(3).numpy(), torch.randn(6, 2).numpy()  # per-batch scalars and logits
    compute = build_retrieval_compute_metrics()
    ids = torch.arange(6).numpy()
    metrics = compute(EvalPrediction(predictions=(loss_terms, logits, logits, video, text), label_ids=ids))
    explicit = build_retrieval_compute_metrics(video_index=3, text_index=4)(
        EvalPrediction(predictions=(loss_terms, logits, logits, video, text), label_ids=ids)
    )
    assert metrics == explicit
    with pytest.raises(ValueError, match="pass video_index= and text_index="):
        compute(EvalPrediction(predictions=(loss_terms, logits), label_ids=ids))
