"""``hf-videolang demo --model evilm``: E-ViLM end to end on the built-in corpus, offline, on a CPU.

Stages (E-ViLM §3.3-3.4, §4.1, scaled down):

1. write the corpus; cut MiniLM's WordPiece vocabulary to the words of the training captions
   (:func:`~hf_videolang.models.evilm.truncate_vocabulary`; the paper keeps the top 30 % of COCO's words, the corpus
   has few enough that all of them are kept) and slice MiniLM's embeddings to it;
2. train the semantic VQ tokenizer (a small CLIP-shaped ViT from scratch, a 512-code codebook instead of 9,420)
   on the captions' words (Eq. 6-7), and report its codebook utilization on the test split;
3. pre-train a small E-ViLM (EdgeNeXt of the xx-small widths per frame, the truncated MiniLM, a 2-block decoder)
   with MLM + VTM + MVM (Eq. 8), MVM reading the frozen tokenizer's codes of the block-masked regions; and the
   same run without MVM (same seed and budget), the ablation of the paper's Table 5;
4. fine-tune QA from both, and retrieval from the MVM run; report text->video R@1/5/10 and MdR, QA accuracy
   (overall and on the questions that need several frames) and multiple choice, each next to chance or the blind
   per-type prior; save, reload with ``AutoModel`` and answer a question with the pipeline; write
   ``results.json``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch

from ..video.transforms import CLIP_MEAN, CLIP_STD
from .common import (
    check_auto_reload,
    demo_trainer_args,
    evaluate_qa_stage,
    logged_values,
    print_qa_table,
    print_retrieval,
    write_demo_corpus,
    write_results,
)

#: The demo's video encoder: EdgeNeXt with the xx-small widths and 2 blocks a stage (EdgeNeXt-S: 48-304, 3/3/9/3).
DEMO_VISION = dict(depths=[2, 2, 2, 2], hidden_sizes=[24, 48, 88, 168], num_attention_heads=[4] * 4)
DEMO_IMAGE_SIZE = 96  # 3x3 regions of 32 px per frame (E-ViLM: 256 px, 8x8)
DEMO_DECODER = dict(hidden_size=192, num_hidden_layers=2, num_attention_heads=4, intermediate_size=768)
DEMO_CODEBOOK = 512  # the paper's 9,420 codes would mostly stay unused on a 300-video corpus
DEMO_TOKENIZER_VISION = dict(image_size=48, patch_size=16, hidden_size=96, intermediate_size=384, num_hidden_layers=2,
                             num_attention_heads=4)  # fmt: skip
DEMO_EPOCHS = dict(tokenizer=3.0, pretrain=3.0, qa=2.0, retrieval=3.0)
DEMO_LEARNING_RATES = dict(tokenizer=2e-3, pretrain=5e-4, qa=3e-4, retrieval=5e-4)
# MiniLM was pre-trained on text: at the retrieval rate its states collapse together in a few steps.
RETRIEVAL_LEARNING_RATE_MULTIPLIERS = {r"^evilm\.text_model\.": 0.2}
# No random resized crop in training: a box as small as 8 % of the frame mostly cuts out the small shapes a caption
# is about, so captions stop matching their videos (VTM then stays at chance and QA ignores the video).
DEMO_PROCESSOR = dict(mean=CLIP_MEAN, std=CLIP_STD, flip_prob=0.0, train_augment=False)


def _trainer(model, output_dir, name, seed, epochs, learning_rate, train_set, collator, learning_rate_multipliers=None):
    from ..training import VideoTextTrainer

    args = demo_trainer_args(output_dir, name, seed, epochs, learning_rate, learning_rate_multipliers)
    args.logging_steps, args.logging_first_step = 5, True
    return VideoTextTrainer(model=model, args=args, train_dataset=train_set, data_collator=collator)


def train_tokenizer(corpus_root, output_dir, text_tokenizer, seed=0, epochs=DEMO_EPOCHS["tokenizer"]):
    """Stage 2: the semantic VQ tokenizer; returns it with its losses and the test split's codebook utilization."""
    from transformers import set_seed

    from ..data import load_corpus
    from ..models.evilm import EvilmProcessor
    from ..models.evilm_tokenizer import EvilmTokenizerConfig, EvilmVideoTokenizer, codebook_utilization
    from ..training import CaptionWordsCollator, VideoTextCollator

    set_seed(seed)
    config = EvilmTokenizerConfig(vision_config=DEMO_TOKENIZER_VISION, codebook_size=DEMO_CODEBOOK,
                                  decoder_num_layers=2, decoder_hidden_size=96, decoder_num_heads=4,
                                  dead_code_threshold=0.05,
                                  vocab_size=len(text_tokenizer), max_frames=4)  # fmt: skip
    torch.manual_seed(seed)
    tokenizer = EvilmVideoTokenizer(config)
    processor = EvilmProcessor(text_tokenizer, image_size=DEMO_TOKENIZER_VISION["image_size"], patch_size=16,
                               mask_ratio=0.0, max_length=24, **DEMO_PROCESSOR)  # fmt: skip
    collator = CaptionWordsCollator(VideoTextCollator(processor, task="retrieval", training=True, seed=seed))
    start = time.perf_counter()
    trainer = _trainer(tokenizer, output_dir, "evilm_tokenizer", seed, epochs, 2e-3,
                       load_corpus(corpus_root, "train", "retrieval"), collator)  # fmt: skip
    trainer.train()
    tokenizer.eval()
    test = load_corpus(corpus_root, "test", "retrieval")
    eval_collator = VideoTextCollator(processor, task="retrieval", training=False)
    codes = []
    with torch.no_grad():
        for begin in range(0, len(test), 32):
            rows = [test[i] for i in range(begin, min(begin + 32, len(test)))]
            codes.append(tokenizer.get_codebook_indices(eval_collator(rows)["pixel_values"]))
    tokenizer.save_pretrained(os.path.join(output_dir, "evilm_tokenizer"))
    token_losses = logged_values(trainer, "loss_token")
    return tokenizer, {
        "train_seconds": round(time.perf_counter() - start, 1),
        "codebook_size": DEMO_CODEBOOK,
        "loss_token_first": token_losses[0] if token_losses else None,
        "loss_token_last": token_losses[-1] if token_losses else None,
        "codebook_utilization_test": float(codebook_utilization(torch.cat(codes), DEMO_CODEBOOK)),
    }


def _text_config(text_source: str, vocab_size: int) -> dict[str, Any]:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(text_source).to_dict()
    config["vocab_size"] = vocab_size
    return config


def pretrain(corpus_root, output_dir, text_source, vocabulary, video_tokenizer, name, mvm, seed=0,
             epochs=DEMO_EPOCHS["pretrain"]):  # fmt: skip
    """Stage 3: E-ViLM pre-training (MLM + VTM + MVM, or without MVM); saves to ``output_dir/name``."""
    from transformers import AutoModel, set_seed

    from ..data import load_corpus
    from ..models.evilm import EvilmConfig, EvilmForPreTraining, EvilmProcessor
    from ..training import VideoTextCollator

    set_seed(seed)
    config = EvilmConfig(vision_config=DEMO_VISION, text_config=_text_config(text_source, len(vocabulary.tokenizer)),
                         image_size=DEMO_IMAGE_SIZE, codebook_size=DEMO_CODEBOOK, mvm_weight=1.0 if mvm else 0.0,
                         max_text_length=24, **DEMO_DECODER)  # fmt: skip
    torch.manual_seed(seed)
    model = EvilmForPreTraining(config)
    minilm = AutoModel.from_pretrained(text_source)
    minilm.set_input_embeddings(vocabulary.truncate_embeddings(minilm.get_input_embeddings()))
    model.evilm.text_model.load_state_dict(minilm.state_dict(), strict=False)
    del minilm
    model.set_video_tokenizer(video_tokenizer)
    processor = EvilmProcessor.from_config(config, vocabulary.tokenizer, **DEMO_PROCESSOR)
    collator = VideoTextCollator(processor, task="pretrain", training=True, seed=seed)
    start = time.perf_counter()
    trainer = _trainer(model, output_dir, name, seed, epochs, 5e-4, load_corpus(corpus_root, "train", "retrieval"),
                       collator)  # fmt: skip
    trainer.train()
    folder = os.path.join(output_dir, name)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    summary = {"train_seconds": round(time.perf_counter() - start, 1)}
    for term in ("loss_mlm", "loss_vtm", "loss_mvm"):
        values = logged_values(trainer, term)
        if values:
            summary[f"{term}_first"], summary[f"{term}_last"] = values[0], values[-1]
    return folder, summary


def finetune_qa(corpus_root, output_dir, pretrained, name, seed=0, epochs=DEMO_EPOCHS["qa"]):
    """QA fine-tuning from a pre-trained folder; returns the model, its processor and the test metrics."""
    from transformers import set_seed

    from ..data import load_corpus
    from ..models.evilm import EvilmForVideoQuestionAnswering, EvilmProcessor
    from ..training import VideoTextCollator

    set_seed(seed)
    answers = json.loads((Path(corpus_root) / "answers.json").read_text())
    model = EvilmForVideoQuestionAnswering.from_pretrained(pretrained, answer_list=answers)
    processor = EvilmProcessor.from_pretrained(pretrained)
    train_set, test_set = load_corpus(corpus_root, "train", "qa"), load_corpus(corpus_root, "test", "qa")
    collator = VideoTextCollator(processor, task="qa", training=True, seed=seed, answer_list=answers,
                                 return_masks=False)  # fmt: skip
    start = time.perf_counter()
    _trainer(model, output_dir, name, seed, epochs, 3e-4, train_set, collator).train()
    model.eval()
    qa = evaluate_qa_stage(model, processor, train_set, test_set, answers)
    return model, processor, {
        "train_seconds": round(time.perf_counter() - start, 1),
        **qa,
    }


def finetune_retrieval(corpus_root, output_dir, pretrained, seed=0, epochs=DEMO_EPOCHS["retrieval"],
                       learning_rate=DEMO_LEARNING_RATES["retrieval"]):  # fmt: skip
    """Retrieval fine-tuning (VTC on the unimodal embeddings, §4.2); text->video metrics and multiple choice (by the
    same dot products) on the test split."""
    from transformers import set_seed

    from ..data import load_corpus
    from ..evaluation.metrics import chance_retrieval_metrics
    from ..evaluation.qa import chance_mc_accuracy, evaluate_multiple_choice
    from ..evaluation.retrieval import evaluate_retrieval
    from ..models.evilm import EvilmForVideoTextRetrieval, EvilmProcessor
    from ..training import VideoTextCollator

    set_seed(seed)
    model = EvilmForVideoTextRetrieval.from_pretrained(pretrained)
    processor = EvilmProcessor.from_pretrained(pretrained)
    collator = VideoTextCollator(processor, task="retrieval", training=True, seed=seed)
    start = time.perf_counter()
    train_set = load_corpus(corpus_root, "train", "retrieval")
    _trainer(model, output_dir, "evilm_retrieval", seed, epochs, learning_rate, train_set, collator,
             RETRIEVAL_LEARNING_RATE_MULTIPLIERS).train()  # fmt: skip
    model.eval()
    test_set = load_corpus(corpus_root, "test", "retrieval")
    retrieval = evaluate_retrieval(model, processor, test_set, batch_size=32)
    num_videos = len(set(test_set["video"]))
    mc = {}
    for name in ("mc", "mc_minimal_pairs"):
        mc_set = load_corpus(corpus_root, "test", name)
        mc[name] = (evaluate_multiple_choice(model, processor, mc_set, batch_size=16).metrics["accuracy"],
                    chance_mc_accuracy(mc_set))  # fmt: skip
    folder = os.path.join(output_dir, "evilm_retrieval")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return {
        "train_seconds": round(time.perf_counter() - start, 1),
        "test_videos": num_videos,
        "metrics": {**retrieval.metrics, **{f"{k}_accuracy": v[0] for k, v in mc.items()}},
        "chance": {**chance_retrieval_metrics(num_videos), **{f"{k}_accuracy": v[1] for k, v in mc.items()}},
    }


DEFAULT_OUTPUT_DIR = "runs/demo_evilm"


def run_evilm_demo(output_dir: str = DEFAULT_OUTPUT_DIR, seed: int = 0, num_videos: int | None = None,
                   epochs: dict[str, float] | None = None) -> dict:
    """Run the whole E-ViLM demo (see the module docstring); prints tables and writes ``results.json``.

    ``epochs`` overrides entries of :data:`DEMO_EPOCHS` (``tokenizer``, ``pretrain``, ``qa``, ``retrieval``).
    """
    epochs = {**DEMO_EPOCHS, **(epochs or {})}
    from transformers import AutoTokenizer, pipeline

    from ..data import load_corpus
    from ..models.evilm import truncate_vocabulary
    from .minilm import minilm_path

    os.makedirs(output_dir, exist_ok=True)
    results: dict[str, Any] = {"seed": seed}
    start = time.perf_counter()
    print("[1/5] writing the built-in corpus; truncating MiniLM's vocabulary to the corpus words")
    corpus_root = write_demo_corpus(output_dir, results, num_videos, seed)
    text_source = minilm_path()
    captions = load_corpus(corpus_root, "train", "retrieval")["caption"]
    questions = load_corpus(corpus_root, "train", "qa")["question"]
    vocabulary = truncate_vocabulary(AutoTokenizer.from_pretrained(text_source), [*captions, *questions],
                                     keep_ratio=1.0)  # fmt: skip
    results["vocabulary"] = {"size": len(vocabulary.kept_ids), "minilm_size": 30522}

    print(f"[2/5] training the semantic VQ tokenizer ({DEMO_CODEBOOK} codes)")
    video_tokenizer, results["tokenizer"] = train_tokenizer(corpus_root, output_dir, vocabulary.tokenizer, seed,
                                                            epochs["tokenizer"])  # fmt: skip
    print(f"  codebook utilization on the test split: {results['tokenizer']['codebook_utilization_test']:.1%}")

    print("[3/5] pre-training E-ViLM: MLM + VTM + MVM, and the same run without MVM")
    folders = {}
    for name, mvm in (("evilm_pretrain", True), ("evilm_pretrain_no_mvm", False)):
        folders[name], results[name] = pretrain(corpus_root, output_dir, text_source, vocabulary, video_tokenizer,
                                                name, mvm, seed, epochs["pretrain"])  # fmt: skip

    print("[4/5] fine-tuning QA (from both pre-trainings) and retrieval")
    qa_model, processor, results["qa"] = finetune_qa(corpus_root, output_dir, folders["evilm_pretrain"], "evilm_qa",
                                                     seed, epochs["qa"])  # fmt: skip
    _, _, results["qa_no_mvm"] = finetune_qa(corpus_root, output_dir, folders["evilm_pretrain_no_mvm"],
                                             "evilm_qa_no_mvm", seed, epochs["qa"])  # fmt: skip
    results["retrieval"] = finetune_retrieval(corpus_root, output_dir, folders["evilm_pretrain"], seed,
                                              epochs["retrieval"])  # fmt: skip

    print("[5/5] saving the QA model, reloading it with AutoModel, answering with the pipeline")
    qa_dir = os.path.join(output_dir, "evilm_qa")
    qa_model.save_pretrained(qa_dir)
    processor.save_pretrained(qa_dir)
    test_set = load_corpus(corpus_root, "test", "qa")
    auto_class, max_abs_diff = check_auto_reload(qa_model.evilm, processor, qa_dir, test_set[0]["video"],
                                                 test_set[0]["question"])  # fmt: skip
    multi = [i for i, flag in enumerate(test_set["needs_multiple_frames"]) if flag]
    example = test_set[multi[0]]
    answers = pipeline("video-question-answering", model=qa_dir)(video=example["video"], question=example["question"],
                                                                  top_k=3)  # fmt: skip
    results["reload"] = {"auto_class": auto_class, "max_abs_diff": max_abs_diff}
    results["pipeline_example"] = {"question": example["question"], "expected": example["answer"], "answers": answers}

    print_retrieval("E-ViLM", results["retrieval"])
    retrieval = results["retrieval"]
    for key in ("mc_accuracy", "mc_minimal_pairs_accuracy"):
        print(f"  {key:<28}{retrieval['metrics'][key]:>8.2f}  (chance {retrieval['chance'][key]:.2f})")
    print_qa_table("E-ViLM QA, pre-trained with MVM", results["qa"])
    print_qa_table("E-ViLM QA, pre-trained without MVM (ablation)", results["qa_no_mvm"])
    best = answers[0]
    print(f"\npipeline('video-question-answering'): {example['question']!r} -> {best['answer']!r} "
          f"(score {best['score']:.2f}; expected {example['answer']!r})")  # fmt: skip
    return write_results(output_dir, results, start)


run = run_evilm_demo

__all__ = ["DEFAULT_OUTPUT_DIR", "DEMO_EPOCHS", "run", "run_evilm_demo"]
