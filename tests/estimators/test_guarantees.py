"""What the bandit's intervals promise, checked where it is hardest: games that are not
monotone or whose dead sub-networks revive, stopped at an arbitrary budget (the sequences are
anytime-valid), with the closed-form truth."""

from __future__ import annotations

import numpy as np
import pytest

import neuronshapley as ns
from neuronshapley.estimators.topk import membership
from neuronshapley.games import UnanimityGame, WeightedThresholdGame

DELTA = 0.1
SEEDS = range(10)


def _breaking_games():
    return {
        "signed-unanimity": (UnanimityGame.random(24, 60, 4, rng=11), 4),
        "reviving": (WeightedThresholdGame.reviving(24, rng=np.random.default_rng(2)), 3),
    }


def test_membership_follows_its_definition():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 9))
        k = int(rng.integers(1, n + 1))
        mid = rng.normal(size=n).round(1)
        half = rng.uniform(0, 0.5, size=n).round(1)
        low, high = mid - half, mid + half
        sure_in, sure_out = membership(low, high, k)
        for i in range(n):
            others = np.arange(n) != i
            assert sure_in[i] == ((high[others] >= low[i]).sum() < k)
            assert sure_out[i] == ((low[others] > high[i]).sum() >= k)
        assert not (sure_in & sure_out).any()
        assert sure_in.sum() <= k and (~sure_out).sum() >= k


@pytest.mark.parametrize("name", list(_breaking_games()))
def test_default_bandit_intervals_hold_jointly_on_games_built_to_break_them(name):
    game, k = _breaking_games()[name]
    phi = game.shapley_values()
    true_top = set(np.argsort(-phi, kind="stable")[:k])
    covered = 0
    for seed in SEEDS:
        res = ns.estimate(game, method="tmab", k=k, delta=DELTA, seed=seed,
                          max_evaluations=800)
        assert res.intervals == "joint" and res.info["guarantee"] is True
        holds = bool(((res.ci_low <= phi) & (phi <= res.ci_high)).all())
        covered += holds
        # the per-unit intervals are inside the joint ones, and never wider
        assert (res.unit_low >= res.ci_low).all() and (res.unit_high <= res.ci_high).all()
        status = res.top_k_status()
        if holds:  # what the intervals certify is then true
            for i, s in enumerate(status):
                assert s != "in" or i in true_top
                assert s != "out" or i not in true_top
    assert covered >= len(SEEDS) * (1 - DELTA)


def test_biased_truncation_is_labelled_not_guaranteed():
    game, k = _breaking_games()["signed-unanimity"]
    res = ns.estimate(game, method="tmab", k=k, seed=0, max_evaluations=300, truncation=True)
    assert res.info["guarantee"] is False
    assert "'zero' truncation fill is biased" in res.info["intervals_note"]
    fair = ns.estimate(game, method="tmab", k=k, seed=0, max_evaluations=300,
                       truncation_fill="roulette")
    assert fair.info["guarantee"] is True
    normal = ns.estimate(game, method="tmab", k=k, seed=0, max_evaluations=300,
                         bound="normal")
    assert normal.info["guarantee"] is False and "not an anytime" in normal.info[
        "intervals_note"]


def test_interval_kinds_travel_with_the_files(tmp_path):
    game, k = _breaking_games()["reviving"]
    res = ns.estimate(game, method="tmab", k=k, seed=1, max_evaluations=600)
    res.save(tmp_path / "t")
    header = (tmp_path / "t" / "values.csv").read_text().splitlines()[0].split(",")
    assert header == ["player", "value", "ci_low", "ci_high", "unit_low", "unit_high",
                      "top_k", "samples", "rank"]
    back = ns.ShapleyResult.load(tmp_path / "t")
    assert back.intervals == "joint" and back.top_k_status() == res.top_k_status()
    np.testing.assert_array_equal(back.unit_low, res.unit_low)
    assert back.interval_label() == "joint 95% interval"
    mc = ns.estimate(game, method="truncated", seed=1, max_evaluations=600)
    mc.save(tmp_path / "m")
    back = ns.ShapleyResult.load(tmp_path / "m")
    assert back.intervals == "per-unit" and back.unit_low is None
    assert back.top_k_status(3) is None  # per-unit intervals certify no top-k
    assert "per-unit 95% normal-approximation" in back.info["intervals_note"]
    exact = ns.estimate(UnanimityGame.random(6, 8, 3, rng=0), method="exact")
    assert exact.intervals == "exact" and exact.top_k_status(2).count("in") == 2
