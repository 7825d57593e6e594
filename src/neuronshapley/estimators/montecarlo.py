"""Monte-Carlo Shapley over random permutation walks: plain, or with early truncation.

Every walk gives every player one marginal; intervals are per-player normal intervals at
``confidence``. :class:`MonteCarlo` walks whole permutations (``method="permutation"``),
:class:`Truncated` stops a walk once the sub-network is dead and fills in the rest
(``method="truncated"``, see :mod:`.truncation`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from neuronshapley.estimators.base import SEED, Estimator
from neuronshapley.estimators.bounds import normal_halfwidth
from neuronshapley.estimators.control import ControlVariate, make_control
from neuronshapley.estimators.params import Param
from neuronshapley.estimators.permutations import PERMUTATIONS
from neuronshapley.estimators.registry import register
from neuronshapley.estimators.requests import Answer, Request, Walks
from neuronshapley.estimators.stats import RunningStats
from neuronshapley.estimators.stopping import (
    MaxEvaluations,
    MaxTime,
    MaxWalks,
    RunView,
    StoppingRule,
    any_of,
)
from neuronshapley.estimators.truncation import DeadNetwork, TruncationRule, flat_truncation

BUDGET = (
    Param("max_evaluations", "int", None, "coalition evaluations in all (never overshot)",
          low=1),
    Param("max_time", "seconds", None, "wall-clock seconds", low=0.0),
    Param("chunk", "int", None, "coalitions per game call (default: the game's "
          "masks_per_pass, else 32)", low=1),
    Param("stop", StoppingRule, None, "more stopping rules, e.g. MaxTime(60) | ..."),
)
STRATA = Param("strata", "int", 1, "position-stratified blocks of walks (unbiased)", low=1,
               none=False)
PERMUTATIONS_PARAM = Param("permutations", "str", "random", "which permutations the walks "
                           "follow: random (independent) or sobol (a scrambled Sobol "
                           "sequence, unbiased)", choices=PERMUTATIONS, none=False)


@register
class MonteCarlo(Estimator):
    """Plain Monte-Carlo over uniform random permutations (``method="permutation"``).

    Stops at ``n_permutations`` walks, ``max_evaluations`` (default 100 walks' worth,
    ``100 * (n + 1)``, when neither is given) or ``max_time``, whichever comes first.
    """

    method = "permutation"
    PARAMS = (
        SEED,
        Param("n_permutations", "int", None, "walks in all", low=1),
        *BUDGET,
        Param("confidence", "float", 0.95, "level of the per-player normal intervals",
              low=0.0, high=1.0, low_open=True, high_open=True, none=False),
        STRATA,
        PERMUTATIONS_PARAM,
        Param("control", ControlVariate, None, "control variate ('surrogate')",
              coerce=make_control),
    )

    def truncation(self) -> TruncationRule | None:
        return None

    def strata(self) -> int:
        return int(self._params["strata"])

    def permutations(self) -> str:
        return str(self._params["permutations"])

    def begin(self, info: Any, engine: Any) -> None:
        self.info, self.engine = info, engine
        self.stats = RunningStats(info.n, info.d)
        self.cv = None
        if self._params["control"] is not None:
            self.cv = self._params["control"].start(info.n, info.v_full, info.v_null,
                                                    info.resamples, engine.seed_for(0))
        self.budget = self._params["max_evaluations"]
        if self.budget is None and self._params["n_permutations"] is None:
            self.budget = 100 * (info.n + 1)

    def stop_rule(self) -> StoppingRule | None:
        p = self._params
        return any_of([MaxEvaluations(self.budget) if self.budget is not None else None,
                       MaxWalks(p["n_permutations"]) if p["n_permutations"] else None,
                       MaxTime(p["max_time"]) if p["max_time"] is not None else None,
                       p["stop"]])

    def ask(self, view: RunView, walks_left: int | None) -> Request:
        count = self.info.n if walks_left is None else walks_left
        return Walks(count, None, walks_left)

    def tell(self, request: Request, answer: Answer) -> None:
        walks = answer.result
        first = self.engine.walks - len(walks)
        for t, (perm, outcome) in enumerate(walks, start=first):
            marginals = outcome.marginals
            if self.cv is not None and outcome.values is not None:
                marginals = self.cv.adjust(t, perm, marginals, outcome.values[:, 0])
            self.stats.update(perm[: len(marginals)], marginals)

    def values(self) -> np.ndarray:
        return self.stats.mean

    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        hw = normal_halfwidth(self.stats.variance(), self.stats.count,
                              self._params["confidence"])
        return self.stats.mean - hw, self.stats.mean + hw

    def samples(self) -> np.ndarray:
        return self.stats.count

    def confidence(self) -> float | None:
        return float(self._params["confidence"])

    def result_info(self) -> dict[str, Any]:
        level = f"{100 * float(self._params['confidence']):g}%"
        rule = self.truncation()
        bias = ("" if rule is None or rule.fill.unbiased else
                f"; the {rule.fill.name!r} truncation fill biases them where V is not "
                "monotone (truncation_fill='roulette' does not)")
        p = self._params
        design = ("" if p["strata"] <= 1 and p["permutations"] == "random" else
                  "; computed as for independent walks, which these walks are not (strata or "
                  "Sobol permutations spread positions evenly: usually wider than needed)")
        return {"intervals_note": f"per-unit {level} normal-approximation intervals, each "
                f"for one unit on its own, at the final sample count{bias}{design}"}

    def state(self) -> dict[str, np.ndarray]:
        arrays = {f"stats.{k}": v for k, v in self.stats.state().items()}
        if self.cv is not None:
            arrays.update(self.cv.state())
        return arrays

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        if self.cv is not None:
            self.cv.restore(arrays)
        self.stats = RunningStats.from_state(
            {k[len("stats."):]: v for k, v in arrays.items() if k.startswith("stats.")})

    def resolved_params(self) -> dict[str, Any]:
        p = {k: v for k, v in self._params.items() if k not in ("seed", "stop")}
        p["max_evaluations"] = getattr(self, "budget", p["max_evaluations"])
        control = p["control"]
        p["control"] = None if control is None else control.name
        if control is not None:
            p.update({f"control_{k}": v for k, v in control.settings().items()})
        if self._params["stop"] is not None:
            p["stop"] = self._params["stop"].describe()
        return p


@register
class Truncated(MonteCarlo):
    """Monte-Carlo with truncated walks (``method="truncated"``): a walk stops once the
    sub-network is dead (``truncation``, default :class:`~.truncation.DeadNetwork`) and its
    skipped marginals are filled in (zero, share or unbiased roulette)."""

    method = "truncated"
    PARAMS = (*MonteCarlo.PARAMS,
              Param("truncation", TruncationRule, DeadNetwork(), "dead-network rule and fill",
                    none=False))

    @classmethod
    def option_names(cls) -> list[str]:
        """Always truncates: the rule is set by the flat ``truncation_*`` options."""
        return [n for n in super().option_names() if n != "truncation"]

    def truncation(self) -> TruncationRule | None:
        return self._params["truncation"]

    def resolved_params(self) -> dict[str, Any]:
        p = super().resolved_params()
        p.pop("truncation")
        return {**p, **flat_truncation(self._params["truncation"])}


__all__ = ["MonteCarlo", "Truncated"]
