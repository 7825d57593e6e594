"""``method="auto"``: an estimator chosen from the problem and a one-walk pilot.

- ``k`` given: the top-k bandit (:class:`~.tmab.TMAB`), which can certify a top-k.
- n <= 12, a budget that allows 2^n evaluations and no option only sampling methods take:
  :class:`~.exact.Exact`.
- otherwise the best anytime estimators measured in ``benchmarks/``, along a scrambled Sobol
  sequence of permutations (:mod:`.permutations`). A pilot decides: one walk stopped where the
  network goes dead, then a few coalitions further along it. Where it goes dead and stays
  dead (neuron games), truncated walks with unbiased roulette fill; where it never goes dead,
  or comes back to life after it did (games that are not monotone), whole walks, since
  truncation would cut walks that still carry value (unless the budget pays for fewer than
  10 whole walks). Beyond the Sobol sequence's 21,201 players (or with
  ``permutations="random"``), position strata sized to the walks the budget buys (about 6
  walks per stratum, 1 to 8 strata). The pilot's evaluations count against the budget.
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
from neuronshapley.estimators.permutations import SOBOL_MAX_PLAYERS
from neuronshapley.estimators.registry import make_estimator, method_options, register
from neuronshapley.estimators.requests import BudgetSpent
from neuronshapley.estimators.sampler import WalkSampler
from neuronshapley.estimators.truncation import DeadNetwork, from_flat
from neuronshapley.estimators.walks import call_game, step_masks

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
        rule = from_flat("auto", {k: v for k, v in chosen.items()
                                  if k in ("truncation_tolerance", "truncation_patience")})
        try:  # one truncated walk: where the network goes dead; then, does it come back?
            pilot = WalkSampler(guarded, n, np.random.default_rng([0 if seed is None else seed,
                                                                   PILOT_STREAM]), rule, chunk)
            perm, outcome = pilot.walk()
            dies_at = outcome.truncated_at
            revives = dies_at is not None and comes_back(
                guarded, perm, dies_at, rule, pilot.v_full, pilot.v_null)
        except BudgetSpent:
            raise InputError(
                f"max_evaluations={budget} does not pay for one walk on this game (a pilot "
                f"walk spent all {guarded.used}): raise max_evaluations"
            ) from None
        spent = guarded.used
        if budget is not None and budget - spent < 1:
            raise InputError(f"max_evaluations={budget} is spent by the pilot walk "
                             f"({spent} evaluations): raise it")
        truncate = dies_at is not None and not revives
        left = budget - spent if budget is not None else None
        few = left is not None and left < MIN_WHOLE_WALKS * (n + 1)
        if few or any(k.startswith("truncation_") for k in chosen):
            truncate = True  # too few whole walks, or truncation options given: as asked
        walk_cost = max(int(dies_at), 1) if truncate and dies_at is not None else n
        if budget is not None:
            chosen["max_evaluations"] = budget - spent
        walks = (budget - spent if budget is not None
                 else walk_cost * int(chosen["n_permutations"])) / walk_cost
        if int(chosen.get("strata", 1)) <= 1 and n <= SOBOL_MAX_PLAYERS:
            chosen.setdefault("permutations", "sobol")
        if chosen.get("permutations", "random") == "sobol":
            design = "Sobol permutations"
        else:
            chosen.setdefault("strata", int(min(8, max(1, walks // 6))))
            design = f"{chosen['strata']} strata"
        if dies_at is None:
            seen = "the pilot walk never went dead"
        else:
            seen = (f"the pilot walk went dead after {dies_at} of {n} removals"
                    + (" and came back to life" if revives else " and stayed dead"))
        if truncate:
            chosen.setdefault("truncation_fill", "roulette")
            method, how = "truncated", "roulette truncation"
            if few and (dies_at is None or revives):
                how += f" (the budget pays for fewer than {MIN_WHOLE_WALKS} whole walks)"
        else:
            method, how = "permutation", "whole walks (truncation would cut live walks)" \
                if revives else "whole walks"
        return method, chosen, {
            "chosen": method, "pilot_evaluations": int(spent),
            "reason": f"{seen}; the budget buys about {walks:.0f} walks: {design}, {how}",
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


#: whole walks the budget must pay for before ``auto`` prefers them to roulette truncation
MIN_WHOLE_WALKS = 10
#: coalitions the pilot evaluates past its dead point, evenly spaced to the walk's end
PROBES = 4


def comes_back(game: Callable[[np.ndarray], np.ndarray], perm: np.ndarray, dead_at: int,
               rule: DeadNetwork, v_full: np.ndarray, v_null: np.ndarray) -> bool:
    """Whether a walk along ``perm`` that went dead after ``dead_at`` removals leaves the
    dead band again: ``PROBES`` coalitions between there and the end, evaluated together."""
    n = len(perm)
    steps = np.unique(dead_at + np.ceil((n - dead_at) * np.arange(1, PROBES + 1)
                                        / (PROBES + 1)).astype(np.int64))
    steps = steps[(steps > dead_at) & (steps < n)]
    if steps.size == 0:
        return False
    positions = np.empty(n, dtype=np.int64)
    positions[perm] = np.arange(n)
    values = call_game(game, step_masks(positions, steps))  # the first s players removed
    return bool((~rule.dead(values, v_null, np.abs(v_full - v_null))).any())


__all__ = ["Auto", "comes_back"]
