"""Run under ``torchrun`` by ``test_multiprocess_equivalence.py``: a few ``VideoTextTrainer`` steps of a tiny MAC
pre-training model (masked videos and text, VTC gathered across ranks), saving per step the global loss, the
synchronized gradients, and the video ids and visual masks of the global batch.

    torchrun --nproc_per_node N ddp_first_steps.py ROOT OUT GLOBAL_BATCH [--float64]

``ROOT`` holds ``corpus/`` (make_corpus), ``tokenizer/`` and ``config/`` (a MacConfig); each rank gets
``GLOBAL_BATCH / N`` rows per step. Rank 0 writes ``OUT`` (``torch.save``). ``--float64`` trains the model in
double precision (the trainer casts the processor's float32 frames to it), which separates real differences from
float32 rounding of different batch shapes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import AutoTokenizer, TrainerCallback, set_seed

from hf_videolang.data import load_annotations
from hf_videolang.models.mac import MacConfig, MacForVideoTextRetrieval, MacProcessor
from hf_videolang.training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments

NUM_STEPS = 3


def _all_gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    out = tensor.new_empty((dist.get_world_size() * tensor.shape[0], *tensor.shape[1:]))
    dist.all_gather_single(out, tensor.contiguous())
    return out


class RecordingTrainer(VideoTextTrainer):
    """Keeps the local loss and the batch's video ids and masks of the current step."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        if model.training:
            self.step_record = {"loss": (loss[0] if return_outputs else loss).detach().clone(),
                                "video_ids": inputs["video_ids"].clone(),
                                "bool_masked_pos": inputs["bool_masked_pos"].clone(),
                                "mlm_input_ids": inputs["mlm_input_ids"].clone()}  # fmt: skip
        return loss


class GradientRecorder(TrainerCallback):
    """On each optimizer step (gradients already averaged over ranks by DDP): the global loss and the gradients."""

    def __init__(self) -> None:
        self.trainer: RecordingTrainer | None = None
        self.steps: list[dict] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        record = self.trainer.step_record
        world = dist.get_world_size() if dist.is_initialized() else 1
        loss = record["loss"].reshape(1)
        if world > 1:
            dist.all_reduce(loss)
            loss /= world  # the mean of equal-sized shards' mean losses: the global batch's mean loss
        grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
        self.steps.append({"loss": loss.item(), "grads": grads,
                           "video_ids": _all_gather_cat(record["video_ids"]),
                           "bool_masked_pos": _all_gather_cat(record["bool_masked_pos"]),
                           "mlm_input_ids": record["mlm_input_ids"]})  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    root, out, global_batch = Path(argv[0]), argv[1], int(argv[2])
    float64 = "--float64" in argv[3:]
    args = VideoTextTrainingArguments(
        output_dir=str(Path(out).with_suffix(".run")), max_steps=NUM_STEPS, per_device_train_batch_size=1,
        learning_rate=0.05, optim="sgd", lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0,
        max_grad_norm=0.0, dataloader_num_workers=0, ddp_find_unused_parameters=False, use_cpu=True,
        report_to="none", save_strategy="no",
        logging_steps=1, disable_tqdm=True, seed=0,
    )  # fmt: skip
    world = args.world_size
    if global_batch % world:
        raise ValueError(f"global batch {global_batch} does not split over {world} ranks")
    args.per_device_train_batch_size = global_batch // world
    set_seed(0)
    config = MacConfig.from_pretrained(root / "config")
    model = MacForVideoTextRetrieval(config)
    if float64:
        model = model.double()
    processor = MacProcessor.from_config(config, AutoTokenizer.from_pretrained(root / "tokenizer"), num_frames=2)
    rows = load_annotations(root / "corpus" / "train_retrieval.jsonl", task="retrieval")
    collator = VideoTextCollator(processor, task="pretrain", training=True, seed=7)
    recorder = GradientRecorder()
    trainer = RecordingTrainer(model=model, args=args, train_dataset=rows, data_collator=collator,
                               processing_class=processor, callbacks=[recorder])  # fmt: skip
    recorder.trainer = trainer
    trainer.train()
    if trainer.is_world_process_zero():
        torch.save({"world_size": world, "steps": recorder.steps}, out)
    if world > 1:
        dist.destroy_process_group()  # gloo can abort a rank that exits with its group alive (pytorch#190489)


if __name__ == "__main__":
    main()
