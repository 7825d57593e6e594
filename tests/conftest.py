"""Shared fixtures: tiny networks and data, one torch thread (the machine is shared)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

torch.set_num_threads(1)


def tiny_cnn(seed: int = 0) -> nn.Module:
    """Conv(1->3) ReLU Conv(3->4) ReLU Flatten Linear(4*4*4 -> 3): 7 conv players."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 4, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 3),
    ).eval()


def tiny_mlp(seed: int = 0, hidden: int = 6) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, hidden), nn.ReLU(), nn.Linear(hidden, 3)).eval()


@pytest.fixture
def image_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(24, 1, 6, 6, generator=g), torch.randint(0, 3, (24,), generator=g)


@pytest.fixture
def tabular_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.randn(40, 5, generator=g), torch.randint(0, 3, (40,), generator=g)


@pytest.fixture(scope="session")
def digits_cache(tmp_path_factory: pytest.TempPathFactory):
    """A model cache folder holding the digits CNN, trained once per test session."""
    from neuronshapley.zoo.digits import pretrained_digits_cnn

    cache = tmp_path_factory.mktemp("digits_cache")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pretrained_digits_cnn(cache_dir=cache, seed=0)
    finally:
        torch.set_num_threads(old)
    return cache

