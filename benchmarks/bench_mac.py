"""Benchmark: MAC's masked training step, its FLOPs, and its unmasked video encoder against transformers' TimeSformer.

Measures, in one run, the MAC issue's requirements (MAC §3.1: only the visible 40 % of the patches are encoded):

1. training step at 60 % vs 0 % video masking (same batch of 128-token captions, MAC Table 4's text length, masked
   at 15 % in both): forward of :class:`MacForVideoTextRetrieval`, the VTC loss, backward and an AdamW step.
   Requirement: >= 2x faster.
2. FLOPs of one forward of the ``mac-b16`` preset (ViT-B/16 divided space-time + DistilBERT) on one 4-frame 224 px
   video and one 128-token caption (MAC Table 4's input), unmasked vs 60 % masked, counted by
   ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per multiply-add; eager attention so the attention
   products are counted). Paper: 189.3 -> 83.3 GFLOPs (Table 4). Reported, not required.
3. unmasked video-encoder inference, :class:`MacVisionModel` vs ``transformers.TimesformerModel`` with the same
   width / depth / heads / patch / frames and ``attention_type="divided_space_time"``, both in eval mode under
   ``no_grad``, same dtype. TimeSformer has only an eager attention (``_supports_sdpa`` is False), so the
   requirement compares like with like: MAC on eager vs TimeSformer on eager, time ratio <= 1.1x. MAC on SDPA is
   timed too and reported beside it.

Times are medians of ``--steps`` timed iterations after ``--warmup`` untimed ones; the two models of a comparison
are timed alternately, so that a change in machine load hits both.

The issue's speed numbers are for ``--preset mac-b16`` on a GPU. On a small CPU use the default ``--preset tiny``
(video encoder of width 192, 4 blocks; 2-layer DistilBERT of width 192) with batch 2 at 224 px and 4 frames; ratios
there are indicative only (a shared CPU adds noise). The FLOPs are always those of ``mac-b16``.

Run: ``python benchmarks/bench_mac.py [--device cpu|cuda] [--preset tiny|mac-b16] [--batch-size N] [--steps N]
[--no-flops] [--json PATH]``; exits 1 when a requirement is not met.
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
from transformers import TimesformerConfig, TimesformerModel

from hf_videolang.models.mac import MacConfig, MacForVideoTextRetrieval, MacModel, MacVisionModel
from hf_videolang.video.masking import RandomMasker

#: Video / text encoder sizes. ``mac-b16`` is the paper's (MAC §4.3); ``tiny`` a CPU-sized stand-in.
PRESETS: dict[str, dict[str, Any]] = {
    "mac-b16": dict(vision=dict(), text=dict(model_type="distilbert")),
    "tiny": dict(
        vision=dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768),
        text=dict(model_type="distilbert", dim=192, n_layers=2, n_heads=3, hidden_dim=768),
    ),
}
MIN_SPEEDUP, MAX_TIME_RATIO = 2.0, 1.1
PAPER_GFLOPS = (189.3, 83.3)  # MAC Table 4: unmasked (Frozen) and 60 % masked


def _config(preset: str, image_size: int = 224, frames: int = 4) -> MacConfig:
    sizes = PRESETS[preset]
    vision = dict(sizes["vision"], image_size=image_size, num_frames=frames, drop_path_rate=0.0)
    return MacConfig(vision_config=vision, text_config=dict(sizes["text"]))


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _median_times(fns: dict[str, Callable[[], Any]], warmup: int, steps: int, device: str) -> dict[str, float]:
    """Median seconds of each function, timed round-robin so that load changes hit all of them."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(steps):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _mask(config: MacConfig, batch_size: int, ratio: float, device: str) -> torch.Tensor | None:
    if ratio == 0:
        return None
    vision = config.vision_config
    masker = RandomMasker(vision.num_frames, vision.grid_size, ratio)
    return masker(batch_size, generator=torch.Generator().manual_seed(0)).to(device)


def _captions(config: MacConfig, batch_size: int, length: int, device: str) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(1000, config.text_config.vocab_size, (batch_size, length), generator=generator)
    masked = input_ids.clone()
    masked[:, 1 : 1 + max(1, round(0.15 * length))] = 103  # [MASK] of the BERT vocabulary, 15 % of the words
    return {"input_ids": input_ids.to(device), "mlm_input_ids": masked.to(device)}


def measure_training(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Median time of one training step at 0 % and at ``--mask-ratio``, with the visible tokens per frame."""
    torch.manual_seed(0)
    device = args.device
    config = _config(args.preset)
    model = MacForVideoTextRetrieval._from_config(config, attn_implementation="sdpa").to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    pixels = torch.randn(args.batch_size, 4, 3, 224, 224, device=device)
    text = _captions(config, args.batch_size, args.text_length, device)
    masks = {"0 %": None, f"{args.mask_ratio:.0%}": _mask(config, args.batch_size, args.mask_ratio, device)}

    def step(mask: torch.Tensor | None) -> None:
        loss = model(pixel_values=pixels, bool_masked_pos=mask, **text).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    times = _median_times({name: (lambda m=mask: step(m)) for name, mask in masks.items()}, args.warmup,
                          args.steps, device)  # fmt: skip
    per_frame = config.vision_config.num_patches_per_frame
    return {
        name: {"seconds": times[name], "visible_per_frame": per_frame - (int(m[0].sum()) // 4 if m is not None else 0)}
        for name, m in masks.items()
    }


@torch.no_grad()
def count_flops(mask_ratio: float, text_length: int = 128) -> dict[str, dict[str, float]]:
    """GFLOPs of one ``mac-b16`` forward (4 x 224 px video + a caption), video encoder and whole model."""
    torch.manual_seed(0)
    config = _config("mac-b16")
    model = MacModel._from_config(config, attn_implementation="eager").eval()
    pixels = torch.randn(1, 4, 3, 224, 224)
    input_ids = _captions(config, 1, text_length, "cpu")["input_ids"]
    results = {}
    for name, ratio in (("0 %", 0.0), (f"{mask_ratio:.0%}", mask_ratio)):
        mask = _mask(config, 1, ratio, "cpu")
        with FlopCounterMode(display=False) as video_counter:
            model.vision_model(pixels, bool_masked_pos=mask)
        with FlopCounterMode(display=False) as total_counter:
            model(pixels, input_ids, bool_masked_pos=mask)
        results[name] = {"video_gflops": video_counter.get_total_flops() / 1e9,
                         "total_gflops": total_counter.get_total_flops() / 1e9}  # fmt: skip
    return results


def measure_inference(args: argparse.Namespace) -> dict[str, float]:
    """Unmasked eval forward: MacVisionModel (eager and SDPA) vs TimesformerModel (eager, its only backend) of the
    same size (divided space-time, no grad)."""
    torch.manual_seed(0)
    device, dtype = args.device, torch.float16 if args.device == "cuda" else torch.float32
    vision = _config(args.preset).vision_config
    mac_eager = MacVisionModel._from_config(vision, attn_implementation="eager")
    mac_sdpa = MacVisionModel._from_config(vision, attn_implementation="sdpa")
    mac_sdpa.load_state_dict(mac_eager.state_dict())
    timesformer_config = TimesformerConfig(
        image_size=224, patch_size=vision.patch_size, num_frames=4, hidden_size=vision.hidden_size,
        num_hidden_layers=vision.num_hidden_layers, num_attention_heads=vision.num_attention_heads,
        intermediate_size=vision.intermediate_size, qkv_bias=True, layer_norm_eps=vision.layer_norm_eps,
        attention_type="divided_space_time", drop_path_rate=0,
    )  # fmt: skip
    timesformer = TimesformerModel._from_config(timesformer_config, attn_implementation="eager")
    pixels = torch.randn(args.batch_size, 4, 3, 224, 224, device=device, dtype=dtype)
    models = {"mac_eager": mac_eager, "mac_sdpa": mac_sdpa, "timesformer": timesformer}
    models = {name: model.to(device=device, dtype=dtype).eval() for name, model in models.items()}
    with torch.no_grad():
        return _median_times({name: (lambda m=model: m(pixels)) for name, model in models.items()}, args.warmup,
                             args.steps, device)  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="default: mac-b16 on cuda, tiny on cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 16 on cuda, 2 on cpu")
    parser.add_argument("--text-length", type=int, default=128,
                        help="caption tokens in the timed training step (MAC Table 4: 128)")
    parser.add_argument("--steps", type=int, default=5, help="timed iterations (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--mask-ratio", type=float, default=0.6, help="MAC's video mask ratio (§3.1, §4.3)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--no-flops", action="store_true", help="skip the mac-b16 FLOP count (builds a 180M model)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.preset is None:
        args.preset = "mac-b16" if args.device == "cuda" else "tiny"
    if args.batch_size is None:
        args.batch_size = 16 if args.device == "cuda" else 2
    return args


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    masked_name = f"{args.mask_ratio:.0%}"
    training = measure_training(args)
    flops = None if args.no_flops else count_flops(args.mask_ratio)
    inference = measure_inference(args)
    speedup = training["0 %"]["seconds"] / training[masked_name]["seconds"]
    time_ratio = inference["mac_eager"] / inference["timesformer"]  # same (eager) attention on both sides
    sdpa_ratio = inference["mac_sdpa"] / inference["timesformer"]

    print(f"MAC benchmark: preset={args.preset} device={args.device} frames=4 image=224 batch={args.batch_size} "
          f"text={args.text_length} tokens steps={args.steps} (median), "
          f"threads={torch.get_num_threads()}\n")  # fmt: skip
    rows = [
        ("visible patches per frame", str(training["0 %"]["visible_per_frame"]),
         str(training[masked_name]["visible_per_frame"]), ""),
        ("train step (ms)", f"{training['0 %']['seconds'] * 1e3:.1f}", f"{training[masked_name]['seconds'] * 1e3:.1f}",
         f"speed-up {speedup:.2f}x (>= {MIN_SPEEDUP}x: {'ok' if speedup >= MIN_SPEEDUP else 'FAIL'})"),
    ]  # fmt: skip
    if flops is not None:
        video_ratio = flops[masked_name]["video_gflops"] / flops["0 %"]["video_gflops"]
        total_ratio = flops[masked_name]["total_gflops"] / flops["0 %"]["total_gflops"]
        rows += [
            ("mac-b16 GFLOPs, video encoder", f"{flops['0 %']['video_gflops']:.1f}",
             f"{flops[masked_name]['video_gflops']:.1f}", f"{video_ratio:.1%} of unmasked"),
            ("mac-b16 GFLOPs, video + 128-token text", f"{flops['0 %']['total_gflops']:.1f}",
             f"{flops[masked_name]['total_gflops']:.1f}",
             f"{total_ratio:.1%} (paper: {PAPER_GFLOPS[0]} -> {PAPER_GFLOPS[1]}, "
             f"{PAPER_GFLOPS[1] / PAPER_GFLOPS[0]:.1%})"),
        ]  # fmt: skip
    print(_table(rows, ("", "0 % masked", f"{masked_name} masked", "")))
    print()
    verdict = "ok" if time_ratio <= MAX_TIME_RATIO else "FAIL"
    print(_table(
        [("MacVisionModel (unmasked), eager", f"{inference['mac_eager'] * 1e3:.1f}", ""),
         ("MacVisionModel (unmasked), SDPA", f"{inference['mac_sdpa'] * 1e3:.1f}", ""),
         ("TimesformerModel (divided_space_time), eager", f"{inference['timesformer'] * 1e3:.1f}", "its only backend"),
         ("ratio MAC / TimeSformer, both eager", f"{time_ratio:.2f}x", f"<= {MAX_TIME_RATIO}x: {verdict}"),
         ("ratio MAC (SDPA) / TimeSformer (eager)", f"{sdpa_ratio:.2f}x", "reported")],
        ("inference, no grad", "ms", ""),
    ))  # fmt: skip
    ok = speedup >= MIN_SPEEDUP and time_ratio <= MAX_TIME_RATIO
    if args.json:
        record = dict(settings={k: v for k, v in vars(args).items() if k != "json"}, training=training, flops=flops,
                      inference_seconds=inference, speedup=speedup, inference_time_ratio=time_ratio,
                      inference_time_ratio_mac_sdpa=sdpa_ratio, ok=ok)  # fmt: skip
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
