"""Anytime-valid confidence sequences for each player's mean marginal, by betting.

For every player and every candidate mean ``m`` on a grid, two bettors play against the
hypothesis "the mean is m": one wins when marginals come out above ``m``
(capital ``K+``), one when they come out below (``K-``), each staking a predictable
fraction of its capital on every new marginal. Under the hypothesis both capitals are
non-negative martingales, so by Ville's inequality their average reaches ``1 / delta`` with
probability at most ``delta``, at any time, however long the run goes on and however often
it is looked at. The interval is the set of ``m`` not rejected: the hedged-capital
confidence sequence of Waudby-Smith & Ramdas (JRSS-B 2024, "Estimating means of bounded
random variables by betting"), with their predictable plug-in bet sizes.

Why it beats the empirical-Bernstein bound for TMAB: a bet against ``m`` can stake up to
``c / (b - m)`` where ``b`` is the top of the marginals' support, so a player whose
marginals keep coming out near zero has its upper bound fall like ``b log(1/delta) / t``,
where Maurer-Pontil's pays ``7/3 (b - a) log(2/delta) / t`` for every player. The support
``[a, b]`` is the one observed over all players (or ``value_range`` around it), the same
plug-in the Bernstein bound uses for its range; it only grows, and grid points it adds start
with capital 1 (a fresh test), so nothing already proven is lost.

The grid is uniform; reported bounds are widened by one grid step (the rejected set is an
interval's complement, so the true boundary lies within a step of the last surviving point).
"""

from __future__ import annotations

import numpy as np

#: fraction of the largest admissible stake (WSR suggest 1/2 or 3/4); 1/2 keeps every
#: factor positive even for a marginal up to twice as far outside the plug-in support
STAKE_CAP = 0.5
#: grid points per player (memory: 2 x 4 bytes x points x players)
MIN_POINTS, MAX_POINTS = 256, 2048
GRID_BUDGET = 1 << 23  # points x players


class BettingIntervals:
    """Hedged-capital confidence sequences of ``n`` players' means, each at level ``delta``.

    ``observe`` takes new marginals of distinct players together with each player's count
    and sum of squared deviations *before* them (predictable bets); ``bounds`` gives the
    current lower and upper bounds.
    """

    def __init__(self, n: int, delta: float, value_range: float | None = None) -> None:
        self.n = n
        self.delta = float(delta)
        self.value_range = value_range
        self.points = int(np.clip(GRID_BUDGET // max(n, 1), MIN_POINTS, MAX_POINTS))
        self.lo = np.inf  # observed support of all marginals
        self.hi = -np.inf
        self.start = 0.0  # grid: start + step * (j + 1/2), j < len
        self.step = 0.0
        self.log_up = np.zeros((n, 0), dtype=np.float32)  # log K+ (mean above m)
        self.log_dn = np.zeros((n, 0), dtype=np.float32)  # log K- (mean below m)

    # ------------------------------------------------------------------ support and grid
    def support(self) -> tuple[float, float]:
        """The support ``[a, b]`` bets are sized for: observed over all players, or, with
        ``value_range`` R, every interval of length R that contains what was observed."""
        if self.value_range is not None:
            return self.hi - self.value_range, self.lo + self.value_range
        return self.lo, self.hi

    @property
    def grid(self) -> np.ndarray:
        return self.start + self.step * (np.arange(self.log_up.shape[1]) + 0.5)

    def _cover(self, a: float, b: float) -> None:
        """Extend the grid (same step) to cover ``[a, b]``; new points start at capital 1.
        If that makes it longer than twice ``points``, keep every other point."""
        if self.step == 0.0:
            span = b - a if b > a else max(abs(a), 1e-12)
            self.step = span / self.points
            self.start = a if b > a else a - span / 2
            width = self.points
            self.log_up = np.zeros((self.n, width), dtype=np.float32)
            self.log_dn = np.zeros((self.n, width), dtype=np.float32)
            return
        end = self.start + self.step * self.log_up.shape[1]
        below = int(np.ceil(max(self.start - a, 0.0) / self.step))
        above = int(np.ceil(max(b - end, 0.0) / self.step))
        if below or above:
            pad = ((0, 0), (below, above))
            self.log_up = np.pad(self.log_up, pad)
            self.log_dn = np.pad(self.log_dn, pad)
            self.start -= below * self.step
        while self.log_up.shape[1] > 2 * self.points:
            # coarser grid: keep points 0, 2, 4, ... as the centres of cells twice as wide
            # (start + step (2i + 1/2) = new_start + 2 step (i + 1/2))
            self.log_up, self.log_dn = self.log_up[:, ::2], self.log_dn[:, ::2]
            self.start -= self.step / 2
            self.step *= 2

    # ------------------------------------------------------------------------- updates
    def observe(self, players: np.ndarray, x: np.ndarray, count: np.ndarray,
                m2: np.ndarray) -> None:
        """Bet on one new marginal ``x[r]`` of each (distinct) player ``players[r]``;
        ``count`` and ``m2`` are that player's sample count and sum of squared deviations
        before this marginal."""
        players = np.asarray(players, dtype=np.int64)
        if players.size == 0:
            return
        x = np.asarray(x, dtype=np.float64)
        self.lo, self.hi = min(self.lo, float(x.min())), max(self.hi, float(x.max()))
        a, b = self.support()
        self._cover(a, b)
        m = self.grid[None, :]
        r2 = max(b - a, 1e-12) ** 2
        t = np.asarray(count, dtype=np.float64) + 1.0
        var = (r2 / 4.0 + np.asarray(m2, dtype=np.float64)) / t  # predictable variance
        log_term = np.log(2.0 / self.delta)
        bet = np.sqrt(2.0 * log_term / (var * t * np.log1p(t)))[:, None]
        with np.errstate(divide="ignore"):
            up = np.minimum(bet, STAKE_CAP / np.maximum(m - a, 1e-300))
            dn = np.minimum(bet, STAKE_CAP / np.maximum(b - m, 1e-300))
        d = x[:, None] - m
        # a factor can only go non-positive for a marginal far outside the support seen so
        # far: the capital then drops to ~0, which only makes the bound more conservative
        self.log_up[players] += np.log(np.maximum(1.0 + up * d, 1e-30)).astype(np.float32)
        self.log_dn[players] += np.log(np.maximum(1.0 - dn * d, 1e-30)).astype(np.float32)

    # -------------------------------------------------------------------------- bounds
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds (n,) of each player's mean (-inf/inf before any data)."""
        low = np.full(self.n, -np.inf)
        high = np.full(self.n, np.inf)
        if self.log_up.shape[1] == 0:
            return low, high
        log_k = np.logaddexp(self.log_up, self.log_dn) - np.log(2.0)
        alive = log_k < np.log(1.0 / self.delta)
        grid = self.grid
        any_alive = alive.any(axis=1)
        first = np.argmax(alive, axis=1)
        last = alive.shape[1] - 1 - np.argmax(alive[:, ::-1], axis=1)
        # no surviving point: the sequence sits between two points, at the weakest evidence
        weakest = np.argmin(log_k, axis=1)
        first = np.where(any_alive, first, weakest)
        last = np.where(any_alive, last, weakest)
        low = grid[first] - self.step
        high = grid[last] + self.step
        a, b = self.support()
        seen = self.log_up.any(axis=1) | self.log_dn.any(axis=1)
        low = np.where(seen, np.maximum(low, a), -np.inf)
        high = np.where(seen, np.minimum(high, b), np.inf)
        return low, high

    # -------------------------------------------------------------------------- state
    def state(self) -> dict[str, np.ndarray]:
        return {"log_up": self.log_up, "log_dn": self.log_dn,
                "grid": np.array([self.start, self.step, self.lo, self.hi])}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.log_up = np.asarray(arrays["log_up"], dtype=np.float32).copy()
        self.log_dn = np.asarray(arrays["log_dn"], dtype=np.float32).copy()
        self.start, self.step, self.lo, self.hi = (float(v) for v in arrays["grid"])
