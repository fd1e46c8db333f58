"""``hf-videolang demo --model mac``: MAC's masked contrastive pre-training, end to end on the built-in corpus.

Stages (MAC §4.1 / §4.3 scaled down to a CPU):

1. write the corpus (:func:`~hf_videolang.data.make_corpus`);
2. spatial phase: 1 random frame per video (an "image"), 60 % of its patches and 15 % of the caption's words masked;
3. temporal phase: 4 random frames per video, same masking (MAC §4.3: "then randomly sample 4 frames");
4. evaluate text->video retrieval on the test split (4 uniform frames, no masking) next to chance, save with
   ``save_pretrained``, reload with ``AutoModel.from_pretrained`` and check the reloaded model reproduces the
   embeddings (max |diff| <= 1e-6); print the table and write ``results.json``.

The video encoder is a tiny divided space-time ViT trained from scratch; the text encoder is the pretrained MiniLM
BERT (:func:`~hf_videolang.demos.minilm.minilm_path`; the paper uses DistilBERT, which is not available offline).
MiniLM was trained with mean pooling, so its [CLS] state barely varies between sentences; the demo uses the
``text_pooling="mean"`` option of :class:`~hf_videolang.models.mac.MacConfig` (the paper reads [CLS], MAC §3.2).
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from .common import (
    check_auto_reload,
    corpus_image_size,
    demo_trainer_args,
    logged_values,
    print_retrieval,
    write_demo_corpus,
    write_results,
)

#: The demo's video encoder: 4 divided space-time blocks of width 192 on 8 px patches (MAC-B/16 has 12 of 768).
DEMO_VISION = dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=4, intermediate_size=768, patch_size=8,
                   num_frames=4, drop_path_rate=0.0)  # fmt: skip
DEMO_PHASES = (
    # (name, frames per video, epochs, learning rate). MAC §4.3 trains 20 epochs on 1 frame, then 2 on 4 frames,
    # at 1e-4 and 3e-5; the demo's encoder starts from scratch, so it trains longer and faster on the CPU budget.
    ("spatial", 1, 6.0, 1e-4),
    ("temporal", 4, 2.0, 1e-4),
)


def _build_model(image_size: int, text_source: str, seed: int):
    from transformers import AutoConfig

    from ..models.mac import MacConfig, MacForVideoTextRetrieval

    torch.manual_seed(seed)
    config = MacConfig(
        vision_config=dict(DEMO_VISION, image_size=image_size),
        text_config=AutoConfig.from_pretrained(text_source).to_dict(),
        text_pooling="mean",  # MiniLM's training pooling (see the module docstring)
        learnable_temperature=True,
        logit_scale_init_value=2.659,  # log(1 / 0.07): a learnable CLIP temperature trains faster from scratch
    )
    model = MacForVideoTextRetrieval(config)
    model.mac.load_text_encoder(text_source)
    return model


def train_mac(
    corpus_root: str,
    output_dir: str,
    seed: int = 0,
    phases: tuple[tuple[str, int, float, float], ...] = DEMO_PHASES,
    eval_batch_size: int = 32,
    logging_steps: int = 10,
) -> dict[str, Any]:
    """Pre-train MAC on a corpus in phases, evaluate text->video retrieval, save and reload; returns the results.

    Args:
        corpus_root: a corpus written by :func:`~hf_videolang.data.make_corpus`.
        output_dir: where the trainer folders and the saved model (``mac/``) go.
        seed: seeds the model, the data order and the masks.
        phases: ``(name, frames per video, epochs, learning rate)`` run in order on the train split.
        eval_batch_size: videos / texts per forward in the retrieval evaluation.
        logging_steps: steps between two logged (window-averaged) losses.

    Returns:
        Per-phase losses and timings, the test metrics next to chance, and the reload check.
    """
    from transformers import AutoTokenizer, set_seed

    from ..data import load_corpus
    from ..evaluation.metrics import chance_retrieval_metrics
    from ..evaluation.retrieval import evaluate_retrieval
    from ..models.mac import MacProcessor
    from ..training import VideoTextCollator, VideoTextTrainer
    from ..video.transforms import CLIP_MEAN, CLIP_STD
    from .minilm import minilm_path

    set_seed(seed)
    image_size = corpus_image_size(corpus_root)
    text_source = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(text_source)
    model = _build_model(image_size, text_source, seed)
    # Captions say "left"/"right": a horizontal flip would make them false, so flips are off.
    processor = MacProcessor.from_config(model.config, tokenizer, mean=CLIP_MEAN, std=CLIP_STD, flip_prob=0.0,
                                         max_length=24)  # fmt: skip
    train_set = load_corpus(corpus_root, "train", "retrieval")

    results: dict[str, Any] = {"phases": {}}
    start = time.perf_counter()
    for name, num_frames, epochs, learning_rate in phases:
        phase_start = time.perf_counter()
        args = demo_trainer_args(output_dir, f"mac_{name}", seed, epochs, learning_rate)
        args.logging_steps = logging_steps
        trainer = VideoTextTrainer(
            model=model,
            args=args,
            train_dataset=train_set,
            # "pretrain": masked videos (bool_masked_pos) and whole-word-masked captions (mlm_input_ids).
            data_collator=VideoTextCollator(processor.with_num_frames(num_frames), task="pretrain", training=True,
                                            seed=seed),  # fmt: skip
        )
        trainer.train()
        losses = logged_values(trainer, "loss_vtc")
        results["phases"][name] = {
            "frames": num_frames,
            "epochs": epochs,
            "learning_rate": learning_rate,
            "train_seconds": round(time.perf_counter() - phase_start, 1),
            "loss_vtc_first": losses[0] if losses else None,
            "loss_vtc_last": losses[-1] if losses else None,
        }
    results["train_seconds"] = round(time.perf_counter() - start, 1)

    model.eval()
    test_set = load_corpus(corpus_root, "test", "retrieval")
    retrieval = evaluate_retrieval(model, processor, test_set, batch_size=eval_batch_size)
    num_videos = len(set(test_set["video"]))

    save_dir = os.path.join(output_dir, "mac")
    model.save_pretrained(save_dir)
    processor.save_pretrained(save_dir)
    _, results["reload_max_abs_diff"] = check_auto_reload(model, processor, save_dir, test_set[0]["video"],
                                                          test_set[0]["caption"])  # fmt: skip
    results.update(test_videos=num_videos, metrics=retrieval.metrics, chance=chance_retrieval_metrics(num_videos),
                   saved_to=save_dir)  # fmt: skip
    return results


DEFAULT_OUTPUT_DIR = "runs/demo_mac"


def run(output_dir: str = DEFAULT_OUTPUT_DIR, seed: int = 0, num_videos: int | None = None) -> dict[str, Any]:
    """Write the corpus, pre-train MAC (1 frame, then 4 frames), evaluate, save/reload; print a table and write
    ``results.json`` in ``output_dir``."""
    os.makedirs(output_dir, exist_ok=True)
    results: dict[str, Any] = {"seed": seed}
    start = time.perf_counter()
    print("[1/2] writing the built-in corpus")
    corpus_root = write_demo_corpus(output_dir, results, num_videos, seed)

    print("[2/2] MAC: masked contrastive pre-training (60 % of each frame's patches, 15 % of the words masked), "
          "1 frame then 4 frames")  # fmt: skip
    results["mac"] = train_mac(corpus_root, output_dir, seed=seed)
    print_retrieval("MAC", results["mac"])
    return write_results(output_dir, results, start)


__all__ = ["DEFAULT_OUTPUT_DIR", "DEMO_PHASES", "DEMO_VISION", "run", "train_mac"]
