"""Baseline rankings: each against a direct computation; conductance against completeness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_cnn, tiny_mlp
from torch import nn

from neuronshapley import ModelGame, ShapleyResult
from neuronshapley.evaluation import baselines as bl

torch.set_num_threads(1)


def _check_result(res: ShapleyResult, method: str, n: int, samples: int, evaluations: int):
    assert isinstance(res, ShapleyResult)
    assert res.method == method
    assert res.values.shape == (n,)
    np.testing.assert_array_equal(res.ci_low, res.values)
    np.testing.assert_array_equal(res.ci_high, res.values)
    assert (res.samples == samples).all()
    assert res.evaluations == evaluations


def test_leave_one_out_on_a_closed_form_game() -> None:
    w = np.array([3.0, -1.0, 0.5, 2.0])

    def game(masks: np.ndarray) -> np.ndarray:
        return masks.astype(float) @ w + 10.0 * masks.all(1)  # additive + unanimity bonus

    res = bl.leave_one_out(game, n_players=4)
    _check_result(res, "loo", 4, samples=1, evaluations=5)
    np.testing.assert_allclose(res.values, w + 10.0)
    assert res.players == ["p0", "p1", "p2", "p3"]


def test_leave_one_out_on_a_model_game_uses_all_examples(image_data) -> None:
    x, y = image_data
    game = ModelGame(tiny_cnn(), x, y, metric="log_prob", walk_sample=8)
    game.new_walk(np.random.default_rng(0))  # a walk batch is drawn; LOO must ignore it
    res = bl.rank_units(game, "loo")
    full = ModelGame(tiny_cnn(), x, y, metric="log_prob")
    n = full.n_players
    v_full = full(np.ones((1, n), dtype=bool))[0]
    expected = [v_full - full(~np.eye(n, dtype=bool)[i : i + 1])[0] for i in range(n)]
    np.testing.assert_allclose(res.values, expected, rtol=1e-9, atol=1e-12)
    assert res.players == full.players
    assert game._subset is not None, "the game's walk batch is restored"


def test_leave_one_out_on_a_vector_game(tabular_data) -> None:
    x, y = tabular_data
    game = ModelGame(tiny_mlp(), x, y, metric="class_recall")
    res = bl.leave_one_out(game)
    assert res.values.shape == (game.n_players, 3)
    assert res.output_names == game.output_names


def test_weight_norm_is_the_weight_slice_norm(image_data) -> None:
    x, y = image_data
    model = tiny_cnn()
    game = ModelGame(model, x, y)
    res = bl.rank_units(game, "weight_norm")
    _check_result(res, "weight_norm", 7, samples=0, evaluations=0)
    expected = torch.cat([model[0].weight.flatten(1).norm(dim=1),
                          model[2].weight.flatten(1).norm(dim=1)])
    np.testing.assert_allclose(res.values, expected.detach().numpy(), rtol=1e-6)


def test_weight_norm_of_linear_units(tabular_data) -> None:
    x, y = tabular_data
    model = tiny_mlp()
    res = bl.rank_units(ModelGame(model, x, y), "weight_norm")
    np.testing.assert_allclose(res.values, model[0].weight.norm(dim=1).detach().numpy(),
                               rtol=1e-6)


def test_activation_norm_is_the_mean_map_norm(image_data) -> None:
    x, y = image_data
    model = tiny_cnn()
    game = ModelGame(model, x, y, channels_last=False)
    res = bl.activation_norm(model, game.players_set, x, batch_size=7)
    _check_result(res, "activation_norm", 7, samples=0, evaluations=0)
    with torch.no_grad():
        a1 = model[0](x)
        a2 = model[2](model[1](a1))
    expected = torch.cat([a1.flatten(2).norm(dim=2).mean(0), a2.flatten(2).norm(dim=2).mean(0)])
    np.testing.assert_allclose(res.values, expected.numpy(), rtol=1e-5)
    assert res.info["examples"] == len(x)


def test_random_ranking_is_seeded(image_data) -> None:
    x, y = image_data
    game = ModelGame(tiny_cnn(), x, y)
    a, b, c = (bl.rank_units(game, "random", seed=s) for s in (1, 1, 2))
    _check_result(a, "random", 7, samples=0, evaluations=0)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    assert a.seed == 1 and a.players == game.players


def _forward_difference(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out, base = model(x), model(torch.zeros_like(x))
    return (out.gather(1, y[:, None]) - base.gather(1, y[:, None]))[:, 0].double()


def _completeness_errors(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                         n_steps: int) -> list[float]:
    """Per layer, max over examples of |sum of unit conductances - (F(x) - F(0))[target]|."""
    players = ModelGame(model, x, y, channels_last=False).players_set
    diff = _forward_difference(model, x, y)
    errs = []
    for layer in players.layers:
        per_ex = bl.layer_conductance(model, layer, x, y, n_steps=n_steps)
        assert per_ex.shape == (len(x), layer.n_units)
        errs.append(float((per_ex.sum(1) - diff).abs().max()))
    return errs


def test_conductance_completeness_relu_network(image_data) -> None:
    """Per example, a layer's unit conductances add up to F(x) - F(baseline) (true class).

    Captum's conductance sums gradient x (difference of the layer's activations between
    consecutive path points), so its error shrinks like 1/n_steps whatever the rule.
    """
    x, y = image_data
    model, x = tiny_cnn().double(), x.double()
    scale = float(_forward_difference(model, x, y).abs().max())
    coarse = _completeness_errors(model, x, y, 25)
    fine = _completeness_errors(model, x, y, 100)
    for c, f in zip(coarse, fine, strict=True):
        assert f <= 0.025 * scale
        assert f < c / 2


def test_conductance_completeness_smooth_network() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Tanh(), nn.Conv2d(4, 5, 3), nn.Softplus(),
                          nn.Flatten(), nn.Linear(5 * 2 * 2, 3)).double().eval()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(10, 1, 6, 6, generator=g).double()
    y = torch.randint(0, 3, (10,), generator=g)
    scale = float(_forward_difference(model, x, y).abs().max())
    coarse = _completeness_errors(model, x, y, 16)
    fine = _completeness_errors(model, x, y, 64)
    for c, f in zip(coarse, fine, strict=True):
        assert f <= 0.01 * scale
        assert 2.5 < c / f < 6  # first order: 4x the steps, about 4x smaller


def test_conductance_result_averages_examples(image_data) -> None:
    x, y = image_data
    model = tiny_cnn()
    game = ModelGame(model, x, y)
    res = bl.rank_units(game, "conductance", n_steps=20)
    _check_result(res, "conductance", 7, samples=0, evaluations=0)
    layer = game.players_set.layers[1]
    per_ex = bl.layer_conductance(model, layer, game.inputs, y, n_steps=20, batch_size=5)
    np.testing.assert_allclose(res.values[layer.slice], per_ex.mean(0).numpy(), atol=1e-6)
    assert res.params["n_steps"] == 20


def test_baseline_results_round_trip(tmp_path, image_data) -> None:
    x, y = image_data
    res = bl.rank_units(ModelGame(tiny_cnn(), x, y), "activation_norm")
    back = ShapleyResult.load(res.save(tmp_path / "r"))
    np.testing.assert_allclose(back.values, res.values)
    assert back.method == "activation_norm"
    assert back.top(3) == res.top(3)


def test_rank_units_errors(image_data) -> None:
    x, y = image_data
    game = ModelGame(tiny_cnn(), x, y)
    with pytest.raises(ValueError, match="unknown baseline"):
        bl.rank_units(game, "saliency")
    with pytest.raises(TypeError, match="takes no option"):
        bl.rank_units(game, "weight_norm", n_steps=3)

    def plain(masks):
        return masks.sum(1).astype(float)

    plain.n_players = 4  # type: ignore[attr-defined]
    with pytest.raises(bl.BaselineError, match="needs a ModelGame"):
        bl.rank_units(plain, "conductance")
    assert bl.rank_units(plain, "loo").values.tolist() == [1.0] * 4
    assert len(bl.rank_units(plain, "random").values) == 4
