"""The built wheel carries what an installed user needs beyond the Python modules: the model-card sources (so
`hf-videolang push` renders cards without a source checkout) and the `evaluate` metric module."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                             "--wheel-dir", str(out), str(ROOT)],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    if result.returncode != 0 and "No module named" in result.stderr:
        pytest.skip(f"cannot build a wheel here: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr[-3000:]
    (built,) = out.glob("hf_videolang-*.whl")
    return built


def test_wheel_ships_every_card_source_and_the_metric_module(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = sorted(p.name for p in (ROOT / "model_cards").iterdir() if p.suffix in (".md", ".yaml"))
    assert sources and {f"hf_videolang/model_cards/{name}" for name in sources} <= names
    assert "hf_videolang/evaluation/evaluate_metrics/video_text_retrieval/video_text_retrieval.py" in names


def test_installed_package_renders_cards_from_its_own_data(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("from hf_videolang.hub.model_card import default_cards_dir, render_model_card; "
            "print(default_cards_dir()); print(render_model_card('umt-b16').data.pipeline_tag)")  # fmt: skip
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    cards_dir, pipeline_tag = result.stdout.split()
    assert Path(cards_dir) == site / "hf_videolang" / "model_cards"
    assert pipeline_tag == "visual-question-answering"
