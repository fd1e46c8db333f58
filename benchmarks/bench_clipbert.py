"""Benchmark: ClipBERT's sparse training and dense inference costs (ClipBERT Fig. 5, Table 4), ratios in one run.

Measures, on one model (:class:`ClipBertForVideoQuestionAnswering`, ``--answers`` answers; forward, backward and an
AdamW step at batch ``--batch-size``, 8 in Fig. 5):

1. the training step for ``N_train x T`` in {1x1, 1x2, 2x2, 4x1, 4x2}: time and peak memory, each also divided by
   ``N_train * T`` and normalized to 1x1. Fig. 5 (b, d): time grows close to linearly with ``N_train`` and ``T``.
   The step is linear in both, as in Fig. 5's two panels (N_train at T = 1, T at N_train = 1): each clip costs one
   BERT pass and each frame one CNN pass (the T frame maps are mean-pooled before BERT), so the model is
   ``time = a + b * N_train + c * N_train * T``. Requirement: that least-squares fit explains the times
   (R^2 >= ``MIN_R2``) and the time per frame never grows (time / (N * T) <= ``MAX_PER_FRAME`` x the 1x1 one).
2. sparse ``1x2`` training against a dense baseline that feeds every frame of an 8-second clip at the same
   resolution: 8 consecutive 1-second clips of ``--dense-fps`` frames each (2 fps is the authors' decoding rate,
   ``"fps": 2`` in their configs), each clip fused with the text as ClipBERT does. Requirement: >= 4x faster.
3. inference (eval mode, ``no_grad``) with ``N_test`` in {1, 2, 4, 8, 16} clips of T = 2 frames: time per clip.
   Requirement: linear in N_test, a least-squares line ``a + b * N_test`` with ``b > 0`` explains the times
   (R^2 >= ``MIN_INFERENCE_R2``).

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (minus what was
allocated before the step, after a warm-up step); on CPU the peak resident set size, sampled every millisecond, of a
fresh process per layout over its second training step, minus its RSS just before that step (activations and
gradients; glibc's mmap threshold is fixed so that freed blocks leave the RSS). Times are medians of ``--steps`` timed
iterations after one untimed warm-up; the settings of a comparison alternate, so that a change in machine load hits
all of them. On a shared CPU the numbers are noisy.

Sizes: ``--preset clipbert-base`` is the paper's model (ResNet-50 + BERT-base at ``--image-size`` 448), far too slow
for a 2-core CPU; the default ``--preset cpu-small`` keeps the architecture with small widths (ResNet bottleneck
stages 32-256, one block each; a 4-layer BERT of width 256) at 128 px. The sizes used are printed and saved.

Run: ``python benchmarks/bench_clipbert.py [--preset cpu-small|clipbert-base] [--image-size L] [--device cpu|cuda]
[--batch-size 8] [--steps N] [--threads N] [--json PATH]``; exits 1 when a requirement is not met.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from hf_videolang.models.clipbert import ClipBertConfig, ClipBertForVideoQuestionAnswering

TRAIN_LAYOUTS = ((1, 1), (1, 2), (2, 2), (4, 1), (4, 2))  # (N_train, T), ClipBERT Fig. 5
TEST_CLIPS = (1, 2, 4, 8, 16)  # N_test, ClipBERT Fig. 4
DENSE_SECONDS = 8
MIN_DENSE_SPEEDUP = 4.0
MIN_R2 = 0.9  # of the least-squares fit time = a + b * N + c * N * T
MAX_PER_FRAME = 1.25  # time / (N * T), relative to 1x1
MIN_INFERENCE_R2 = 0.95  # of the least-squares line time = a + b * N_test

PRESETS: dict[str, dict[str, Any]] = {
    "cpu-small": dict(
        vision_config=dict(embedding_size=16, hidden_sizes=[32, 64, 128, 256], depths=[1, 1, 1, 1]),
        text_config=dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
        image_size=128,
    ),
    "clipbert-base": dict(image_size=448),
}


def build_config(args: argparse.Namespace) -> ClipBertConfig:
    preset = dict(PRESETS[args.preset])
    image_size = args.image_size or preset.pop("image_size")
    preset.pop("image_size", None)
    answers = [f"answer{i}" for i in range(args.answers)]
    return ClipBertConfig.from_preset("clipbert-base", image_size=image_size, answer_list=answers, **preset)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _batch(config: ClipBertConfig, args: argparse.Namespace, clips: int, frames: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    size = config.image_size
    input_ids = torch.randint(1000, config.text_config.vocab_size, (args.batch_size, args.text_length), generator=gen)
    input_ids[:, 0] = 101  # [CLS]
    batch = dict(pixel_values=torch.randn(args.batch_size, clips, frames, 3, size, size, generator=gen),
                 input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                 labels=torch.randint(0, args.answers, (args.batch_size,), generator=gen))  # fmt: skip
    return {k: v.to(args.device) for k, v in batch.items()}


def _train_step(model, optimizer, batch) -> Callable[[], None]:
    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model(**batch).loss.backward()
        optimizer.step()

    return step


def _alternate(fns: dict[str, Callable[[], Any]], steps: int, device: str) -> dict[str, float]:
    """One untimed call of each, then ``steps`` timed rounds calling each in turn; medians in seconds."""
    for fn in fns.values():
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


def _layouts(args: argparse.Namespace) -> dict[str, tuple[int, int]]:
    layouts = {f"{n}x{t}": (n, t) for n, t in TRAIN_LAYOUTS}
    layouts["dense"] = (DENSE_SECONDS, args.dense_fps)
    return layouts


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cpu_peak_memory(args: argparse.Namespace, layout: tuple[int, int], queue) -> None:
    """Child process: build, run one warm-up training step (libraries, kernels and the optimizer state come to
    stay), then report the peak RSS over a second step minus the RSS before it (bytes), sampled every millisecond."""
    import threading

    torch.set_num_threads(args.threads or torch.get_num_threads())
    torch.manual_seed(0)
    config = build_config(args)
    model = ClipBertForVideoQuestionAnswering(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    step = _train_step(model, optimizer, _batch(config, args, *layout))
    step()
    before = _rss_bytes()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    step()
    done.set()
    sampler.join()
    queue.put(max(peak[0], _rss_bytes()) - before)


def measure_memory(args: argparse.Namespace) -> dict[str, float]:
    """Peak memory (MiB) of one training step per layout (see the module docstring for how)."""
    memory = {}
    if args.device == "cuda":
        torch.manual_seed(0)
        config = build_config(args)
        model = ClipBertForVideoQuestionAnswering(config).to(args.device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        for name, layout in _layouts(args).items():
            batch = _batch(config, args, *layout)
            _train_step(model, optimizer, batch)()  # the optimizer state exists from here on
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            _train_step(model, optimizer, batch)()
            torch.cuda.synchronize()
            memory[name] = (torch.cuda.max_memory_allocated() - before) / 2**20
            del batch
        return memory
    # glibc returns large blocks to the OS at once only with a fixed mmap threshold; the children inherit it.
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(1 << 16))
    context = multiprocessing.get_context("spawn")
    for name, layout in _layouts(args).items():
        queue = context.Queue()
        child = context.Process(target=_cpu_peak_memory, args=(args, layout, queue))
        child.start()
        memory[name] = queue.get() / 2**20
        child.join()
    return memory


def measure_training(args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(0)
    config = build_config(args)
    model = ClipBertForVideoQuestionAnswering(config).to(args.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    fns = {name: _train_step(model, optimizer, _batch(config, args, *layout))
           for name, layout in _layouts(args).items()}  # fmt: skip
    return _alternate(fns, args.steps, args.device)


def measure_inference(args: argparse.Namespace) -> dict[str, float]:
    torch.manual_seed(0)
    config = build_config(args)
    model = ClipBertForVideoQuestionAnswering(config).to(args.device).eval()
    fns = {}
    for clips in TEST_CLIPS:
        batch = _batch(config, args, clips, 2)
        batch.pop("labels")

        def forward(batch=batch) -> None:
            with torch.no_grad():
                model(**batch)

        fns[str(clips)] = forward
    return _alternate(fns, args.steps, args.device)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu-small")
    parser.add_argument("--image-size", type=int, default=None, help="L (default: 128 for cpu-small, 448 for base)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch-size", type=int, default=8, help="ClipBERT Fig. 5: 8")
    parser.add_argument("--text-length", type=int, default=20, help="ClipBERT §3: at most 20 tokens")
    parser.add_argument("--answers", type=int, default=1000, help="size of the QA answer MLP")
    parser.add_argument("--dense-fps", type=int, default=2, help="frames per second of the dense 8-second baseline")
    parser.add_argument("--steps", type=int, default=3, help="timed iterations (median)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    parser.add_argument("--skip-memory", action="store_true", help="time only")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.image_size is not None and args.image_size % 64:
        parser.error(f"--image-size {args.image_size} must be a multiple of 64 (ResNet stride 32, then the max-pool)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = build_config(args)
    vision, text = config.vision_config, config.text_config
    sizes = dict(preset=args.preset, image_size=config.image_size, visual_tokens=config.num_visual_tokens,
                 resnet_hidden_sizes=vision.hidden_sizes, resnet_depths=vision.depths,
                 bert_layers=text.num_hidden_layers, bert_hidden_size=text.hidden_size,
                 answers=args.answers)  # fmt: skip
    start = time.perf_counter()
    training = measure_training(args)
    inference = measure_inference(args)
    memory = {} if args.skip_memory else measure_memory(args)
    memory_method = ("torch.cuda.max_memory_allocated" if args.device == "cuda" else
                     "sampled peak-RSS growth over a training step, fresh process per layout")  # fmt: skip

    products = torch.tensor([n * t for n, t in TRAIN_LAYOUTS], dtype=torch.float64)
    num_clips = torch.tensor([n for n, _ in TRAIN_LAYOUTS], dtype=torch.float64)
    step_times = torch.tensor([training[f"{n}x{t}"] for n, t in TRAIN_LAYOUTS], dtype=torch.float64)
    design = torch.stack([torch.ones_like(products), num_clips, products], dim=1)
    fit = torch.linalg.lstsq(design, step_times[:, None]).solution.flatten()
    residual = float(((step_times - design @ fit) ** 2).sum())
    r2 = 1.0 - residual / float(((step_times - step_times.mean()) ** 2).sum())
    base = training["1x1"]
    per_frame = {f"{n}x{t}": training[f"{n}x{t}"] / (n * t) / base for n, t in TRAIN_LAYOUTS}
    memory_per_frame = ({f"{n}x{t}": memory[f"{n}x{t}"] / (n * t) / memory["1x1"] for n, t in TRAIN_LAYOUTS}
                        if memory else {})  # fmt: skip
    dense_speedup = training["dense"] / training["1x2"]
    clips = torch.tensor(TEST_CLIPS, dtype=torch.float64)
    times = torch.tensor([inference[str(n)] for n in TEST_CLIPS], dtype=torch.float64)
    inference_design = torch.stack([torch.ones_like(clips), clips], dim=1)
    inference_fit = torch.linalg.lstsq(inference_design, times[:, None]).solution.flatten()
    slope = float(inference_fit[1])
    inference_r2 = 1.0 - float(((times - inference_design @ inference_fit) ** 2).sum()) / float(
        ((times - times.mean()) ** 2).sum())

    print(f"ClipBERT {args.preset}: L={config.image_size} ({config.grid_size}x{config.grid_size} visual tokens), "
          f"ResNet {vision.hidden_sizes} x {vision.depths}, BERT {text.num_hidden_layers} x {text.hidden_size}; "
          f"batch {args.batch_size}, {args.device}, {torch.get_num_threads()} threads, "
          f"median of {args.steps}")  # fmt: skip
    print(f"\ntraining step (forward + backward + AdamW), ClipBERT Fig. 5; memory: {memory_method}")
    print(f"  {'N x T':<8}{'seconds':>9}{'time/(N*T), 1x1 = 1':>22}{'MiB':>9}{'MiB/(N*T), 1x1 = 1':>21}")
    for n, t in TRAIN_LAYOUTS:
        name = f"{n}x{t}"
        mem = f"{memory[name]:>9.0f}{memory_per_frame[name]:>21.2f}" if memory else ""
        print(f"  {name:<8}{training[name]:>9.3f}{per_frame[name]:>22.2f}{mem}")
    print(f"  linear fit: {float(fit[0]):.3f} s + {float(fit[1]):.3f} s x N_train (BERT per clip) "
          f"+ {float(fit[2]):.3f} s x N_train*T (CNN per frame), R^2 = {r2:.3f} (need >= {MIN_R2})")  # fmt: skip
    dense_mem = f", {memory['dense']:.0f} MiB" if memory else ""
    print(f"\ndense baseline: {DENSE_SECONDS} s x {args.dense_fps} fps = {DENSE_SECONDS * args.dense_fps} frames "
          f"({DENSE_SECONDS} clips of {args.dense_fps}): {training['dense']:.3f} s{dense_mem}; sparse 1x2 "
          f"{training['1x2']:.3f} s -> speed-up {dense_speedup:.2f}x (need >= {MIN_DENSE_SPEEDUP}x)")  # fmt: skip
    print("\ninference (no_grad), T = 2: " + ", ".join(f"N_test={n} {inference[str(n)]:.3f} s" for n in TEST_CLIPS)
          + f"; linear fit {float(inference_fit[0]):.3f} s + {slope:.3f} s x N_test, R^2 = {inference_r2:.3f} "
          f"(need >= {MIN_INFERENCE_R2})")  # fmt: skip

    checks = {
        "training_close_to_linear": r2 >= MIN_R2 and max(per_frame.values()) <= MAX_PER_FRAME,
        "dense_speedup": dense_speedup >= MIN_DENSE_SPEEDUP,
        "inference_linear": inference_r2 >= MIN_INFERENCE_R2 and slope > 0,
    }
    ok = all(checks.values())
    print(f"\n{', '.join(f'{k}={v}' for k, v in checks.items())} ({time.perf_counter() - start:.0f} s)")
    if args.json:
        record = dict(settings=vars(args), sizes=sizes, training_seconds=training, training_per_frame=per_frame,
                      memory_mib=memory, memory_per_frame=memory_per_frame, memory_method=memory_method,
                      training_linear_fit=dict(intercept_s=float(fit[0]), per_clip_s=float(fit[1]),
                                              per_frame_s=float(fit[2]), r2=r2),
                      dense_speedup=dense_speedup, inference_seconds=inference, inference_seconds_per_clip=slope,
                      inference_r2=inference_r2, checks=checks, requirements_met=ok,
                      load_average=list(os.getloadavg()))  # fmt: skip
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=2)
    print("requirements met" if ok else "REQUIREMENT NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
