"""Run under ``torchrun`` by ``test_multiprocess_scripts.py``: which rows each rank reads from a ``--streaming``
training split, through the training scripts' ``load_split`` and ``VideoTextTrainer``'s own train DataLoader.

    torchrun --nproc_per_node N stream_ranks.py OUT.json TRAIN_FILE [TRAIN_FILE ...]

For each ``TRAIN_FILE`` spec (JSONL files or .tar shards, comma-separated or globs) it iterates one pass of the
DataLoader and records the rows' ``"key"`` (tar) or ``"<video file>|<caption>"`` (JSONL); rank 0 writes
``{spec: [rows of rank 0, rows of rank 1, ...]}``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "training_scripts"))
from common import DataArguments, load_split  # noqa: E402
from hf_videolang.training import VideoTextTrainer, VideoTextTrainingArguments  # noqa: E402


def row_names(rows):
    return [row.get("key") or f"{os.path.basename(row['video'])}|{row['caption']}" for row in rows]


def main() -> None:
    out, specs = sys.argv[1], sys.argv[2:]
    args = VideoTextTrainingArguments(output_dir=out + ".run", per_device_train_batch_size=2, max_steps=1,
                                      use_cpu=True, report_to="none", dataloader_num_workers=0)  # fmt: skip
    result = {}
    for spec in specs:
        train_set = load_split(DataArguments(train_file=spec, streaming=True), "train", task="retrieval")
        trainer = VideoTextTrainer(model=torch.nn.Linear(1, 1), args=args, train_dataset=train_set,
                                   data_collator=row_names)  # the model is never run
        seen = [name for batch in trainer.get_train_dataloader() for name in batch]
        gathered = [None] * args.world_size
        if args.world_size > 1:
            dist.all_gather_object(gathered, seen)
        else:
            gathered[0] = seen
        result[spec] = gathered
    if args.process_index == 0:
        Path(out).write_text(json.dumps(result))
    if args.world_size > 1:
        dist.destroy_process_group()  # gloo can abort a rank that exits with its group alive (pytorch#190489)


if __name__ == "__main__":
    main()
