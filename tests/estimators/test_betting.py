"""Confidence sequences by betting: anytime coverage, tightness, grid changes, state."""

from __future__ import annotations

import numpy as np
import pytest

from neuronshapley.estimators import betting
from neuronshapley.estimators.betting import BettingIntervals
from neuronshapley.estimators.bounds import bernstein_halfwidth
from neuronshapley.estimators.stats import RunningStats


def _feed(cs: BettingIntervals, stats: RunningStats, x: np.ndarray) -> None:
    players = np.arange(len(x))
    cs.observe(players, x, stats.count.copy(), stats.m2[:, 0].copy())
    stats.update(players, x)


DRAWS = {
    # name: (draw(rng, n), true mean)
    "rare-jumps": (lambda rng, n: (rng.random(n) < 0.02).astype(float), 0.02),
    "uniform": (lambda rng, n: rng.random(n), 0.5),
    "rare-jumps-plus-noise": (
        lambda rng, n: np.where(rng.random(n) < 0.01, 1.0, rng.normal(0.0, 0.01, n)), 0.01),
}


@pytest.mark.parametrize("name", sorted(DRAWS))
def test_sequences_cover_at_every_look_with_the_claimed_probability(name):
    """300 independent players, each looked at every 20 samples up to 800: the fraction whose
    interval ever misses the mean must stay within delta (binomial slack 3 sd)."""
    draw, mu = DRAWS[name]
    n, delta = 300, 0.1
    rng = np.random.default_rng(0)
    cs, stats = BettingIntervals(n, delta), RunningStats(n)
    missed = np.zeros(n, dtype=bool)
    for t in range(1, 801):
        _feed(cs, stats, draw(rng, n))
        if t % 20 == 0:
            low, high = cs.bounds()
            missed |= (mu < low) | (mu > high)
    assert missed.mean() <= delta + 3 * np.sqrt(delta * (1 - delta) / n)
    low, high = cs.bounds()
    assert np.all(high - low < 0.25)  # and the intervals did shrink


def test_upper_bounds_of_rarely_moving_players_beat_empirical_bernstein():
    """Marginals that are mostly 0 and rarely 1: the betting upper bound falls faster than
    Maurer-Pontil's half-width with the same range and level (which is only valid at one
    fixed sample count, where the sequence holds at every count)."""
    n, delta = 200, 0.01
    rng = np.random.default_rng(1)
    cs, stats = BettingIntervals(n, delta), RunningStats(n)
    for _ in range(400):
        _feed(cs, stats, (rng.random(n) < 0.01).astype(float))
    low, high = cs.bounds()
    mp = bernstein_halfwidth(stats.variance(), stats.count, 1.0, delta)[:, 0]
    assert np.median(high - stats.mean[:, 0]) < 0.75 * np.median(mp)  # measured: 0.63
    assert np.all(low <= stats.mean[:, 0]) and np.all(stats.mean[:, 0] <= high)


def test_growing_support_and_coarser_grid_keep_the_bounds_valid(monkeypatch):
    monkeypatch.setattr(betting, "MIN_POINTS", 16)
    monkeypatch.setattr(betting, "MAX_POINTS", 16)
    n = 50
    rng = np.random.default_rng(2)
    cs, stats = BettingIntervals(n, 0.05), RunningStats(n)
    _feed(cs, stats, rng.uniform(0.0, 1e-3, n))  # a tiny first support ...
    for _ in range(300):  # ... then the real one, 1000x wider: the grid must follow
        _feed(cs, stats, rng.uniform(-0.5, 1.5, n))
    assert cs.log_up.shape[-1] <= 2 * cs.points
    low, high = cs.bounds()
    assert cs.support()[0] <= -0.49 and cs.support()[1] >= 1.49
    assert np.mean((low <= 0.5) & (high >= 0.5)) >= 0.9
    assert np.all(high - low < 1.0)


def test_state_round_trip_continues_exactly():
    rng = np.random.default_rng(3)
    xs = [rng.normal(0.1, 0.2, 20) for _ in range(60)]
    a, sa = BettingIntervals(20, 0.05), RunningStats(20)
    for x in xs:
        _feed(a, sa, x)
    b, sb = BettingIntervals(20, 0.05), RunningStats(20)
    for x in xs[:30]:
        _feed(b, sb, x)
    c = BettingIntervals(20, 0.05)
    c.restore(b.state())
    sc = RunningStats.from_state(sb.state())
    for x in xs[30:]:
        _feed(c, sc, x)
    for got, want in zip(c.bounds(), a.bounds(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_no_data_means_infinite_bounds():
    low, high = BettingIntervals(3, 0.05).bounds()
    assert np.all(np.isinf(low)) and np.all(np.isinf(high))


def test_a_first_batch_of_zeros_then_real_data_stays_small_and_valid():
    """All-zero first marginals give a support of width 0; the grid must coarsen before it
    grows to the real range instead of adding ~1e12 points."""
    n = 40
    rng = np.random.default_rng(4)
    cs, stats = BettingIntervals(n, 0.05), RunningStats(n)
    _feed(cs, stats, np.zeros(n))
    for _ in range(200):
        _feed(cs, stats, rng.uniform(-1.0, 1.0, n))
    assert cs.log_up.shape[-1] <= 2 * cs.points
    low, high = cs.bounds()
    assert np.mean((low <= 0.0) & (high >= 0.0)) >= 0.9 and np.all(high - low < 1.0)
