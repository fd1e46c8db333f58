"""Two ranks equal one rank: the first steps of a 2-process ``torchrun`` run of ``VideoTextTrainer`` (gloo, CPU) on
a global batch of 4 rows give the losses and gradients of a 1-process run on the same 4 rows.

What makes them equal: the sampler shards each global batch over the ranks in order; ``VideoTextCollator`` seeds
each row (not each batch), so every row gets the same frames, visual masks and text masks on any rank; video ids
are hashes, equal across ranks; VTC gathers the embeddings with their gradient; DDP averages the gradients.
The model runs in float64 so that float32 rounding of different batch shapes (measured: up to 2e-5 on a gradient
entry of 0.43 at step 2) does not hide a real difference.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from multiprocess_setup import child_env, torchrun, warning_lines, write_tiny_setup

SCRIPT = Path(__file__).resolve().parent / "ddp_first_steps.py"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_tokenizer):
    return write_tiny_setup(tmp_path_factory.mktemp("ddp_equivalence"), tiny_tokenizer)


def test_two_ranks_match_one_rank_on_the_same_global_batch(tiny, tmp_path):
    two = subprocess.run(torchrun(2, SCRIPT, str(tiny), str(tmp_path / "two.pt"), "4", "--float64"),
                         env=child_env(), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert two.returncode == 0, two.stderr[-4000:]
    assert warning_lines(two.stderr) == []
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from ddp_first_steps import main
    finally:
        sys.path.remove(str(SCRIPT.parent))
    main([str(tiny), str(tmp_path / "one.pt"), "4", "--float64"])

    one_run = torch.load(tmp_path / "one.pt", weights_only=False)
    two_run = torch.load(tmp_path / "two.pt", weights_only=False)
    assert (one_run["world_size"], two_run["world_size"]) == (1, 2)
    assert len(one_run["steps"]) == len(two_run["steps"]) == 3
    for step, (one, two) in enumerate(zip(one_run["steps"], two_run["steps"])):
        # The same rows, frames masks and text masks in the global batch.
        assert one["video_ids"].tolist() == two["video_ids"].tolist(), step
        assert len(set(one["video_ids"].tolist())) > 1, step
        assert torch.equal(one["bool_masked_pos"], two["bool_masked_pos"]), step
        assert one["loss"] == pytest.approx(two["loss"], abs=1e-10), step
        assert one["grads"].keys() == two["grads"].keys() and len(one["grads"]) > 20
        for name, grad in one["grads"].items():
            torch.testing.assert_close(two["grads"][name], grad, atol=1e-10, rtol=0, msg=f"step {step}: {name}")
    # The steps train: SGD moves the model, so later steps are not copies of the first.
    assert one_run["steps"][0]["loss"] != one_run["steps"][1]["loss"]
