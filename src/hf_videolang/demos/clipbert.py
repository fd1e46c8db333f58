"""``hf-videolang demo --model clipbert``: ClipBERT end to end on the built-in corpus, offline, on a CPU.

Stages (ClipBERT §3-4 scaled down):

1. write the corpus (:func:`~hf_videolang.data.make_corpus`);
2. image-text pre-training (MLM + ITM, §3 "Weight Initialization and Pre-training") of a small ClipBERT: a tiny
   ResNet trained from scratch and the pretrained MiniLM BERT as the fusion transformer; the "images" are single
   random frames of the training videos (1-frame clips);
3. sparse-training fine-tuning (``N_train x T = 2 x 2``: two random 1-second clips of two frames each, LogSumExp
   over the clip scores in training, §3 Eq. 4) of open-ended QA (an MLP over the answer list), then of text->video
   retrieval (matched / not matched, one negative caption per video) from the QA model, whose CNN has learned the
   colours and shapes (a stand-in for the paper's ImageNet / grid-feat CNN);
4. evaluation with ``N_test = 1`` and ``N_test = 4`` uniformly spaced clips under LogSumExp (the paper's Fig. 4
   effect): text->video R@1/5/10 and MdR (every test video against every test video's first caption), QA accuracy
   (overall and on the questions that need several frames) and multiple choice (the retrieval model ranks the 5
   captions), each next to chance and, for QA, the blind per-type prior;
5. save, reload with ``AutoModel`` (the fusion transformer's states reproduced), answer one question with
   ``pipeline("video-question-answering")`` over 4 clips, write ``results.json``.

Frames are 64 px (L = 64: a 1 x 1 grid of visual tokens after the ResNet and the max-pool; the paper uses L = 448,
7 x 7); see the model card's Deviations.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from .common import demo_trainer_args, evaluate_qa_stage, logged_values, qa_table_rows, write_demo_corpus, write_results

#: The demo's CNN: ResNet bottleneck stages of widths 32-256, one block each, trained from scratch (ResNet-50:
#: 256-2048, 3/4/6/3 blocks, from grid-feat).
DEMO_VISION = dict(embedding_size=16, hidden_sizes=[32, 64, 128, 256], depths=[1, 1, 1, 1], layer_type="bottleneck")
DEMO_IMAGE_SIZE = 64  # L (the corpus side); ClipBERT: 448
DEMO_CLIPS = dict(frames_per_clip=2, num_train_clips=2, num_test_clips=4, clip_duration=1.0)  # 2x2 training
DEMO_TEST_CLIPS = (1, 4)  # N_test compared at evaluation
#: (epochs, learning rate) per stage; the new or from-scratch parts (CNN, visual embeddings, heads) learn 10x faster.
DEMO_EPOCHS = dict(pretrain=(1.0, 1e-4), qa=(3.0, 2e-4), retrieval=(3.0, 1e-4))
DEMO_BATCH_SIZE = 16  # videos per step (ClipBERT: 16-32 per GPU); small batches give more updates per second here
NEW_PARTS = {r"vision_model|visual_embeddings|classifier|cls\.seq_relationship": 10.0}


def _trainer(model, output_dir: str, name: str, seed: int, epochs: float, learning_rate: float, train_set, collator,
             logging_steps: int | float):  # fmt: skip
    from ..training import VideoTextTrainer

    args = demo_trainer_args(output_dir, name, seed, epochs, learning_rate, learning_rate_multipliers=NEW_PARTS)
    args.logging_steps, args.per_device_train_batch_size = logging_steps, DEMO_BATCH_SIZE
    return VideoTextTrainer(model=model, args=args, train_dataset=train_set, data_collator=collator)


def build_config(text_source: str, **overrides: Any):
    """The demo's `ClipBertConfig`: :data:`DEMO_VISION`, MiniLM's BERT config, 64 px frames, 2x2 clips, LogSumExp."""
    from transformers import AutoConfig

    from ..models.clipbert import ClipBertConfig

    text_config = AutoConfig.from_pretrained(text_source).to_dict()
    settings = dict(vision_config=dict(DEMO_VISION), text_config=text_config, image_size=DEMO_IMAGE_SIZE,
                    clip_aggregation="logsumexp", max_text_length=20, **DEMO_CLIPS)  # fmt: skip
    settings.update(overrides)
    return ClipBertConfig(**settings)


def load_minilm(model, text_source: str) -> list[str]:
    """Copy MiniLM's embeddings, 6 layers and pooler into ``model.clipbert``; returns the keys left to train (the CNN
    and the visual embeddings). Raises if a BERT weight is missing."""
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(text_source)
    result = model.clipbert.load_state_dict(bert.state_dict(), strict=False)
    del bert
    missing_text = [key for key in result.missing_keys if not key.startswith(("vision_model.", "visual_embeddings."))]
    if missing_text or result.unexpected_keys:
        raise RuntimeError(f"MiniLM does not fit the ClipBERT fusion transformer: missing {missing_text}, "
                           f"unexpected {result.unexpected_keys}")  # fmt: skip
    return result.missing_keys


def pretrain(corpus_root: str, output_dir: str, seed: int = 0, epochs: float = DEMO_EPOCHS["pretrain"][0],
             learning_rate: float = DEMO_EPOCHS["pretrain"][1],
             logging_steps: int | float = 0.05) -> dict[str, Any]:  # fmt: skip
    """Stage 2: MLM + ITM on (single frame, caption) pairs; saves model and processor to
    ``output_dir/clipbert_pretrain``."""
    from transformers import AutoTokenizer, set_seed

    from ..data import load_corpus
    from ..models.clipbert import ClipBertForPreTraining, ClipBertProcessor
    from ..training import VideoTextCollator
    from .minilm import minilm_path

    set_seed(seed)
    text_source = minilm_path()
    config = build_config(text_source)
    torch.manual_seed(seed)
    model = ClipBertForPreTraining(config)
    load_minilm(model, text_source)
    processor = ClipBertProcessor.from_config(config, AutoTokenizer.from_pretrained(text_source))
    image_processor = ClipBertProcessor.from_config(config, processor.tokenizer, num_clips=1, frames_per_clip=1,
                                                    num_frames=1)  # fmt: skip
    collator = VideoTextCollator(image_processor, task="pretrain", training=True, seed=seed)
    trainer = _trainer(model, output_dir, "clipbert_pretrain", seed, epochs, learning_rate,
                       load_corpus(corpus_root, "train", "retrieval"), collator, logging_steps)  # fmt: skip
    start = time.perf_counter()
    trainer.train()
    folder = os.path.join(output_dir, "clipbert_pretrain")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)  # the 2x2 video processor, for the fine-tuning stages
    summary: dict[str, Any] = {"train_seconds": round(time.perf_counter() - start, 1), "epochs": epochs,
                               "learning_rate": learning_rate, "saved_to": folder}  # fmt: skip
    for term in ("loss_mlm", "loss_itm"):
        values = logged_values(trainer, term)
        summary[f"{term}_first"], summary[f"{term}_last"] = (values[0], values[-1]) if values else (None, None)
    return summary


def _test_processors(folder: str) -> dict[int, Any]:
    """The saved processor with ``num_test_clips`` set to each N of :data:`DEMO_TEST_CLIPS`."""
    from ..models.clipbert import ClipBertProcessor

    return {num_clips: ClipBertProcessor.from_pretrained(folder, num_test_clips=num_clips)
            for num_clips in DEMO_TEST_CLIPS}  # fmt: skip


def first_caption_per_video(dataset):
    """The rows of ``dataset`` holding the first caption of each video (a gallery of one caption per video)."""
    seen: set[str] = set()
    keep = [i for i, video in enumerate(dataset["video"]) if not (video in seen or seen.add(video))]
    return dataset.select(keep)


def finetune_retrieval(corpus_root: str, output_dir: str, seed: int = 0, epochs: float = DEMO_EPOCHS["retrieval"][0],
                       learning_rate: float = DEMO_EPOCHS["retrieval"][1],
                       logging_steps: int | float = 0.05) -> dict[str, Any]:  # fmt: skip
    """Stage 3-4 for retrieval, from the QA model (:func:`finetune_qa` first: its CNN has learned colours and shapes
    from the questions): 2x2 sparse training with one negative caption per video, then every test pair scored with
    N_test = 1 and 4 clips; multiple choice with the same model. Saves to ``output_dir/clipbert_retrieval``."""
    from transformers import set_seed

    from ..data import load_corpus
    from ..evaluation.metrics import chance_retrieval_metrics
    from ..evaluation.qa import chance_mc_accuracy, evaluate_multiple_choice
    from ..evaluation.retrieval import evaluate_matching_retrieval
    from ..models.clipbert import ClipBertForVideoTextRetrieval, ClipBertProcessor
    from ..training import MatchingPairsCollator, VideoTextCollator

    set_seed(seed)
    source = os.path.join(output_dir, "clipbert_qa")
    # The answer MLP's output layer does not fit the 2-way head: only that layer starts anew.
    model = ClipBertForVideoTextRetrieval.from_pretrained(source, answer_list=None, ignore_mismatched_sizes=True)
    processor = ClipBertProcessor.from_pretrained(source)
    collator = MatchingPairsCollator(VideoTextCollator(processor, task="retrieval", training=True, seed=seed))
    trainer = _trainer(model, output_dir, "clipbert_retrieval", seed, epochs, learning_rate,
                       load_corpus(corpus_root, "train", "retrieval"), collator, logging_steps)  # fmt: skip
    start = time.perf_counter()
    trainer.train()
    train_seconds = round(time.perf_counter() - start, 1)
    model.eval()
    gallery = first_caption_per_video(load_corpus(corpus_root, "test", "retrieval"))
    mc_set = load_corpus(corpus_root, "test", "mc")
    metrics, eval_seconds = {}, {}
    for num_clips, test_processor in _test_processors(source).items():
        begin = time.perf_counter()
        retrieval = evaluate_matching_retrieval(model, test_processor, gallery, video_batch_size=4).metrics
        mc = evaluate_multiple_choice(model, test_processor, mc_set, batch_size=8).metrics["accuracy"]
        metrics[f"n_test_{num_clips}"] = {**retrieval, "mc_accuracy": mc}
        eval_seconds[f"n_test_{num_clips}"] = round(time.perf_counter() - begin, 1)
    folder = os.path.join(output_dir, "clipbert_retrieval")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "test_videos": len(gallery),
        "gallery": "every test video against the first caption of every test video",
        "metrics": metrics,
        "chance": {**chance_retrieval_metrics(len(gallery)), "mc_accuracy": chance_mc_accuracy(mc_set)},
        "saved_to": folder,
    }


def finetune_qa(corpus_root: str, output_dir: str, seed: int = 0, epochs: float = DEMO_EPOCHS["qa"][0],
                learning_rate: float = DEMO_EPOCHS["qa"][1],
                logging_steps: int | float = 0.05) -> dict[str, Any]:  # fmt: skip
    """Stage 3-5 for QA: 2x2 sparse training of the answer MLP, accuracy with N_test = 1 and 4 next to chance and the
    blind per-type prior; save, ``AutoModel`` reload, one answer through the pipeline."""
    from transformers import AutoModel, pipeline, set_seed

    from ..data import load_corpus
    from ..models.clipbert import ClipBertForVideoQuestionAnswering, ClipBertProcessor
    from ..training import VideoTextCollator

    set_seed(seed)
    source = os.path.join(output_dir, "clipbert_pretrain")
    answers = json.loads((Path(corpus_root) / "answers.json").read_text())
    model = ClipBertForVideoQuestionAnswering.from_pretrained(source, answer_list=answers)
    processor = ClipBertProcessor.from_pretrained(source)
    train_set, test_set = load_corpus(corpus_root, "train", "qa"), load_corpus(corpus_root, "test", "qa")
    collator = VideoTextCollator(processor, task="qa", training=True, seed=seed, answer_list=answers)
    trainer = _trainer(model, output_dir, "clipbert_qa", seed, epochs, learning_rate, train_set, collator,
                       logging_steps)  # fmt: skip
    start = time.perf_counter()
    trainer.train()
    train_seconds = round(time.perf_counter() - start, 1)
    model.eval()
    metrics, eval_seconds = {}, {}
    for num_clips, test_processor in _test_processors(source).items():
        begin = time.perf_counter()
        qa = evaluate_qa_stage(model, test_processor, train_set, test_set, answers)
        metrics[f"n_test_{num_clips}"] = qa.pop("metrics")
        eval_seconds[f"n_test_{num_clips}"] = round(time.perf_counter() - begin, 1)
    multi = [row for row, flag in enumerate(test_set["needs_multiple_frames"]) if flag]

    folder = os.path.join(output_dir, "clipbert_qa")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    reloaded = AutoModel.from_pretrained(folder).eval()
    example = test_set[multi[0]] if multi else test_set[0]
    probe = processor(videos=[example["video"]], text=[example["question"]], training=False)
    clip = probe["pixel_values"][:, : model.config.frames_per_clip]  # the first test clip
    with torch.no_grad():
        states = [encoder(pixel_values=clip, input_ids=probe["input_ids"],
                          attention_mask=probe["attention_mask"]).last_hidden_state
                  for encoder in (model.clipbert, reloaded)]  # fmt: skip
    max_abs_diff = float((states[0] - states[1]).abs().max())
    if max_abs_diff > 1e-6:
        raise RuntimeError(f"AutoModel.from_pretrained({folder!r}) does not reproduce the model (max |diff| "
                           f"{max_abs_diff})")  # fmt: skip
    answerer = pipeline("video-question-answering", model=folder)
    answer = answerer(video=example["video"], question=example["question"], top_k=3, num_clips=max(DEMO_TEST_CLIPS),
                      num_frames=model.config.frames_per_clip,
                      clip_aggregation=model.config.clip_aggregation)  # fmt: skip
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        **qa,
        "metrics": metrics,
        "reload": {"auto_class": type(reloaded).__name__, "max_abs_diff": max_abs_diff},
        "pipeline_example": {"video": example["video"], "question": example["question"],
                             "expected": example["answer"], "answers": answer},  # fmt: skip
        "saved_to": folder,
    }


def check_requirements(results: dict[str, Any]) -> dict[str, bool]:
    """The demo's must-show checks (ClipBERT issue): R@1 >= 5x chance, QA above the blind prior overall and on the
    multi-frame questions, N_test = 4 no worse than N_test = 1 (QA accuracy and R@1)."""
    retrieval, qa = results["retrieval"], results["qa"]
    r4, r1 = retrieval["metrics"]["n_test_4"], retrieval["metrics"]["n_test_1"]
    q4, q1 = qa["metrics"]["n_test_4"], qa["metrics"]["n_test_1"]
    return {
        "retrieval_R@1_at_least_5x_chance": r4["t2v_R@1"] >= 5 * retrieval["chance"]["t2v_R@1"],
        "qa_above_prior": q4["accuracy"] > qa["prior"]["accuracy"],
        "qa_multi_frame_above_prior": q4["accuracy_multi_frame"] > qa["prior"]["accuracy_multi_frame"],
        "n_test_4_no_worse_than_1_qa": q4["accuracy"] >= q1["accuracy"],
        "n_test_4_no_worse_than_1_retrieval_R@1": r4["t2v_R@1"] >= r1["t2v_R@1"],
    }


def _print_results(results: dict[str, Any]) -> None:
    retrieval, qa = results["retrieval"], results["qa"]
    print(f"\nClipBERT text->video retrieval, test split ({retrieval['test_videos']} videos x their first captions)")
    print(f"  {'metric':<14}{'N_test=1':>10}{'N_test=4':>10}{'chance':>10}")
    for name, key in (("R@1", "t2v_R@1"), ("R@5", "t2v_R@5"), ("R@10", "t2v_R@10"), ("MdR", "t2v_MdR"),
                      ("MC accuracy", "mc_accuracy")):  # fmt: skip
        values = [retrieval["metrics"][f"n_test_{n}"][key] for n in DEMO_TEST_CLIPS]
        print(f"  {name:<14}{values[0]:>10.2f}{values[1]:>10.2f}{retrieval['chance'][key]:>10.2f}")
    print(f"\nClipBERT video QA, test split ({qa['test_questions']} questions, {qa['test_questions_multi_frame']} "
          "need several frames)")  # fmt: skip
    print(f"  {'metric':<16}{'N_test=1':>10}{'N_test=4':>10}{'chance':>10}{'prior':>10}")
    for name, key in qa_table_rows(qa):
        values = [qa["metrics"][f"n_test_{n}"][key] for n in DEMO_TEST_CLIPS]
        print(f"  {name:<16}{values[0]:>10.2f}{values[1]:>10.2f}{qa['chance'][key]:>10.2f}{qa['prior'][key]:>10.2f}")
    pretraining = results["pretraining"]
    print("\nClipBERT pre-training losses (first -> last logged): " + ", ".join(
        f"{term} {pretraining[f'{term}_first']:.3f} -> {pretraining[f'{term}_last']:.3f}"
        for term in ("loss_mlm", "loss_itm") if pretraining[f"{term}_first"] is not None))  # fmt: skip
    example = qa["pipeline_example"]
    print(f"\npipeline('video-question-answering', 4 clips, LogSumExp): {example['question']!r} -> "
          f"{example['answers'][0]['answer']!r} (expected {example['expected']!r})")  # fmt: skip
    print("\nchecks: " + ", ".join(f"{name}={'ok' if passed else 'FAILED'}" for name, passed in
                                   results["checks"].items()))  # fmt: skip


DEFAULT_OUTPUT_DIR = "runs/demo_clipbert"


def run(output_dir: str = DEFAULT_OUTPUT_DIR, seed: int = 0, num_videos: int | None = None,
        epochs: dict[str, tuple[float, float]] | None = None, logging_steps: int | float = 0.05) -> dict:  # fmt: skip
    """Every stage of the ClipBERT demo; prints the tables and writes ``results.json``.

    ``epochs`` overrides entries of :data:`DEMO_EPOCHS` (``pretrain``, ``retrieval``, ``qa``: (epochs, learning rate)).
    """
    stages = {**DEMO_EPOCHS, **(epochs or {})}
    os.makedirs(output_dir, exist_ok=True)
    results: dict[str, Any] = {"seed": seed, "torch_threads": torch.get_num_threads(),
                               "load_average_start": list(os.getloadavg())}  # fmt: skip
    start = time.perf_counter()
    print("[1/5] writing the built-in corpus")
    corpus_root = write_demo_corpus(output_dir, results, num_videos, seed)
    print("[2/5] ClipBERT image-text pre-training (MLM + ITM) on single frames: tiny ResNet from scratch + MiniLM")
    results["pretraining"] = pretrain(corpus_root, output_dir, seed, *stages["pretrain"], logging_steps=logging_steps)
    print("[3/5] QA fine-tuning, sparse 2x2 clips, LogSumExp; evaluation with N_test = 1 and 4; save, AutoModel "
          "reload, pipeline('video-question-answering')")  # fmt: skip
    results["qa"] = finetune_qa(corpus_root, output_dir, seed, *stages["qa"], logging_steps=logging_steps)
    print("[4/5] retrieval fine-tuning from the QA model, sparse 2x2 clips, LogSumExp; "
          "evaluation with N_test = 1 and 4")
    results["retrieval"] = finetune_retrieval(corpus_root, output_dir, seed, *stages["retrieval"],
                                              logging_steps=logging_steps)  # fmt: skip
    print("[5/5] results")
    results["checks"] = check_requirements(results)
    results["load_average_end"] = list(os.getloadavg())
    _print_results(results)
    return write_results(output_dir, results, start)


__all__ = ["DEFAULT_OUTPUT_DIR", "DEMO_EPOCHS", "DEMO_VISION", "build_config", "check_requirements",
           "finetune_qa", "finetune_retrieval", "first_caption_per_video", "load_minilm", "pretrain",
           "run"]  # fmt: skip
