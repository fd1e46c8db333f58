"""``hf-videolang demo``: the main job, end to end on the built-in synthetic corpus, fully offline.

Stages (each one prints its numbers next to chance and records them in ``results.json``):

1. ``corpus``: write the corpus (mp4 + JSONL) with :func:`~hf_videolang.data.make_corpus`.
2. ``teacher``: train a small CLIP-style image-text model on single corpus frames (a tiny CLIP ViT + the
   pretrained MiniLM BERT), with :class:`~hf_videolang.training.VideoTextTrainer` and the shared VTC loss; evaluate
   text->video retrieval on the test split (4 frames, mean-pooled); save with ``save_pretrained``, reload with
   ``from_pretrained`` and check the reloaded model reproduces the outputs (max |diff| <= 1e-6); export its vision
   tower as a ``CLIPVisionModelWithProjection``, the class UMT's unmasked teacher loads.
3. ``umt_stage1``: UMT stage 1 (UMT §3.2): 8 frames, 80 % semantic masking from the teacher's class-token
   attention, unmasked token alignment (UTA) on the last layers.
4. ``umt_stage2``: 4 frames, VTC + VTM (hard negatives) + MLM + UTA; text encoder and multimodal encoder from MiniLM;
   text->video retrieval on the test split.
5. ``umt_qa``: QA fine-tuning of the answer decoder (started from the multimodal encoder); QA accuracy (all
   questions and those that need several frames) next to chance and a blind per-type prior; multiple choice with
   the stage-2 VTM/VTC heads; reload through ``AutoModel``; an answer from ``pipeline("video-question-answering")``.

``hf-videolang demo --model umt`` calls :func:`run`; the stages are public so that a test can run them small.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from .common import (
    check_auto_reload,
    corpus_image_size,
    demo_trainer_args,
    evaluate_qa_stage,
    logged_values,
    print_qa_table,
    print_retrieval,
    write_demo_corpus,
    write_results,
)

logger = logging.getLogger(__name__)


def _build_teacher(vocab_text_model: str, image_size: int):
    from transformers import AutoModel, CLIPVisionConfig, CLIPVisionModel, VisionTextDualEncoderConfig

    from .clip_teacher import ClipTeacherForImageTextPreTraining

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

    from ..data import load_corpus
    from ..evaluation.metrics import chance_retrieval_metrics
    from ..evaluation.retrieval import evaluate_retrieval
    from ..processing_utils import VideoTextProcessor
    from ..training import VideoTextCollator, VideoTextTrainer
    from ..video.transforms import CLIP_MEAN, CLIP_STD
    from .clip_teacher import ClipTeacherForImageTextPreTraining
    from .minilm import minilm_path

    set_seed(seed)
    image_size = corpus_image_size(corpus_root)
    text_source = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(text_source)
    # Captions say "left"/"right": a horizontal flip would make them false, so flips are off.
    common = dict(image_size=image_size, mean=CLIP_MEAN, std=CLIP_STD, flip_prob=0.0, patch_size=8, max_length=24)
    train_processor = VideoTextProcessor(tokenizer, num_frames=1, mask_ratio=0.0, **common)
    eval_processor = VideoTextProcessor(tokenizer, num_frames=4, mask_ratio=0.0, **common)

    model = _build_teacher(text_source, image_size)
    train_set = load_corpus(corpus_root, "train", "retrieval")
    test_set = load_corpus(corpus_root, "test", "retrieval")

    # The vision tower starts from scratch and trains at stage 1's 1e-3; the pretrained MiniLM stays at 1e-4 (the
    # teacher's test R@1 went from 31.9 to 40.7 with this split, against one rate of 1e-4 for both).
    args = demo_trainer_args(output_dir, "teacher", seed, epochs, learning_rate=1e-4,
                              learning_rate_multipliers={r"^(vision_model|visual_projection)\.": 10.0})
    trainer = VideoTextTrainer(
        model=model,
        args=args,
        train_dataset=train_set,
        data_collator=VideoTextCollator(train_processor, task="retrieval", training=True, seed=seed),
    )
    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start
    losses = logged_values(trainer, "loss_vtc")

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
        raise RuntimeError(
            f"the reloaded teacher does not reproduce the trained one (max |diff| {reload_max_abs_diff})"
        )
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


DEFAULT_OUTPUT_DIR = "runs/demo"


def run(output_dir: str = DEFAULT_OUTPUT_DIR, seed: int = 0, num_videos: int | None = None) -> dict[str, Any]:
    """Run every UMT demo stage; print the results tables and write ``results.json`` in ``output_dir``."""
    os.makedirs(output_dir, exist_ok=True)
    results: dict[str, Any] = {"seed": seed}
    start = time.perf_counter()

    steps = 6
    print(f"[1/{steps}] writing the built-in corpus")
    corpus_root = write_demo_corpus(output_dir, results, num_videos, seed)

    print(f"[2/{steps}] training the CLIP-style image-text teacher on corpus frames")
    results["teacher"] = train_teacher(corpus_root, output_dir, seed=seed)
    print_retrieval("Teacher", results["teacher"])
    print(f"[3/{steps}] UMT stage 1: semantic masking (80 %) + unmasked token alignment to the teacher")
    results["umt_stage1"] = train_umt_stage1(corpus_root, output_dir, seed=seed)
    print(f"[4/{steps}] UMT stage 2: VTC + VTM + MLM + UTA on video-text pairs")
    results["umt_stage2"] = train_umt_stage2(corpus_root, output_dir, seed=seed)
    print_retrieval("UMT stage 2", results["umt_stage2"])
    print(f"[5/{steps}] UMT video QA fine-tuning (answer decoder), multiple choice, reload, pipeline")
    results["umt_qa"] = finetune_umt_qa(corpus_root, output_dir, seed=seed)
    _print_qa(results["umt_qa"])
    print(f"[6/{steps}] done")
    return write_results(output_dir, results, start)


def _print_qa(stage: dict[str, Any]) -> None:
    mc_rows = (("MC (MSR-VTT protocol)", "mc_accuracy"), ("MC minimal pairs", "mc_minimal_pairs_accuracy"))
    print_qa_table("UMT video QA, test split", stage, extra_rows=mc_rows)
    print("  (MC uses the stage-2 VTM + VTC heads; minimal pairs: each wrong option changes one attribute of the "
          "caption)")
    example = stage["pipeline_example"]
    best = example["answers"][0]
    print(f"\npipeline('video-question-answering'): {example['question']!r} -> {best['answer']!r} "
          f"(score {best['score']:.2f}; expected {example['expected']!r})")  # fmt: skip


# ------------------------------------------------------------------------------------------------------------ UMT

DEMO_STUDENT = dict(hidden_size=384, num_hidden_layers=4, num_attention_heads=6, intermediate_size=1536, patch_size=8,
                    num_frames=8, drop_path_rate=0.1)  # fmt: skip
DEMO_UTA_LAYERS = 2  # the teacher has 4 layers; the paper aligns the last 6 of 12 (UMT §4.2), half the depth here too


def train_umt_stage1(corpus_root: str, output_dir: str, seed: int = 0, epochs: float = 3) -> dict[str, Any]:
    """UMT stage 1 (UMT §3.2): the student sees 20 % of the tokens of 8 frames, kept by semantic masking from the
    frozen teacher's class-token attention, and aligns them to the teacher's tokens on the last layers (UTA)."""
    from transformers import AutoTokenizer, CLIPVisionConfig, set_seed

    from ..data import load_corpus
    from ..models.umt import UmtConfig, UmtForPreTraining, UmtProcessor
    from ..training import VideoTextCollator, VideoTextTrainer
    from ..video.transforms import CLIP_MEAN, CLIP_STD
    from .minilm import minilm_path

    set_seed(seed)
    teacher_dir = os.path.join(output_dir, "teacher_clip_vision")
    image_size = corpus_image_size(corpus_root)
    config = UmtConfig(
        pretraining_stage=1,
        vision_config=dict(DEMO_STUDENT, image_size=image_size),
        teacher_config=CLIPVisionConfig.from_pretrained(teacher_dir).to_dict(),
        uta_num_layers=DEMO_UTA_LAYERS,
    )
    model = UmtForPreTraining(config)
    model.load_teacher(teacher_dir)
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    processor = UmtProcessor(tokenizer, num_frames=8, image_size=image_size, patch_size=8, mean=CLIP_MEAN, std=CLIP_STD,
                             flip_prob=0.0)  # fmt: skip
    trainer = VideoTextTrainer(
        model=model,
        args=demo_trainer_args(output_dir, "umt_stage1", seed, epochs, 1e-3),
        train_dataset=load_corpus(corpus_root, "train", "retrieval"),
        data_collator=VideoTextCollator(processor, task="retrieval", training=True, seed=seed),
    )
    start = time.perf_counter()
    trainer.train()
    losses = logged_values(trainer, "loss_uta")
    stage1_dir = os.path.join(output_dir, "umt_stage1")
    model.save_pretrained(stage1_dir)
    processor.save_pretrained(stage1_dir)
    return {"train_seconds": round(time.perf_counter() - start, 1), "loss_uta_first": losses[0] if losses else None,
            "loss_uta_last": losses[-1] if losses else None, "saved_to": stage1_dir}  # fmt: skip


def _load_minilm_into_umt(model, text_source: str) -> None:
    """Initialize UMT's text encoder with MiniLM's first layers and the multimodal encoder's self-attention and
    feed-forward with its last layers (the authors split BERT-base 9 + 3 the same way); cross-attention stays new."""
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(text_source)
    num_text = model.config.text_config.num_hidden_layers
    text_state = {k: v for k, v in bert.state_dict().items() if not k.startswith("pooler.")}
    text_state = {k: v for k, v in text_state.items() if not k.startswith("encoder.layer.")
                  or int(k.split(".")[2]) < num_text}  # fmt: skip
    model.umt.text_model.load_state_dict(text_state, strict=True)
    fusion_state = {}
    for index in range(len(model.umt.multimodal_encoder.layer)):
        source = bert.encoder.layer[num_text + index]
        for part in ("attention", "intermediate", "output"):
            fusion_state.update({f"layer.{index}.{part}.{k}": v for k, v in getattr(source, part).state_dict().items()})
    missing, unexpected = model.umt.multimodal_encoder.load_state_dict(fusion_state, strict=False)
    if unexpected or any("crossattention" not in key for key in missing):
        raise RuntimeError(f"MiniLM -> multimodal encoder: missing {missing}, unexpected {unexpected}")


LOSS_TERMS = ("loss_vtc", "loss_vtm", "loss_mlm", "loss_uta")


def train_umt_stage2(corpus_root: str, output_dir: str, seed: int = 0, epochs: float = 5,
                     learning_rate: float = 2e-4, negative_captions: bool = False) -> dict[str, Any]:
    """UMT stage 2 (UMT §3.2): 4 frames at 80 % semantic masking, VTC + VTM (hard negatives) + MLM (50 %) + UTA, all
    weights 1; the student starts from stage 1, the text side from the pretrained MiniLM BERT.

    With ``negative_captions`` (not in the paper), each training caption also brings its video's caption with one
    attribute swapped (the training split's minimal pairs): extra VTC negatives and VTM's text-side negatives. Off:
    on this corpus they left the minimal-pair MC at chance (17.8 %), as the student's features do not encode shape."""
    from transformers import AutoConfig, set_seed

    from ..data import load_corpus
    from ..evaluation.metrics import chance_retrieval_metrics
    from ..evaluation.retrieval import evaluate_retrieval
    from ..models.umt import UmtConfig, UmtForPreTraining, UmtProcessor
    from ..training import NegativeCaptionCollator, VideoTextCollator, VideoTextTrainer
    from .minilm import minilm_path

    set_seed(seed)
    stage1_dir = os.path.join(output_dir, "umt_stage1")
    stage1 = UmtForPreTraining.from_pretrained(stage1_dir)
    text_source = minilm_path()
    bert_config = AutoConfig.from_pretrained(text_source).to_dict()
    config = UmtConfig(
        pretraining_stage=2,
        vision_config=stage1.config.vision_config.to_dict(),
        teacher_config=stage1.config.teacher_config.to_dict(),
        text_config=dict(bert_config, num_hidden_layers=4),
        multimodal_config=dict(bert_config, num_hidden_layers=2),
        uta_num_layers=DEMO_UTA_LAYERS,
        projection_dim=128,
        # MiniLM was trained with mean pooling: its [CLS] states are near-identical across captions (cos ~0.998).
        text_pooling="mean",
    )
    model = UmtForPreTraining(config)
    for name in ("teacher", "uta_head"):
        getattr(model, name).load_state_dict(getattr(stage1, name).state_dict())
    model.umt.vision_model.load_state_dict(stage1.umt.vision_model.state_dict())
    _load_minilm_into_umt(model, text_source)
    del stage1

    processor = UmtProcessor.from_pretrained(stage1_dir).with_num_frames(4)
    train_set = load_corpus(corpus_root, "train", "retrieval")
    collator = VideoTextCollator(processor, task="pretrain", training=True, seed=seed)
    if negative_captions:
        train_set = with_minimal_pair_negatives(train_set, load_corpus(corpus_root, "train", "mc_minimal_pairs"))
        collator = NegativeCaptionCollator(collator)
    trainer = VideoTextTrainer(
        model=model,
        args=demo_trainer_args(output_dir, "umt_stage2", seed, epochs, learning_rate),
        train_dataset=train_set,
        data_collator=collator,
    )
    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start
    model.eval()
    test_set = load_corpus(corpus_root, "test", "retrieval")
    result = evaluate_retrieval(model.umt, processor, test_set, batch_size=32)
    stage2_dir = os.path.join(output_dir, "umt_stage2")
    model.save_pretrained(stage2_dir)
    processor.save_pretrained(stage2_dir)
    return {
        "train_seconds": round(train_seconds, 1),
        **{f"{name}_first": (logged_values(trainer, name) or [None])[0] for name in LOSS_TERMS},
        **{f"{name}_last": (logged_values(trainer, name) or [None])[-1] for name in LOSS_TERMS},
        "test_videos": len(set(test_set["video"])),
        "metrics": result.metrics,
        "chance": chance_retrieval_metrics(len(set(test_set["video"]))),
        "saved_to": stage2_dir,
    }


def with_minimal_pair_negatives(retrieval_set, minimal_pairs):
    """``retrieval_set`` with a ``negative_captions`` column: the wrong options of its video's minimal-pair row
    (its caption with one attribute changed: colour, shape, direction or event)."""
    wrong_options = {row["video"]: [option for index, option in enumerate(row["options"]) if index != row["answer"]]
                     for row in minimal_pairs}  # fmt: skip
    missing = sorted(set(retrieval_set["video"]) - set(wrong_options))
    if missing:
        raise ValueError(f"no minimal-pair row for {len(missing)} training videos, e.g. {missing[0]}")
    return retrieval_set.map(lambda row: {"negative_captions": wrong_options[row["video"]]})


def finetune_umt_qa(corpus_root: str, output_dir: str, seed: int = 0, epochs: float = 1.25,
                    learning_rate: float = 1e-4) -> dict[str, Any]:
    """UMT QA fine-tuning (UMT §4.3, the authors' `UMT_QA`): the answer decoder, started from the stage-2 cross-modal
    decoder, learns to generate the answer; evaluation ranks the corpus answer list. Also evaluates multiple choice
    (VTM + VTC, `score_candidates`) and reloads the saved folder through ``AutoModel`` and the
    ``video-question-answering`` pipeline."""
    from transformers import pipeline, set_seed

    from ..data import load_corpus
    from ..evaluation.qa import chance_mc_accuracy, evaluate_multiple_choice
    from ..models.umt import UmtForVideoQuestionAnswering, UmtForVideoTextRetrieval, UmtProcessor
    from ..training import AnswerTargetCollator, VideoTextCollator, VideoTextTrainer

    set_seed(seed)
    stage2_dir = os.path.join(output_dir, "umt_stage2")
    model = UmtForVideoQuestionAnswering.from_pretraining(stage2_dir)
    processor = UmtProcessor.from_pretrained(stage2_dir)
    answers = json.loads((Path(corpus_root) / "answers.json").read_text())
    model.set_answer_list(answers, processor.tokenizer, max_length=5)
    train_set = load_corpus(corpus_root, "train", "qa")
    test_set = load_corpus(corpus_root, "test", "qa")
    # Fine-tuning sees every token (the authors fine-tune without masking); the QA model has no teacher anyway.
    collator = VideoTextCollator(processor, task="qa", training=True, seed=seed, answer_list=answers,
                                 return_masks=False)  # fmt: skip
    trainer = VideoTextTrainer(
        model=model,
        args=demo_trainer_args(output_dir, "umt_qa", seed, epochs, learning_rate),
        train_dataset=train_set,
        data_collator=AnswerTargetCollator(collator),
    )
    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]

    model.eval()
    qa = evaluate_qa_stage(model, processor, train_set, test_set, answers)
    multi = [row for row, flag in enumerate(test_set["needs_multiple_frames"]) if flag]
    # Multiple choice ranks the options with the pre-trained VTM and VTC heads (the authors' `retrieval_mc.py` uses
    # the retrieval model): QA fine-tuning moves the text encoder away from the VTC projection and the VTM head.
    # `mc` is the MSR-VTT protocol; `mc_minimal_pairs` (each wrong option changes one attribute) is a diagnostic.
    retrieval = UmtForVideoTextRetrieval.from_pretrained(stage2_dir).eval()
    mc = {}
    for name in ("mc", "mc_minimal_pairs"):
        mc_set = load_corpus(corpus_root, "test", name)
        mc[name] = (evaluate_multiple_choice(retrieval, processor, mc_set, batch_size=16), chance_mc_accuracy(mc_set))
    del retrieval

    qa_dir = os.path.join(output_dir, "umt_qa")
    model.save_pretrained(qa_dir)
    processor.save_pretrained(qa_dir)
    auto_class, max_abs_diff = check_auto_reload(model.umt, processor, qa_dir, test_set[0]["video"],
                                                 test_set[0]["question"])  # fmt: skip
    answerer = pipeline("video-question-answering", model=qa_dir)
    example = test_set[multi[0]]
    answer = answerer(video=example["video"], question=example["question"], top_k=3)
    return {
        "train_seconds": round(train_seconds, 1),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        **qa,
        "metrics": {**qa["metrics"], **{f"{name}_accuracy": res.metrics["accuracy"] for name, (res, _) in mc.items()}},
        "chance": {**qa["chance"], **{f"{name}_accuracy": c for name, (_, c) in mc.items()}},
        "reload": {"auto_class": auto_class, "max_abs_diff": max_abs_diff},
        "pipeline_example": {"video": example["video"], "question": example["question"],
                             "expected": example["answer"], "answers": answer},  # fmt: skip
        "saved_to": qa_dir,
    }


__all__ = [
    "DEFAULT_OUTPUT_DIR",
    "DEMO_STUDENT",
    "DEMO_UTA_LAYERS",
    "finetune_umt_qa",
    "run",
    "train_teacher",
    "train_umt_stage1",
    "train_umt_stage2",
]
