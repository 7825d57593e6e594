"""What an estimator asks an engine to sample (``ask``), answered in kind (``tell``).

- :class:`Walks`: up to ``count`` permutation walks, each stopping after the last player of
  ``active`` (None: whole walks); answered by a list of ``(perm (n,), WalkOutcome)``.
- :class:`Direct`: one marginal per entry of ``ids`` at its own random position; answered by
  marginals (len(ids), d).
- :class:`Shared`: marginals of ``ids`` around ``anchors`` shared random coalitions;
  answered by a list of ``(ids, marginals (m, d))``, one per anchor.
- :class:`Coalitions`: the values (M, d) of the given masks (M, n).

An :class:`Answer` carries the result and the evaluations it cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Walks:
    count: int
    active: np.ndarray | None = None
    most: int | None = None  # walks still wanted in all (a hard limit), None: no limit


@dataclass
class Direct:
    ids: np.ndarray


@dataclass
class Shared:
    ids: np.ndarray
    anchors: int


@dataclass
class Coalitions:
    masks: np.ndarray


Request = Walks | Direct | Shared | Coalitions


@dataclass
class Answer:
    result: Any
    evaluations: int


class BudgetSpent(Exception):  # noqa: N818 - a signal between engine and driver, not an error
    """An engine could not answer a request within the evaluations left."""

    def __init__(self, spent: int) -> None:
        super().__init__(f"evaluation budget spent ({spent} evaluations of an unfinished step)")
        self.spent = spent


__all__ = ["Answer", "BudgetSpent", "Coalitions", "Direct", "Request", "Shared", "Walks"]
