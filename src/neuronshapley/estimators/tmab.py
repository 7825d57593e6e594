"""TMAB-Shapley (Ghorbani & Zou 2020, Alg. 1): truncated walks + a top-k bandit.

Every walk gives each player still "in play" one marginal; a player leaves play once its
empirical-Bernstein interval excludes the current k-th largest value, or is narrower than
``epsilon``. Walks stop after the last player in play, so late in the run they are short.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..progress import ProgressFn
from .bounds import bernstein_halfwidth
from .sampler import WalkSampler
from .stats import RunningStats


@dataclass
class BanditOutcome:
    stats: RunningStats
    halfwidth: np.ndarray  # (n, d)
    active: np.ndarray  # (n,) bool: still undecided at the end
    converged: bool
    value_range: float


def _kth_largest(values: np.ndarray, k: int) -> float:
    return float(np.partition(values, len(values) - k)[len(values) - k])


def tmab_shapley(
    sampler: WalkSampler,
    k: int,
    delta: float,
    epsilon: float,
    value_range: float | None,
    max_evaluations: int | None,
    max_time: float | None,
    min_samples: int,
    output: int,
    report: ProgressFn,
) -> BanditOutcome:
    """Run the bandit until the top-k is separated or a budget runs out.

    Bounds hold with probability >= 1 - delta jointly over players (union bound: each
    player's interval uses delta / n). The range ``R`` of the marginals is ``value_range``
    when given, otherwise the widest range observed so far over all players.
    """
    n = sampler.n
    stats = RunningStats(n, sampler.output_dim)
    active = np.ones(n, dtype=bool)
    lo, hi = np.inf, -np.inf
    start = time.perf_counter()
    hw = np.full((n, stats.mean.shape[1]), np.inf)
    per_player_delta = delta / n
    while active.any():
        if max_evaluations is not None and sampler.evaluations >= max_evaluations:
            break
        if max_time is not None and time.perf_counter() - start >= max_time:
            break
        perm, outcome = sampler.walk(active)
        visited = perm[: len(outcome.marginals)]
        keep = active[visited]
        stats.update(visited[keep], outcome.marginals[keep])
        prim = outcome.marginals[keep, output]
        if prim.size:
            lo, hi = min(lo, float(prim.min())), max(hi, float(prim.max()))
        r = value_range if value_range is not None else max(hi - lo, 0.0)
        hw = bernstein_halfwidth(stats.variance(), stats.count, r, per_player_delta)
        mean, width = stats.mean[:, output], hw[:, output]
        kth = _kth_largest(mean, k)
        undecided = (mean - width < kth) & (mean + width > kth)
        active = (undecided & (width > epsilon)) | (stats.count < min_samples)
        report({"evaluations": sampler.evaluations, "walks": sampler.walks,
                "active": int(active.sum())})
    r = value_range if value_range is not None else max(hi - lo, 0.0)
    return BanditOutcome(stats, hw, active, not active.any(), r)
