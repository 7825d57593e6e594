"""Shapley axioms and exhaustive ground truth on tiny real networks."""

import numpy as np
import pytest
import torch
from conftest import tiny_cnn, tiny_mlp

import neuronshapley as ns


def _game(model, data, metric="log_prob"):
    x, y = data
    return ns.ModelGame(model, x, y, metric=metric)


def test_efficiency_exact_and_permutation(image_data):
    game = _game(tiny_cnn(), image_data)
    ends = game(np.array([[True] * 7, [False] * 7]))
    span = ends[0] - ends[1]
    exact = ns.estimate(game, method="exact")
    assert exact.values.sum() == pytest.approx(span, abs=1e-9)
    perm = ns.estimate(game, method="permutation", n_permutations=30, seed=1)
    assert perm.values.sum() == pytest.approx(span, abs=1e-9)
    trunc_share = ns.estimate(game, method="truncated", n_permutations=30, seed=1,
                              truncation_fill="share", truncation_tolerance=0.2)
    assert trunc_share.values.sum() == pytest.approx(span, abs=1e-9)


def test_permutation_converges_to_exhaustive_enumeration(image_data):
    game = _game(tiny_cnn(), image_data)
    exact = ns.estimate(game, method="exact")
    mc = ns.estimate(game, method="permutation", n_permutations=1500, seed=0, confidence=0.999)
    # 0.999 intervals per player: all 7 contain the truth with prob >= 0.993
    assert np.all((mc.ci_low <= exact.values) & (exact.values <= mc.ci_high))
    assert np.abs(mc.values - exact.values).max() < 0.25 * np.abs(exact.values).max()


def test_dummy_unit_with_zero_outgoing_weights_gets_exactly_zero(tabular_data):
    model = tiny_mlp()
    with torch.no_grad():
        model[2].weight[:, 3] = 0.0  # hidden unit 3 feeds nothing
    game = _game(model, tabular_data)
    assert ns.estimate(game, method="exact").values[3] == 0.0
    for method in ("permutation", "truncated", "tmab"):
        res = ns.estimate(game, method=method, seed=2, max_evaluations=300)
        assert res.values[3] == 0.0, method


def test_duplicated_units_get_equal_values(tabular_data):
    model = tiny_mlp()
    with torch.no_grad():  # unit 5 becomes a copy of unit 2, in and out
        model[0].weight[5] = model[0].weight[2]
        model[0].bias[5] = model[0].bias[2]
        model[2].weight[:, 5] = model[2].weight[:, 2]
    exact = ns.estimate(_game(model, tabular_data), method="exact")
    assert exact.values[5] == pytest.approx(exact.values[2], abs=1e-9)
    assert abs(exact.values[2]) > 1e-4  # not trivially equal


def test_vector_game_values_are_per_output_and_consistent(tabular_data):
    recall = ns.estimate(_game(tiny_mlp(), tabular_data, "class_recall"), method="exact")
    acc = ns.estimate(_game(tiny_mlp(), tabular_data, "accuracy"), method="exact")
    counts = np.bincount(tabular_data[1].numpy(), minlength=3)
    # Shapley values are linear in the game: accuracy = class-size-weighted recall
    np.testing.assert_allclose(recall.values @ counts / counts.sum(), acc.values, atol=1e-12)
    assert recall.output("class1").values.shape == (6,)
