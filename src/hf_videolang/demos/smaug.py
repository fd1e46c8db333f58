"""``hf-videolang demo --model smaug``: SMAUG end to end on the built-in corpus, offline, on a CPU.

Stages (SMAUG §3.5 / §4.1 scaled down):

1. write the corpus (:func:`~hf_videolang.data.make_corpus`);
2. pre-train a small SMAUG from scratch (text side: the pretrained MiniLM BERT split 4 + 2), first on 1 random frame
   per video, then on 4 (frame selection 4 -> 2), with VTC + VTM + MLM + MVM on tube-masked (50 %) videos and VTS;
3. fine-tune text->video retrieval (VTC + VTM) and report R@1/5/10 and MdR next to chance: VTC alone (its video
   embedding averages all frames), then with VTM re-ranking reading the 2 frames the selector keeps and all 4;
4. fine-tune video QA (answer decoder over the multimodal encoder): accuracy overall and on the questions that need
   several frames, next to chance and the blind prior; multiple choice through the retrieval model's VTM scores;
5. save, reload with ``AutoModel`` (embeddings reproduced), answer one question with
   ``pipeline("video-question-answering")``, write ``results.json`` and ``smaug_demo.png`` (frames, tube mask, MAE
   reconstruction, the tokens VTS kept at each sparsification layer, the frames the selector picked).

MiniLM was trained with mean pooling, so the demo uses ``text_pooling="mean"`` (the paper reads [CLS]).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .common import (
    check_auto_reload,
    demo_trainer_args,
    evaluate_qa_stage,
    logged_values,
    print_qa_table,
    write_demo_corpus,
    write_results,
)

#: The demo's encoder: 4 blocks of width 192 on 8 px patches, VTS after blocks 2 and 3 (SMAUG-B: 12 blocks of 768,
#: VTS at 4, 7, 10), a 1-block temporal encoder and a 3-block MAE decoder of width 128.
DEMO_VISION = dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=4, intermediate_size=768, patch_size=8,
                   num_frames=4, sparsification_layers=[2, 3], temporal_num_hidden_layers=1, decoder_hidden_size=128,
                   decoder_num_attention_heads=4, decoder_intermediate_size=512)  # fmt: skip
#: (name, frames, epochs, learning rate) of pre-training; SMAUG §3.5 pre-trains on 1 frame, then on 4 from it.
DEMO_PRETRAINING = (("1frame", 1, 4.0, 5e-4), ("4frames", 4, 2.0, 2e-4))
DEMO_RETRIEVAL = (2.0, 1e-4)  # epochs, learning rate
DEMO_QA = (2.0, 2e-4)
LOSS_TERMS = ("loss_vtc", "loss_vtm", "loss_mlm", "loss_mvm")


def _build_pretraining_model(image_size: int, text_source: str, seed: int):
    from transformers import AutoConfig

    from ..models.smaug import SmaugConfig, SmaugForPreTraining

    torch.manual_seed(seed)
    text_config = AutoConfig.from_pretrained(text_source).to_dict()
    config = SmaugConfig(
        vision_config=dict(DEMO_VISION, image_size=image_size),
        text_config=text_config,
        num_text_layers=text_config["num_hidden_layers"] - 2,  # MiniLM-L6: 4 text + 2 multimodal (BERT-base: 9 + 3)
        selector_hidden_size=192,
        selector_intermediate_size=512,
        text_pooling="mean",
    )
    model = SmaugForPreTraining(config)
    model.smaug.load_text_encoder(text_source)
    return model


def _trainer(model, output_dir: str, name: str, seed: int, epochs: float, learning_rate: float, train_set, collator,
             logging_steps: int | float):  # fmt: skip
    from ..training import VideoTextTrainer

    args = demo_trainer_args(output_dir, name, seed, epochs, learning_rate)
    args.logging_steps = logging_steps
    return VideoTextTrainer(model=model, args=args, train_dataset=train_set, data_collator=collator)


def pretrain(corpus_root: str, output_dir: str, seed: int = 0, phases=DEMO_PRETRAINING,
             logging_steps: int | float = 0.05) -> dict[str, Any]:  # fmt: skip
    """Pre-train SMAUG in phases (1 frame, then 4) and save it to ``output_dir/smaug_pretrain``."""
    from transformers import AutoTokenizer, set_seed

    from ..data import load_corpus
    from ..models.smaug import SmaugProcessor
    from ..training import VideoTextCollator
    from ..video.transforms import CLIP_MEAN, CLIP_STD
    from .minilm import minilm_path

    set_seed(seed)
    image_size = int(json.loads((Path(corpus_root) / "corpus.json").read_text())["size"])
    text_source = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(text_source)
    model = _build_pretraining_model(image_size, text_source, seed)
    # Captions say "left"/"right": flips would make them false.
    processor = SmaugProcessor.from_config(model.config, tokenizer, mean=CLIP_MEAN, std=CLIP_STD, flip_prob=0.0,
                                           max_length=24)  # fmt: skip
    train_set = load_corpus(corpus_root, "train", "retrieval")
    results: dict[str, Any] = {"phases": {}}
    for name, frames, epochs, learning_rate in phases:
        start = time.perf_counter()
        collator = VideoTextCollator(processor.with_num_frames(frames), task="pretrain", training=True, seed=seed)
        trainer = _trainer(model, output_dir, f"smaug_pretrain_{name}", seed, epochs, learning_rate, train_set,
                           collator, logging_steps)  # fmt: skip
        trainer.train()
        results["phases"][name] = {
            "frames": frames, "epochs": epochs, "learning_rate": learning_rate,
            "train_seconds": round(time.perf_counter() - start, 1),
            **{f"{term}_first": (logged_values(trainer, term) or [None])[0] for term in LOSS_TERMS},
            **{f"{term}_last": (logged_values(trainer, term) or [None])[-1] for term in LOSS_TERMS},
        }  # fmt: skip
    save_dir = os.path.join(output_dir, "smaug_pretrain")
    model.save_pretrained(save_dir)
    processor.save_pretrained(save_dir)
    results["saved_to"] = save_dir
    return results


def finetune_retrieval(output_dir: str, corpus_root: str, seed: int = 0, epochs: float = DEMO_RETRIEVAL[0],
                       learning_rate: float = DEMO_RETRIEVAL[1], rerank_top_k: int = 8,
                       logging_steps: int | float = 0.05) -> dict[str, Any]:  # fmt: skip
    """Fine-tune retrieval (VTC + VTM, 4 frames, selection 4 -> 2) from the pre-trained model; evaluate with VTM
    re-ranking on 2 selected frames and on all 4; save to ``output_dir/smaug_retrieval``."""
    from transformers import set_seed

    from ..data import load_corpus
    from ..evaluation.metrics import chance_retrieval_metrics
    from ..evaluation.retrieval import evaluate_retrieval
    from ..models.smaug import SmaugForVideoTextRetrieval, SmaugProcessor
    from ..training import VideoTextCollator

    set_seed(seed)
    source = os.path.join(output_dir, "smaug_pretrain")
    model = SmaugForVideoTextRetrieval.from_pretrained(source)
    processor = SmaugProcessor.from_pretrained(source)
    train_set = load_corpus(corpus_root, "train", "retrieval")
    collator = VideoTextCollator(processor, task="retrieval", training=True, seed=seed)
    trainer = _trainer(model, output_dir, "smaug_retrieval", seed, epochs, learning_rate, train_set, collator,
                       logging_steps)  # fmt: skip
    start = time.perf_counter()
    trainer.train()
    train_seconds = round(time.perf_counter() - start, 1)
    model.eval()
    test_set = load_corpus(corpus_root, "test", "retrieval")
    num_videos = len(set(test_set["video"]))
    k = min(rerank_top_k, num_videos)
    # VTC ranks by text-independent video embeddings (all frames); VTM re-ranking reads the selected frames.
    vtc = evaluate_retrieval(model, processor, test_set, batch_size=32).metrics
    selected = evaluate_retrieval(model, processor, test_set, batch_size=32, rerank_top_k=k).metrics
    kappa = model.config.num_selected_frames
    model.config.num_selected_frames = processor.num_frames  # no selection: the multimodal encoder reads all frames
    all_frames = evaluate_retrieval(model, processor, test_set, batch_size=32, rerank_top_k=k).metrics
    model.config.num_selected_frames = kappa
    save_dir = os.path.join(output_dir, "smaug_retrieval")
    model.save_pretrained(save_dir)
    processor.save_pretrained(save_dir)
    return {
        "train_seconds": train_seconds,
        "loss_vtc_first": (logged_values(trainer, "loss_vtc") or [None])[0],
        "loss_vtc_last": (logged_values(trainer, "loss_vtc") or [None])[-1],
        "test_videos": num_videos,
        "rerank_top_k": k,
        "metrics": vtc,
        "metrics_reranked": selected,
        "metrics_reranked_all_frames": all_frames,
        "chance": chance_retrieval_metrics(num_videos),
        "saved_to": save_dir,
    }


def finetune_qa(output_dir: str, corpus_root: str, seed: int = 0, epochs: float = DEMO_QA[0],
                learning_rate: float = DEMO_QA[1], logging_steps: int | float = 0.05) -> dict[str, Any]:  # fmt: skip
    """Fine-tune QA (answer decoder initialized from the multimodal encoder), evaluate QA and multiple choice, save,
    reload with ``AutoModel`` and answer through the pipeline."""
    from transformers import pipeline, set_seed

    from ..data import load_corpus
    from ..evaluation.qa import chance_mc_accuracy, evaluate_multiple_choice
    from ..models.smaug import SmaugForVideoQuestionAnswering, SmaugForVideoTextRetrieval, SmaugProcessor
    from ..training import AnswerTargetCollator, VideoTextCollator

    set_seed(seed)
    source = os.path.join(output_dir, "smaug_pretrain")
    model = SmaugForVideoQuestionAnswering.from_pretraining(source)
    processor = SmaugProcessor.from_pretrained(source)
    answers = json.loads((Path(corpus_root) / "answers.json").read_text())
    model.set_answer_list(answers, processor.tokenizer, max_length=5)
    train_set = load_corpus(corpus_root, "train", "qa")
    test_set = load_corpus(corpus_root, "test", "qa")
    collator = VideoTextCollator(processor, task="qa", training=True, seed=seed, answer_list=answers,
                                 return_masks=False)  # fmt: skip
    trainer = _trainer(model, output_dir, "smaug_qa", seed, epochs, learning_rate, train_set,
                       AnswerTargetCollator(collator), logging_steps)  # fmt: skip
    start = time.perf_counter()
    trainer.train()
    train_seconds = round(time.perf_counter() - start, 1)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    model.eval()
    qa = evaluate_qa_stage(model, processor, train_set, test_set, answers)
    multi = [row for row, flag in enumerate(test_set["needs_multiple_frames"]) if flag]
    # Multiple choice: "the models trained on MSRVTT [retrieval] ... select the best matching choice with the
    # highest retrieval scores" (SMAUG §4.1).
    retrieval = SmaugForVideoTextRetrieval.from_pretrained(os.path.join(output_dir, "smaug_retrieval")).eval()
    mc_set = load_corpus(corpus_root, "test", "mc")
    mc = evaluate_multiple_choice(retrieval, processor, mc_set, batch_size=16)
    del retrieval

    qa_dir = os.path.join(output_dir, "smaug_qa")
    model.save_pretrained(qa_dir)
    processor.save_pretrained(qa_dir)
    auto_class, max_abs_diff = check_auto_reload(model.smaug, processor, qa_dir, test_set[0]["video"],
                                                 test_set[0]["question"])  # fmt: skip
    answerer = pipeline("video-question-answering", model=qa_dir)
    example = test_set[multi[0]] if multi else test_set[0]
    answer = answerer(video=example["video"], question=example["question"], top_k=3)
    return {
        "train_seconds": train_seconds,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        **qa,
        "metrics": {**qa["metrics"], "mc_accuracy": mc.metrics["accuracy"]},
        "chance": {**qa["chance"], "mc_accuracy": chance_mc_accuracy(mc_set)},
        "reload": {"auto_class": auto_class, "max_abs_diff": max_abs_diff},
        "pipeline_example": {"video": example["video"], "question": example["question"],
                             "expected": example["answer"], "answers": answer},  # fmt: skip
        "saved_to": qa_dir,
    }


# ------------------------------------------------------------------------------------------------------------ picture


def _to_image(frame: torch.Tensor, mean, std) -> np.ndarray:
    """`(3, H, W)` normalized -> `(H, W, 3)` uint8."""
    pixels = frame * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    return (pixels.clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def _patch_mask_image(mask: torch.Tensor, grid: int, patch: int) -> np.ndarray:
    """`(N,)` bool (True = hidden) -> `(H, W)` bool, each patch repeated."""
    return mask.view(grid, grid).repeat_interleave(patch, 0).repeat_interleave(patch, 1).numpy()


@torch.no_grad()
def draw_overview(output_dir: str, corpus_root: str, path: str, num_videos: int = 3, seed: int = 0) -> str:
    """For a few test videos, one panel per video: the frames, the tube mask, the MAE reconstruction of the masked
    patches, the patches VTS kept at each sparsification layer (dropped ones darkened) and the frames the selector
    picked for the caption (green border). Written as a PNG; returns its path."""
    from PIL import Image, ImageDraw

    from ..data import load_corpus
    from ..losses import patchify, unpatchify
    from ..models.smaug import SmaugForPreTraining, SmaugProcessor

    source = os.path.join(output_dir, "smaug_pretrain")
    model = SmaugForPreTraining.from_pretrained(source).eval()
    processor = SmaugProcessor.from_pretrained(source)
    vision = model.config.vision_config
    grid, patch = vision.grid_size, vision.patch_size
    test_set = load_corpus(corpus_root, "test", "retrieval")
    rows = [test_set[i] for i in range(min(num_videos, len(test_set)))]
    batch = processor(videos=[r["video"] for r in rows], text=[r["caption"] for r in rows], training=False,
                      return_masks=True, generator=torch.Generator().manual_seed(seed))  # fmt: skip
    pixels, mask = batch["pixel_values"], batch["bool_masked_pos"]
    vision_out = model.smaug.vision_model(pixels, bool_masked_pos=mask, return_decoder_inputs=True)
    pred = model.mae_decoder(vision_out.decoder_inputs, mask)
    # The decoder predicts per-patch normalized pixels (norm_pix_loss): undo it with each patch's own statistics.
    raw = patchify(pixels, patch).float()
    mean, var = raw.mean(-1, keepdim=True), raw.var(-1, keepdim=True)
    recon_patches = torch.where(mask[..., None], pred * (var + 1e-6).sqrt() + mean, raw)
    recon = unpatchify(recon_patches, patch, 1, pixels.shape[1], pixels.shape[-2], pixels.shape[-1])
    text_states = model.smaug.encode_text(batch["input_ids"], batch["attention_mask"])
    _, selected = model.smaug.fuse(vision_out.last_hidden_state, text_states, batch["attention_mask"])

    frames, size = pixels.shape[1], pixels.shape[-1]
    kept_layers = vision_out.kept_patch_positions
    num_rows = 3 + len(kept_layers)
    cell, pad, header = size * 2, 4, 14
    panel_h = num_rows * (cell + pad) + header
    canvas = Image.new("RGB", (frames * (cell + pad) + 110, len(rows) * panel_h), "white")
    draw = ImageDraw.Draw(canvas)
    labels = ["frames", "tube mask", "MAE recon."] + [f"VTS L{layer}" for layer in vision.sparsification_layers]
    for v, row in enumerate(rows):
        top = v * panel_h
        draw.text((2, top), row["caption"][:90], fill="black")
        visible = ~mask[v].view(frames, -1)
        for r, label in enumerate(labels):
            draw.text((2, top + header + r * (cell + pad) + cell // 2), label, fill="black")
        for t in range(frames):
            x = 110 + t * (cell + pad)
            image = _to_image(pixels[v, t], processor.mean, processor.std)
            hidden = _patch_mask_image(~visible[t], grid, patch)
            masked = image.copy()
            masked[hidden] = 128
            recon_image = _to_image(recon[v, t], processor.mean, processor.std)
            panels = [image, masked, recon_image]
            for positions in kept_layers:
                kept = torch.zeros(grid * grid, dtype=torch.bool)
                ids = positions[v, t]
                kept[ids[ids >= 0]] = True
                shown = masked.copy()
                shown[_patch_mask_image(~kept, grid, patch) & ~hidden] //= 4
                panels.append(shown)
            for r, panel in enumerate(panels):
                y = top + header + r * (cell + pad)
                canvas.paste(Image.fromarray(panel).resize((cell, cell), Image.NEAREST), (x, y))
            if t in selected[v].tolist():
                draw.rectangle([x - 2, top + header - 2, x + cell + 1, top + header + cell + 1], outline=(0, 200, 0),
                               width=3)  # fmt: skip
    canvas.save(path)
    return path


# ------------------------------------------------------------------------------------------------------------ run


def _print_results(results: dict[str, Any]) -> None:
    retrieval, qa = results["retrieval"], results["qa"]
    print(f"\nSMAUG text->video retrieval, test split ({retrieval['test_videos']} videos; VTM re-ranks the top "
          f"{retrieval['rerank_top_k']} on the 2 selected frames or on all 4)")  # fmt: skip
    print(f"  {'metric':<10}{'VTC':>8}{'VTM 4->2':>10}{'VTM all 4':>11}{'chance':>9}")
    for name, key in (("R@1", "t2v_R@1"), ("R@5", "t2v_R@5"), ("R@10", "t2v_R@10"), ("MdR", "t2v_MdR")):
        print(f"  {name:<10}{retrieval['metrics'][key]:>8.2f}{retrieval['metrics_reranked'][key]:>10.2f}"
              f"{retrieval['metrics_reranked_all_frames'][key]:>11.2f}{retrieval['chance'][key]:>9.2f}")  # fmt: skip
    print_qa_table("SMAUG video QA, test split", qa, extra_rows=(("MC", "mc_accuracy"),))
    example = qa["pipeline_example"]
    print(f"\npipeline('video-question-answering'): {example['question']!r} -> {example['answers'][0]['answer']!r} "
          f"(expected {example['expected']!r})")  # fmt: skip


DEFAULT_OUTPUT_DIR = "runs/demo_smaug"


def run(output_dir: str = DEFAULT_OUTPUT_DIR, seed: int = 0, num_videos: int | None = None,
        pretraining=DEMO_PRETRAINING, retrieval: tuple[float, float] = DEMO_RETRIEVAL,
        qa: tuple[float, float] = DEMO_QA, logging_steps: int | float = 0.05) -> dict:  # fmt: skip
    """Every stage of the SMAUG demo; prints the tables, writes ``results.json`` and ``smaug_demo.png``."""
    os.makedirs(output_dir, exist_ok=True)
    results: dict[str, Any] = {"seed": seed}
    start = time.perf_counter()
    print("[1/5] writing the built-in corpus")
    corpus_root = write_demo_corpus(output_dir, results, num_videos, seed)
    print("[2/5] SMAUG pre-training: VTC + VTM + MLM + MVM, tube masking 50 %, VTS, 1 frame then 4 (4 -> 2)")
    results["pretraining"] = pretrain(corpus_root, output_dir, seed, pretraining, logging_steps)
    print("[3/5] retrieval fine-tuning (VTC + VTM)")
    results["retrieval"] = finetune_retrieval(output_dir, corpus_root, seed, *retrieval, logging_steps=logging_steps)
    print("[4/5] QA fine-tuning (answer decoder), multiple choice, save, AutoModel reload, pipeline")
    results["qa"] = finetune_qa(output_dir, corpus_root, seed, *qa, logging_steps=logging_steps)
    print("[5/5] drawing frames, mask, reconstruction, VTS tokens and selected frames")
    results["picture"] = draw_overview(output_dir, corpus_root, os.path.join(output_dir, "smaug_demo.png"), seed=seed)
    _print_results(results)
    return write_results(output_dir, results, start)


__all__ = [
    "DEFAULT_OUTPUT_DIR",
    "DEMO_PRETRAINING",
    "DEMO_VISION",
    "draw_overview",
    "finetune_qa",
    "finetune_retrieval",
    "pretrain",
    "run",
]
