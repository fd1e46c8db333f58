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


def _one_line_errors(command: str):
    """Report the expected failures of ``command`` as one line on stderr (exit code 2) instead of a traceback."""
    import functools

    def decorate(func):
        @functools.wraps(func)
        def wrapper(args: argparse.Namespace) -> int:
            from huggingface_hub.errors import HfHubHTTPError

            try:
                return func(args)
            except (ValueError, OSError, KeyError, HfHubHTTPError) as error:
                message = " ".join(str(error).split()) or type(error).__name__
                print(f"hf-videolang {command}: error: {message}", file=sys.stderr)
                return 2

        return wrapper

    return decorate


@_one_line_errors("push")
def _push(args: argparse.Namespace) -> int:
    from .hub.push import push_to_hub

    record = push_to_hub(args.folder, args.repo_id, card=args.card, results=args.results, private=args.private,
                         revision=args.revision, record_dir=args.record_dir)  # fmt: skip
    print(f"pushed {args.folder} to {record['repo_id']} at {record['endpoint']}: {record['commit_url']}")
    print(f"record: {record['record_path']}")
    return 0


@_one_line_errors("convert")
def _convert(args: argparse.Namespace) -> int:
    from .hub.convert import convert_and_push

    out = convert_and_push(args.method, args.checkpoint, kind=args.kind, preset=args.preset, config=args.config,
                           frames=args.frames, allow_pickle=args.allow_pickle, output=args.output, repo_id=args.push,
                           card=args.card, record_dir=args.record_dir, private=args.private)  # fmt: skip
    if out["output"]:
        print(f"saved {out['model_class']} with its remote code to {out['output']}")
    if out["record"]:
        record = out["record"]
        print(f"pushed {out['model_class']} to {record['repo_id']} at {record['endpoint']}: {record['commit_url']}")
        print(f"record: {record['record_path']}")
    return 0


def _add_push_parser(sub) -> None:
    push = sub.add_parser("push", help="upload a saved model folder, its code and its card to the Hub ($HF_ENDPOINT)")
    push.add_argument("folder", help="folder written by save_pretrained / save_with_remote_code")
    push.add_argument("--repo-id", required=True, help="ORG/NAME")
    push.add_argument("--card", default=None, help="card source (e.g. umt-b16) rendered when the folder has no README")
    push.add_argument("--results", default=None,
                      help="the run's results.json (default: the one in the folder or its parent)")  # fmt: skip
    push.add_argument("--private", action="store_true", help="create the repository as private")
    push.add_argument("--revision", default=None, help="branch to push to (default: main)")
    push.add_argument("--record-dir", default="hub_uploads", help="where the JSON record of the push goes")
    push.set_defaults(func=_push)


def _add_convert_parser(sub) -> None:
    from .hub.convert import CONVERTERS

    convert = sub.add_parser("convert", help="convert an authors' checkpoint, save it with its code, optionally push")
    convert.add_argument("method", choices=sorted(CONVERTERS), help="which method's checkpoint")
    convert.add_argument("--checkpoint", required=True, help="the authors' .pth / .bin / .safetensors file")
    convert.add_argument("--kind", default=None,
                         choices=("single", "multi", "qa", "classification", "pretraining", "retrieval"),
                         help="UMT: single (stage 1), multi (stage 2 or fine-tuned retrieval, the default), qa "
                              "(fine-tuned QA) or classification (fine-tuned classifier); ClipBERT: pretraining, "
                              "qa (the default) or retrieval")  # fmt: skip
    convert.add_argument("--preset", default=None,
                         help="config preset, also the card source (umt-b16 / umt-l16; clipbert-base)")  # fmt: skip
    convert.add_argument("--config", default=None, help="a config folder / JSON to use instead of --preset")
    convert.add_argument("--frames", type=int, default=None, help="frames of the converted model (default: preset)")
    convert.add_argument("--output", default=None, help="folder to save to (default: a temporary one, with --push)")
    convert.add_argument("--push", default=None, metavar="ORG/NAME", help="push the converted folder to this repo")
    convert.add_argument("--card", default=None, help="card source for the push (default: --preset)")
    convert.add_argument("--private", action="store_true", help="create the repository as private")
    convert.add_argument("--record-dir", default="hub_uploads", help="where the JSON record of the push goes")
    convert.add_argument(
        "--allow-pickle", action="store_true", help="torch.load(weights_only=False): trusted files only"
    )
    convert.set_defaults(func=_convert)


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

    _add_push_parser(sub)
    _add_convert_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
