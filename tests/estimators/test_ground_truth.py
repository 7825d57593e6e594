"""Estimators against closed-form Shapley values (not against themselves)."""

import numpy as np
import pytest

import neuronshapley as ns
from neuronshapley.games import (
    AdditiveGame,
    NoisyGame,
    UnanimityGame,
    WeightedThresholdGame,
)


def _games_small():
    rng = np.random.default_rng(0)
    return [
        AdditiveGame(rng.normal(size=8)),
        UnanimityGame.random(8, n_terms=12, max_size=4, rng=rng),
        WeightedThresholdGame.voting([5, 4, 3, 2, 2, 1, 1, 1], quota=10),
    ]


@pytest.mark.parametrize("game", _games_small(), ids=["additive", "unanimity", "voting"])
def test_exact_enumeration_matches_closed_form(game):
    res = ns.estimate(game, method="exact")
    np.testing.assert_allclose(res.values, game.shapley_values(), atol=1e-12)
    assert res.evaluations == 2**8


def test_exact_refuses_large_games_with_advice():
    with pytest.raises(ValueError, match="use method='tmab'"):
        ns.estimate(AdditiveGame(np.ones(30)), method="exact")


@pytest.mark.parametrize("method", ["permutation", "truncated"])
def test_monte_carlo_intervals_cover_the_truth(method):
    game = UnanimityGame.random(40, n_terms=60, max_size=6, rng=np.random.default_rng(1))
    truth = game.shapley_values()
    options = {"truncation_tolerance": 0.0} if method == "truncated" else {}
    res = ns.estimate(game, method=method, n_permutations=400, seed=3, **options)
    covered = np.mean((res.ci_low <= truth) & (truth <= res.ci_high))
    assert covered >= 0.85  # nominal 0.95 per player
    assert np.abs(res.values - truth).max() < 0.2 * np.abs(truth).max()
    # every walk's marginals sum to V(N) - V(empty): efficiency holds exactly
    ends = game(np.array([[True] * 40, [False] * 40]))
    assert res.values.sum() == pytest.approx(ends[0] - ends[1], abs=1e-9)


def test_truncation_share_keeps_efficiency_and_zero_fill_loses_it():
    game = WeightedThresholdGame.neuron_like(60, rng=np.random.default_rng(2))
    ends = game(np.array([[True] * 60, [False] * 60]))
    span = ends[0] - ends[1]
    share = ns.estimate(game, method="truncated", n_permutations=100, seed=0,
                        truncation_fill="share")
    zero = ns.estimate(game, method="truncated", n_permutations=100, seed=0)
    assert share.values.sum() == pytest.approx(span, abs=1e-9)
    assert zero.info["truncated_walks"] > 0
    assert zero.values.sum() < span - 1e-6


def test_vector_game_gets_one_value_per_output():
    w = np.random.default_rng(4).normal(size=(10, 3))
    game = AdditiveGame(w)
    res = ns.estimate(game, method="permutation", n_permutations=5)
    assert res.values.shape == (10, 3)
    np.testing.assert_allclose(res.values, w, atol=1e-12)  # additive: every marginal is w_i
    assert res.output(2).values.shape == (10,)


@pytest.mark.parametrize("seed", range(6))
def test_tmab_finds_the_true_top_k_with_the_claimed_confidence(seed):
    """Separated top-k on a noisy neuron-like game: TMAB claims it with delta=0.05.

    Six seeds each must be right; with a failure rate <= 0.05 per run, all six pass with
    probability >= 0.73 even at the bound, and the bound is conservative in practice.
    """
    inner = WeightedThresholdGame.neuron_like(80, rng=np.random.default_rng(10))
    game = NoisyGame(inner, noise_std=0.01, rng=np.random.default_rng(100 + seed))
    truth = inner.shapley_values()
    k = 2  # values: 0.109, 0.088 | 0.033, 0.032, ...
    res = ns.estimate(game, method="tmab", k=k, delta=0.05, seed=seed, truncation=False,
                      epsilon=1e-4, max_evaluations=400_000)
    assert res.info["converged"]
    assert set(np.argsort(-res.values)[:k]) == set(np.argsort(-truth)[:k])


def test_tmab_spends_samples_on_the_boundary_not_everywhere():
    n = 80
    game = WeightedThresholdGame.neuron_like(n, rng=np.random.default_rng(3))
    res = ns.estimate(game, method="tmab", k=5, seed=0)
    assert res.info["converged"]
    # undecided players near the k-th value are sampled more than clear losers ...
    order = np.argsort(-game.shapley_values())
    assert res.samples[order[:8]].mean() > 1.5 * res.samples[order[-n // 3:]].mean()
    # ... and the same certified top-k costs far less than plain Monte-Carlo (every player
    # on every full walk, same confidence sequences)
    plain = ns.estimate(game, method="tmab", k=5, seed=0, adaptive=False, sampling="walk",
                        truncation=False)
    assert plain.info["converged"]
    assert res.evaluations < 0.5 * plain.evaluations  # measured: 0.29 (24,134 vs 82,478)


def test_same_seed_same_result_different_seed_different():
    game = UnanimityGame.random(30, n_terms=40, max_size=5, rng=np.random.default_rng(5))
    for method in ("permutation", "truncated", "tmab"):
        a = ns.estimate(game, method=method, seed=7, max_evaluations=3000)
        b = ns.estimate(game, method=method, seed=7, max_evaluations=3000)
        c = ns.estimate(game, method=method, seed=8, max_evaluations=3000)
        np.testing.assert_array_equal(a.values, b.values)
        assert not np.array_equal(a.values, c.values), method


def test_bad_options_are_specific():
    game = AdditiveGame(np.ones(5))
    with pytest.raises(ValueError, match="unknown method"):
        ns.estimate(game, method="kernel")
    with pytest.raises(TypeError, match="takes no option"):
        ns.estimate(game, method="permutation", k=3)
    with pytest.raises(ValueError, match="k must be in 1..5"):
        ns.estimate(game, method="tmab", k=6)
    with pytest.raises(ValueError, match="delta"):
        ns.estimate(game, method="tmab", delta=1.5)
    with pytest.raises(ValueError, match="n_players is required"):
        ns.estimate(lambda m: m.sum(1))
    with pytest.raises(ValueError, match="n_players=5 columns"):
        ns.estimate(game, n_players=4, method="exact")


def test_auto_chooses_from_the_problem_and_a_pilot():
    small = AdditiveGame(np.arange(6.0))
    res = ns.estimate(small, method="auto")
    assert res.method == "exact" and res.info["auto"]["chosen"] == "exact"
    np.testing.assert_allclose(res.values, np.arange(6.0))
    game = WeightedThresholdGame.neuron_like(60, rng=np.random.default_rng(2))
    anytime = ns.estimate(game, method="auto", max_evaluations=3000, seed=1)
    assert anytime.method == "truncated"
    assert anytime.params["truncation_fill"] == "roulette"
    assert anytime.params["permutations"] == "sobol" and anytime.params["strata"] == 1
    assert "Sobol" in anytime.info["auto"]["reason"]
    stratified = ns.estimate(game, method="auto", max_evaluations=3000, seed=1,
                             permutations="random")
    assert stratified.params["strata"] > 1 and "strata" in stratified.info["auto"]["reason"]
    assert 2900 <= anytime.evaluations <= 3000  # the pilot counts against the budget
    truth = game.shapley_values()
    assert np.abs(anytime.values - truth).max() < 0.5 * truth.max()
    certified = ns.estimate(game, method="auto", k=3, max_evaluations=2000)
    assert certified.method == "tmab"
    with pytest.raises(TypeError, match="no option"):
        ns.estimate(game, method="auto", kay=3)


@pytest.mark.parametrize("fill", [None, "roulette"])
def test_shared_anchor_marginals_are_unbiased(fill):
    from neuronshapley.estimators.sampler import WalkSampler
    from neuronshapley.estimators.walks import Truncation

    game = UnanimityGame.random(8, n_terms=12, max_size=4, rng=np.random.default_rng(0))
    truth = game.shapley_values()
    trunc = None if fill is None else Truncation(tolerance=0.3, patience=1, fill=fill, keep=0.5)
    sampler = WalkSampler(game, 8, np.random.default_rng(1), trunc)
    samples: list[list[float]] = [[] for _ in range(8)]
    for _ in range(3000):
        for ids, marg in sampler.shared(np.arange(8), 4):
            for i, v in zip(ids, marg[:, 0], strict=True):
                samples[i].append(v)
    for i, xs in enumerate(samples):
        se = np.std(xs) / np.sqrt(len(xs))
        assert abs(np.mean(xs) - truth[i]) <= 4 * se + 1e-9, i


def test_auto_walks_whole_where_the_network_comes_back_to_life():
    from neuronshapley.estimators.auto import comes_back
    from neuronshapley.estimators.truncation import Truncation

    rule = Truncation()  # dead: within 5% of |V(N) - V(empty)| of V(empty)
    perm = np.random.default_rng(0).permutation(40)

    def by_count(profile):  # V depends on how many players are present
        return lambda masks: np.array([profile(int(c)) for c in masks.sum(1)], dtype=float)

    stays = by_count(lambda c: float(c > 20))
    back = by_count(lambda c: 1.0 if c > 20 else (0.8 if 5 <= c <= 12 else 0.0))
    ends = np.array([1.0]), np.array([0.0])
    assert not comes_back(stays, perm, 20, rule, *ends)
    assert comes_back(back, perm, 20, rule, *ends)  # probes at 16, 12, 8, 4 players left

    reviving = WeightedThresholdGame.reviving(50, rng=2)  # dead sub-networks come back
    whole = ns.estimate(reviving, method="auto", max_evaluations=3000, seed=0)
    assert whole.method == "permutation" and "came back to life" in whole.info["auto"]["reason"]
    assert whole.params["permutations"] == "sobol" and whole.evaluations <= 3000
    truth = reviving.shapley_values()
    assert np.abs(whole.values - truth).max() < 0.5 * truth.max()  # unbiased, unlike zero fill
    collapse = WeightedThresholdGame.neuron_like(60, rng=np.random.default_rng(2))
    cut = ns.estimate(collapse, method="auto", max_evaluations=3000, seed=0)
    assert cut.method == "truncated" and "stayed dead" in cut.info["auto"]["reason"]
    asked = ns.estimate(reviving, method="auto", max_evaluations=3000, seed=0,
                        truncation_fill="roulette")
    assert asked.method == "truncated"  # truncation options given: truncated, as asked
