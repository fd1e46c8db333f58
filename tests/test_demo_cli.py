"""``hf-videolang demo --model NAME``: one registry picks the method's module, which exposes the same entry point;
the demo modules do not import each other."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

import hf_videolang.demos as demos
from hf_videolang.cli import build_parser, main

DEMOS_DIR = Path(demos.__file__).parent


def test_every_method_has_a_registered_demo_and_the_cli_offers_them_all():
    assert set(demos.DEMOS) == {"umt", "mac", "clipbert", "smaug", "evilm"}
    assert build_parser().parse_args(["demo", "--model", "smaug"]).model == "smaug"


@pytest.mark.parametrize("name", ["umt", "mac"])
def test_a_demo_module_exposes_run_and_its_default_output_dir(name):
    module = demos.load_demo(name)
    assert callable(module.run) and module.DEFAULT_OUTPUT_DIR.startswith("runs/demo")


def test_a_method_without_a_demo_module_gives_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setitem(demos.DEMOS, "evilm", "hf_videolang.demos.not_written_yet")
    with pytest.raises(ValueError, match=r"the evilm demo is not available yet .*available: umt, mac"):
        demos.load_demo("evilm")
    assert main(["demo", "--model", "evilm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hf-videolang demo: the evilm demo is not available yet") and "\n" not in err


def test_run_demo_passes_the_module_default_output_dir(monkeypatch):
    calls = []

    class FakeDemo:
        DEFAULT_OUTPUT_DIR = "runs/demo_fake"

        @staticmethod
        def run(output_dir, seed, num_videos):
            calls.append((output_dir, seed, num_videos))
            return {}

    monkeypatch.setattr(demos, "load_demo", lambda name: FakeDemo)
    assert main(["demo", "--model", "mac", "--seed", "3", "--num-videos", "12"]) == 0
    demos.run_demo("mac", output_dir="elsewhere")
    assert calls == [("runs/demo_fake", 3, 12), ("elsewhere", 0, None)]


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of the hf_videolang modules a demo file imports (relative imports resolved)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), "hf_videolang.demos") \
                if node.level else node.module  # fmt: skip
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted(DEMOS_DIR.glob("*.py")), ids=lambda p: p.name)
def test_demo_modules_import_only_common_pieces_never_another_method(path):
    method_modules = {f"hf_videolang.demos.{name}" for name in demos.DEMOS} - {f"hf_videolang.demos.{path.stem}"}
    assert not _imported_modules(path) & method_modules


def test_the_demos_moved_out_of_the_package_root_and_models():
    root = DEMOS_DIR.parent
    assert not (root / "demo.py").exists() and not (root / "demo_mac.py").exists()
    assert not (root / "models" / "clip_teacher").exists()
