"""``--bf16`` end to end on CPU: under ``bf16=True`` the processor's float32 frames go through autocast (the model's
matrix products run in bfloat16); a model held in bfloat16 gets its float inputs cast by ``VideoTextTrainer``."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset

from hf_videolang.models.mac import MacConfig, MacForVideoTextRetrieval, MacProcessor
from hf_videolang.training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments


def _tiny_mac(vocab_size: int) -> MacForVideoTextRetrieval:
    torch.manual_seed(0)
    return MacForVideoTextRetrieval(MacConfig(
        vision_config=dict(image_size=32, patch_size=8, num_frames=4, hidden_size=32, num_hidden_layers=1,
                           num_attention_heads=4, intermediate_size=64),
        text_config=dict(vocab_size=vocab_size, dim=32, n_layers=1, n_heads=4, hidden_dim=64,
                         max_position_embeddings=64),
        projection_dim=16))  # fmt: skip


def _train(model, tiny_tokenizer, square_corpus, tmp_path, **args):
    processor = MacProcessor.from_config(model.config, tiny_tokenizer, num_frames=2)
    dtypes = []
    hook = model.mac.vision_projection.register_forward_hook(lambda module, inputs, output: dtypes.append(
        (inputs[0].dtype, output.dtype)))  # fmt: skip
    trainer = VideoTextTrainer(
        model=model, train_dataset=Dataset.from_list(square_corpus),
        data_collator=VideoTextCollator(processor, task="pretrain", seed=0),
        args=VideoTextTrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4,
                                        use_cpu=True, report_to="none", save_strategy="no", logging_steps=1,
                                        disable_tqdm=True, dataloader_num_workers=0, **args),
    )  # fmt: skip
    result = trainer.train()
    hook.remove()
    return result.training_loss, dtypes


def test_bf16_autocast_covers_the_float32_processor_outputs(tiny_tokenizer, square_corpus, tmp_path):
    model = _tiny_mac(len(tiny_tokenizer))
    loss, dtypes = _train(model, tiny_tokenizer, square_corpus, tmp_path, bf16=True)
    assert math.isfinite(loss)
    assert dtypes and all(output == torch.bfloat16 for _, output in dtypes)  # autocast ran the projection in bf16
    assert model.dtype == torch.float32  # mixed precision: the weights stay float32


def test_a_bfloat16_model_gets_its_inputs_in_bfloat16(tiny_tokenizer, square_corpus, tmp_path):
    model = _tiny_mac(len(tiny_tokenizer)).to(torch.bfloat16)
    loss, dtypes = _train(model, tiny_tokenizer, square_corpus, tmp_path)
    assert math.isfinite(loss)
    assert dtypes and all(inputs == output == torch.bfloat16 for inputs, output in dtypes)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_float_inputs_follow_the_model_dtype_and_integers_are_kept(tiny_tokenizer, tmp_path, dtype):
    model = _tiny_mac(len(tiny_tokenizer)).to(dtype)
    trainer = VideoTextTrainer(model=model, args=VideoTextTrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                                                            report_to="none"))  # fmt: skip
    batch = trainer._prepare_inputs({"pixel_values": torch.zeros(1, 2, 3, 32, 32), "input_ids": torch.ones(1, 3,
                                     dtype=torch.long), "bool_masked_pos": torch.zeros(1, 4, dtype=torch.bool)})
    assert batch["pixel_values"].dtype == dtype
    assert batch["input_ids"].dtype == torch.long and batch["bool_masked_pos"].dtype == torch.bool
