"""Splitting a network before its first player layer: the halves compute the whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neuronshapley.network.players import discover_players
from neuronshapley.network.prefix import split_at_players
from neuronshapley.zoo.architectures import InceptionCNN, ResidualCNN
from neuronshapley.zoo.efficientnet import EfficientNetLite0

torch.set_num_threads(1)


def _layers(model: nn.Module, patterns: list[str] | None = None) -> list[str]:
    return [ly.name for ly in discover_players(model, patterns).layers]


@pytest.mark.parametrize("make, skip, cut_count", [
    (ResidualCNN, 1, 1),      # the block's input feeds its conv and its skip addition: one cut
    (InceptionCNN, 1, 2),     # branches: the stem's output and the pooling branch's input
])
def test_halves_equal_the_whole(make: type[nn.Module], skip: int, cut_count: int) -> None:
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(5, 1, 8, 8)
    split = split_at_players(model, _layers(model)[skip:], x)
    assert split is not None and len(split.cut) == cut_count
    with torch.inference_mode():
        assert torch.equal(split.suffix(*split.run_prefix(x)), model(x))


def test_efficientnet_last_stage_split_runs_only_the_tail() -> None:
    torch.manual_seed(0)
    model = EfficientNetLite0(num_classes=10).eval()
    x = torch.randn(2, 3, 96, 96)
    layers = _layers(model, ["_blocks.15.*", "_conv_head"])
    split = split_at_players(model, layers, x)
    assert split is not None
    suffix_convs = {n for n, m in split.suffix.named_modules() if isinstance(m, nn.Conv2d)}
    assert suffix_convs == set(layers)  # the stem and blocks 0-14 are in the prefix only
    with torch.inference_mode():
        assert torch.equal(split.suffix(*split.run_prefix(x)), model(x))


def test_models_that_cannot_be_split() -> None:
    class ReadsShape(nn.Module):  # a cut value that is a size, not a batch-first tensor
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.b(self.a(x)) * x.shape[0]

    class DataDependent(nn.Module):  # control flow on values: not traceable
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.a(x)
            return self.b(h if h.sum() > 0 else -h)

    x = torch.randn(3, 4)
    first = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    assert split_at_players(first, ["0"], x) is None  # the first player reads the input
    assert split_at_players(DataDependent(), ["b"], x) is None
    assert split_at_players(ReadsShape(), ["b"], x) is None


def _games(model: nn.Module, x: torch.Tensor, y: torch.Tensor, players: list[str] | None
           ) -> tuple:
    import neuronshapley as ns

    cached = ns.ModelGame(model, x, y, metric="log_prob", players=players)
    whole = ns.ModelGame(model, x, y, metric="log_prob", players=players, prefix_cache=False)
    return cached, whole


@pytest.mark.parametrize("make, players", [
    (ResidualCNN, ["block*"]),                          # residual: blocks after the stem
    (InceptionCNN, ["mixed.*", "reduce"]),              # branching: a concatenation
    (lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU(),
                           nn.Flatten(), nn.Linear(6 * 4 * 4, 10)), ["2"]),  # sequential
])
def test_cached_prefix_gives_the_same_values(make, players: list[str]) -> None:
    torch.manual_seed(1)
    model = make().eval()
    x, y = torch.randn(40, 1, 8, 8), torch.randint(0, 10, (40,))
    cached, whole = _games(model, x, y, players)
    assert cached.split is not None and whole.split is None
    masks = np.random.default_rng(0).random((25, cached.n_players)) < 0.6
    assert np.array_equal(cached(masks), whole(masks))


def test_cache_follows_edits_of_the_data_the_weights_and_the_players() -> None:
    torch.manual_seed(2)
    model = ResidualCNN().eval()
    x, y = torch.randn(30, 1, 8, 8), torch.randint(0, 10, (30,))
    cached, _ = _games(model, x, y, ["block2.*"])
    masks = np.random.default_rng(1).random((12, cached.n_players)) < 0.5
    before = cached(masks)
    cached.inputs.mul_(0.5)  # the evaluation data edited in place
    with torch.no_grad():  # a prefix weight edited in place, as load_state_dict does
        model.stem.weight.mul_(-1.0)
    after = cached(masks)
    assert not np.array_equal(before, after)
    # an uncached game on the edited model and data, with the reference means of the old one
    _, fresh = _games(model, cached.inputs.clone(), y, ["block2.*"])
    fresh.ablator.reference = cached.ablator.reference
    assert np.array_equal(after, fresh(masks))
    other, other_whole = _games(model, x, y, ["block1.*", "block2.*"])  # other players
    assert other.split is not None and other.split.cut != cached.split.cut
    m2 = np.random.default_rng(2).random((8, other.n_players)) < 0.5
    assert np.array_equal(other(m2), other_whole(m2))

