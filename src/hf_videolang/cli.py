"""The ``hf-videolang`` command line."""

from __future__ import annotations

import argparse
import sys

from .demos import DEMOS


def _make_corpus(args: argparse.Namespace) -> int:
    from .data.corpus import make_corpus

    paths = make_corpus(args.out, num_videos=args.num_videos, seed=args.seed, num_frames=args.num_frames,
                        size=args.size, fps=args.fps)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demos import load_demo

    try:
        module = load_demo(args.model)
    except ValueError as error:
        print(f"hf-videolang demo: {error}", file=sys.stderr)
        return 2
    module.run(output_dir=args.output_dir or module.DEFAULT_OUTPUT_DIR, seed=args.seed, num_videos=args.num_videos)
    return 0


def _push(args: argparse.Namespace) -> int:
    from .hub.push import push_to_hub

    record = push_to_hub(args.folder, args.repo_id, card=args.card, private=args.private, revision=args.revision,
                         record_dir=args.record_dir)  # fmt: skip
    print(f"pushed {args.folder} to {record['repo_id']}: {record['commit_url']}")
    print(f"record: {record['record_path']}")
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
    demo.add_argument("--model", default="umt", choices=tuple(DEMOS), help="which method to run")
    demo.add_argument("--output-dir", default=None, help="default: the method's (runs/demo for umt, runs/demo_<name>)")
    demo.add_argument("--num-videos", type=int, default=None)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)

    push = sub.add_parser("push", help="upload a saved model folder and its card to the Hub ($HF_ENDPOINT)")
    push.add_argument("folder", help="folder written by save_pretrained / save_with_remote_code")
    push.add_argument("--repo-id", required=True, help="ORG/NAME")
    push.add_argument("--card", default=None, help="card source (e.g. umt-b16) rendered when the folder has no README")
    push.add_argument("--private", action="store_true", help="create the repository as private")
    push.add_argument("--revision", default=None, help="branch to push to (default: main)")
    push.add_argument("--record-dir", default="hub_uploads", help="where the JSON record of the push goes")
    push.set_defaults(func=_push)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
