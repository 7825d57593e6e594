"""Monte-Carlo Shapley over random permutations, with optional early truncation."""

from __future__ import annotations

from typing import Any

import numpy as np

from neuronshapley.estimators.bounds import normal_halfwidth
from neuronshapley.estimators.sampler import WalkSampler
from neuronshapley.estimators.stats import RunningStats
from neuronshapley.estimators.surrogate import SurrogateControl


class PermutationRun:
    """Walks whole permutations; every walk gives every player one marginal.

    ``n_permutations`` (if set) is the number of walks after which the run is finished;
    evaluation and time budgets are checked by the driver between walks.
    """

    def __init__(self, sampler: WalkSampler, n_permutations: int | None,
                 confidence: float, control: str | None = None) -> None:
        self.sampler = sampler
        self.n_permutations = n_permutations
        self.confidence = confidence
        self.stats = RunningStats(sampler.n, sampler.output_dim)
        self.control: SurrogateControl | None = None
        if control == "surrogate":
            if sampler.output_dim != 1:
                raise ValueError("control='surrogate' needs a game with one output")
            if sampler.resamples:
                raise ValueError("control='surrogate' needs a fixed evaluation set "
                                 "(the game draws a fresh batch per walk)")
            self.control = SurrogateControl(
                sampler.n, float(sampler.v_full[0]), float(sampler.v_null[0]),
                int(sampler.rng.integers(2**63)))
        elif control not in (None, "none"):
            raise ValueError(f"control must be 'surrogate' or None, got {control!r}")

    def finished(self) -> bool:
        return self.n_permutations is not None and self.sampler.walks >= self.n_permutations

    def step(self) -> None:
        count = self.sampler.n if self.n_permutations is None else (
            self.n_permutations - self.sampler.walks)
        first = self.sampler.walks
        for t, (perm, outcome) in enumerate(self.sampler.walk_many(count), start=first):
            marginals = outcome.marginals
            if self.control is not None and outcome.values is not None:
                marginals = self.control.adjust(t, perm, marginals, outcome.values[:, 0])
            self.stats.update(perm[: len(marginals)], marginals)

    def progress(self) -> dict[str, Any]:
        return {"evaluations": self.sampler.evaluations, "walks": self.sampler.walks,
                "active": None}

    def interval(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds (n, d): per-player normal intervals at ``confidence``."""
        hw = normal_halfwidth(self.stats.variance(), self.stats.count, self.confidence)
        return self.stats.mean - hw, self.stats.mean + hw

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, facts = self.sampler.state()
        arrays.update({f"stats.{k}": v for k, v in self.stats.state().items()})
        if self.control is not None:
            arrays.update(self.control.state())
        return arrays, facts

    def restore(self, arrays: dict[str, np.ndarray], facts: dict[str, Any]) -> None:
        self.sampler.restore(arrays, facts)
        if self.control is not None:
            self.control.restore(arrays)
        self.stats = RunningStats.from_state(
            {k[len("stats."):]: v for k, v in arrays.items() if k.startswith("stats.")}
        )
