"""Draws permutation walks on a game and keeps count of the evaluations they cost."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .walks import Truncation, WalkOutcome, as_2d, run_walk


class WalkSampler:
    """Uniform random permutation walks on ``game`` over ``n`` players.

    ``V(N)`` and ``V(empty)`` are evaluated once, or before every walk when the game draws
    a fresh data batch per walk (it has a ``new_walk(rng)`` method).
    """

    def __init__(
        self,
        game: Callable[[np.ndarray], np.ndarray],
        n: int,
        rng: np.random.Generator,
        truncation: Truncation | None = None,
        chunk: int | None = None,
    ) -> None:
        self.game = game
        self.n = n
        self.rng = rng
        self.truncation = truncation
        self.chunk = int(chunk or getattr(game, "masks_per_pass", 32) or 32)
        self.resamples = callable(getattr(game, "new_walk", None)) and getattr(
            game, "walk_sample", True
        ) is not None
        self.evaluations = 0
        self.walks = 0
        self.truncated_walks = 0
        self.v_full = np.zeros(0)
        self.v_null = np.zeros(0)
        if not self.resamples:
            self._ends()

    def _ends(self) -> None:
        ends = np.zeros((2, self.n), dtype=bool)
        ends[0] = True
        v = as_2d(self.game(ends))
        self.evaluations += 2
        self.v_full, self.v_null = v[0], v[1]

    @property
    def output_dim(self) -> int:
        if self.v_full.size == 0:
            self._ends()
        return int(self.v_full.shape[0])

    def walk(self, active: np.ndarray | None = None) -> tuple[np.ndarray, WalkOutcome]:
        """One walk; with ``active`` (bool (n,)) it stops after the last active player.

        Returns the permutation and the marginals of its first ``stop_at`` players.
        """
        if self.resamples:
            self.game.new_walk(self.rng)  # type: ignore[attr-defined]
            self._ends()
        perm = self.rng.permutation(self.n)
        if active is None:
            stop_at = self.n
        else:
            on = np.flatnonzero(active[perm])
            stop_at = int(on[-1]) + 1 if on.size else 0
        outcome = run_walk(
            self.game, perm, stop_at, self.v_full, self.v_null, self.truncation, self.chunk
        )
        self.evaluations += outcome.evaluations
        self.walks += 1
        self.truncated_walks += outcome.truncated_at is not None
        return perm, outcome

    def direct(self, players: np.ndarray) -> np.ndarray:
        """One marginal for each of ``players`` at its own uniform random position.

        For player ``i`` a position ``p`` is drawn uniformly from 0..n-1 and ``p`` other
        players are removed at random: the marginal is ``V(S) - V(S - i)``, distributed like
        ``i``'s marginal in a uniform permutation walk. With truncation, a dead ``S`` (the
        walk's dead rule with patience 1) gives 0 without evaluating ``S - i``.
        Returns marginals (len(players), d); costs one or two evaluations per player.
        """
        if self.resamples:
            self.game.new_walk(self.rng)  # type: ignore[attr-defined]
            self._ends()
        n, m = self.n, len(players)
        if m == 0:
            return np.zeros((0, self.output_dim))
        keys = self.rng.random((m, n))
        keys[np.arange(m), players] = np.inf  # player i itself is never among the removed
        removed_before = self.rng.integers(0, n, size=m)  # position of i in the walk
        order = np.argsort(keys, axis=1)
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(n)[None, :], axis=1)
        before = ranks >= removed_before[:, None]  # keep all but the first p in key order
        after = before.copy()
        after[np.arange(m), players] = False
        if self.truncation is None:
            v = as_2d(self.game(np.concatenate([before, after])))
            self.evaluations += 2 * m
            return v[:m] - v[m:]
        v_before = as_2d(self.game(before))
        self.evaluations += m
        scale = np.abs(self.v_full - self.v_null)
        dead = np.all(np.abs(v_before - self.v_null) <= self.truncation.tolerance * scale, axis=1)
        out = np.zeros_like(v_before)
        live = np.flatnonzero(~dead)
        if live.size:
            out[live] = v_before[live] - as_2d(self.game(after[live]))
            self.evaluations += live.size
        return out
