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

from neuronshapley.errors import GameError
from neuronshapley.estimators.truncation import Truncation, TruncationRule


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


def call_game(game: Callable[[np.ndarray], np.ndarray], masks: np.ndarray) -> np.ndarray:
    """``game(masks)`` as checked values (M, d): one finite row per mask, or a GameError."""
    m = len(masks)
    try:
        v = np.asarray(game(masks), dtype=np.float64)
    except (TypeError, ValueError) as err:
        if isinstance(err, GameError):
            raise
        raise GameError(f"the game's values for {m} coalitions are not numbers: {err}") from err
    if v.ndim == 0 or v.ndim > 2 or v.shape[0] != m:
        raise GameError(
            f"the game returned values of shape {v.shape} for {m} coalitions; a game must "
            f"return ({m},) or ({m}, d): one value (or one row of d values) per mask"
        )
    v = v[:, None] if v.ndim == 1 else v
    bad = ~np.isfinite(v)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise GameError(
            f"the game returned NaN or infinite values for {len(rows)} of {m} coalitions "
            f"(e.g. rows {rows[:5].tolist()}): check the game's data and metric"
        )
    return v


def step_masks(positions: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Coalition masks (len(steps), n): player p present at step j iff positions[p] >= j."""
    return positions[None, :] >= steps[:, None]


class _Walk:
    """One walk in progress: which steps it still needs and what it has seen."""

    def __init__(self, perm: np.ndarray, stop_at: int, v_full: np.ndarray,
                 v_null: np.ndarray, truncation: TruncationRule | None) -> None:
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
            dead = bool(trunc.dead(got[r : r + 1], self.v_null, self.scale)[0])
            self.streak = self.streak + 1 if dead else 0
            if self.streak >= trunc.patience and self.roulette_from is None:
                if trunc.fill.goes_on(rng):
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
            if self.truncation is not None:
                self.truncation.fill.rest(values, cut, stop_at, self.v_null, n)
            else:
                values[cut + 1 : stop_at + 1] = values[cut]
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
    truncation: TruncationRule | None,
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
        got = call_game(game, masks)
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
    truncation: TruncationRule | None,
    chunk: int,
    rng: np.random.Generator | None = None,
) -> WalkOutcome:
    """Walk ``perm`` far enough to know the marginals of its first ``stop_at`` players.

    ``v_full`` and ``v_null`` are ``V(N)`` and ``V(empty)`` as (d,) arrays.
    """
    return run_walks(game, [perm], [stop_at], v_full, v_null, truncation, chunk, rng)[0]


__all__ = ["Truncation", "WalkOutcome", "as_2d", "call_game", "run_walk", "run_walks",
           "step_masks"]

