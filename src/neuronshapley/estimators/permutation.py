"""Monte-Carlo Shapley over random permutations, with optional early truncation."""

from __future__ import annotations

from typing import Any

import numpy as np

from .bounds import normal_halfwidth
from .sampler import WalkSampler
from .stats import RunningStats


class PermutationRun:
    """Walks whole permutations; every walk gives every player one marginal.

    ``n_permutations`` (if set) is the number of walks after which the run is finished;
    evaluation and time budgets are checked by the driver between walks.
    """

    def __init__(self, sampler: WalkSampler, n_permutations: int | None,
                 confidence: float) -> None:
        self.sampler = sampler
        self.n_permutations = n_permutations
        self.confidence = confidence
        self.stats = RunningStats(sampler.n, sampler.output_dim)

    def finished(self) -> bool:
        return self.n_permutations is not None and self.sampler.walks >= self.n_permutations

    def step(self) -> None:
        perm, outcome = self.sampler.walk()
        self.stats.update(perm, outcome.marginals)

    def progress(self) -> dict[str, Any]:
        return {"evaluations": self.sampler.evaluations, "walks": self.sampler.walks,
                "active": None}

    def halfwidth(self) -> np.ndarray:
        return normal_halfwidth(self.stats.variance(), self.stats.count, self.confidence)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, facts = self.sampler.state()
        arrays.update({f"stats.{k}": v for k, v in self.stats.state().items()})
        return arrays, facts

    def restore(self, arrays: dict[str, np.ndarray], facts: dict[str, Any]) -> None:
        self.sampler.restore(arrays, facts)
        self.stats = RunningStats.from_state(
            {k[len("stats."):]: v for k, v in arrays.items() if k.startswith("stats.")}
        )
