"""Tests of VideoTextTrainer: loss terms logged as window averages, gradient accumulation, evaluation, retrieval."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from tiny_videotext_model import TinyVideoTextConfig, TinyVideoTextModel
from transformers import TrainerCallback, TrainingArguments

from hf_videolang.training import LossTermAverager, VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments


def make_model(seed: int = 0, **config_kwargs) -> TinyVideoTextModel:
    torch.manual_seed(seed)
    return TinyVideoTextModel(TinyVideoTextConfig(**config_kwargs))


def make_args(tmp_path, **kwargs) -> VideoTextTrainingArguments:
    defaults = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        learning_rate=0.05,
        max_steps=6,
        logging_steps=3,
        lr_scheduler_type="constant",
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        dataloader_num_workers=0,
    )
    return VideoTextTrainingArguments(**{**defaults, **kwargs})


class RecordTrainingTerms:
    """Forward hook recording the loss terms of every training forward pass (one per micro-batch)."""

    def __init__(self, model):
        self.values: list[dict[str, float]] = []
        model.register_forward_hook(self)

    def __call__(self, module, args, output):
        if module.training:
            self.values.append({k: output[k].item() for k in ("loss", "loss_vtc", "loss_aux")})


class GradientsAtFirstStep(TrainerCallback):
    def __init__(self):
        self.grads = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.grads is None:
            self.grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def train_logs(trainer) -> list[dict]:
    return [log for log in trainer.state.log_history if "loss" in log]


def test_defaults_keep_raw_columns(small_processor):
    assert VideoTextTrainingArguments(output_dir="unused").remove_unused_columns is False
    plain = TrainingArguments(output_dir="unused", report_to="none", use_cpu=True)
    trainer = VideoTextTrainer(make_model(), plain, data_collator=VideoTextCollator(small_processor))
    assert trainer.args.remove_unused_columns is False


@pytest.mark.parametrize("accumulation", [1, 2])
def test_loss_terms_are_logged_as_window_averages(small_processor, square_corpus, tmp_path, accumulation):
    model = make_model()
    recorder = RecordTrainingTerms(model)
    args = make_args(
        tmp_path,
        per_device_train_batch_size=4 // accumulation,
        gradient_accumulation_steps=accumulation,
        max_steps=4,
        logging_steps=2,
    )
    collator = VideoTextCollator(small_processor, seed=0)
    trainer = VideoTextTrainer(model, args, data_collator=collator, train_dataset=Dataset.from_list(square_corpus))
    trainer.train()

    logs = train_logs(trainer)
    assert [log["step"] for log in logs] == [2, 4]
    micro_per_window = 2 * accumulation
    assert len(recorder.values) == 2 * micro_per_window
    for window, log in enumerate(logs):
        recorded = recorder.values[window * micro_per_window : (window + 1) * micro_per_window]
        for key in ("loss_vtc", "loss_aux", "loss"):
            expected = sum(values[key] for values in recorded) / len(recorded)
            assert log[key] == pytest.approx(expected, rel=1e-5), (key, window)


def test_losses_go_down_and_retrieval_improves(small_processor, square_corpus, tmp_path):
    dataset = Dataset.from_list(square_corpus)
    args = make_args(tmp_path, max_steps=40, logging_steps=10, learning_rate=0.05)
    trainer = VideoTextTrainer(
        make_model(),
        args,
        data_collator=VideoTextCollator(small_processor, seed=0),
        train_dataset=dataset,
        eval_dataset=dataset,
        processing_class=small_processor,
    )
    before = trainer.evaluate_retrieval(batch_size=8)
    trainer.train()
    after = trainer.evaluate_retrieval(batch_size=8)

    logs = train_logs(trainer)
    assert len(logs) == 4
    for key in ("loss", "loss_vtc", "loss_aux"):
        assert logs[-1][key] < 0.8 * logs[0][key], (key, [log[key] for log in logs])
    # Retrieval metrics come back prefixed, and are logged.
    assert {"eval_t2v_R@1", "eval_v2t_R@1", "eval_rsum"} <= after.keys()
    assert trainer.state.log_history[-1].items() >= after.items()
    assert after["eval_rsum"] > before["eval_rsum"]
    assert after["eval_t2v_R@1"] >= 75.0  # 8 videos: chance is 12.5 %


def test_gradient_accumulation_matches_one_large_batch(small_processor, square_corpus, tmp_path):
    """A per-sample objective (vtc_weight=0): 2 x 2 accumulated samples give the gradient of one batch of 4."""
    results = {}
    for batch_size, accumulation in [(4, 1), (2, 2)]:
        model = make_model(vtc_weight=0.0, aux_weight=1.0)
        grads = GradientsAtFirstStep()
        args = make_args(
            tmp_path / str(accumulation),
            per_device_train_batch_size=batch_size,
            gradient_accumulation_steps=accumulation,
            max_steps=1,
            logging_steps=1,
            max_grad_norm=0.0,
        )
        # Evaluation-mode collation: sampling and crops do not depend on how the rows are split into calls.
        trainer = VideoTextTrainer(
            model,
            args,
            data_collator=VideoTextCollator(small_processor, training=False),
            train_dataset=Dataset.from_list(square_corpus),
            callbacks=[grads],
        )
        trainer.train()
        results[accumulation] = (train_logs(trainer)[0], grads.grads)

    (log_1, grads_1), (log_2, grads_2) = results[1], results[2]
    assert log_2["loss"] == pytest.approx(log_1["loss"], rel=1e-5)
    assert log_2["loss_aux"] == pytest.approx(log_1["loss_aux"], rel=1e-5)
    assert grads_1.keys() == grads_2.keys() and "patch_embed.weight" in grads_1
    for name in grads_1:
        torch.testing.assert_close(grads_2[name], grads_1[name], rtol=1e-4, atol=1e-6)


def test_evaluate_reports_loss_terms(small_processor, square_corpus, tmp_path):
    model = make_model()
    args = make_args(tmp_path, per_device_eval_batch_size=4)
    collator = VideoTextCollator(small_processor, training=False)
    trainer = VideoTextTrainer(model, args, data_collator=collator, eval_dataset=Dataset.from_list(square_corpus))
    metrics = trainer.evaluate()

    expected = {"loss_vtc": 0.0, "loss_aux": 0.0}
    with torch.no_grad():
        for start in (0, 4):
            out = model(**collator(square_corpus[start : start + 4]))
            for key in expected:
                expected[key] += out[key].item() / 2
    for key, value in expected.items():
        assert metrics[f"eval_{key}"] == pytest.approx(value, rel=1e-5)
    assert not any(key.startswith("loss_") for key in metrics)


def test_loss_term_averager_weights_and_missing_terms():
    averager = LossTermAverager()
    averager.add({"loss_a": torch.tensor(1.0), "loss_b": torch.tensor(4.0)}, weight=0.5)
    averager.add({"loss_a": torch.tensor(3.0)}, weight=0.5)
    averager.add({"loss_a": torch.tensor([2.0, 4.0])}, weight=1.0)  # one value per GPU: averaged
    assert averager.pop_averages() == {"loss_a": pytest.approx((0.5 + 1.5 + 3.0) / 2.0), "loss_b": 4.0}
    assert averager.pop_averages() == {}


def test_learning_rate_multipliers_scale_matching_parameters_through_the_schedule(
    small_processor, square_corpus, tmp_path
):
    args = make_args(tmp_path, learning_rate=0.01, lr_scheduler_type="linear", warmup_steps=2, max_steps=4,
                     learning_rate_multipliers='{"^video_proj\\\\.": 10, "proj": 3}')  # fmt: skip
    assert args.learning_rate_multipliers == {"^video_proj\\.": 10, "proj": 3}  # parsed from JSON
    model = make_model()
    trainer = VideoTextTrainer(model=model, args=args, train_dataset=Dataset.from_list(square_corpus),
                               data_collator=VideoTextCollator(small_processor, task="retrieval"))  # fmt: skip
    trainer.create_optimizer_and_scheduler(num_training_steps=4)
    names = {id(p): n for n, p in model.named_parameters()}
    group_of = {names[id(p)]: group for group in trainer.optimizer.param_groups for p in group["params"]}
    assert sorted(group_of) == sorted(names.values())  # every parameter kept, each in one group
    for name, group in group_of.items():
        factor = 10 if name.startswith("video_proj.") else 3 if "proj" in name else 1  # first match wins
        assert group["initial_lr"] == pytest.approx(0.01 * factor), name
    assert trainer.optimizer.param_groups[0]["initial_lr"] == pytest.approx(0.01)  # the one Trainer logs
    trainer.optimizer.step()  # no gradients yet: a no-op that keeps the scheduler's step order
    trainer.lr_scheduler.step()  # warm-up step 1 of 2: every group at half its own peak
    for name, group in group_of.items():
        assert group["lr"] == pytest.approx(group["initial_lr"] / 2), name
    with pytest.raises(ValueError, match="positive number"):
        make_args(tmp_path, learning_rate_multipliers={"proj": 0})
