"""Trainer resume: training from a checkpoint reproduces, step by step, the losses of the uninterrupted run."""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from tiny_videotext_model import TinyVideoTextConfig, TinyVideoTextModel

from hf_videolang.training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments


class TrainingLosses:
    """Forward hook recording ``loss`` of every training forward pass."""

    def __init__(self, model):
        self.values: list[float] = []
        model.register_forward_hook(self)

    def __call__(self, module, args, output):
        if module.training:
            self.values.append(output["loss"].item())


def _trainer(tmp_path, processor, rows, workers: int):
    torch.manual_seed(0)
    model = TinyVideoTextModel(TinyVideoTextConfig())
    args = VideoTextTrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=2, learning_rate=0.05, max_steps=8,
        lr_scheduler_type="linear", warmup_steps=2, report_to="none", save_strategy="steps", save_steps=3,
        disable_tqdm=True, use_cpu=True, seed=0, dataloader_num_workers=workers, logging_steps=1,
    )
    trainer = VideoTextTrainer(model, args, data_collator=VideoTextCollator(processor, seed=0),
                               train_dataset=Dataset.from_list(rows))
    return trainer, TrainingLosses(model)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_from_a_checkpoint_reproduces_the_losses(small_processor, square_corpus, tmp_path, workers):
    # 8 rows, batch 2: 4 steps per epoch, so the run crosses an epoch boundary after the checkpoint at step 3.
    full, full_losses = _trainer(tmp_path / "full", small_processor, square_corpus, workers)
    full.train()
    assert len(full_losses.values) == 8

    resumed, resumed_losses = _trainer(tmp_path / "full", small_processor, square_corpus, workers)
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-3"))
    assert resumed_losses.values == pytest.approx(full_losses.values[3:], rel=1e-6, abs=1e-7)
    full_params = dict(full.model.named_parameters())
    for name, parameter in resumed.model.named_parameters():
        torch.testing.assert_close(parameter, full_params[name], rtol=1e-5, atol=1e-6)
