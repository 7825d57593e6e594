"""TMAB-Shapley (Ghorbani & Zou 2020, Alg. 1): truncated walks + a top-k bandit.

Every round gives each player still "in play" one marginal; a player leaves play once its
empirical-Bernstein interval settles whether it is in the top-k (see ``_undecided``), or is
narrower than ``epsilon``. Walks stop after the last player in play. Late in a run, when
few players are in play, a whole walk costs many evaluations per marginal;
``sampling="auto"`` then draws each player's marginal at its own random position instead
(one or two evaluations each, same distribution), whichever has been cheaper per marginal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..progress import ProgressFn
from .bounds import bernstein_halfwidth, union_normal_halfwidth
from .sampler import WalkSampler
from .stats import RunningStats

SAMPLINGS = ("auto", "walk", "direct")
RULES = ("separation", "paper")
BOUNDS = ("bernstein", "normal")


@dataclass
class BanditOutcome:
    stats: RunningStats
    halfwidth: np.ndarray  # (n, d)
    active: np.ndarray  # (n,) bool: still undecided at the end
    converged: bool
    direct_rounds: int


def _undecided(mean: np.ndarray, width: np.ndarray, k: int, rule: str) -> np.ndarray:
    """Players whose membership of the top-k is not yet settled by their intervals.

    ``"paper"``: the interval still contains the current k-th largest mean (so the k-th
    player itself only leaves through ``epsilon``). ``"separation"``: a current top-k player
    is settled once its lower bound clears every outsider's upper bound, an outsider once
    its upper bound is below every top-k lower bound.
    """
    n = len(mean)
    order = np.argsort(-mean, kind="stable")
    if rule == "paper":
        kth = mean[order[k - 1]]
        return (mean - width < kth) & (mean + width > kth)
    if k == n:
        return np.zeros(n, dtype=bool)
    inside = np.zeros(n, dtype=bool)
    inside[order[:k]] = True
    lower, upper = mean - width, mean + width
    best_outside_upper = upper[~inside].max()
    worst_inside_lower = lower[inside].min()
    return np.where(inside, lower <= best_outside_upper, upper >= worst_inside_lower)


class _Ranges:
    """Observed range of the marginals (primary output); ``fixed`` overrides."""

    def __init__(self, n: int, fixed: float | None) -> None:
        self.lo = np.full(n, np.inf)
        self.hi = np.full(n, -np.inf)
        self.fixed = fixed

    def update(self, players: np.ndarray, x: np.ndarray) -> None:
        np.minimum.at(self.lo, players, x)
        np.maximum.at(self.hi, players, x)

    def get(self) -> float:
        """The widest range observed over all players (or the fixed one)."""
        if self.fixed is not None:
            return self.fixed
        seen = np.isfinite(self.hi)
        return float(self.hi[seen].max() - self.lo[seen].min()) if seen.any() else 0.0


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
    sampling: str = "auto",
    rule: str = "separation",
    adaptive: bool = True,
    bound: str = "bernstein",
) -> BanditOutcome:
    """Run the bandit until the top-k is separated or a budget runs out.

    Each player's interval uses ``delta / n`` (union bound over players). The range ``R``
    in the Bernstein bound is ``value_range`` when given, otherwise the widest range of
    marginals observed over all players so far (a plug-in: one player's few samples can
    look constant while its marginals are not, so no player is trusted with its own range).
    ``bound="normal"`` uses normal-approximation intervals with the same union bound
    instead. ``adaptive=False`` keeps the stopping rule but samples every player on every
    walk (certified plain Monte-Carlo).
    """
    if bound not in BOUNDS:
        raise ValueError(f"bound must be one of {BOUNDS}, got {bound!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
    n = sampler.n
    stats = RunningStats(n, sampler.output_dim)
    ranges = _Ranges(n, value_range)
    active = np.ones(n, dtype=bool)
    start = time.perf_counter()
    hw = np.full((n, stats.mean.shape[1]), np.inf)
    per_player_delta = delta / n
    walk_cost = walk_samples = 0
    direct_cost = direct_samples = direct_rounds = 0
    while active.any():
        if max_evaluations is not None and sampler.evaluations >= max_evaluations:
            break
        if max_time is not None and time.perf_counter() - start >= max_time:
            break
        ids = np.flatnonzero(active)
        before = sampler.evaluations
        cheaper_direct = _use_direct(sampling, walk_cost, walk_samples, direct_cost,
                                     direct_samples)
        if adaptive and cheaper_direct:
            # several marginals per player when few are in play: fuller batches
            reps = max(1, sampler.chunk // (2 * len(ids)))
            marg = sampler.direct(np.tile(ids, reps))
            ids = np.tile(ids, reps)
            direct_cost += sampler.evaluations - before
            direct_samples += len(ids)
            direct_rounds += 1
        else:
            perm, outcome = sampler.walk(active if adaptive else None)
            visited = perm[: len(outcome.marginals)]
            keep = active[visited]
            if not adaptive:
                keep[:] = True
            ids, marg = visited[keep], outcome.marginals[keep]
            walk_cost, walk_samples = sampler.evaluations - before, len(ids)  # last walk
        width_ = len(np.unique(ids))
        for r0 in range(0, len(ids), width_):  # stats updates take each player once
            stats.update(ids[r0 : r0 + width_], marg[r0 : r0 + width_])
        ranges.update(ids, marg[:, output])
        if bound == "bernstein":
            hw = bernstein_halfwidth(stats.variance(), stats.count, ranges.get(),
                                     per_player_delta)
        else:
            hw = union_normal_halfwidth(stats.variance(), stats.count, per_player_delta)
        mean, width = stats.mean[:, output], hw[:, output]
        undecided = _undecided(mean, width, k, rule)
        active = (undecided & (width > epsilon)) | (stats.count < min_samples)
        report({"evaluations": sampler.evaluations, "walks": sampler.walks,
                "active": int(active.sum())})
    return BanditOutcome(stats, hw, active, not active.any(), direct_rounds)


def _use_direct(
    sampling: str, walk_cost: int, walk_samples: int, direct_cost: int, direct_samples: int
) -> bool:
    if sampling != "auto":
        return sampling == "direct"
    if walk_samples == 0:
        return False
    if direct_samples == 0:
        return walk_cost / walk_samples > 2.0
    return direct_cost / direct_samples < walk_cost / walk_samples
