"""Monte-Carlo Shapley over random permutations, with optional early truncation."""

from __future__ import annotations

import time

import numpy as np

from ..progress import ProgressFn
from .bounds import normal_halfwidth
from .sampler import WalkSampler
from .stats import RunningStats


def permutation_shapley(
    sampler: WalkSampler,
    max_evaluations: int | None,
    n_permutations: int | None,
    max_time: float | None,
    confidence: float,
    report: ProgressFn,
) -> tuple[RunningStats, np.ndarray, bool]:
    """Walk whole permutations until a budget runs out.

    Budgets are checked between walks, so the last walk may pass ``max_evaluations``.
    Returns the statistics, the half-widths (n, d) and whether the budget was used as asked.
    """
    n = sampler.n
    stats = RunningStats(n, sampler.output_dim)
    start = time.perf_counter()
    while True:
        if n_permutations is not None and sampler.walks >= n_permutations:
            break
        if max_evaluations is not None and sampler.evaluations >= max_evaluations:
            break
        if max_time is not None and time.perf_counter() - start >= max_time:
            break
        perm, outcome = sampler.walk()
        stats.update(perm, outcome.marginals)
        report({"evaluations": sampler.evaluations, "walks": sampler.walks, "active": None})
    hw = normal_halfwidth(stats.variance(), stats.count, confidence)
    return stats, hw, True
