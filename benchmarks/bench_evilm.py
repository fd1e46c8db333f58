"""Benchmark: E-ViLM's efficiency claims, measured side by side in one run.

1. One forward of E-ViLM (``evilm-s``: 4 frames of 256 px + a caption, through the multi-modal decoder) against
   ``umt-b16``'s stage-2 forward on the same clip and caption (its student at 224 px, the BERT-base text encoder
   and the cross-modal decoder over the pair). FLOPs are counted with ``torch.utils.flop_counter`` (2 FLOPs per
   multiply-add) and times are medians. Requirements: at least 10x fewer FLOPs and at least 5x faster.
2. Text-to-video retrieval over ``--gallery`` texts x ``--gallery`` videos: unimodal encoding (every text and video
   encoded once, one matrix product; E-ViLM's appendix) against pairwise VTM (every pair through the decoder, with
   the unimodal tokens cached, so the baseline pays only for the pairs). Encoding the gallery is common to both and
   is measured on ``--encode-sample`` items and scaled to the gallery; the pairwise cost is measured on
   ``--pair-sample`` pairs and scaled to ``gallery^2`` (both are linear in the count). Requirement: at least 50x.

Run: ``python benchmarks/bench_evilm.py [--threads 2] [--steps 3] [--gallery 1000] [--json PATH]``; exits 1 when a
requirement is not met.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from hf_videolang.models.evilm import EvilmConfig, EvilmForVideoTextRetrieval
from hf_videolang.models.umt import UmtConfig, UmtModel

MIN_FLOP_RATIO, MIN_SPEEDUP, MIN_RETRIEVAL_SPEEDUP = 10.0, 5.0, 50.0
CAPTION_TOKENS = 20  # WebVid captions average 20 words (E-ViLM §4.1)


def _median_time(fn: Callable[[], Any], steps: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _flops(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _umt_stage2_forward(model: UmtModel, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    video = model.vision_model(pixels).last_hidden_state
    text = model.encode_text(ids, mask)
    return model.encode_multimodal(text, mask, video)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--gallery", type=int, default=1000)
    parser.add_argument("--encode-sample", type=int, default=8)
    parser.add_argument("--pair-sample", type=int, default=64)
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results: dict[str, Any] = {"threads": args.threads, "device": "cpu"}

    evilm = EvilmForVideoTextRetrieval(EvilmConfig.from_preset("evilm-s")).eval()
    umt = UmtModel(UmtConfig.from_preset("umt-b16")).eval()
    ids = torch.randint(1000, 2000, (1, CAPTION_TOKENS))
    ids[:, 0] = 101
    mask = torch.ones_like(ids)
    clip_256 = torch.randn(1, 4, 3, 256, 256)
    clip_224 = torch.nn.functional.interpolate(clip_256[0], size=224, mode="bilinear")[None]
    evilm_text_ids = ids.clamp(max=evilm.config.text_config.vocab_size - 1)

    def evilm_forward():
        return evilm.evilm(clip_256, evilm_text_ids, mask).last_hidden_state

    def umt_forward():
        return _umt_stage2_forward(umt, clip_224, ids, mask)

    with torch.no_grad():
        flops_evilm, flops_umt = _flops(evilm_forward), _flops(umt_forward)
        time_evilm = _median_time(evilm_forward, args.steps)
        time_umt = _median_time(umt_forward, args.steps)
    params_evilm = sum(p.numel() for p in evilm.evilm.parameters())
    results["forward"] = {
        "evilm_gflops": flops_evilm / 1e9,
        "umt_b16_gflops": flops_umt / 1e9,
        "flop_ratio": flops_umt / flops_evilm,
        "evilm_seconds": time_evilm,
        "umt_b16_seconds": time_umt,
        "speedup": time_umt / time_evilm,
        "evilm_parameters_m": params_evilm / 1e6,
    }

    # Retrieval: unimodal dot products against pairwise VTM over a gallery x gallery grid.
    n = args.gallery
    with torch.no_grad():
        videos = torch.randn(args.encode_sample, 4, 3, 256, 256)
        texts = evilm_text_ids.expand(args.encode_sample, -1)
        text_mask = mask.expand(args.encode_sample, -1)
        # The retrieval embeddings: each modality through its encoder alone (§4.2), pooled and projected.
        encode_seconds = _median_time(
            lambda: (evilm.get_video_features(videos), evilm.get_text_features(texts, text_mask)), 1
        ) * (n / args.encode_sample)
        video_tokens = evilm.evilm.encode_video(videos[:1]).expand(args.pair_sample, -1, -1)
        text_tokens = evilm.evilm.encode_text(texts[:1], text_mask[:1]).expand(args.pair_sample, -1, -1)
        pair_mask = text_mask[:1].expand(args.pair_sample, -1)
        pair_seconds = _median_time(
            lambda: evilm.vtm_head(evilm.evilm.fuse(video_tokens, text_tokens, pair_mask).pooler_output), args.steps
        ) * (n * n / args.pair_sample)
        gallery_video, gallery_text = torch.randn(n, 384), torch.randn(n, 384)
        dot_seconds = _median_time(lambda: gallery_text @ gallery_video.t(), args.steps)
    unimodal, pairwise = encode_seconds + dot_seconds, encode_seconds + pair_seconds
    results["retrieval"] = {
        "gallery": n,
        "encode_seconds_scaled": encode_seconds,
        "dot_product_seconds": dot_seconds,
        "pairwise_vtm_seconds_scaled": pair_seconds,
        "unimodal_total_seconds": unimodal,
        "pairwise_total_seconds": pairwise,
        "speedup": pairwise / unimodal,
    }

    forward, retrieval = results["forward"], results["retrieval"]
    print(f"E-ViLM forward: {forward['evilm_gflops']:.2f} GFLOPs, {1e3 * time_evilm:.0f} ms "
          f"({forward['evilm_parameters_m']:.2f} M parameters)")  # fmt: skip
    print(f"umt-b16 stage-2 forward: {forward['umt_b16_gflops']:.2f} GFLOPs, {1e3 * time_umt:.0f} ms")
    print(f"  FLOP ratio {forward['flop_ratio']:.1f}x (need >= {MIN_FLOP_RATIO}), "
          f"speed-up {forward['speedup']:.1f}x (need >= {MIN_SPEEDUP})")  # fmt: skip
    print(f"Retrieval {n} x {n}: unimodal {unimodal:.1f} s, pairwise VTM {pairwise:.1f} s "
          f"-> {retrieval['speedup']:.0f}x (need >= {MIN_RETRIEVAL_SPEEDUP})")  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    ok = (
        forward["flop_ratio"] >= MIN_FLOP_RATIO
        and forward["speedup"] >= MIN_SPEEDUP
        and retrieval["speedup"] >= MIN_RETRIEVAL_SPEEDUP
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
