"""``method="auto"``: an estimator chosen from the problem and a one-walk pilot.

- ``k`` given: the top-k bandit (:class:`~.tmab.TMAB`), which can certify a top-k.
- n <= 12, a budget that allows 2^n evaluations and no option only sampling methods take:
  :class:`~.exact.Exact`.
- otherwise the best anytime estimator measured in ``benchmarks/``: truncated walks with
  unbiased roulette fill and position strata; one pilot walk measures what a walk costs on
  this game, so the strata fit the walks the budget buys (about 6 walks per stratum, 1 to 8
  strata). The pilot's evaluations count against the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from neuronshapley.errors import InputError, OptionError
from neuronshapley.estimators.base import SEED, Estimator
from neuronshapley.estimators.driver import resolve_players
from neuronshapley.estimators.engine import BudgetGuard
from neuronshapley.estimators.params import validate
from neuronshapley.estimators.registry import make_estimator, method_options, register
from neuronshapley.estimators.requests import BudgetSpent
from neuronshapley.estimators.sampler import WalkSampler
from neuronshapley.estimators.truncation import Truncation

PILOT_STREAM = 7919  # the pilot's generator: default_rng([seed, PILOT_STREAM])


@register
class Auto(Estimator):
    """Chooses and runs an estimator (see the module docstring); ``result.info["auto"]``
    says what it chose and why."""

    method = "auto"
    PARAMS = (SEED,)

    def __init__(self, seed: int | None = 0, **options: Any) -> None:
        self._params = validate("Auto", self.PARAMS, {"seed": seed})
        unknown = sorted(set(options) - set(self.option_names()))
        if unknown:
            raise OptionError(f"method 'auto' takes no option(s) {unknown}; it takes "
                              f"{self.option_names()}")
        if options.get("k") is None:
            bandit_only = sorted(set(options) - set(method_options("truncated")))
            if bandit_only:
                raise InputError(
                    f"method 'auto' uses {bandit_only} only with k (the top-k bandit): pass "
                    "k=<size of the top set> or drop them"
                )
        self.options = dict(options)

    @classmethod
    def option_names(cls) -> list[str]:
        return sorted(set(method_options("truncated")) | set(method_options("tmab")))

    @classmethod
    def from_options(cls, seed: int | None = 0, **options: Any) -> Auto:
        return cls(seed=seed, **options)

    def choose(self, game: Any, n: int, run: dict[str, Any]
               ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """``(method, its options, what and why)``; may walk one pilot walk on ``game``."""
        options, seed = self.options, self._params["seed"]
        if options.get("k") is not None:
            return "tmab", dict(options), {"chosen": "tmab", "reason": "k given: certify "
                                           "the top-k", "pilot_evaluations": 0}
        budget = options.get("max_evaluations")
        sampling_only = sorted((set(options) | {k for k, v in run.items() if v})
                               - set(method_options("exact")) - {"max_evaluations"})
        if n <= 12 and (budget is None or budget >= 1 << n) and not sampling_only:
            return "exact", {k: v for k, v in options.items() if k == "chunk"}, {
                "chosen": "exact", "reason": f"{1 << n} evaluations enumerate every "
                "coalition", "pilot_evaluations": 0}
        chosen = dict(options)
        if budget is None and chosen.get("n_permutations") is None:
            budget = 100 * (n + 1)
        chunk = chosen.get("chunk")
        guarded = BudgetGuard(game)
        guarded.left = budget
        try:
            pilot = WalkSampler(guarded, n, np.random.default_rng([0 if seed is None else seed,
                                                                   PILOT_STREAM]),
                                Truncation(fill="zero"), chunk)
            pilot.walk()
        except BudgetSpent:
            raise InputError(
                f"max_evaluations={budget} does not pay for one walk on this game (a pilot "
                f"walk spent all {guarded.used}): raise max_evaluations"
            ) from None
        spent = guarded.used
        walk_cost = max(pilot.evaluations - 2, 1)
        if budget is not None:
            if budget - spent < 1:
                raise InputError(f"max_evaluations={budget} is spent by the pilot walk "
                                 f"({spent} evaluations): raise it")
            chosen["max_evaluations"] = budget - spent
        walks = (budget - spent if budget is not None
                 else walk_cost * int(chosen["n_permutations"])) / walk_cost
        chosen.setdefault("truncation_fill", "roulette")
        chosen.setdefault("strata", int(min(8, max(1, walks // 6))))
        return "truncated", chosen, {
            "chosen": "truncated", "pilot_evaluations": int(spent),
            "reason": f"a walk costs about {walk_cost} evaluations, so the budget buys about "
                      f"{walks:.0f} walks: {chosen['strata']} strata, roulette truncation",
        }

    def fit(self, game: Callable[[np.ndarray], np.ndarray], n_players: int | None = None,
            **run: Any) -> Any:
        n = resolve_players(game, n_players)
        method, options, choice = self.choose(game, n, run)
        estimator = make_estimator(method, self._params["seed"], **options)
        result = estimator.fit(game, n, **run) if estimator.sampling else estimator.fit(game, n)
        result.evaluations += choice["pilot_evaluations"]
        result.info["auto"] = choice
        return result


__all__ = ["Auto"]
