"""Repair: the repaired module reproduces the game's numbers and saves/loads as plain PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_cnn, tiny_mlp
from torch import nn

import neuronshapley as ns
from neuronshapley.network.repair import (
    UnitReplacement,
    keep_mask,
    load_repaired,
    removed_units,
    repair,
    save_repaired,
)

torch.set_num_threads(1)

REMOVE_CNN = ["0:1", "2:0", "2:3"]


def _game_output(game: ns.ModelGame, mask: np.ndarray) -> torch.Tensor:
    return game.ablator.forward(game.inputs, torch.as_tensor(mask[None]))[0]


@pytest.mark.parametrize("replacement", ["mean", "channel", "zero"])
def test_repaired_cnn_equals_game_evaluation(image_data, replacement: str) -> None:
    x, y = image_data
    model = tiny_cnn()
    game = ns.ModelGame(model, x, y, replacement=replacement)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    repaired = repair(model, game, REMOVE_CNN)
    mask = keep_mask(game.players_set, REMOVE_CNN)
    out = repaired(game.inputs)
    assert torch.equal(out, _game_output(game, mask))  # bit for bit
    metric_value = (out.argmax(-1) == y).double().mean().item()
    assert metric_value == game(mask[None])[0]
    for k, v in model.state_dict().items():  # the original is untouched
        assert torch.equal(v, before[k])
    assert not torch.equal(out, model(game.inputs))


def test_mode_choice_weights_vs_wrapper(image_data) -> None:
    x, y = image_data
    mean_game = ns.ModelGame(tiny_cnn(), x, y, replacement="mean")
    wrapped = repair(mean_game.model, mean_game, REMOVE_CNN)
    assert isinstance(wrapped[0], UnitReplacement) and isinstance(wrapped[2], UnitReplacement)
    chan_game = ns.ModelGame(tiny_cnn(), x, y, replacement="channel")
    edited = repair(chan_game.model, chan_game, REMOVE_CNN)
    assert isinstance(edited[0], nn.Conv2d)  # same architecture, weights edited
    assert torch.all(edited[0].weight[1] == 0)
    assert edited[0].bias[1] == chan_game.ablator.reference["0"].flatten()[1]
    with pytest.raises(ValueError, match="cannot be folded"):
        repair(mean_game.model, mean_game, REMOVE_CNN, mode="weights")
    forced = repair(chan_game.model, chan_game, REMOVE_CNN, mode="wrap")
    assert isinstance(forced[0], UnitReplacement)
    mask = keep_mask(chan_game.players_set, REMOVE_CNN)
    assert torch.equal(forced(chan_game.inputs), edited(chan_game.inputs))
    assert torch.equal(edited(chan_game.inputs), _game_output(chan_game, mask))


def test_mlp_repair_is_a_weight_edit_loadable_into_the_original_class(tabular_data,
                                                                      tmp_path) -> None:
    x, y = tabular_data
    model = tiny_mlp(hidden=6)
    game = ns.ModelGame(model, x, y)  # Linear units: per-unit mean = one constant
    repaired = repair(model, game, [0, 4])
    assert isinstance(repaired[0], nn.Linear)
    mask = keep_mask(game.players_set, [0, 4])
    assert torch.equal(repaired(x), _game_output(game, mask))
    path = save_repaired(repaired, tmp_path / "mlp.pt", {"removed": ["0:0", "0:4"]})
    fresh = tiny_mlp(seed=7, hidden=6)
    fresh.load_state_dict(torch.load(path, weights_only=True))  # plain PyTorch
    assert torch.equal(fresh(x), repaired(x))
    assert (tmp_path / "mlp.json").is_file()


def test_wrapped_model_round_trips_through_state_dict(image_data, tmp_path) -> None:
    x, y = image_data
    game = ns.ModelGame(tiny_cnn(), x, y)
    repaired = repair(game.model, game, REMOVE_CNN)
    path = save_repaired(repaired, tmp_path / "cnn.pt")
    loaded = load_repaired(tiny_cnn(seed=3), path)
    assert isinstance(loaded[0], UnitReplacement)
    a = loaded.to(memory_format=torch.channels_last)(game.inputs)
    assert torch.equal(a, repaired(game.inputs))
    # a contiguous-format copy agrees up to float rounding of the conv kernels
    assert torch.allclose(load_repaired(tiny_cnn(seed=3), path)(x), repaired(x), atol=1e-5)
    whole = tmp_path / "whole.pt"
    torch.save(repaired, whole)  # the whole module pickles too (weights_only=False to load)
    assert torch.equal(torch.load(whole, weights_only=False)(game.inputs), a)


def test_repair_twice_accumulates_and_accepts_player_set(image_data) -> None:
    x, y = image_data
    game = ns.ModelGame(tiny_cnn(), x, y)
    once = repair(repair(game.model, game, ["2:0"]), game, ["2:3", "0:1"])
    both = repair(game.model, game, REMOVE_CNN)
    assert torch.equal(once(game.inputs), both(game.inputs))
    via_set = repair(game.model, game.players_set, REMOVE_CNN, reference=dict(
        game.ablator.reference))
    assert torch.equal(via_set(game.inputs), both(game.inputs))
    via_inputs = repair(game.model, game.players_set, REMOVE_CNN, reference=game.inputs)
    assert torch.allclose(via_inputs(game.inputs), both(game.inputs), atol=1e-6)


def test_bad_inputs() -> None:
    model = tiny_mlp()
    players = ns.discover_players(model)
    with pytest.raises(ns.PlayerError):
        keep_mask(players, ["0:99"])
    with pytest.raises(ns.PlayerError):
        keep_mask(players, [999])
    with pytest.raises(ValueError, match="reference"):
        repair(model, players, ["0:1"])
    with pytest.raises(ValueError, match="mode"):
        repair(model, players, ["0:1"], reference={}, mode="fold")
    with pytest.raises(TypeError):
        repair(model, "net.0", ["0:1"])
    assert removed_units(players, keep_mask(players, ["0:2", 3])) == ["0:2", "0:3"]
