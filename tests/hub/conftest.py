"""Fixtures of the Hub tests: a loopback Hub for the whole session and subprocesses that talk to it.

huggingface_hub reads ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and ``HF_HUB_DISABLE_XET`` when it is imported, and this
test process runs offline (tests/conftest.py). So everything that talks to the Hub runs in a fresh subprocess with
the environment of :func:`hub_env`; this process only starts the server and reads its state on disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
sys.path.insert(0, str(HERE))

from loopback_hub import LoopbackHub  # noqa: E402


@pytest.fixture(scope="session")
def loopback_hub(tmp_path_factory):
    """A loopback Hub on 127.0.0.1 (state in a session tmp folder), served from a thread for the whole session."""
    hub = LoopbackHub(tmp_path_factory.mktemp("loopback_hub")).start()
    yield hub
    hub.stop()


def hub_env(hub: LoopbackHub, home: Path, *, importable: bool = True) -> dict[str, str]:
    """Environment of a process that uses ``hub``: its endpoint, online, no Xet, a token, a fresh HF cache.

    ``importable=False`` drops this checkout from ``PYTHONPATH``; the process must still block the editable install
    itself (see ``check_hub_models.py``).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_")) and k != "PYTHONPATH"}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HUB_OFFLINE="0", HF_TOKEN="hf_loopback_token",
               HF_HOME=str(home / "hf_home"), HF_MODULES_CACHE=str(home / "hf_modules"), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false")  # fmt: skip
    if importable:
        env["PYTHONPATH"] = str(SRC)
    return env


def run_python(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def run_checks(hub: LoopbackHub, home: Path, spec: dict, *, importable: bool) -> dict:
    """Run ``check_hub_models.py`` on ``spec`` and return the JSON it prints."""
    spec_path = home / f"spec-{len(list(home.glob('spec-*')))}.json"
    spec_path.write_text(json.dumps(spec))
    result = run_python([str(HERE / "check_hub_models.py"), str(spec_path)], hub_env(hub, home, importable=importable),
                        cwd=home)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
