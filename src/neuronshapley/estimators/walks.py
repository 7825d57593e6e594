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
    values: np.ndarray | None = None  # (stop_at + 1, d) V along the walk, NaN if not evaluated


def as_2d(values: np.ndarray) -> np.ndarray:
    """Game output (M,) or (M, d) as (M, d)."""
    v = np.asarray(values, dtype=np.float64)
    return v[:, None] if v.ndim == 1 else v


def step_masks(positions: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Coalition masks (len(steps), n): player p present at step j iff positions[p] >= j."""
    return positions[None, :] >= steps[:, None]


class _Walk:
    """One walk in progress: which steps it still needs and what it has seen."""

    def __init__(self, perm: np.ndarray, stop_at: int, v_full: np.ndarray,
                 v_null: np.ndarray, truncation: Truncation | None) -> None:
        n = len(perm)
        self.n, self.stop_at, self.truncation = n, stop_at, truncation
        self.positions = np.empty(n, dtype=np.int64)
        self.positions[perm] = np.arange(n)
        self.values = np.empty((stop_at + 1, v_full.shape[0]))
        self.values[0] = v_full
        self.v_null = v_null
        self.scale = np.abs(v_full - v_null)
        self.evaluations = 0
        self.streak = 0
        self.truncated_at: int | None = None
        self.roulette_from: int | None = None  # walk kept going past the dead point from here
        self.next = 1  # first step not evaluated yet
        self._skip_last()

    def _skip_last(self) -> None:
        if self.next == self.n and self.next <= self.stop_at:  # the empty coalition: known
            self.values[self.n] = self.v_null
            self.next += 1

    @property
    def done(self) -> bool:
        return self.truncated_at is not None or self.next > self.stop_at

    def pending(self, chunk: int) -> np.ndarray:
        """The next (at most ``chunk``) steps to evaluate."""
        hi = min(self.next + chunk, self.stop_at + 1, self.n)
        return np.arange(self.next, hi)

    def take(self, steps: np.ndarray, got: np.ndarray, rng: np.random.Generator | None) -> None:
        """Record the values of ``steps`` (as returned by :meth:`pending`)."""
        self.evaluations += len(steps)
        trunc = self.truncation
        for r, step in enumerate(steps):
            self.values[step] = got[r]
            if trunc is None:
                continue
            dead = bool(np.all(np.abs(got[r] - self.v_null) <= trunc.tolerance * self.scale))
            self.streak = self.streak + 1 if dead else 0
            if self.streak >= trunc.patience and self.roulette_from is None:
                if trunc.fill == "roulette":
                    if rng is None:
                        raise ValueError("roulette truncation needs a random generator")
                    if rng.random() < trunc.keep:
                        self.roulette_from = int(step)
                        continue
                self.truncated_at = int(step)
                return
        self.next = int(steps[-1]) + 1 if len(steps) else self.next
        self._skip_last()

    def outcome(self) -> WalkOutcome:
        values, stop_at, n = self.values, self.stop_at, self.n
        cut = self.truncated_at
        seen = values.copy()
        if cut is not None:
            seen[cut + 1 :] = np.nan
        if cut is not None and cut < stop_at:
            rest = np.arange(cut + 1, stop_at + 1)
            if self.truncation is not None and self.truncation.fill == "share":
                per_player = (values[cut] - self.v_null) / (n - cut)
                values[rest] = values[cut] - per_player * (rest - cut)[:, None]
            else:
                values[rest] = values[cut]
        marginals = values[:-1] - values[1:]
        if self.roulette_from is not None and self.truncation is not None:
            marginals[self.roulette_from:] /= self.truncation.keep
        return WalkOutcome(marginals, self.evaluations, cut, seen)


def run_walks(
    game: Callable[[np.ndarray], np.ndarray],
    perms: list[np.ndarray],
    stop_ats: list[int],
    v_full: np.ndarray,
    v_null: np.ndarray,
    truncation: Truncation | None,
    chunk: int,
    rng: np.random.Generator | list[np.random.Generator] | None = None,
    pool: int = 1,
) -> list[WalkOutcome]:
    """Walk several permutations, ``pool`` at a time in lockstep, in shared game calls.

    Each game call holds the next ``chunk`` steps of every walk in the pool, so passes stay
    full while each walk evaluates at most ``chunk - 1`` steps past its dead point. A walk
    that ends makes room for the next one. ``rng`` (roulette draws) is one generator per
    walk, which makes each outcome independent of the pool, or one shared by all.
    """
    rngs = rng if isinstance(rng, list) else [rng] * len(perms)
    todo = list(range(len(perms)))
    todo.reverse()
    walks: dict[int, _Walk] = {}
    live: list[int] = []
    while todo or live:
        while todo and len(live) < max(1, pool):
            i = todo.pop()
            walks[i] = _Walk(perms[i], stop_ats[i], v_full, v_null, truncation)
            if not walks[i].done:
                live.append(i)
        if not live:
            break
        requests = [(i, walks[i].pending(chunk)) for i in live]
        masks = np.concatenate([step_masks(walks[i].positions, s) for i, s in requests])
        got = as_2d(game(masks))
        row = 0
        for i, steps in requests:
            walks[i].take(steps, got[row : row + len(steps)], rngs[i])
            row += len(steps)
        live = [i for i in live if not walks[i].done]
    return [walks[i].outcome() for i in range(len(perms))]


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
    return run_walks(game, [perm], [stop_at], v_full, v_null, truncation, chunk, rng)[0]
