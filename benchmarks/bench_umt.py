"""Benchmark: UMT's masked student training and its unmasked forward against transformers' VideoMAE.

Measures, in one run, the UMT issue's three requirements (UMT §3.1: the student runs only the unmasked tokens):

1. training-step speed-up at 80 % masking vs 0 % (same batch): forward of :class:`UmtVisionModel`, a UTA-style loss
   (MSE between L2-normalized outputs of the last layers and fixed targets), backward and an AdamW step.
   Requirement: >= 3x.
2. peak memory of that step at 80 % vs 0 %. Requirement: < 40 %. On CUDA: ``torch.cuda.max_memory_allocated``
   after ``reset_peak_memory_stats`` (model and optimizer state included). On CPU (``tracemalloc`` cannot see
   torch's allocations) each configuration runs in a fresh process and reports the growth of its RSS high-water mark
   (``resource.getrusage(...).ru_maxrss``) from just before the first training step to the end of all steps, i.e.
   activations, gradients and optimizer state, but not the model weights and the libraries.
3. unmasked inference, :class:`UmtVisionModel` vs ``transformers.VideoMAEModel`` of the same width/depth/token count
   (tubelet 1, same frames and image size, mean pooling), both in eval mode under ``no_grad``, same dtype, SDPA.
   Requirement: time ratio <= 1.1x.

Times are medians of ``--steps`` timed iterations after ``--warmup`` untimed ones.

The issue's numbers are for ``--preset umt-b16 --image-size 224 --frames 8`` on a GPU. On a small CPU use the default
``--preset tiny-b`` (ViT of width 192, 4 layers; same 1568-token input) with batch 1; ratios there are indicative
only (small matrices are overhead-bound, and a shared CPU adds noise).

Run: ``python benchmarks/bench_umt.py [--device cpu|cuda] [--preset tiny-b|umt-b16] [--frames 8] [--image-size N]
[--batch-size N] [--steps N] [--json PATH]``; exits 1 when a requirement is not met.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import time
from typing import Any

import torch
import torch.nn.functional as F
from transformers import VideoMAEConfig, VideoMAEModel

from hf_videolang.models.umt import UmtVisionConfig, UmtVisionModel

#: Student widths. ``umt-b16`` is the paper's ViT-B/16 (UMT §4.1); ``tiny-b`` a CPU-sized stand-in.
PRESETS: dict[str, dict[str, int]] = {
    "umt-b16": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "tiny-b": dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768),
}
MIN_SPEEDUP, MAX_MEMORY_RATIO, MAX_TIME_RATIO = 3.0, 0.40, 1.1
UTA_LAYERS = 2  # layers aligned by the UTA-style loss (6 in the paper; fewer here, the cost is in the backbone)


def _vision_config(args: argparse.Namespace) -> UmtVisionConfig:
    return UmtVisionConfig(
        image_size=args.image_size, patch_size=16, num_frames=args.frames, drop_path_rate=0.0, **PRESETS[args.preset]
    )


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _median_time(fn, warmup: int, steps: int, device: str) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _frame_mask(batch: int, frames: int, per_frame: int, ratio: float, device: str) -> torch.Tensor | None:
    """Random mask with ``round(ratio * per_frame)`` masked tokens in every frame (UMT masks per frame)."""
    num_masked = round(ratio * per_frame)
    if num_masked == 0:
        return None
    order = torch.rand(batch, frames, per_frame, generator=torch.Generator().manual_seed(0)).argsort(-1)
    mask = torch.zeros(batch, frames, per_frame, dtype=torch.bool)
    mask.scatter_(-1, order[..., :num_masked], True)
    return mask.flatten(1).to(device)


def measure_training(args: argparse.Namespace, mask_ratio: float) -> dict[str, float]:
    """Median time and peak memory of one student training step at ``mask_ratio``."""
    torch.manual_seed(0)
    device = args.device
    config = _vision_config(args)
    model = UmtVisionModel._from_config(config, attn_implementation="sdpa").to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    pixels = torch.randn(args.batch_size, args.frames, 3, args.image_size, args.image_size, device=device)
    mask = _frame_mask(args.batch_size, args.frames, config.num_patches_per_frame, mask_ratio, device)
    layers = list(range(config.num_hidden_layers - UTA_LAYERS, config.num_hidden_layers))
    num_visible = config.num_positions - (int(mask[0].sum()) if mask is not None else 0)
    targets = torch.randn(UTA_LAYERS, args.batch_size, num_visible, config.hidden_size, device=device)

    def step() -> None:
        output = model(pixels, bool_masked_pos=mask, output_layers=layers)
        loss = F.mse_loss(F.normalize(output.alignment_hidden_states, dim=-1), F.normalize(targets, dim=-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    seconds = _median_time(step, args.warmup, args.steps, device)
    if device == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    return {"seconds": seconds, "peak_mib": peak_mib, "tokens": num_visible}


def _training_worker(args: argparse.Namespace, mask_ratio: float, queue: multiprocessing.Queue) -> None:
    torch.set_num_threads(args.threads)
    queue.put(measure_training(args, mask_ratio))


def measure_training_isolated(args: argparse.Namespace, mask_ratio: float) -> dict[str, float]:
    """On CPU, a fresh process per configuration so each RSS high-water mark is its own."""
    if args.device == "cuda":
        return measure_training(args, mask_ratio)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_training_worker, args=(args, mask_ratio, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def measure_inference(args: argparse.Namespace) -> dict[str, float]:
    """Unmasked eval forward: UmtVisionModel vs VideoMAEModel of the same size (tubelet 1, SDPA, no grad)."""
    torch.manual_seed(0)
    device, dtype = args.device, torch.float16 if args.device == "cuda" else torch.float32
    umt = UmtVisionModel._from_config(_vision_config(args), attn_implementation="sdpa")
    size = PRESETS[args.preset]
    videomae_config = VideoMAEConfig(
        image_size=args.image_size, patch_size=16, num_frames=args.frames, tubelet_size=1, use_mean_pooling=True,
        qkv_bias=True, layer_norm_eps=1e-6, **size,
    )  # fmt: skip
    videomae = VideoMAEModel._from_config(videomae_config, attn_implementation="sdpa")
    pixels = torch.randn(args.batch_size, args.frames, 3, args.image_size, args.image_size, device=device, dtype=dtype)
    results = {}
    for name, model in (("umt", umt), ("videomae", videomae)):
        model = model.to(device=device, dtype=dtype).eval()
        with torch.no_grad():
            results[name] = _median_time(lambda m=model: m(pixels), args.warmup, args.steps, device)
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny-b")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=None, help="default: 224")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 8 on cuda, 1 on cpu")
    parser.add_argument("--steps", type=int, default=5, help="timed iterations (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--mask-ratio", type=float, default=0.8, help="UMT's video mask ratio (§4.1)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: steadier on a shared CPU)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.image_size is None:
        args.image_size = 224
    if args.batch_size is None:
        args.batch_size = 8 if args.device == "cuda" else 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    masked = measure_training_isolated(args, args.mask_ratio)
    full = measure_training_isolated(args, 0.0)
    inference = measure_inference(args)
    speedup = full["seconds"] / masked["seconds"]
    memory_ratio = masked["peak_mib"] / full["peak_mib"]
    time_ratio = inference["umt"] / inference["videomae"]
    rows = [
        ("train step, 0 % masked", f"{full['seconds'] * 1e3:.1f} ms", f"{full['peak_mib']:.0f} MiB", ""),
        (f"train step, {args.mask_ratio:.0%} masked", f"{masked['seconds'] * 1e3:.1f} ms",
         f"{masked['peak_mib']:.0f} MiB", ""),
        ("speed-up (>= 3x)", f"{speedup:.2f}x", "", "ok" if speedup >= MIN_SPEEDUP else "FAIL"),
        ("peak memory ratio (< 40 %)", "", f"{memory_ratio:.1%}", "ok" if memory_ratio < MAX_MEMORY_RATIO else "FAIL"),
        ("inference UmtVisionModel", f"{inference['umt'] * 1e3:.1f} ms", "", ""),
        ("inference VideoMAEModel", f"{inference['videomae'] * 1e3:.1f} ms", "", ""),
        ("time ratio UMT / VideoMAE (<= 1.1x)", f"{time_ratio:.2f}x", "",
         "ok" if time_ratio <= MAX_TIME_RATIO else "FAIL"),
    ]  # fmt: skip
    memory_method = "cuda.max_memory_allocated" if args.device == "cuda" else "RSS high-water growth, own process"
    print(f"UMT benchmark: preset={args.preset} device={args.device} frames={args.frames} image={args.image_size} "
          f"batch={args.batch_size} steps={args.steps} (median) memory={memory_method}")  # fmt: skip
    width = max(len(row[0]) for row in rows)
    for name, seconds, memory, verdict in rows:
        print(f"{name:<{width}}  {seconds:>10}  {memory:>9}  {verdict}")
    ok = speedup >= MIN_SPEEDUP and memory_ratio < MAX_MEMORY_RATIO and time_ratio <= MAX_TIME_RATIO
    if args.json:
        record: dict[str, Any] = dict(
            settings={key: value for key, value in vars(args).items() if key != "json"},
            memory_method=memory_method,
            train_masked=masked,
            train_full=full,
            inference_seconds=inference,
            speedup=speedup,
            memory_ratio=memory_ratio,
            inference_time_ratio=time_ratio,
            ok=ok,
        )
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
