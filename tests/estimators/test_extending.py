"""A new estimator, truncation rule, stopping rule and sampler, each one class here.

Places each needs: the estimator one class (its PARAMS, begin, ask, tell, read-out and
state; plus one registry line to be reachable by name from ``estimate``); the truncation
rule one class (``dead``); the stopping rule one class (``done``); the bandit's sampler one
class (``request``). Both engines, the
driver's budget, checkpoints and Ctrl-C come with them.
"""

from __future__ import annotations

import numpy as np

from neuronshapley.estimators import (
    REGISTRY,
    TMAB,
    DeadNetwork,
    MaxEvaluations,
    MonteCarlo,
    Sampling,
    StoppingRule,
    Truncated,
    TruncationRule,
    Zero,
    estimate,
)
from neuronshapley.estimators.base import SEED, Estimator
from neuronshapley.estimators.params import Param
from neuronshapley.estimators.requests import Direct, Shared
from neuronshapley.estimators.stats import RunningStats
from neuronshapley.games import AdditiveGame, WeightedThresholdGame


class DirectMC(Estimator):
    """Each round: ``per_player`` marginals of every player at random positions."""

    method = "direct-mc"
    PARAMS = (SEED, Param("per_player", "int", 2, low=1, none=False),
              Param("max_evaluations", "int", 1000, low=1, none=False))

    def begin(self, info, engine):
        self.n, self.stats = info.n, RunningStats(info.n, info.d)

    def stop_rule(self):
        return MaxEvaluations(self.max_evaluations)

    def ask(self, view, walks_left):
        return Direct(np.tile(np.arange(self.n), self.per_player))

    def tell(self, request, answer):
        for r in range(0, len(request.ids), self.n):
            self.stats.update(request.ids[r : r + self.n], answer.result[r : r + self.n])

    def values(self):
        return self.stats.mean

    def interval(self):
        return self.stats.mean - np.inf, self.stats.mean + np.inf

    def samples(self):
        return self.stats.count

    def state(self):
        return {f"stats.{k}": v for k, v in self.stats.state().items()}

    def restore(self, arrays):
        self.stats = RunningStats.from_state(
            {k[6:]: v for k, v in arrays.items() if k.startswith("stats.")})


class BelowFraction(TruncationRule):
    """Dead once V falls below a fraction of V(N) (primary output)."""

    def __init__(self, fraction: float) -> None:
        self.fraction, self.patience, self.fill = fraction, 1, Zero()

    def dead(self, values, v_null, scale):
        return values[:, 0] <= v_null[0] + self.fraction * scale[0]


class AfterWalks(StoppingRule):
    """Done after an even number of walks larger than ``n``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def done(self, view):
        return view.walks > self.n and view.walks % 2 == 0


def test_a_new_estimator_is_one_class():
    game = AdditiveGame(np.arange(6.0))
    res = DirectMC(seed=0, max_evaluations=240).fit(game)
    np.testing.assert_allclose(res.values, np.arange(6.0), atol=1e-12)
    assert res.evaluations <= 240
    REGISTRY["direct-mc"] = DirectMC  # the one line that makes it reachable by name
    try:
        again = estimate(game, method="direct-mc", max_evaluations=240)
        np.testing.assert_array_equal(again.values, res.values)
    finally:
        del REGISTRY["direct-mc"]


def test_a_new_truncation_rule_is_one_class():
    game = WeightedThresholdGame.neuron_like(30, 4)
    res = Truncated(seed=0, n_permutations=20, truncation=BelowFraction(0.1)).fit(game)
    base = Truncated(seed=0, n_permutations=20, truncation=DeadNetwork(0.1, 1)).fit(game)
    assert res.info["truncated_walks"] > 0
    assert res.evaluations <= base.evaluations + 20 * 30


def test_a_new_stopping_rule_is_one_class():
    game = WeightedThresholdGame.neuron_like(20, 4)
    res = MonteCarlo(seed=0, stop=AfterWalks(5) | MaxEvaluations(10**6)).fit(game)
    assert res.info["walks"] >= 6 and res.info["walks"] % 2 == 0


class AnchorsFromTheStart(Sampling):
    """A sampler: shared anchor coalitions from the first round (no walks at all)."""

    name = "anchors-first"

    def request(self, now):
        return Shared(now.ids, 4)


def test_a_new_sampler_is_one_class():
    game = WeightedThresholdGame.neuron_like(12, 4)
    res = TMAB(k=2, seed=0, sampling=AnchorsFromTheStart(), max_evaluations=3000).fit(game)
    assert res.info["walks"] == 0 and res.info["direct_rounds"] > 0
    assert res.params["sampling"] == "anchors-first"
    truth = game.shapley_values()
    assert ((res.ci_low <= truth) & (truth <= res.ci_high)).all()
