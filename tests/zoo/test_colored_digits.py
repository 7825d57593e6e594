"""Coloured digits: the colour shortcut is where it should be, and a CNN learns it."""

from __future__ import annotations

import pytest
import torch

import neuronshapley as ns
from neuronshapley.zoo.colored_digits import (
    MAJORITY,
    MINORITY,
    PALETTE,
    ColoredDigitsCNN,
    colorize,
    fit_classifier,
    load_colored_digits,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    return load_colored_digits(seed=0)


def _colour_index(x: torch.Tensor) -> torch.Tensor:
    """Palette index of each image's colour (the colour of its brightest pixel)."""
    flat = x.flatten(2)  # (N, 3, 64)
    brightest = flat.sum(1).argmax(-1)
    rgb = flat[torch.arange(len(x)), :, brightest]
    rgb = rgb / rgb.max(-1, keepdim=True).values
    return torch.cdist(rgb, PALETTE).argmin(-1)


def test_shapes_splits_and_skew(data) -> None:
    assert data.train.x.shape[1:] == (3, 8, 8)
    assert len(data.train) + len(data.val) // 2 + len(data.test) // 2 == 1797
    share = float((data.train.group == MAJORITY).double().mean())
    assert 0.92 < share < 0.98
    for split in (data.val, data.test):
        n = len(split) // 2
        assert (split.group[:n] == MAJORITY).all() and (split.group[n:] == MINORITY).all()
        assert torch.equal(split.y[:n], split.y[n:])  # the same digits in both groups
        grey_a, grey_b = split.x[:n].amax(1), split.x[n:].amax(1)
        assert torch.allclose(grey_a, grey_b)  # same strokes, different colours
    assert data.val.x.min() >= 0 and data.val.x.max() <= 1


def test_colour_is_the_label_only_for_the_majority(data) -> None:
    colours = _colour_index(data.train.x)
    maj = data.train.group == MAJORITY
    assert torch.equal(colours[maj], data.train.y[maj])
    agree = float((colours[~maj] == data.train.y[~maj]).double().mean())
    assert agree < 0.4  # random colours: about 1 in 10 match the label by chance
    n = len(data.test) // 2
    test_colours = _colour_index(data.test.x)
    assert torch.equal(test_colours[:n], data.test.y[:n])


def test_same_seed_same_data_and_colorize_checks() -> None:
    a, b = load_colored_digits(seed=3), load_colored_digits(seed=3)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.group, b.test.group)
    with pytest.raises(ValueError):
        colorize(torch.zeros(2, 3, 8, 8), torch.zeros(2))
    with pytest.raises(ValueError):
        load_colored_digits(majority_fraction=1.5)
    assert colorize(torch.ones(1, 1, 2, 2), torch.tensor([0])).shape == (1, 3, 2, 2)


def test_cnn_players_and_learned_shortcut(data) -> None:
    model = ColoredDigitsCNN(channels=(8, 8, 8), hidden=16)
    players = ns.discover_players(model)
    assert [ly.name for ly in players.layers] == ["features.0", "features.2", "features.5",
                                                  "classifier.1"]
    fit_classifier(model, data.train.x, data.train.y, epochs=6, seed=0)
    assert not model.training
    with torch.no_grad():
        pred = model(data.test.x).argmax(-1)
    correct = (pred == data.test.y).double()
    maj = float(correct[data.test.group == MAJORITY].mean())
    mino = float(correct[data.test.group == MINORITY].mean())
    assert maj > 0.9 and maj - mino > 0.15, (maj, mino)  # the bias the benchmark is built for
