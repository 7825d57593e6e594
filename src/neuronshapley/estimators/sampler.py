"""Draws permutation walks on a game and keeps count of the evaluations they cost."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from neuronshapley.estimators.permutations import SobolPermutations, check_permutations
from neuronshapley.estimators.truncation import TruncationRule
from neuronshapley.estimators.walks import WalkOutcome, call_game, run_walk, run_walks

WALK_CHUNK = 8  # steps per walk per game call when several walks share the calls (measured:
# on the digits game 8 gave the most walks per second, 4 and 22 about 7% fewer)


class WalkSampler:
    """Uniform random permutation walks on ``game`` over ``n`` players.

    ``V(N)`` and ``V(empty)`` are evaluated once, or before every walk when the game draws
    a fresh data batch per walk (it has a ``new_walk(rng)`` method).

    With ``strata = m > 1`` walks come in blocks of ``m``: players are split at random into
    ``m`` equal groups, and in the ``w``-th walk of a block group ``g`` is removed in
    position stratum ``(g + shift_w) mod m`` (in random order inside the stratum), with the
    shifts a random permutation of ``0..m-1``. Every walk is
    still a uniform random permutation, so every marginal stays unbiased, but over a block
    each player visits every stratum of positions once: the part of the variance that comes
    from *where* in the walk a player is removed cancels out.

    With ``permutations="sobol"`` walk ``w`` follows the ``w``-th point of a scrambled Sobol
    sequence (:mod:`.permutations`), seeded from ``rng`` on the first walk.
    """

    def __init__(
        self,
        game: Callable[[np.ndarray], np.ndarray],
        n: int,
        rng: np.random.Generator,
        truncation: TruncationRule | None = None,
        chunk: int | None = None,
        strata: int = 1,
        permutations: str = "random",
    ) -> None:
        if strata < 1:
            raise ValueError(f"strata must be >= 1, got {strata}")
        check_permutations(permutations, n, strata)
        self.permutations = permutations
        self._sobol: SobolPermutations | None = None
        self._sobol_next = 0
        self.game = game
        self.strata = min(int(strata), n)
        self._labels = np.zeros(n, dtype=np.int64)
        self._shifts = np.zeros(1, dtype=np.int64)
        self._block_pos = 0
        self.n = n
        self.rng = rng
        self.truncation = truncation
        self.chunk = int(chunk or getattr(game, "masks_per_pass", 32) or 32)
        self.resamples = callable(getattr(game, "new_walk", None)) and getattr(
            game, "walk_sample", True
        ) is not None
        self.walk_chunk = max(1, min(self.chunk, WALK_CHUNK))
        self.budget_left: int | None = None  # set by the driver: evaluations still allowed
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
        v = call_game(self.game, ends)
        self.evaluations += 2
        self.v_full, self.v_null = v[0], v[1]

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, object]]:
        """Arrays and facts that let a later sampler continue exactly where this one is."""
        arrays = {"sampler.labels": self._labels.copy(), "sampler.shifts": self._shifts.copy(),
                  "sampler.v_full": self.v_full.copy(), "sampler.v_null": self.v_null.copy()}
        facts = {"rng": self.rng.bit_generator.state, "evaluations": self.evaluations,
                 "walks": self.walks, "truncated_walks": self.truncated_walks,
                 "block_pos": self._block_pos}
        if self._sobol is not None:
            facts["sobol"] = [self._sobol.seed, self._sobol_next]
        return arrays, facts

    def restore(self, arrays: dict[str, np.ndarray], facts: dict[str, object]) -> None:
        self.rng.bit_generator.state = facts["rng"]
        self.evaluations = int(facts["evaluations"])  # type: ignore[arg-type]
        self.walks = int(facts["walks"])  # type: ignore[arg-type]
        self.truncated_walks = int(facts["truncated_walks"])  # type: ignore[arg-type]
        self._block_pos = int(facts["block_pos"])  # type: ignore[arg-type]
        self._sobol, self._sobol_next = None, 0  # no walk yet: the seed is drawn later
        if "sobol" in facts:
            seed, nxt = facts["sobol"]  # type: ignore[misc]
            self._sobol, self._sobol_next = SobolPermutations(self.n, int(seed)), int(nxt)
        self._labels = np.array(arrays["sampler.labels"], dtype=np.int64)
        self._shifts = np.array(arrays["sampler.shifts"], dtype=np.int64)
        self.v_full = np.array(arrays["sampler.v_full"], dtype=np.float64)
        self.v_null = np.array(arrays["sampler.v_null"], dtype=np.float64)

    @property
    def output_dim(self) -> int:
        if self.v_full.size == 0:
            self._ends()
        return int(self.v_full.shape[0])

    def walk(self, active: np.ndarray | None = None, perm: np.ndarray | None = None
             ) -> tuple[np.ndarray, WalkOutcome]:
        """One walk (over ``perm``, default a fresh permutation); with ``active`` (bool (n,))
        it stops after the last active player.

        Returns the permutation and the marginals of its first ``stop_at`` players.
        """
        if self.resamples:
            self.game.new_walk(self.rng)  # type: ignore[attr-defined]
            self._ends()
        if perm is None:
            perm = self._permutation()
        stop_at = self._stop_at(perm, active)
        outcome = run_walk(
            self.game, perm, stop_at, self.v_full, self.v_null, self.truncation, self.chunk,
            self.rng,
        )
        self.evaluations += outcome.evaluations
        self.walks += 1
        self.truncated_walks += outcome.truncated_at is not None
        return perm, outcome

    def walk_many(self, count: int, active: np.ndarray | None = None
                  ) -> list[tuple[np.ndarray, WalkOutcome]]:
        """Up to ``count`` walks evaluated together (see :func:`~.walks.run_walks`).

        Each game call carries ``walk_chunk`` steps of each of up to ``chunk // walk_chunk``
        walks, so passes stay full while each walk overshoots its dead point by at most
        ``walk_chunk - 1`` evaluations. Every walk has its own permutation and generator,
        drawn in turn from the sampler's, and walks come in aligned groups (a group never
        crosses a multiple of the pool size), so the outcomes do not depend on how the walks
        were grouped: a run resumed from a checkpoint repeats the uninterrupted one exactly.
        Fewer walks are run when :attr:`budget_left` would not pay for them, and one at a
        time (with whole ``chunk`` calls) when the game draws a fresh data batch per walk.
        """
        if self.resamples:
            return [self.walk(active)]
        pool = max(1, self.chunk // self.walk_chunk)
        count = max(1, min(int(count), pool - self.walks % pool))
        if self.budget_left is not None:  # a first walk measures what one costs
            per_walk = self.evaluations / self.walks if self.walks else float("inf")
            count = max(1, min(count, int(self.budget_left / max(per_walk, 1.0))))
        perms, rngs = [], []
        for _ in range(count):
            perms.append(self._permutation())
            rngs.append(np.random.default_rng(self.rng.integers(2**63)))
        stops = [self._stop_at(p, active) for p in perms]
        outcomes = run_walks(self.game, perms, stops, self.v_full, self.v_null,
                             self.truncation, self.walk_chunk, rngs, pool)
        for o in outcomes:
            self.evaluations += o.evaluations
            self.walks += 1
            self.truncated_walks += o.truncated_at is not None
        return list(zip(perms, outcomes, strict=True))

    def _stop_at(self, perm: np.ndarray, active: np.ndarray | None) -> int:
        if active is None:
            return self.n
        on = np.flatnonzero(active[perm])
        return int(on[-1]) + 1 if on.size else 0

    def shared(self, players: np.ndarray, anchors: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Marginals of ``players`` around shared random coalitions ("anchors").

        Each anchor S has a size drawn with probability proportional to 1/|S|, then uniform
        members. For every listed player i in S, ``V(S) - V(S - i)`` is distributed exactly
        like i's marginal in a uniform permutation walk (given i in S the size is uniform
        and the rest of S a uniform subset), and ``V(S)`` is paid once for all of them:
        1 + |players in S| evaluations per anchor instead of 2 per marginal.
        Returns one ``(player ids, marginals (m, d))`` pair per anchor (ids unique).
        """
        if self.resamples:
            self.game.new_walk(self.rng)  # type: ignore[attr-defined]
            self._ends()
        n = self.n
        weights = 1.0 / np.arange(1, n + 1)
        sizes = self.rng.choice(np.arange(1, n + 1), size=anchors, p=weights / weights.sum())
        ranks = np.argsort(np.argsort(self.rng.random((anchors, n)), axis=1), axis=1)
        in_s = ranks < sizes[:, None]
        wanted = np.zeros(n, dtype=bool)
        wanted[players] = True
        groups = [np.flatnonzero(in_s[a] & wanted) for a in range(anchors)]
        scale = np.abs(self.v_full - self.v_null)
        if self.truncation is None:
            live = np.ones(anchors, dtype=bool)
            v_anchor = None
        else:
            v_anchor = call_game(self.game, in_s)
            self.evaluations += anchors
            live = ~self.truncation.dead(v_anchor, self.v_null, scale)
        revive = np.zeros(anchors, dtype=bool)
        if self.truncation is not None:
            revive = ~live & self.truncation.fill.goes_on_many(self.rng, anchors)
        rows = [in_s[a] for a in range(anchors) if v_anchor is None]
        removed: list[np.ndarray] = []
        for a in range(anchors):
            if not (live[a] or revive[a]):
                continue
            for i in groups[a]:
                m = in_s[a].copy()
                m[i] = False
                removed.append(m)
        if rows or removed:
            evaluated = call_game(self.game, np.array(rows + removed))
            self.evaluations += len(rows) + len(removed)
        else:  # every anchor dead or holding none of the players: nothing more to evaluate
            evaluated = np.zeros((0, self.output_dim))
        if v_anchor is None:
            v_anchor, evaluated = evaluated[:anchors], evaluated[anchors:]
        out: list[tuple[np.ndarray, np.ndarray]] = []
        pos = 0
        d = v_anchor.shape[1]
        for a in range(anchors):
            ids = groups[a]
            if live[a] or revive[a]:
                marg = v_anchor[a] - evaluated[pos : pos + len(ids)]
                pos += len(ids)
                if revive[a]:
                    marg = marg / self.truncation.keep  # type: ignore[union-attr]
            else:
                marg = np.zeros((len(ids), d))
            out.append((ids, marg))
        return out

    def _permutation(self) -> np.ndarray:
        if self.permutations == "sobol":
            if self._sobol is None:
                self._sobol = SobolPermutations(self.n, int(self.rng.integers(2**63)))
            self._sobol_next += 1
            return self._sobol(self._sobol_next - 1)
        if self.strata <= 1:
            return self.rng.permutation(self.n)
        if self._block_pos == 0:
            self._labels = (self.rng.permutation(self.n) * self.strata) // self.n
            self._shifts = self.rng.permutation(self.strata)  # an unfinished block stays spread
        stratum = (self._labels + self._shifts[self._block_pos]) % self.strata
        self._block_pos = (self._block_pos + 1) % self.strata
        return np.argsort(stratum + self.rng.random(self.n), kind="stable")

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
            v = call_game(self.game, np.concatenate([before, after]))
            self.evaluations += 2 * m
            return v[:m] - v[m:]
        v_before = call_game(self.game, before)
        self.evaluations += m
        scale = np.abs(self.v_full - self.v_null)
        dead = self.truncation.dead(v_before, self.v_null, scale)
        # unbiased roulette: some dead ones are evaluated anyway, reweighted
        revive = dead & self.truncation.fill.goes_on_many(self.rng, m)
        out = np.zeros_like(v_before)
        live = np.flatnonzero(~dead | revive)
        if live.size:
            out[live] = v_before[live] - call_game(self.game, after[live])
            self.evaluations += live.size
        out[revive] /= self.truncation.keep
        return out
