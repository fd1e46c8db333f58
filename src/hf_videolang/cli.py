"""The ``hf-videolang`` command line."""

from __future__ import annotations

import argparse
import sys


def _make_corpus(args: argparse.Namespace) -> int:
    from .data.corpus import make_corpus

    paths = make_corpus(args.out, num_videos=args.num_videos, seed=args.seed, num_frames=args.num_frames,
                        size=args.size, fps=args.fps)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(output_dir=args.output_dir, model=args.model, num_videos=args.num_videos, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-videolang", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    corpus = sub.add_parser("make-corpus", help="write the built-in synthetic video-text corpus (mp4 + JSONL)")
    corpus.add_argument("--out", required=True, help="output folder")
    corpus.add_argument("--num-videos", type=int, default=300)
    corpus.add_argument("--seed", type=int, default=0)
    corpus.add_argument("--num-frames", type=int, default=32, help="frames per video")
    corpus.add_argument("--size", type=int, default=64, help="frame side in pixels")
    corpus.add_argument("--fps", type=int, default=8)
    corpus.set_defaults(func=_make_corpus)

    demo = sub.add_parser("demo", help="the main job: train and evaluate on the built-in corpus, offline")
    demo.add_argument("--model", default="umt", help="which method to run")
    demo.add_argument("--output-dir", default="runs/demo")
    demo.add_argument("--num-videos", type=int, default=None)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
