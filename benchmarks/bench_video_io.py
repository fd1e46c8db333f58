"""Benchmark: 8 uniformly sampled frames with ``read_frames`` vs decoding every frame.

Generates (once, cached in ``--workdir``) a 60 s 640x360 H.264 mp4 at 30 fps with a keyframe every 2 s, then times

- ``read_frames``: seek to the keyframe before each wanted frame (found in its timestamp index, built once per file
  from the packets and cached), decode forward to it, keep only wanted frames, GOPs in parallel threads;
- ``read_frames(cold index)``: the same with the index built again in every call (the first call on a file);
- ``read_frames(threads=1)``: one GOP after the other;
- ``transformers load_video(pyav)``: ``transformers.video_utils.load_video(backend="pyav")`` with the same indices
  (it imports without torchvision; it decodes every frame up to the last wanted one, with FFmpeg's default threads);
- ``read_frames(reseek=False)``: one seek, then decode forward to the last wanted frame (the ablation of reseeking);
- naive: decode every frame to RGB into a list, then index it (one decoder thread, as read_frames; and with
  FFmpeg's automatic threading, for reference).

Each method runs in a fresh process, so its peak memory is its own: the peak increase of the process RSS during its
first call (RSS rather than ``tracemalloc``, which does not see the frame buffers FFmpeg allocates). Then the best
and median wall time of ``--repeats`` calls. Every method must return the same pixels.

Run: ``python benchmarks/bench_video_io.py [--workdir DIR] [--repeats N] [--json PATH]``; exits 1 if the speed-up
over decoding everything or over transformers' ``load_video`` is below 5x, or the methods disagree.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import av
import numpy as np

from hf_videolang.video.io import clear_index_cache, read_frames, read_video_metadata
from hf_videolang.video.sampling import sample_uniform

WIDTH, HEIGHT, FPS, SECONDS, KEYFRAME_SECONDS = 640, 360, 30, 60, 2
NUM_SAMPLED = 8
MIN_SPEEDUP = 5.0
MIN_SPEEDUP_OVER_PEER = 5.0


# ---------------------------------------------------------------------------------------------------------- video


def _scene(t: int) -> np.ndarray:
    """Frame ``t``: a drifting colour gradient, a moving square and fine texture, so frames are not trivial to code."""
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    frame = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    frame[..., 0] = (xs + 3 * t) % 256
    frame[..., 1] = (ys + 2 * t) % 256
    frame[..., 2] = ((xs // 8 + ys // 8 + t) % 2) * 60 + 80
    x = (7 * t) % (WIDTH - 80)
    y = (3 * t) % (HEIGHT - 80)
    frame[y : y + 80, x : x + 80] = (250, 250, 40)
    return frame


def make_video(path: Path) -> Path:
    """Encode the benchmark video frame by frame (never holding all of it) with typical x264 settings."""
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        stream.codec_context.gop_size = KEYFRAME_SECONDS * FPS
        for t in range(SECONDS * FPS):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_scene(t), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.rename(path)  # only a complete file is ever cached
    return path


# -------------------------------------------------------------------------------------------------------- methods


def naive(path: str, indices: list[int], threads: int = 1) -> np.ndarray:
    """Decode every frame into a list, then index it.

    ``threads=1`` matches ``read_frames`` (one decoder thread, for fork safety), so the ratio measures the algorithm;
    ``threads=0`` (FFmpeg's automatic threading) is reported beside it.
    """
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = threads
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return np.stack([frames[i] for i in indices])


def naive_auto_threads(path: str, indices: list[int]) -> np.ndarray:
    return naive(path, indices, threads=0)


def seek_once(path: str, indices: list[int]) -> np.ndarray:
    return read_frames(path, indices, reseek=False)


def transformers_load_video(path: str, indices: list[int]) -> np.ndarray:
    """The peer users would pick: ``transformers.video_utils.load_video(backend="pyav")`` at the same indices."""
    from transformers.video_utils import load_video

    video, _ = load_video(path, backend="pyav", sample_indices_fn=lambda metadata, **kwargs: list(indices))
    return video


def read_frames_cold(path: str, indices: list[int]) -> np.ndarray:
    """Every call builds the timestamp index again (demuxing all 1800 packets), as the first call on a file does."""
    clear_index_cache()
    return read_frames(path, indices)


def read_frames_one_thread(path: str, indices: list[int]) -> np.ndarray:
    return read_frames(path, indices, threads=1)


METHODS = {
    "read_frames": read_frames,
    "read_frames(cold index)": read_frames_cold,
    "read_frames(threads=1)": read_frames_one_thread,
    "transformers load_video(pyav)": transformers_load_video,
    "read_frames(reseek=False)": seek_once,
    "naive": naive,
    "naive(auto threads)": naive_auto_threads,
}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:  # Linux; second field = resident pages
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_increase(function: Any, *args: Any) -> float:
    """MiB by which the process RSS grows during ``function(*args)``, its result still alive at the end.

    A thread samples RSS every millisecond (PyAV releases the GIL while decoding); ``ru_maxrss`` catches a peak the
    sampling misses once it rises above the process's earlier peak (imports).
    """
    baseline = _rss_bytes()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_bytes())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    result = function(*args)
    peak = max(peak, _rss_bytes())
    done.set()
    sampler.join()
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if maxrss_after > maxrss_before:
        peak = max(peak, maxrss_after)
    del result
    return (peak - baseline) / 2**20


def _measure(method: str, path: str, indices: list[int], repeats: int, queue: Any) -> None:
    """Child process: peak memory of a first call (nothing cached yet), then wall time of ``repeats`` calls."""
    function = METHODS[method]
    peak_mb = _peak_rss_increase(function, path, indices)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        frames = function(path, indices)
        times.append(time.perf_counter() - start)
    queue.put({
        "method": method,
        "best_s": min(times),
        "median_s": statistics.median(times),
        "peak_rss_increase_mb": peak_mb,
        "checksum": int(frames.astype(np.int64).sum()),
    })


def run_in_child(method: str, path: str, indices: list[int], repeats: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(method, path, indices, repeats, queue))
    process.start()
    result = queue.get(timeout=1800)
    process.join()
    return result


# ----------------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "hf_videolang_bench",
                        help="where the benchmark video is cached (created once)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per method (best is reported)")
    parser.add_argument("--json", type=Path, default=None, help="write the results to this JSON file")
    args = parser.parse_args(argv)

    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"bench_{WIDTH}x{HEIGHT}_{FPS}fps_{SECONDS}s_gop{KEYFRAME_SECONDS * FPS}.mp4"
    if not path.exists():
        print(f"encoding {path} (once) ...", flush=True)
        start = time.perf_counter()
        make_video(path)
        print(f"  done in {time.perf_counter() - start:.1f} s", flush=True)
    metadata = read_video_metadata(str(path))
    indices = sample_uniform(metadata.num_frames, NUM_SAMPLED)
    print(f"video: {metadata.num_frames} frames, {metadata.width}x{metadata.height} @ {metadata.fps:g} fps, "
          f"{path.stat().st_size / 2**20:.1f} MiB; indices {indices}")

    results = {method: run_in_child(method, str(path), indices, args.repeats) for method in METHODS}
    checksums = {result["checksum"] for result in results.values()}
    if len(checksums) != 1:
        print(f"ERROR: the methods returned different frames: {results}", file=sys.stderr)
        return 1

    print(f"\n{'method':<28}{'best (s)':>10}{'median (s)':>12}{'peak RSS increase (MiB)':>26}")
    for method, result in results.items():
        print(f"{method:<28}{result['best_s']:>10.3f}{result['median_s']:>12.3f}"
              f"{result['peak_rss_increase_mb']:>26.1f}")
    speedup = results["naive"]["best_s"] / results["read_frames"]["best_s"]
    frame_mb = metadata.width * metadata.height * 3 / 2**20
    print(f"\nspeed-up of read_frames over naive (same decoder threads): {speedup:.1f}x (required >= {MIN_SPEEDUP:g}x)")
    threaded = results["naive(auto threads)"]["best_s"] / results["read_frames"]["best_s"]
    print(f"speed-up of read_frames over naive with FFmpeg auto threading: {threaded:.1f}x")
    peer = results["transformers load_video(pyav)"]["best_s"] / results["read_frames"]["best_s"]
    print(f"speed-up of read_frames over transformers.video_utils.load_video(backend='pyav'): {peer:.1f}x "
          f"(required >= {MIN_SPEEDUP_OVER_PEER:g}x)")
    cold = results["transformers load_video(pyav)"]["best_s"] / results["read_frames(cold index)"]["best_s"]
    print(f"  with the index built in every call: {cold:.1f}x; one decoding thread: "
          f"{results['transformers load_video(pyav)']['best_s'] / results['read_frames(threads=1)']['best_s']:.1f}x")
    print(f"one RGB frame = {frame_mb:.2f} MiB; {NUM_SAMPLED} frames = {NUM_SAMPLED * frame_mb:.1f} MiB; "
          f"all {metadata.num_frames} frames = {metadata.num_frames * frame_mb:.0f} MiB")

    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "video": {"path": str(path), "num_frames": metadata.num_frames, "fps": metadata.fps,
                      "width": metadata.width, "height": metadata.height, "keyframe_interval": KEYFRAME_SECONDS * FPS},
            "indices": indices,
            "results": results,
            "speedup": speedup,
            "speedup_over_transformers_load_video": peer,
        }
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    return 0 if speedup >= MIN_SPEEDUP and peer >= MIN_SPEEDUP_OVER_PEER else 1


if __name__ == "__main__":
    sys.exit(main())
