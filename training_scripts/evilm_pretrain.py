#!/usr/bin/env python
"""E-ViLM pre-training (E-ViLM §3.4, §4.1): MLM (15 %) + VTM + MVM on the codes of a frozen semantic VQ tokenizer.

    python training_scripts/evilm_pretrain.py --preset evilm-s --text_encoder_name_or_path <bert> \
        --video_tokenizer_name_or_path runs/evilm_tokenizer --train_file train_retrieval.jsonl \
        --output_dir runs/evilm_pretrain --learning_rate 1e-4 --weight_decay 0.01 --num_train_epochs 20

The paper pre-trains 20 epochs on WebVid-2.5M with AdamW at 1e-4, weight decay 0.01 (§4.1).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from transformers import set_seed  # noqa: E402

from common import DataArguments, load_split, parse_args, report_and_save, setup_process, train_and_report  # noqa: E402
from evilm_common import EvilmModelArguments, load_processor, new_model_and_processor  # noqa: E402
from hf_videolang.models.evilm import EvilmForPreTraining  # noqa: E402
from hf_videolang.models.evilm_tokenizer import EvilmVideoTokenizer  # noqa: E402
from hf_videolang.training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments  # noqa: E402

LOSS_TERMS = ("loss_mlm", "loss_vtm", "loss_mvm")


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    model_args, data_args, training_args = parse_args(
        (EvilmModelArguments, DataArguments, VideoTextTrainingArguments), argv
    )
    setup_process(training_args)
    set_seed(training_args.seed)
    train_set = load_split(data_args, "train", task="retrieval")
    if model_args.model_name_or_path:
        model = EvilmForPreTraining.from_pretrained(model_args.model_name_or_path)
        processor = load_processor(model_args.model_name_or_path)
    else:
        model, processor = new_model_and_processor(EvilmForPreTraining, model_args, train_set["caption"])
    if model_args.video_tokenizer_name_or_path is None:
        raise ValueError("evilm_pretrain.py: MVM needs --video_tokenizer_name_or_path (train one with "
                         "evilm_train_tokenizer.py), or set the config's mvm_weight to 0.")  # fmt: skip
    model.set_video_tokenizer(EvilmVideoTokenizer.from_pretrained(model_args.video_tokenizer_name_or_path))
    collator = VideoTextCollator(processor, task="pretrain", training=True, seed=training_args.seed)
    trainer = VideoTextTrainer(model=model, args=training_args, train_dataset=train_set, data_collator=collator,
                               processing_class=processor)  # fmt: skip
    metrics = train_and_report(trainer, training_args, LOSS_TERMS)
    return report_and_save(trainer, model, processor, metrics)


if __name__ == "__main__":
    main()
