import pytest
import torch

from hf_videolang.layers import pool_tokens


def test_cls_and_masked_mean_pooling():
    states = torch.arange(24, dtype=torch.float32).view(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(pool_tokens(states, mask, "cls"), states[:, 0])
    expected = torch.stack([states[0, :2].mean(0), states[1].mean(0)])  # padding of row 0 left out
    torch.testing.assert_close(pool_tokens(states, mask, "mean"), expected)
    torch.testing.assert_close(pool_tokens(states, None, "mean"), states.mean(1))
    empty = pool_tokens(states, torch.zeros(2, 3, dtype=torch.long), "mean")
    assert torch.equal(empty, torch.zeros(2, 4))  # no token: zeros, not NaN
    with pytest.raises(ValueError, match="'cls' or 'mean'"):
        pool_tokens(states, mask, "max")
