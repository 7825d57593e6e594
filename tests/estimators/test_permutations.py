"""Sobol permutations: every walk a uniform permutation, reproducible, and more accurate."""

from __future__ import annotations

import numpy as np
import pytest

import neuronshapley as ns
from neuronshapley.errors import InputError
from neuronshapley.estimators.permutations import (
    SOBOL_MAX_PLAYERS,
    SobolPermutations,
    check_permutations,
)
from neuronshapley.games import UnanimityGame, WeightedThresholdGame


def test_each_walk_is_a_permutation_with_uniform_positions():
    n, walks = 8, 4096
    sobol = SobolPermutations(n, seed=5)
    counts = np.zeros((n, n))  # player x position
    for w in range(walks):
        perm = sobol(w)
        assert sorted(perm.tolist()) == list(range(n))
        counts[perm, np.arange(n)] += 1
    # a uniform permutation puts each player at each position with probability 1/n
    expected = walks / n
    assert np.abs(counts - expected).max() < 4 * np.sqrt(expected)


def test_walk_w_depends_only_on_seed_and_w():
    a, b = SobolPermutations(12, seed=3), SobolPermutations(12, seed=3)
    forward = [a(w) for w in range(9)]
    np.testing.assert_array_equal(b(6), forward[6])  # jumps ahead
    np.testing.assert_array_equal(b(2), forward[2])  # and back
    assert not np.array_equal(SobolPermutations(12, seed=4)(6), forward[6])


@pytest.mark.parametrize("game", [
    WeightedThresholdGame.neuron_like(40, rng=np.random.default_rng(0)),
    UnanimityGame.random(30, n_terms=50, max_size=5, rng=np.random.default_rng(0)),
], ids=["collapse-40", "signed-unanimity-30"])
def test_sobol_walks_are_unbiased_and_closer_to_the_truth(game):
    phi = game.shapley_values()

    def rmse(permutations: str, seed: int, walks: int = 128) -> float:
        res = ns.estimate(game, method="permutation", n_permutations=walks, seed=seed,
                          permutations=permutations, progress=False)
        return float(np.sqrt(np.mean((res.values - phi) ** 2)))

    random = np.mean([rmse("random", s) for s in range(6)])
    sobol = np.mean([rmse("sobol", s) for s in range(6)])
    assert sobol < 0.8 * random
    # unbiased: many walks converge on the exact values (efficiency holds walk by walk)
    long = ns.estimate(game, method="permutation", n_permutations=2048, seed=0,
                       permutations="sobol", progress=False)
    assert np.sqrt(np.mean((long.values - phi) ** 2)) < 0.3 * random
    np.testing.assert_allclose(long.values.sum(), phi.sum(), atol=1e-9)


def test_auto_and_truncated_take_sobol_and_say_what_the_intervals_are():
    game = WeightedThresholdGame.neuron_like(30, rng=np.random.default_rng(1))
    res = ns.estimate(game, method="truncated", truncation_fill="roulette",
                      permutations="sobol", max_evaluations=1500, seed=2, progress=False)
    assert res.params["permutations"] == "sobol"
    assert "as for independent walks" in res.info["intervals_note"]
    plain = ns.estimate(game, method="permutation", max_evaluations=1500, progress=False)
    assert "independent walks" not in plain.info["intervals_note"]


def test_bad_designs_are_refused_with_the_fix():
    game = WeightedThresholdGame.neuron_like(20, rng=np.random.default_rng(1))
    with pytest.raises(InputError, match="strata=1 or permutations='random'"):
        ns.estimate(game, method="permutation", strata=2, permutations="sobol",
                    progress=False)
    with pytest.raises(InputError, match="permutations"):
        ns.estimate(game, method="permutation", permutations="halton", progress=False)
    with pytest.raises(InputError, match=f"at most {SOBOL_MAX_PLAYERS}"):
        check_permutations("sobol", SOBOL_MAX_PLAYERS + 1, 1)
    with pytest.raises(InputError, match="permutations"):  # the bandit needs independent walks
        ns.estimate(game, method="tmab", k=3, permutations="sobol", progress=False)


def test_the_bandit_with_strata_says_its_guarantee_is_void():
    game = WeightedThresholdGame.neuron_like(20, rng=np.random.default_rng(1))
    res = ns.estimate(game, method="tmab", k=3, strata=2, max_evaluations=2000, seed=0,
                      progress=False)
    assert res.info["guarantee"] is False and "strata=1" in res.info["intervals_note"]
