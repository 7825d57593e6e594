"""Permutation walks: remove players one by one from the full network, record marginals.

Step ``j`` of a walk over permutation ``perm`` is the coalition ``N \\ perm[:j]``; the
marginal contribution of ``perm[j]`` is ``V(step j) - V(step j+1)``. Consecutive steps are
evaluated in chunks (one batched game call each). With truncation, once the sub-network is
dead (every output within ``tolerance * |V(N) - V(empty)|`` of ``V(empty)`` for ``patience``
steps in a row) the rest of the walk is not evaluated and its marginals are filled in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

FILLS = ("zero", "share", "roulette")


@dataclass(frozen=True)
class Truncation:
    """When a walk counts as dead and what the skipped marginals become.

    ``fill="zero"`` is the paper's rule (skipped marginals are 0; biased by whatever value is
    left). ``fill="share"`` splits the value still left, ``V(dead step) - V(empty)``, equally
    over the skipped players, so every walk's marginals sum to ``V(N) - V(empty)``.
    ``fill="roulette"`` is unbiased: at the dead point the walk goes on anyway with
    probability ``keep`` and the rest of its marginals are divided by ``keep``; otherwise
    they are 0 (E = keep * x / keep = x), at ``keep`` times the cost of the skipped part.
    """

    tolerance: float = 0.05
    patience: int = 3
    fill: str = "zero"
    keep: float = 0.1

    def __post_init__(self) -> None:
        if not 0 <= self.tolerance < 1:
            raise ValueError(f"truncation tolerance must be in [0, 1), got {self.tolerance}")
        if self.patience < 1:
            raise ValueError(f"truncation patience must be >= 1, got {self.patience}")
        if self.fill not in FILLS:
            raise ValueError(f"truncation fill must be one of {FILLS}, got {self.fill!r}")
        if not 0 < self.keep <= 1:
            raise ValueError(f"truncation keep must be in (0, 1], got {self.keep}")


@dataclass
class WalkOutcome:
    marginals: np.ndarray  # (stop_at, d): marginal of perm[p] for p < stop_at
    evaluations: int
    truncated_at: int | None  # step after which marginals were filled in, or None


def as_2d(values: np.ndarray) -> np.ndarray:
    """Game output (M,) or (M, d) as (M, d)."""
    v = np.asarray(values, dtype=np.float64)
    return v[:, None] if v.ndim == 1 else v


def step_masks(positions: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Coalition masks (len(steps), n): player p present at step j iff positions[p] >= j."""
    return positions[None, :] >= steps[:, None]


def run_walk(
    game: Callable[[np.ndarray], np.ndarray],
    perm: np.ndarray,
    stop_at: int,
    v_full: np.ndarray,
    v_null: np.ndarray,
    truncation: Truncation | None,
    chunk: int,
    rng: np.random.Generator | None = None,
) -> WalkOutcome:
    """Walk ``perm`` far enough to know the marginals of its first ``stop_at`` players.

    ``v_full`` and ``v_null`` are ``V(N)`` and ``V(empty)`` as (d,) arrays.
    """
    n = len(perm)
    positions = np.empty(n, dtype=np.int64)
    positions[perm] = np.arange(n)
    values = np.empty((stop_at + 1, v_full.shape[0]))
    values[0] = v_full
    scale = np.abs(v_full - v_null)
    evaluations = 0
    streak = 0
    truncated_at: int | None = None
    roulette_from: int | None = None  # walk kept going past the dead point from here
    j = 1
    while j <= stop_at:
        if j == n:
            values[j] = v_null
            j += 1
            continue
        hi = min(j + chunk, stop_at + 1, n)
        steps = np.arange(j, hi)
        got = as_2d(game(step_masks(positions, steps)))
        evaluations += len(steps)
        for r, step in enumerate(steps):
            values[step] = got[r]
            if truncation is not None:
                dead = bool(np.all(np.abs(got[r] - v_null) <= truncation.tolerance * scale))
                streak = streak + 1 if dead else 0
                if streak >= truncation.patience and roulette_from is None:
                    if truncation.fill == "roulette":
                        if rng is None:
                            raise ValueError("roulette truncation needs a random generator")
                        if rng.random() < truncation.keep:
                            roulette_from = int(step)
                            continue
                    truncated_at = int(step)
                    break
        if truncated_at is not None:
            break
        j = hi
    if truncated_at is not None and truncated_at < stop_at:
        rest = np.arange(truncated_at + 1, stop_at + 1)
        if truncation is not None and truncation.fill == "share":
            remaining = n - truncated_at
            per_player = (values[truncated_at] - v_null) / remaining
            values[rest] = values[truncated_at] - per_player * (rest - truncated_at)[:, None]
        else:
            values[rest] = values[truncated_at]
    marginals = values[:-1] - values[1:]
    if roulette_from is not None and truncation is not None:
        marginals[roulette_from:] /= truncation.keep
    return WalkOutcome(marginals, evaluations, truncated_at)
