"""Stopping rules that combine: ``MaxEvaluations(20_000) | MaxTime(600)``, ``a & b``, ``~a``.

A rule looks at a :class:`RunView` (evaluations and walks so far, seconds elapsed, the
estimator) and says whether the run is done. Rules with a hard limit (evaluations, walks)
also tell the driver how much is left, so that no request is sized past it: an evaluation
budget is never overshot. A new rule is one subclass with a ``done`` method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neuronshapley.estimators.params import Param, validate
from neuronshapley.estimators.topk import undecided


@dataclass
class RunView:
    """What a stopping rule may look at (counts since the run began, resumes included)."""

    evaluations: int
    walks: int
    elapsed: float
    estimator: Any


class StoppingRule:
    """Base class; ``|`` (either), ``&`` (both) and ``~`` (not) combine rules."""

    def done(self, view: RunView) -> bool:
        raise NotImplementedError

    def max_evaluations(self) -> int | None:
        """The hard evaluation limit this rule implies (None: none)."""
        return None

    def max_walks(self) -> int | None:
        """The hard walk limit this rule implies (None: none)."""
        return None

    def __or__(self, other: StoppingRule) -> StoppingRule:
        return Either(self, other)

    def __and__(self, other: StoppingRule) -> StoppingRule:
        return All(self, other)

    def __invert__(self) -> StoppingRule:
        return Not(self)

    def describe(self) -> Any:
        """Plain values naming the rule (provenance, checkpoint identity)."""
        return {type(self).__name__: {k: v for k, v in vars(self).items()}}


def _limits(values: list[int | None], combine: Any) -> int | None:
    known = [v for v in values if v is not None]
    return combine(known) if known else None


class Either(StoppingRule):
    """Done when any of its rules is done."""

    def __init__(self, *rules: StoppingRule) -> None:
        self.rules = [r for rule in rules for r in (rule.rules if isinstance(rule, Either)
                                                    else [rule])]

    def done(self, view: RunView) -> bool:
        return any(r.done(view) for r in self.rules)

    def max_evaluations(self) -> int | None:
        return _limits([r.max_evaluations() for r in self.rules], min)

    def max_walks(self) -> int | None:
        return _limits([r.max_walks() for r in self.rules], min)

    def describe(self) -> Any:
        return {"any": [r.describe() for r in self.rules]}


class All(StoppingRule):
    """Done when all of its rules are done."""

    def __init__(self, *rules: StoppingRule) -> None:
        self.rules = list(rules)

    def done(self, view: RunView) -> bool:
        return all(r.done(view) for r in self.rules)

    def max_evaluations(self) -> int | None:
        limits = [r.max_evaluations() for r in self.rules]
        return None if None in limits else max(limits)  # type: ignore[type-var]

    def max_walks(self) -> int | None:
        limits = [r.max_walks() for r in self.rules]
        return None if None in limits else max(limits)  # type: ignore[type-var]

    def describe(self) -> Any:
        return {"all": [r.describe() for r in self.rules]}


class Not(StoppingRule):
    """Done while its rule is not."""

    def __init__(self, rule: StoppingRule) -> None:
        self.rule = rule

    def done(self, view: RunView) -> bool:
        return not self.rule.done(view)

    def describe(self) -> Any:
        return {"not": self.rule.describe()}


class MaxEvaluations(StoppingRule):
    """Done after ``n`` coalition evaluations (every one counted, V(N) and pilots too)."""

    def __init__(self, n: int) -> None:
        self.n = validate("MaxEvaluations", [Param("n", "int", None, low=1, none=False)],
                          {"n": n})["n"]

    def done(self, view: RunView) -> bool:
        return view.evaluations >= self.n

    def max_evaluations(self) -> int | None:
        return self.n


class MaxWalks(StoppingRule):
    """Done after ``n`` permutation walks."""

    def __init__(self, n: int) -> None:
        self.n = validate("MaxWalks", [Param("n", "int", None, low=1, none=False)],
                          {"n": n})["n"]

    def done(self, view: RunView) -> bool:
        return view.walks >= self.n

    def max_walks(self) -> int | None:
        return self.n


class MaxTime(StoppingRule):
    """Done after ``seconds`` of wall time in this process."""

    def __init__(self, seconds: float) -> None:
        self.seconds = validate("MaxTime", [Param("seconds", "seconds", None, low=0.0,
                                                  none=False)], {"seconds": seconds})["seconds"]

    def done(self, view: RunView) -> bool:
        return view.elapsed >= self.seconds


class Converged(StoppingRule):
    """Done when the estimator says it is (TMAB: every unit's top-k membership settled)."""

    def done(self, view: RunView) -> bool:
        return bool(view.estimator.converged())

    def describe(self) -> Any:
        return "Converged"


class IntervalsNarrowerThan(StoppingRule):
    """Done once every unit's interval half-width is below ``epsilon`` (all outputs)."""

    def __init__(self, epsilon: float) -> None:
        self.epsilon = validate("IntervalsNarrowerThan", [Param(
            "epsilon", "float", None, low=0.0, low_open=True, none=False)],
            {"epsilon": epsilon})["epsilon"]

    def done(self, view: RunView) -> bool:
        low, high = view.estimator.interval()
        return bool(np.all((high - low) / 2 < self.epsilon))


class TopKSeparated(StoppingRule):
    """Done once the top-``k`` intervals clear every other unit's (the ranked output);
    units whose interval is narrower than ``epsilon`` count as settled."""

    def __init__(self, k: int, epsilon: float = 0.0, output: int = 0) -> None:
        checked = validate("TopKSeparated", [
            Param("k", "int", None, low=1, none=False),
            Param("epsilon", "float", 0.0, low=0.0, none=False),
            Param("output", "int", 0, low=0, none=False)],
            {"k": k, "epsilon": epsilon, "output": output})
        self.k, self.epsilon, self.output = checked["k"], checked["epsilon"], checked["output"]

    def done(self, view: RunView) -> bool:

        low, high = view.estimator.interval()
        mean = view.estimator.values()
        j = self.output
        if mean.shape[0] <= self.k:
            return True
        open_ = undecided(mean[:, j], low[:, j], high[:, j], self.k, "separation")
        return not bool(np.any(open_ & ((high[:, j] - low[:, j]) / 2 > self.epsilon)))


def any_of(rules: list[StoppingRule | None]) -> StoppingRule | None:
    """The rules given (None skipped) joined by ``|``; None when there are none."""
    present = [r for r in rules if r is not None]
    if not present:
        return None
    out = present[0]
    for r in present[1:]:
        out = out | r
    return out


__all__ = ["All", "Either", "Converged", "IntervalsNarrowerThan", "MaxEvaluations", "MaxTime",
           "MaxWalks", "Not", "RunView", "StoppingRule", "TopKSeparated", "any_of"]
