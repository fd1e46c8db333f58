"""Helpers shared by every method's demo: the corpus, the trainer settings, the reload check, the tables, the results.

A method's demo module (``demos/<method>.py``) builds on these and nothing else from another demo, so the demos do
not import each other.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

DEMO_NUM_VIDEOS = 300
"""Videos in the built-in corpus when the command line gives no ``--num-videos``."""


def corpus_image_size(corpus_root: str) -> int:
    """The frame side of a corpus written by :func:`~hf_videolang.data.make_corpus` (from its ``corpus.json``)."""
    return int(json.loads((Path(corpus_root) / "corpus.json").read_text())["size"])


def write_demo_corpus(output_dir: str, results: dict[str, Any], num_videos: int | None, seed: int) -> str:
    """Write the built-in corpus under ``output_dir/corpus``, record its settings in ``results``; returns its root."""
    from ..data import make_corpus

    corpus_root = os.path.join(output_dir, "corpus")
    make_corpus(corpus_root, num_videos=num_videos or DEMO_NUM_VIDEOS, seed=seed)
    results["corpus"] = json.loads((Path(corpus_root) / "corpus.json").read_text())
    return corpus_root


def demo_trainer_args(output_dir: str, name: str, seed: int, epochs: float, learning_rate: float,
                      learning_rate_multipliers: dict[str, float] | None = None):  # fmt: skip
    """The demos' :class:`~hf_videolang.training.VideoTextTrainingArguments`: batch 32, AdamW with weight decay
    0.05, 10 warm-up steps then cosine decay, a log every 5 % of the steps, no checkpoints, no reporting; the
    trainer folder is ``output_dir/<name>_trainer``."""
    from ..training import VideoTextTrainingArguments

    return VideoTextTrainingArguments(
        output_dir=os.path.join(output_dir, f"{name}_trainer"), per_device_train_batch_size=32,
        num_train_epochs=epochs, learning_rate=learning_rate, weight_decay=0.05, warmup_steps=10,
        lr_scheduler_type="cosine", logging_steps=0.05, save_strategy="no", report_to=[], dataloader_num_workers=1,
        seed=seed, use_cpu=not torch.cuda.is_available(), learning_rate_multipliers=learning_rate_multipliers,
    )  # fmt: skip


def logged_values(trainer, name: str) -> list[float]:
    """Every value of ``name`` (e.g. ``"loss_vtc"``) in the trainer's log history, in order."""
    return [entry[name] for entry in trainer.state.log_history if name in entry]


def check_auto_reload(encoder, processor, folder: str, video: Any, text: str) -> tuple[str, float]:
    """Reload ``folder`` with ``AutoModel`` and compare its video and text embeddings of one pair with those of
    ``encoder`` (the trained dual encoder: ``get_video_features`` / ``get_text_features``).

    Returns:
        The reloaded class name and the largest absolute difference.

    Raises:
        RuntimeError: above 1e-6 (bit-exact on the same weights; two CPU allocations may round differently).
    """
    from transformers import AutoModel

    reloaded = AutoModel.from_pretrained(folder).eval()
    probe = processor(videos=[video], text=[text], training=False)
    with torch.no_grad():
        pairs = [(model.get_video_features(probe["pixel_values"]),
                  model.get_text_features(probe["input_ids"], probe["attention_mask"]))
                 for model in (encoder, reloaded)]  # fmt: skip
    max_abs_diff = max(float((a - b).abs().max()) for a, b in zip(*pairs))
    if max_abs_diff > 1e-6:
        raise RuntimeError(
            f"AutoModel.from_pretrained({folder!r}) does not reproduce the model (max |diff| {max_abs_diff})"
        )
    return type(reloaded).__name__, max_abs_diff


def print_table(title: str, rows: list[tuple[str, float, float]]) -> None:
    """Print ``(metric, model value, chance value)`` rows under ``title``."""
    print(f"\n{title}")
    print(f"  {'metric':<14}{'model':>10}{'chance':>10}")
    for name, value, chance in rows:
        print(f"  {name:<14}{value:>10.2f}{chance:>10.2f}")


def print_retrieval(title: str, stage: dict[str, Any]) -> None:
    """Print a stage's text->video R@1/5/10 and MdR next to chance (``stage`` holds ``metrics``, ``chance`` and
    ``test_videos``)."""
    print_table(
        f"{title} text->video retrieval, test split ({stage['test_videos']} videos)",
        [(name, stage["metrics"][key], stage["chance"][key]) for name, key in (
            ("R@1", "t2v_R@1"), ("R@5", "t2v_R@5"), ("R@10", "t2v_R@10"), ("MdR", "t2v_MdR"))],
    )  # fmt: skip


QA_SUBSETS = {"multi_frame": "needs_multiple_frames"}
"""The QA subset every demo reports next to all questions: those no single frame answers."""


def evaluate_qa_stage(model, processor, train_set, test_set, answers: list[str], **forward_kwargs) -> dict[str, Any]:
    """QA accuracy on ``test_set`` overall, on the multi-frame questions and per question type (``"type"``), each
    next to chance and to the blind per-type prior; the ``test_questions*``, ``metrics``, ``chance`` and ``prior``
    entries of a demo's QA stage (``forward_kwargs`` go to the model, e.g. ``top_k``)."""
    from ..evaluation.qa import evaluate_qa, qa_baselines

    qa = evaluate_qa(model, processor, test_set, batch_size=32, subsets=QA_SUBSETS, group_by="type", **forward_kwargs)
    return {
        "test_questions": len(test_set),
        "test_questions_multi_frame": qa.subset_sizes["multi_frame"],
        "test_questions_per_type": {name.removeprefix("type_"): size for name, size in qa.subset_sizes.items()
                                    if name.startswith("type_")},  # fmt: skip
        "metrics": qa.metrics,
        **qa_baselines(answers, train_set, test_set, QA_SUBSETS, group_by="type"),
    }


def qa_table_rows(stage: dict[str, Any]) -> list[tuple[str, str]]:
    """``(label, metric key)`` of the QA rows of a demo table: all questions, the multi-frame ones, then each
    question type."""
    rows = [("QA accuracy", "accuracy"), ("QA multi-frame", "accuracy_multi_frame")]
    return rows + [(f"  {key.removeprefix('accuracy_type_')}", key) for key in stage["prior"]
                   if key.startswith("accuracy_type_")]  # fmt: skip


def qa_below_prior(metrics: dict[str, float], prior: dict[str, float]) -> list[str]:
    """The QA rows (``accuracy``, ``accuracy_multi_frame``, ``accuracy_type_<type>``) whose accuracy does not beat
    their blind prior: what the video did not teach the model."""
    return [key for key, blind in prior.items() if key in metrics and metrics[key] <= blind]


def print_qa_table(title: str, stage: dict[str, Any], metrics: dict[str, float] | None = None,
                   extra_rows: tuple[tuple[str, str], ...] = ()) -> None:  # fmt: skip
    """Print the QA rows of ``stage`` (``metrics`` overrides ``stage["metrics"]``) next to chance and the blind
    prior, then ``extra_rows`` (e.g. multiple choice, which has no prior); names the rows at or below their prior."""
    metrics = stage["metrics"] if metrics is None else metrics
    chance, prior = stage["chance"], stage["prior"]
    print(f"\n{title} ({stage['test_questions']} questions, {stage['test_questions_multi_frame']} need several "
          "frames; per type below)")  # fmt: skip
    print(f"  {'metric':<22}{'model':>10}{'chance':>10}{'prior':>10}")
    for label, key in (*qa_table_rows(stage), *extra_rows):
        blind = f"{prior[key]:>10.2f}" if key in prior else f"{'-':>10}"
        print(f"  {label:<22}{metrics[key]:>10.2f}{chance[key]:>10.2f}{blind}")
    below = qa_below_prior(metrics, prior)
    print("  (chance: a uniform guess; prior: the most frequent training answer of the question's type, no video)")
    print(f"  at or below the prior: {', '.join(below)}" if below else "  every QA row beats its prior")


def write_results(output_dir: str, results: dict[str, Any], start: float) -> dict[str, Any]:
    """Add the total time since ``start`` to ``results`` and write them to ``output_dir/results.json``."""
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    path = os.path.join(output_dir, "results.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2, default=float)
    print(f"\nresults written to {path} ({results['total_seconds']} s)")
    return results


__all__ = [
    "DEMO_NUM_VIDEOS",
    "QA_SUBSETS",
    "evaluate_qa_stage",
    "print_qa_table",
    "qa_below_prior",
    "qa_table_rows",
    "check_auto_reload",
    "corpus_image_size",
    "demo_trainer_args",
    "logged_values",
    "print_retrieval",
    "print_table",
    "write_demo_corpus",
    "write_results",
]
