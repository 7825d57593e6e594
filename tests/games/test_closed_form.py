"""Closed-form games: exact Shapley values against brute-force enumeration."""

from __future__ import annotations

from math import factorial

import numpy as np
import pytest

from neuronshapley.games import (
    AdditiveGame,
    NoisyGame,
    UnanimityGame,
    WeightedThresholdGame,
    heavy_tailed_weights,
)

# ---------------------------------------------------------------------------------------------
# Brute force, straight from the definition
# ---------------------------------------------------------------------------------------------


def all_masks(n: int) -> np.ndarray:
    """Every coalition of n players, shape (2^n, n); row k is the binary expansion of k."""
    codes = np.arange(1 << n, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n)) & 1).astype(bool)


def brute_force_shapley(game) -> np.ndarray:
    """phi_i = sum_{S not containing i} |S|!(n-|S|-1)!/n! (V(S + i) - V(S)).

    Returns shape (n,), or (n, d) for a vector game.
    """
    n = game.n_players
    assert n <= 12
    values = np.asarray(game(all_masks(n)), dtype=np.float64)
    codes = np.arange(1 << n, dtype=np.int64)
    sizes = np.array([bin(k).count("1") for k in codes])
    coef = np.array([factorial(s) * factorial(n - s - 1) / factorial(n) for s in range(n)])
    phi = []
    for i in range(n):
        without = codes[((codes >> i) & 1) == 0]
        marginal = values[without | (1 << i)] - values[without]
        phi.append(np.tensordot(coef[sizes[without]], marginal, axes=1))
    return np.array(phi)


def brute_force_range(game) -> float:
    values = game(all_masks(game.n_players))
    return float(values.max() - values.min())


def exact_voting_shapley(weights: list[int], quota: int) -> np.ndarray:
    """Shapley-Shubik indices with exact integer arithmetic (python ints), one DP per weight."""
    n, W = len(weights), sum(weights)
    out = np.zeros(n)
    for v in set(weights):
        others = list(weights)
        others.remove(v)
        counts = np.zeros((n, W + 1), dtype=object)
        counts[:] = 0
        counts[0, 0] = 1
        for k, u in enumerate(others):
            shifted = counts[: k + 1, : W + 1 - u].copy()
            counts[1 : k + 2, u:] += shifted
        pivotal = [1 if quota - v <= t < quota else 0 for t in range(W + 1)]
        numerator = sum(
            int(counts[s] @ np.array(pivotal, dtype=object)) * factorial(s) * factorial(n - 1 - s)
            for s in range(n)
        )
        out[[i for i, w in enumerate(weights) if w == v]] = numerator / factorial(n)
    return out


# ---------------------------------------------------------------------------------------------
# Additive
# ---------------------------------------------------------------------------------------------


def test_additive_scalar_and_vector():
    rng = np.random.default_rng(0)
    w = rng.normal(size=8)
    game = AdditiveGame(w)
    assert game.players == [f"p{i}" for i in range(8)]
    np.testing.assert_allclose(game.shapley_values(), w)
    np.testing.assert_allclose(brute_force_shapley(game), w, atol=1e-12)
    assert game.value_range == pytest.approx(brute_force_range(game))

    wv = rng.normal(size=(7, 3))
    vec = AdditiveGame(wv)
    assert vec(all_masks(7)).shape == (1 << 7, 3)
    np.testing.assert_allclose(brute_force_shapley(vec), wv, atol=1e-12)
    np.testing.assert_allclose(vec.shapley_values(), wv)


# ---------------------------------------------------------------------------------------------
# Unanimity
# ---------------------------------------------------------------------------------------------


def test_unanimity_example():
    # V = 3 [{0,1} in S] + 2 [{1,2,3} in S]
    game = UnanimityGame([[0, 1], [1, 2, 3]], [3.0, 2.0], n_players=5)
    np.testing.assert_allclose(game.shapley_values(), [1.5, 1.5 + 2 / 3, 2 / 3, 2 / 3, 0.0])
    masks = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 0], [0, 1, 1, 1, 1], [1, 0, 1, 1, 1]], bool)
    np.testing.assert_allclose(game(masks), [3.0, 5.0, 2.0, 0.0])
    assert game.value_range == pytest.approx(5.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unanimity_random_matches_brute_force(seed):
    game = UnanimityGame.random(9, n_terms=12, max_size=4, rng=seed)
    np.testing.assert_allclose(game.shapley_values(), brute_force_shapley(game), atol=1e-12)
    assert game.value_range == pytest.approx(brute_force_range(game))


def test_unanimity_large_value_range_unknown_for_mixed_signs():
    game = UnanimityGame([[0], [1, 2]], [1.0, -1.0], n_players=40)
    assert game.value_range is None
    assert UnanimityGame([[0], [1, 2]], [1.0, 2.0], n_players=40).value_range == 3.0


def test_unanimity_rejects_bad_terms():
    with pytest.raises(ValueError, match="empty"):
        UnanimityGame([[0], []], [1.0, 1.0], n_players=3)
    with pytest.raises(ValueError, match="outside"):
        UnanimityGame([[0, 3]], [1.0], n_players=3)
    with pytest.raises(ValueError, match="coefficients"):
        UnanimityGame([[0, 1]], [1.0, 2.0], n_players=3)


# ---------------------------------------------------------------------------------------------
# Weighted threshold games
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_voting_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 7, size=10)  # includes zero weights and repeated weights
    quota = int(rng.integers(1, w.sum() + 1))
    game = WeightedThresholdGame.voting(w, quota)
    np.testing.assert_allclose(game.shapley_values(), brute_force_shapley(game), atol=1e-12)
    assert game.value_range == pytest.approx(brute_force_range(game))
    assert (game.shapley_values()[w == 0] == 0).all()


def test_voting_textbook_example():
    # [quota 51; 50, 49, 1]: the 49 and 1 players are symmetric -> (2/3, 1/6, 1/6).
    game = WeightedThresholdGame.voting([50, 49, 1], 51)
    np.testing.assert_allclose(game.shapley_values(), [2 / 3, 1 / 6, 1 / 6])


@pytest.mark.parametrize("n", [1, 2, 3, 10])
def test_collapse_matches_brute_force(n):
    rng = np.random.default_rng(n)
    w = rng.integers(1, 20, size=n)
    game = WeightedThresholdGame.collapse(w, midpoint=0.6 * w.sum(), steepness=0.5)
    np.testing.assert_allclose(game.shapley_values(), brute_force_shapley(game), atol=1e-12)
    assert game.value_range == pytest.approx(brute_force_range(game))


def test_collapse_with_drawn_weights():
    game = WeightedThresholdGame.collapse(9, midpoint=30, steepness=0.2, rng=3)
    assert game.n_players == 9 and (game.weights >= 1).all()
    np.testing.assert_allclose(game.shapley_values(), brute_force_shapley(game), atol=1e-12)


def test_arbitrary_f_scalar_only_and_non_monotone():
    w = [3, 1, 4, 1, 5, 0, 2, 6, 5]

    def f(total: int) -> float:  # only works on python scalars
        return 2.0 if total % 3 == 0 else (0.5 if total > 10 else -1.0)

    game = WeightedThresholdGame(w, f)
    np.testing.assert_allclose(game.shapley_values(), brute_force_shapley(game), atol=1e-12)
    assert game.value_range == pytest.approx(brute_force_range(game))

    game2 = WeightedThresholdGame(w, np.sin)
    np.testing.assert_allclose(game2.shapley_values(), brute_force_shapley(game2), atol=1e-12)


def test_neuron_like_small_matches_brute_force():
    game = WeightedThresholdGame.neuron_like(10, rng=0)
    np.testing.assert_allclose(game.shapley_values(), brute_force_shapley(game), atol=1e-12)


def test_voting_matches_exact_integer_dp_n60():
    rng = np.random.default_rng(7)
    w = [int(x) for x in rng.integers(1, 6, size=60)]
    quota = int(0.55 * sum(w))
    game = WeightedThresholdGame.voting(w, quota)
    np.testing.assert_allclose(game.shapley_values(), exact_voting_shapley(w, quota), atol=1e-13)


def _efficiency_gap(game) -> float:
    n = game.n_players
    ends = game(np.array([np.ones(n, bool), np.zeros(n, bool)]))
    return float(game.shapley_values().sum() - (ends[0] - ends[1]))


def test_efficiency_and_symmetry_n300():
    game = WeightedThresholdGame.neuron_like(300, rng=1)
    phi = game.shapley_values()
    assert abs(_efficiency_gap(game)) < 1e-10
    # f is increasing, so values are ordered like the weights (ties for equal weights).
    order = np.argsort(game.weights, kind="stable")
    assert (np.diff(phi[order]) >= -1e-12).all()
    top = np.sort(game.weights)[::-1][:3]
    assert len(set(top.tolist())) == 3  # a clear top-3

    voting = WeightedThresholdGame.voting(np.random.default_rng(2).integers(0, 12, 300), 900)
    assert abs(_efficiency_gap(voting)) < 1e-10
    assert (voting.shapley_values() >= -1e-15).all()

    equal = WeightedThresholdGame.voting(np.full(300, 3), 451)
    np.testing.assert_allclose(equal.shapley_values(), 1 / 300, rtol=1e-10)


def test_heavy_tailed_weights():
    w = heavy_tailed_weights(500, rng=0)
    assert w.dtype == np.int64 and w.shape == (500,) and (w >= 1).all()
    assert abs(int(w.sum()) - 5000) < 100
    top = np.sort(w)[::-1]
    assert top[:10].sum() > 10 * np.median(w) * 5  # a few large, many small
    assert top[0] <= 0.12 * w.sum() + 1


def test_weighted_rejects_bad_weights():
    with pytest.raises(ValueError, match="non-negative integers"):
        WeightedThresholdGame.voting([1, -2, 3], 2)
    with pytest.raises(ValueError, match="non-negative integers"):
        WeightedThresholdGame.voting([1, 2.5, 3], 2)
    with pytest.raises(ValueError, match="1-D"):
        WeightedThresholdGame.voting([[1, 2]], 2)


# ---------------------------------------------------------------------------------------------
# Noisy wrapper
# ---------------------------------------------------------------------------------------------


def test_noisy_game():
    inner = UnanimityGame.random(6, n_terms=5, max_size=3, rng=0)
    game = NoisyGame(inner, noise_std=0.5, rng=0)
    assert game.n_players == 6 and game.players == inner.players
    np.testing.assert_array_equal(game.shapley_values(), inner.shapley_values())
    assert game.value_range == inner.value_range

    masks = np.tile(np.array([[1, 1, 0, 1, 0, 1]], bool), (20000, 1))
    noise = game(masks) - inner(masks)
    assert abs(noise.mean()) < 0.02 and abs(noise.std() - 0.5) < 0.02
    assert game.n_evaluations == 20000

    same = NoisyGame(inner, 0.5, rng=123)(masks[:5]), NoisyGame(inner, 0.5, rng=123)(masks[:5])
    np.testing.assert_array_equal(*same)
    np.testing.assert_array_equal(NoisyGame(inner, 0.0)(masks[:5]), inner(masks[:5]))
    with pytest.raises(ValueError, match="noise_std"):
        NoisyGame(inner, -1.0)


# ---------------------------------------------------------------------------------------------
# Mask validation
# ---------------------------------------------------------------------------------------------

GAMES = {
    "additive": lambda: AdditiveGame(np.arange(5.0)),
    "unanimity": lambda: UnanimityGame([[0, 1], [4]], [1.0, 2.0], n_players=5),
    "weighted": lambda: WeightedThresholdGame.voting([1, 2, 3, 4, 5], 8),
    "noisy": lambda: NoisyGame(AdditiveGame(np.arange(5.0)), 0.1, rng=0),
}


@pytest.mark.parametrize("name", sorted(GAMES))
def test_mask_validation(name):
    game = GAMES[name]()
    with pytest.raises(ValueError, match=r"2-D array .*ndim=1"):
        game(np.ones(5, bool))
    with pytest.raises(ValueError, match=r"2-D array .*ndim=3"):
        game(np.ones((2, 2, 5), bool))
    with pytest.raises(ValueError, match=r"n_players=5 columns; got shape \(3, 4\)"):
        game(np.ones((3, 4), bool))
    with pytest.raises(ValueError, match="only 0 and 1"):
        game(np.full((2, 5), 2))
    # 0/1 integers are accepted and equal the boolean result; empty batches are fine.
    ints = np.array([[1, 0, 1, 1, 0], [0, 1, 1, 0, 1]])
    out_int, out_bool = game(ints), game(ints.astype(bool))
    assert out_int.shape == (2,)
    if name != "noisy":
        np.testing.assert_array_equal(out_int, out_bool)
    assert game(np.zeros((0, 5), bool)).shape == (0,)


def test_large_batch_shapes():
    rng = np.random.default_rng(0)
    masks = rng.random((3000, 400)) < 0.5
    for game in (
        AdditiveGame(rng.normal(size=400)),
        UnanimityGame.random(400, n_terms=300, max_size=8, rng=0),
        WeightedThresholdGame.neuron_like(400, rng=0, total_weight=800),
    ):
        values = game(masks)
        assert values.shape == (3000,) and values.dtype == np.float64
        assert game.n_evaluations == 3000
    u = UnanimityGame([[int(j) for j in np.flatnonzero(masks[0])]], [2.0], n_players=400)
    assert u(masks[:1])[0] == 2.0


# ---------------------------------------------------------------------------------------------
# Games built to break estimators' guarantees
# ---------------------------------------------------------------------------------------------


def _is_monotone(game) -> bool:
    """True when V(S) <= V(S + i) for every S and i (brute force, n <= 12)."""
    n = game.n_players
    values = game(all_masks(n))
    codes = np.arange(1 << n)
    return all(
        (values[codes[(codes >> i) & 1 == 0] | (1 << i)] >= values[codes[(codes >> i) & 1 == 0]]
         - 1e-12).all()
        for i in range(n)
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_signed_unanimity_sum_small_matches_brute_force(seed):
    game = UnanimityGame.random(10, n_terms=25, max_size=5, rng=seed)
    assert (game.coefficients < 0).any() and (game.coefficients > 0).any()
    np.testing.assert_allclose(game.shapley_values(), brute_force_shapley(game), atol=1e-12)
    assert game(np.zeros((1, 10), bool))[0] == 0.0
    assert not _is_monotone(game)


def test_signed_unanimity_sum_n120_efficiency():
    game = UnanimityGame.random(120, n_terms=300, max_size=5, rng=325)
    ends = game(np.array([np.ones(120, bool), np.zeros(120, bool)]))
    assert ends[1] == 0.0
    assert game.shapley_values().sum() == pytest.approx(ends[0], abs=1e-10)
    # phi_i = sum of c_T / |T| over the terms holding i, by hand from the dividends
    phi = np.zeros(120)
    for T, c in zip(game.coalitions, game.coefficients, strict=True):
        phi[T] += c / len(T)
    np.testing.assert_allclose(game.shapley_values(), phi, atol=1e-12)


def test_rare_pivot_matches_brute_force_and_closed_form():
    small = UnanimityGame.rare_pivot(10, additive=(0.3, -0.2), pivot_size=6, pivot_value=1.5)
    expected = np.array([0.3, -0.2, 0, 0] + [1.5 / 6] * 6)
    np.testing.assert_allclose(brute_force_shapley(small), expected, atol=1e-12)
    np.testing.assert_allclose(small.shapley_values(), expected, atol=1e-12)
    game = UnanimityGame.rare_pivot()
    phi = game.shapley_values()
    np.testing.assert_allclose(phi[:4], [0.3, 0.2, 0.15, 0.1])
    np.testing.assert_allclose(phi[4:20], 0.0)
    np.testing.assert_allclose(phi[20:], 1 / 60)
    with pytest.raises(ValueError, match="pivot_size"):
        UnanimityGame.rare_pivot(10, additive=(0.1,) * 5, pivot_size=6)


@pytest.mark.parametrize("seed", [0, 3])
def test_reviving_matches_brute_force_and_is_not_monotone(seed):
    game = WeightedThresholdGame.reviving(10, rng=seed, revive_at=0.15, revive_width=0.08)
    np.testing.assert_allclose(game.shapley_values(), brute_force_shapley(game), atol=1e-12)
    assert game.value_range == pytest.approx(brute_force_range(game))
    assert not _is_monotone(game)


def test_reviving_dies_then_revives_along_a_walk():
    game = WeightedThresholdGame.reviving(200, rng=0)
    W = game.total_weight
    f = game.f_table
    # after the collapse V is within truncation's default tolerance (5%) of V(empty) ...
    dead = abs(f[int(0.25 * W)] - f[0])
    revived = f[int(0.08 * W)] - f[0]  # ... and the bump brings it back
    assert dead < 0.05 * (f[W] - f[0]) and revived > 0.45
    phi = game.shapley_values()
    assert phi.sum() == pytest.approx(f[W] - f[0], abs=1e-10)
    # the bump changes the values: they differ from the plain collapse game's
    plain = WeightedThresholdGame.neuron_like(200, rng=0)
    np.testing.assert_array_equal(plain.weights, game.weights)
    assert np.abs(phi - plain.shapley_values()).max() > 1e-3
    with pytest.raises(ValueError, match="revive_width"):
        WeightedThresholdGame.reviving(10, rng=0, revive_width=0.0)
