"""Top examples and feature visualisation for conv, linear and attention-head units."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import neuronshapley as ns
from neuronshapley.report.visualize import (
    feature_visualization,
    input_layout,
    layer_activations,
    unit_figures,
)
from neuronshapley.zoo.architectures import Conv1dNet, TabularMLP, TinyTransformer

torch.set_num_threads(1)


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(5, 2)).eval()


def test_layouts() -> None:
    assert input_layout(_cnn(), torch.zeros(3, 8, 8)).kind == "image"
    assert input_layout(Conv1dNet(), torch.zeros(1, 40)).kind == "signal"
    assert input_layout(TinyTransformer(), torch.zeros(8, 8)).kind == "sequence"
    assert input_layout(TabularMLP(), torch.zeros(13)).kind == "vector"


def test_feature_visualization_excites_the_unit() -> None:
    model = _cnn()
    x = torch.rand(64, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    layer = ns.discover_players(model).layers[1]
    acts = layer_activations(model, layer, x)
    assert acts.shape == (64, 5)
    img, act = feature_visualization(model, layer, 2, x, steps=48)
    assert img.shape == (3, 8, 8)
    assert float(x.min()) - 1e-3 <= float(img.min()) and float(img.max()) <= float(x.max()) + 1e-3
    assert act > float(acts[:, 2].max())  # beats every data example


def test_heads_sequences_signals_and_vectors(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cases = [
        (TinyTransformer().eval(), torch.randn(20, 8, 8), "encoder.layers.0.self_attn"),
        (Conv1dNet().eval(), torch.randn(20, 1, 40), "features.2"),
        (TabularMLP().eval(), torch.randn(20, 13), "net.3"),
    ]
    for model, x, name in cases:
        players = ns.discover_players(model)
        layer = next(ly for ly in players.layers if ly.name == name)
        acts = layer_activations(model, layer, x)
        assert acts.shape == (20, layer.n_units)
        img, act = feature_visualization(model, layer, 0, x, steps=6)
        assert img.shape == x.shape[1:] and act == act  # finite
        rows = [{"rank": 1, "player": f"{name}:0", "value": 0.1}]
        made = unit_figures(model, players, rows, x, torch.zeros(20, dtype=torch.long),
                            tmp_path / name, n_examples=3, steps=4)
        assert (tmp_path / name / made[0].examples).is_file()
        assert made[0].featvis and (tmp_path / name / made[0].featvis).is_file()
    heads = layer_activations(cases[0][0], ns.discover_players(cases[0][0]).layers[1],
                              cases[0][1])
    assert bool((heads >= 0).all())  # head activation: mean norm of its output


def test_integer_inputs_get_no_feature_visualization(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 5), nn.ReLU(),
                          nn.Linear(5, 2)).eval()
    players = ns.discover_players(model)
    x = torch.randint(0, 10, (15, 3))
    made = unit_figures(model, players, [{"rank": 1, "player": "2:0", "value": 0.0}], x, None,
                        tmp_path, n_examples=2)
    assert made[0].featvis is None and "integer" in made[0].note
