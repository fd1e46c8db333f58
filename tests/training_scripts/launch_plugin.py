"""A pytest plugin that reruns the training-script tests with every script launched in 2 processes (a manual check,
minutes long; the test suite's own multi-process tests are ``test_multiprocess_scripts.py``).

    HF_VIDEOLANG_LAUNCHER=accelerate python -m pytest -p launch_plugin tests/training_scripts \\
        tests/models/smaug/test_training_scripts_smaug.py            # or HF_VIDEOLANG_LAUNCHER=torchrun

(with ``tests/training_scripts`` and ``tests/training`` on ``PYTHONPATH``). The script tests call
``_script(name).main(argv)``; here ``main`` runs ``accelerate launch --num_processes 2 --cpu`` (or
``torchrun --nproc_per_node 2``) on the script with ``argv``, fails on a non-zero exit or a deprecation warning in
its stderr, and returns the ``metrics.json`` it saved, so the tests' assertions run on a 2-process result. Tests
that expect ``main`` to raise fail here (the error is in the child process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from multiprocess_setup import accelerate_launch, child_env, torchrun, warning_lines  # noqa: E402

SCRIPTS = Path(__file__).resolve().parents[2] / "training_scripts"
LOG = Path(os.environ.get("HF_VIDEOLANG_LAUNCH_LOG", "launch_log.jsonl"))


class LaunchedScript:
    def __init__(self, module, launcher: str) -> None:
        self._module = module
        self._launcher = launcher

    def __getattr__(self, name):
        return getattr(self._module, name)

    def main(self, argv):
        argv = [str(item) for item in argv]
        if len(argv) == 1 and argv[0].endswith(".json"):  # one arguments file: add the log level to a copy
            arguments = {**json.loads(Path(argv[0]).read_text()), "log_level": "info"}
            output_dir = arguments["output_dir"]
            argv = [str(Path(argv[0]).with_suffix(".launched.json"))]
            Path(argv[0]).write_text(json.dumps(arguments))
        else:
            output_dir = argv[argv.index("--output_dir") + 1]
            argv = [*argv, "--log_level", "info"]
        script = SCRIPTS / f"{self._module.__name__}.py"
        build = accelerate_launch if self._launcher == "accelerate" else torchrun
        result = subprocess.run(build(2, script, *argv), env=child_env(), capture_output=True, text=True,
                                timeout=900)
        warnings = warning_lines(result.stderr)
        with LOG.open("a") as log:
            log.write(json.dumps({"launcher": self._launcher, "script": script.name, "rc": result.returncode,
                                  "deprecations": warnings, "batch_lines": [
                                      line.strip() for line in result.stderr.splitlines()
                                      if "Total train batch size" in line or "Instantaneous batch size" in line]})
                      + "\n")  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"{script.name} under {self._launcher} failed:\n{result.stderr[-6000:]}")
        assert warnings == [], warnings
        return json.loads((Path(output_dir) / "metrics.json").read_text())


@pytest.fixture(autouse=True, scope="module")
def _launch_scripts(request):
    # Module scope: the script tests' module-scoped fixtures (earlier pipeline stages) run scripts too.
    launcher = os.environ.get("HF_VIDEOLANG_LAUNCHER", "accelerate")
    module = request.module
    original = getattr(module, "_script", None)
    if original is None:
        yield
        return
    module._script = lambda *names: LaunchedScript(original(*names), launcher)
    yield
    module._script = original
