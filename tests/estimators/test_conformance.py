"""One suite for every estimator on both engines (in-process and the worker scheme).

Same seed same result; resume equals uninterrupted; Ctrl-C leaves a resumable partial
result; vector games; the budget respected; the closed-form truth inside the intervals.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import neuronshapley as ns
from neuronshapley.distributed import estimate_distributed
from neuronshapley.estimators import EstimationInterrupted
from neuronshapley.games import AdditiveGame, UnanimityGame, WeightedThresholdGame

N = 16


def unanimity() -> UnanimityGame:
    return UnanimityGame.random(N, n_terms=24, max_size=4, rng=np.random.default_rng(2))


def collapse() -> WeightedThresholdGame:
    return WeightedThresholdGame.neuron_like(N, 4)


class Interrupting:
    """``make()``'s game, but Ctrl-C lands during its ``after``-th call."""

    def __init__(self, make, after: int) -> None:
        self.game, self.after, self.calls = make(), after, 0
        self.n_players = self.game.n_players

    def __call__(self, masks):
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt
        return self.game(masks)


ESTIMATORS = {
    "permutation": ("permutation", {"strata": 2}),
    "sobol": ("truncated", {"truncation_fill": "roulette", "permutations": "sobol"}),
    "truncated": ("truncated", {"truncation_fill": "roulette"}),
    "tmab": ("tmab", {"k": 3}),
    "tmab-direct": ("tmab", {"k": 3, "sampling": "direct", "bound": "bernstein"}),
}
ENGINES = ("in-process", "workers=0")
CASES = [(e, g) for e in ESTIMATORS for g in ENGINES]
IDS = [f"{e}-{g}" for e, g in CASES]


def run(name: str, engine: str, make=collapse, seed: int = 1, **more):
    method, options = ESTIMATORS[name]
    options = {**options, **more}
    if engine == "in-process":
        return ns.estimate(make(), method=method, seed=seed, **options)
    options.setdefault("batch", 4)
    return estimate_distributed(make, method=method, seed=seed, workers=0, **options)


@pytest.mark.parametrize("name,engine", CASES, ids=IDS)
def test_same_seed_same_result(name, engine):
    a = run(name, engine, max_evaluations=1500)
    b = run(name, engine, max_evaluations=1500)
    c = run(name, engine, max_evaluations=1500, seed=2)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert not np.array_equal(a.values, c.values)


@pytest.mark.parametrize("name,engine", CASES, ids=IDS)
def test_budget_is_respected_and_counts_everything(name, engine):
    for budget in (40, 333, 2000):
        res = run(name, engine, max_evaluations=budget)
        assert res.evaluations <= budget
    assert res.evaluations > 0.8 * budget  # and mostly spent


@pytest.mark.parametrize("name,engine", CASES, ids=IDS)
def test_resume_equals_uninterrupted(name, engine, tmp_path):
    full = run(name, engine, max_evaluations=2500)
    run(name, engine, max_evaluations=900, checkpoint=tmp_path)
    resumed = run(name, engine, max_evaluations=2500, checkpoint=tmp_path, resume=True,
                  trust_unfingerprinted=True)
    np.testing.assert_array_equal(resumed.values, full.values)
    np.testing.assert_array_equal(resumed.samples, full.samples)
    assert resumed.evaluations == full.evaluations


@pytest.mark.parametrize("name,engine", CASES, ids=IDS)
@pytest.mark.parametrize("after", [3, 9, 17])
def test_ctrl_c_leaves_a_resumable_partial_result(name, engine, after, tmp_path):
    full = run(name, engine, max_evaluations=2500)
    make = functools.partial(Interrupting, collapse, after)
    with pytest.raises(EstimationInterrupted) as err:
        run(name, engine, make=make, max_evaluations=2500, checkpoint=tmp_path)
    part = err.value.result
    assert part.info["interrupted"] and part.evaluations < full.evaluations
    assert np.all(np.isfinite(part.values))
    resumed = run(name, engine, max_evaluations=2500, checkpoint=tmp_path, resume=True,
                  trust_unfingerprinted=True)
    np.testing.assert_array_equal(resumed.values, full.values)
    np.testing.assert_array_equal(resumed.samples, full.samples)


@pytest.mark.parametrize("name,engine", CASES, ids=IDS)
def test_vector_games(name, engine):
    w = np.random.default_rng(4).normal(size=(N, 2))
    res = run(name, engine, make=functools.partial(AdditiveGame, w), max_evaluations=3000,
              truncation=False) if name.startswith("tmab") else run(
        name, engine, make=functools.partial(AdditiveGame, w), max_evaluations=3000,
        **({"truncation_tolerance": 0.0} if name == "truncated" else {}))
    assert res.values.shape == (N, 2)
    seen = res.samples > 0
    np.testing.assert_allclose(res.values[seen], w[seen], atol=1e-9)  # additive: exact


@pytest.mark.parametrize("name,engine", CASES, ids=IDS)
def test_closed_form_truth_inside_the_intervals(name, engine):
    make = unanimity
    truth = make().shapley_values()
    extra = {"truncation_tolerance": 0.0} if name == "truncated" else {}
    res = run(name, engine, make=make, max_evaluations=20_000, **extra)
    inside = (res.ci_low <= truth + 1e-12) & (truth - 1e-12 <= res.ci_high)
    if name.startswith("tmab"):  # joint intervals at 1 - delta
        assert inside.all()
    else:  # per-unit normal intervals at 0.95
        assert inside.mean() >= 0.8


def test_exact_and_auto_on_closed_form():
    game = UnanimityGame.random(8, n_terms=10, max_size=3, rng=np.random.default_rng(0))
    for method in ("exact", "auto"):
        res = ns.estimate(game, method=method)
        np.testing.assert_allclose(res.values, game.shapley_values(), atol=1e-12)
        assert res.evaluations == 2**8
