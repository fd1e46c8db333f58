"""``hf-videolang demo``: the main job, end to end on the built-in synthetic corpus, fully offline.

Stages (each one prints its numbers next to chance and records them in ``results.json``):

1. ``corpus``: write the corpus (mp4 + JSONL) with :func:`~hf_videolang.data.make_corpus`.
2. ``teacher``: train a small CLIP-style image-text model on single corpus frames (a tiny CLIP ViT + the
   pretrained MiniLM BERT), with :class:`~hf_videolang.training.VideoTextTrainer` and the shared VTC loss; evaluate
   text->video retrieval on the test split (4 frames, mean-pooled); save with ``save_pretrained``, reload with
   ``from_pretrained`` and check the reloaded model reproduces the outputs (max |diff| <= 1e-6); export its vision tower as a
   ``CLIPVisionModelWithProjection``, the class UMT's unmasked teacher loads.

The UMT stages (stage 1 distillation with semantic masking, stage 2 video-text pre-training, QA fine-tuning and the
``video-question-answering`` pipeline) are added by the UMT issue on top of this teacher.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

DEMO_NUM_VIDEOS = 300


def _print_table(title: str, rows: list[tuple[str, float, float]]) -> None:
    print(f"\n{title}")
    print(f"  {'metric':<14}{'model':>10}{'chance':>10}")
    for name, value, chance in rows:
        print(f"  {name:<14}{value:>10.2f}{chance:>10.2f}")


def _build_teacher(vocab_text_model: str, image_size: int):
    from transformers import AutoModel, CLIPVisionConfig, CLIPVisionModel, VisionTextDualEncoderConfig

    from .models.clip_teacher import ClipTeacherForImageTextPreTraining

    vision = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
            image_size=image_size, patch_size=8, projection_dim=128,
        )
    )
    text = AutoModel.from_pretrained(vocab_text_model, add_pooling_layer=True)
    config = VisionTextDualEncoderConfig.from_vision_text_configs(vision.config, text.config, projection_dim=128)
    return ClipTeacherForImageTextPreTraining(config=config, vision_model=vision, text_model=text)


def train_teacher(corpus_root: str, output_dir: str, seed: int = 0, epochs: float = 6) -> dict[str, Any]:
    """Stage ``teacher`` of the demo; returns its results (metrics, chance, timings)."""
    from transformers import AutoTokenizer, set_seed

    from .data import load_corpus
    from .evaluation.metrics import chance_retrieval_metrics
    from .evaluation.retrieval import evaluate_retrieval
    from .models.clip_teacher import ClipTeacherForImageTextPreTraining
    from .pretrained import minilm_path
    from .processing_utils import VideoTextProcessor
    from .training import VideoTextCollator, VideoTextTrainer, VideoTextTrainingArguments
    from .video.transforms import CLIP_MEAN, CLIP_STD

    set_seed(seed)
    corpus_config = json.loads((Path(corpus_root) / "corpus.json").read_text())
    image_size = int(corpus_config["size"])
    text_source = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(text_source)
    # Captions say "left"/"right": a horizontal flip would make them false, so flips are off.
    common = dict(image_size=image_size, mean=CLIP_MEAN, std=CLIP_STD, flip_prob=0.0, patch_size=8, max_length=24)
    train_processor = VideoTextProcessor(tokenizer, num_frames=1, mask_ratio=0.0, **common)
    eval_processor = VideoTextProcessor(tokenizer, num_frames=4, mask_ratio=0.0, **common)

    model = _build_teacher(text_source, image_size)
    train_set = load_corpus(corpus_root, "train", "retrieval")
    test_set = load_corpus(corpus_root, "test", "retrieval")

    args = VideoTextTrainingArguments(
        output_dir=os.path.join(output_dir, "teacher_trainer"),
        per_device_train_batch_size=32,
        num_train_epochs=epochs,
        learning_rate=1e-4,
        weight_decay=0.05,
        warmup_steps=10,
        lr_scheduler_type="cosine",
        logging_steps=10,
        save_strategy="no",
        report_to=[],
        dataloader_num_workers=1,
        seed=seed,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
    )
    trainer = VideoTextTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        data_collator=VideoTextCollator(train_processor, task="retrieval", training=True, seed=seed),
    )
    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start
    losses = [entry["loss_vtc"] for entry in trainer.state.log_history if "loss_vtc" in entry]

    model.eval()
    result = evaluate_retrieval(model, eval_processor, test_set, batch_size=32)
    num_videos = len(set(test_set["video"]))
    chance = chance_retrieval_metrics(num_videos)

    teacher_dir = os.path.join(output_dir, "teacher")
    model.save_pretrained(teacher_dir)
    eval_processor.save_pretrained(teacher_dir)
    reloaded = ClipTeacherForImageTextPreTraining.from_pretrained(teacher_dir).eval()
    probe = eval_processor(videos=[test_set[0]["video"]], text=[test_set[0]["caption"]], training=False)
    inputs = {k: probe[k] for k in ("pixel_values", "input_ids", "attention_mask")}
    with torch.no_grad():
        before, after = model(**inputs), reloaded(**inputs)
    # Bit-exact on the same weights in memory; across two allocations CPU GEMM kernels may round differently
    # (alignment-dependent paths), so the demo reports the largest difference and fails above 1e-6.
    reload_max_abs_diff = max(float((before[k] - after[k]).abs().max()) for k in ("video_embeds", "text_embeds"))
    if reload_max_abs_diff > 1e-6:
        raise RuntimeError(f"the reloaded teacher does not reproduce the trained one (max |diff| {reload_max_abs_diff})")
    model.to_clip_vision_model().save_pretrained(os.path.join(output_dir, "teacher_clip_vision"))

    return {
        "train_seconds": round(train_seconds, 1),
        "loss_vtc_first": losses[0] if losses else None,
        "loss_vtc_last": losses[-1] if losses else None,
        "test_videos": num_videos,
        "metrics": result.metrics,
        "chance": chance,
        "reload_max_abs_diff": reload_max_abs_diff,
        "saved_to": teacher_dir,
    }


def run_demo(output_dir: str = "runs/demo", model: str = "umt", num_videos: int | None = None, seed: int = 0) -> dict:
    """Run every demo stage; print a results table and write ``results.json`` in ``output_dir``."""
    if model != "umt":
        raise ValueError(f"hf-videolang demo knows --model umt so far, got {model!r}")
    from .data import make_corpus

    os.makedirs(output_dir, exist_ok=True)
    results: dict[str, Any] = {"seed": seed}
    start = time.perf_counter()

    print("[1/2] writing the built-in corpus")
    corpus_root = os.path.join(output_dir, "corpus")
    make_corpus(corpus_root, num_videos=num_videos or DEMO_NUM_VIDEOS, seed=seed)
    results["corpus"] = json.loads((Path(corpus_root) / "corpus.json").read_text())

    print("[2/2] training the CLIP-style image-text teacher on corpus frames")
    teacher = train_teacher(corpus_root, output_dir, seed=seed)
    results["teacher"] = teacher
    _print_table(
        f"Teacher text->video retrieval, test split ({teacher['test_videos']} videos)",
        [(name, teacher["metrics"][key], teacher["chance"][key]) for name, key in (
            ("R@1", "t2v_R@1"), ("R@5", "t2v_R@5"), ("R@10", "t2v_R@10"), ("MdR", "t2v_MdR"))],
    )
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    with open(os.path.join(output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=float)
    print(f"\nresults written to {os.path.join(output_dir, 'results.json')} ({results['total_seconds']} s)")
    return results
