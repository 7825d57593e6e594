"""Walks that share game calls: same outcomes as one at a time, fewer wasted evaluations."""

import numpy as np
import pytest

import neuronshapley as ns
from neuronshapley.estimators.sampler import WalkSampler
from neuronshapley.estimators.walks import Truncation, run_walks
from neuronshapley.games import WeightedThresholdGame


def _collapse(n=40, seed=0):
    w = np.random.default_rng(seed).integers(1, 20, size=n)
    return WeightedThresholdGame.collapse(w, midpoint=0.6 * w.sum(), steepness=0.3)


class _Counting:
    """Wraps a game and records how many masks each call carried."""

    def __init__(self, game):
        self.game, self.n_players, self.calls = game, game.n_players, []

    def __call__(self, masks):
        self.calls.append(len(masks))
        return self.game(masks)


@pytest.mark.parametrize("fill", ["zero", "share", "roulette"])
def test_pooled_walks_equal_walks_one_at_a_time(fill):
    game = _collapse()
    n = game.n_players
    ends = np.asarray(game(np.array([np.ones(n, bool), np.zeros(n, bool)])), float)[:, None]
    rng = np.random.default_rng(1)
    perms = [rng.permutation(n) for _ in range(9)]
    stops = [n, n, 5, 0, n, 17, n, n, 1]
    trunc = Truncation(tolerance=0.05, patience=2, fill=fill, keep=0.5)

    def outcomes(pool):
        rngs = [np.random.default_rng([7, i]) for i in range(len(perms))]
        return run_walks(game, perms, stops, ends[0], ends[1], trunc, 3, rngs, pool)

    alone, pooled = outcomes(1), outcomes(4)
    for a, b, stop in zip(alone, pooled, stops, strict=True):
        np.testing.assert_array_equal(a.marginals, b.marginals)
        assert a.evaluations == b.evaluations and a.truncated_at == b.truncated_at
        assert a.marginals.shape == (stop, 1)


def test_walk_many_fills_calls_and_overshoots_less():
    game = _Counting(_collapse(60, seed=2))
    trunc = Truncation(fill="zero")
    one = WalkSampler(game, 60, np.random.default_rng(0), trunc, chunk=24)
    for _ in range(12):
        one.walk()
    single_calls, game.calls = list(game.calls), []
    many = WalkSampler(game, 60, np.random.default_rng(0), trunc, chunk=24)
    walks = []
    while len(walks) < 12:
        walks += many.walk_many(12)
    assert len(walks) == 12 and many.walks == 12
    # three walks of 8 steps share each call: calls are full until walks run out
    assert max(game.calls[1:]) == 24
    assert many.evaluations < one.evaluations  # at most 7 steps past the dead point, not 23
    assert len(game.calls) < len(single_calls)


def test_walk_many_respects_the_budget_and_n_permutations():
    game = _collapse(40, seed=3)
    r = ns.estimate(game, method="truncated", seed=0, max_evaluations=600, chunk=32)
    per_walk = r.evaluations / r.info["walks"]
    assert r.evaluations < 600 + 2 * per_walk  # stops within about one walk of the budget
    r = ns.estimate(game, method="permutation", seed=0, n_permutations=7, chunk=32)
    assert r.info["walks"] == 7 and np.all(r.samples == 7)


def test_pooled_truncated_walks_stay_unbiased():
    game = _collapse(12, seed=4)
    exact = game.shapley_values()
    r = ns.estimate(game, method="truncated", seed=2, n_permutations=6000, chunk=32,
                    truncation_fill="roulette", truncation_keep=0.3, strata=3)
    err = np.abs(r.values - exact)
    assert np.all(err <= 4 * (r.ci_high - r.ci_low) / (2 * 1.96) + 1e-9), err.max()
