#!/usr/bin/env python
"""E-ViLM's semantic VQ tokenizer (E-ViLM §3.3, §4.1): a CLIP-ViT encoder, a 9,420 x 32 codebook, and an 8-layer
decoder whose word head learns the captions' words with Eq. 6's focal loss (plus Eq. 7's codebook terms).

    python training_scripts/evilm_train_tokenizer.py --clip_vision_name_or_path openai/clip-vit-base-patch16 \
        --tokenizer_name <bert> --train_file train_retrieval.jsonl --output_dir runs/evilm_tokenizer \
        --learning_rate 2e-4 --num_train_epochs 10

The paper trains it 10 epochs on WebVid at 2e-4 (§4.1). The codebook utilization of the last batches is logged.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from transformers import AutoTokenizer, CLIPVisionConfig, set_seed  # noqa: E402

from common import DataArguments, load_split, parse_args, report_and_save, setup_process, train_and_report  # noqa: E402
from hf_videolang.models.evilm import EvilmProcessor  # noqa: E402
from hf_videolang.models.evilm_tokenizer import EvilmTokenizerConfig, EvilmVideoTokenizer  # noqa: E402
from hf_videolang.training import CaptionWordsCollator, VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments  # noqa: E402


@dataclass
class TokenizerArguments:
    clip_vision_name_or_path: str | None = field(default=None, metadata={"help": "A CLIPVisionModel checkpoint."})
    tokenizer_name: str = field(default="bert-base-uncased", metadata={"help": "The captions' WordPiece tokenizer."})
    codebook_size: int = field(default=9420, metadata={"help": "Codes in the codebook (§4.1: 9,420)."})
    dead_code_threshold: float = field(default=0.0, metadata={"help": "Restart codes used less than this per batch."})


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    tok_args, data_args, training_args = parse_args(
        (TokenizerArguments, DataArguments, VideoTextTrainingArguments), argv
    )
    setup_process(training_args)
    set_seed(training_args.seed)
    text_tokenizer = AutoTokenizer.from_pretrained(tok_args.tokenizer_name)
    vision = CLIPVisionConfig.from_pretrained(tok_args.clip_vision_name_or_path) if tok_args.clip_vision_name_or_path \
        else CLIPVisionConfig(patch_size=16)  # fmt: skip
    config = EvilmTokenizerConfig(vision_config=vision.to_dict(), codebook_size=tok_args.codebook_size,
                                  vocab_size=len(text_tokenizer),
                                  dead_code_threshold=tok_args.dead_code_threshold)  # fmt: skip
    if tok_args.clip_vision_name_or_path:
        model = EvilmVideoTokenizer.from_clip_vision(config, tok_args.clip_vision_name_or_path)
    else:
        model = EvilmVideoTokenizer(config)
    processor = EvilmProcessor(text_tokenizer, image_size=vision.image_size, patch_size=vision.patch_size,
                               mask_ratio=0.0, num_frames=data_args.num_frames or 4)  # fmt: skip
    collator = CaptionWordsCollator(VideoTextCollator(processor, task="retrieval", training=True,
                                                      seed=training_args.seed))  # fmt: skip
    train_set = load_split(data_args, "train", "retrieval")
    trainer = VideoTextTrainer(model=model, args=training_args, train_dataset=train_set,
                               data_collator=collator)  # fmt: skip
    metrics = train_and_report(trainer, training_args, ("loss_token", "loss_codebook", "loss_commitment"))
    return report_and_save(trainer, model, processor, metrics)


if __name__ == "__main__":
    main()
