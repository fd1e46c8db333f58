"""Benchmark: SMAUG's efficient pre-training step and VTS inference, with FLOPs, in one run.

Measures the SMAUG issue's requirements on the ``smaug-b16`` preset (CLIP-B/16-shaped encoder, BERT-base 9 + 3) with
4 frames of 224 px:

1. pre-training step, SMAUG (MAE tube masking 50 % with MVM + VTS at layers 4/7/10 keeping 0.8 + frame selection
   4 -> 2) against the same model with all three off (no mask and no MVM, no VTS, all 4 frames): forward of
   :class:`SmaugForPreTraining` (VTC + VTM with hard negatives + MLM [+ MVM]), backward and an AdamW step.
   Requirement: >= 1.6x faster (SMAUG Table 10: 144.5 -> 77.8 hours, 1.9x).
2. inference of :class:`SmaugModel` (video encoder, text encoder, frame selection and the multimodal encoder on the
   pairs) in eval mode under ``no_grad``, VTS on against off. Requirement: >= 1.2x faster (SMAUG Table 9:
   0.21 -> 0.16 s per example).
3. the FLOPs of each of the four runs, counted by ``torch.utils.flop_counter.FlopCounterMode`` during the first,
   untimed iteration (2 FLOPs per multiply-add; SDPA's kernels are counted by their registered formulas).

Times are medians of ``--steps`` timed iterations after one untimed iteration (the FLOP count); the two settings
of a comparison alternate, so that a change in machine load hits both. On a shared CPU the numbers are noisy.

Run: ``python benchmarks/bench_smaug.py [--device cpu|cuda] [--batch-size N] [--steps N] [--threads N]
[--json PATH]``; exits 1 when a requirement is not met.
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

from hf_videolang.models.smaug import SmaugConfig, SmaugForPreTraining, SmaugModel
from hf_videolang.video.masking import TubeMasker

MIN_PRETRAINING_SPEEDUP, MIN_INFERENCE_SPEEDUP = 1.6, 1.2


def _config(efficient: bool, frames: int) -> SmaugConfig:
    """``smaug-b16`` with MAE's MVM, VTS and frame selection all on (``efficient``) or all off."""
    return SmaugConfig.from_preset(
        "smaug-b16",
        vision_config=dict(num_frames=frames, use_token_sparsification=efficient),
        use_frame_selection=efficient,
        mvm_loss_weight=1.0 if efficient else 0.0,
    )


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _inputs(config: SmaugConfig, batch_size: int, frames: int, text_length: int, device: str) -> dict:
    gen = torch.Generator().manual_seed(0)
    vocab = config.text_config.vocab_size
    input_ids = torch.randint(1000, vocab, (batch_size, text_length), generator=gen)
    input_ids[:, 0] = 101  # [CLS]
    pixel_values = torch.randn(batch_size, frames, 3, 224, 224, generator=gen)
    mlm_labels = torch.full_like(input_ids, -100)
    chosen = torch.rand(input_ids.shape, generator=gen) < 0.15
    chosen[:, 0] = False
    mlm_labels[chosen] = input_ids[chosen]
    mlm_input_ids = input_ids.masked_fill(chosen, 103)  # [MASK]
    grid = config.vision_config.grid_size
    mask = TubeMasker(frames, (grid, grid), config.video_mask_ratio)(batch_size, generator=gen)
    batch = dict(pixel_values=pixel_values, input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                 mlm_input_ids=mlm_input_ids, mlm_labels=mlm_labels, bool_masked_pos=mask)  # fmt: skip
    return {k: v.to(device) for k, v in batch.items()}


def _alternate(fns: dict[str, Callable[[], Any]], steps: int, device: str) -> tuple[dict, dict]:
    """One FLOP-counted untimed call of each, then ``steps`` timed calls, alternating. Returns (seconds, GFLOPs)."""
    flops = {}
    for name, fn in fns.items():
        with FlopCounterMode(display=False) as counter:
            fn()
        flops[name] = counter.get_total_flops() / 1e9
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(steps):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}, flops


def measure_pretraining(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    models, optimizers, fns, counts = {}, {}, {}, {}
    for name, efficient in (("smaug", True), ("baseline", False)):
        torch.manual_seed(0)
        config = _config(efficient, args.frames)
        model = SmaugForPreTraining(config).to(args.device).train()
        models[name] = model
        # The fused kernel (CPU and CUDA): the optimizer is a cost both settings share, kept small.
        optimizers[name] = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        batch = _inputs(config, args.batch_size, args.frames, args.text_length, args.device)
        if not efficient:
            batch.pop("bool_masked_pos")  # no MAE: every patch encoded, no MVM

        def step(model=model, optimizer=optimizers[name], batch=batch, name=name) -> None:
            optimizer.zero_grad(set_to_none=True)
            output = model(**batch)
            output.loss.backward()
            optimizer.step()
            counts[name] = dict(tokens_per_layer=output.num_visual_tokens.tolist(),
                                frames_fused=int(output.num_selected_frames))  # fmt: skip

        fns[name] = step
    seconds, gflops = _alternate(fns, args.steps, args.device)
    del models, optimizers
    return dict(seconds=seconds, gflops=gflops, kept=counts)


def measure_inference(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    torch.manual_seed(0)
    config = _config(True, args.frames)
    model = SmaugModel(config).to(args.device).eval()
    batch = _inputs(config, args.batch_size, args.frames, args.text_length, args.device)
    batch = {k: batch[k] for k in ("pixel_values", "input_ids", "attention_mask")}

    def run(vts: bool) -> Callable[[], Any]:
        def forward() -> None:
            model.config.vision_config.use_token_sparsification = vts
            model.vision_model.config.use_token_sparsification = vts
            with torch.no_grad():
                model(**batch)

        return forward

    seconds, gflops = _alternate({"vts": run(True), "no_vts": run(False)}, args.steps, args.device)
    return dict(seconds=seconds, gflops=gflops)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch-size", type=int, default=2, help="VTM needs at least 2 distinct videos")
    parser.add_argument("--frames", type=int, default=4, help="frames per video (SMAUG §3.5: 4)")
    parser.add_argument("--text-length", type=int, default=32, help="caption tokens (Singularity's max_txt_l)")
    parser.add_argument("--steps", type=int, default=2, help="timed iterations (median)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, help="write the results here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pretraining = measure_pretraining(args)
    inference = measure_inference(args)
    pt, inf = pretraining["seconds"], inference["seconds"]
    speedups = dict(pretraining=pt["baseline"] / pt["smaug"], inference=inf["no_vts"] / inf["vts"])
    gflop_ratios = dict(
        pretraining=pretraining["gflops"]["baseline"] / pretraining["gflops"]["smaug"],
        inference=inference["gflops"]["no_vts"] / inference["gflops"]["vts"],
    )
    print(f"smaug-b16, {args.frames} frames of 224 px, batch {args.batch_size}, {args.device}, "
          f"{torch.get_num_threads()} threads, median of {args.steps}")  # fmt: skip
    print(f"pre-training step  SMAUG {pt['smaug']:.2f} s ({pretraining['gflops']['smaug']:.0f} GFLOPs)  "
          f"all off {pt['baseline']:.2f} s ({pretraining['gflops']['baseline']:.0f} GFLOPs)  "
          f"speed-up {speedups['pretraining']:.2f}x (FLOPs {gflop_ratios['pretraining']:.2f}x; need >= "
          f"{MIN_PRETRAINING_SPEEDUP}x)")  # fmt: skip
    print(f"inference          VTS {inf['vts']:.2f} s ({inference['gflops']['vts']:.0f} GFLOPs)  "
          f"no VTS {inf['no_vts']:.2f} s ({inference['gflops']['no_vts']:.0f} GFLOPs)  "
          f"speed-up {speedups['inference']:.2f}x (FLOPs {gflop_ratios['inference']:.2f}x; need >= "
          f"{MIN_INFERENCE_SPEEDUP}x)")  # fmt: skip
    for name, kept in pretraining["kept"].items():
        print(f"{name}: tokens per frame entering each encoder layer {kept['tokens_per_layer']}, "
              f"frames fused {kept['frames_fused']}")  # fmt: skip
    ok = speedups["pretraining"] >= MIN_PRETRAINING_SPEEDUP and speedups["inference"] >= MIN_INFERENCE_SPEEDUP
    if args.json:
        record = dict(settings=vars(args), pretraining=pretraining, inference=inference, speedups=speedups,
                      gflop_ratios=gflop_ratios, requirements_met=ok)  # fmt: skip
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=2)
    print("requirements met" if ok else "REQUIREMENT NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
