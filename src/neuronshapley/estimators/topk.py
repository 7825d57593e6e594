"""What intervals settle about a top-k: who is undecided, certainly in, certainly out.

Both read intervals that hold jointly (all units at once); with per-unit intervals the
answers are only indicative.
"""

from __future__ import annotations

import numpy as np

__all__ = ["membership", "undecided"]


def undecided(mean: np.ndarray, lower: np.ndarray, upper: np.ndarray, k: int,
              rule: str) -> np.ndarray:
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
        return (lower < kth) & (upper > kth)
    if k == n:
        return np.zeros(n, dtype=bool)
    inside = np.zeros(n, dtype=bool)
    inside[order[:k]] = True
    best_outside_upper = upper[~inside].max()
    worst_inside_lower = lower[inside].min()
    return np.where(inside, lower <= best_outside_upper, upper >= worst_inside_lower)


def membership(lower: np.ndarray, upper: np.ndarray, k: int
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(certainly_in, certainly_out)`` boolean masks of the top-k, from intervals.

    A player is certainly in when fewer than ``k`` others can be above it (their upper
    bounds exceed its lower bound), certainly out when at least ``k`` others are surely
    above it (their lower bounds exceed its upper bound). The rest are undecided. Exact
    ties at a bound count as "can be above".
    """
    lower = np.asarray(lower, dtype=float)
    upper = np.asarray(upper, dtype=float)
    n = len(lower)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the number of players ({n}), got {k}")
    uppers = np.sort(upper)
    lowers = np.sort(lower)
    # others whose upper bound reaches this one's lower bound (itself excluded)
    can_beat = n - np.searchsorted(uppers, lower, side="left") - (upper >= lower)
    surely_above = n - np.searchsorted(lowers, upper, side="right") - (lower > upper)
    return can_beat < k, surely_above >= k
