"""Anytime-valid confidence sequences for each player's mean marginal, by betting.

For every player and every candidate mean ``m`` on a grid, two bettors play against the
hypothesis "the mean is m": one wins when marginals come out above ``m``
(capital ``K+``), one when they come out below (``K-``), each staking a predictable
fraction of its capital on every new marginal. Under the hypothesis both capitals are
non-negative martingales, so by Ville's inequality their average reaches ``1 / delta`` with
probability at most ``delta``, at any time, however long the run goes on and however often
it is looked at. The interval is the set of ``m`` not rejected: the hedged-capital
confidence sequence of Waudby-Smith & Ramdas (JRSS-B 2024, "Estimating means of bounded
random variables by betting"). Each side is an average of ``len(HORIZONS)`` bettors whose
stakes are sized, from the player's predictable variance estimate, to be best after
8, 32, ..., 32768 samples (their "diversified" betting): an average of martingales is a
martingale, and whichever bettor suits the current sample count does nearly as well as a
bound tuned for that count, without the sqrt(log t) widening of a single anytime schedule.

Why it beats the empirical-Bernstein bound for TMAB: a bet against ``m`` can stake up to
``c / (b - m)`` where ``b`` is the top of the marginals' support, so a player whose
marginals keep coming out near zero has its upper bound fall like ``b log(1/delta) / t``,
where Maurer-Pontil's pays ``7/3 (b - a) log(2/delta) / t`` for every player. The support
``[a, b]`` is the one observed over all players (or ``value_range`` around it), the same
plug-in the Bernstein bound uses for its range; it only grows, and grid points it adds start
with capital 1 (a fresh test), so nothing already proven is lost.

The grid is uniform. A grid point, once rejected, stays rejected (the running intersection
of a confidence sequence is one too), so each player keeps a window of surviving points and
only those are updated: the work per marginal shrinks with the interval. Reported bounds are
the rejected points next to the window (the true boundary lies between them and the window).
Where the support grows, a new point below the grid starts with the lowest point's "above"
capital (a bet at the lower point is also a valid, weaker bet at the new one) and no
"below" capital, and symmetrically above: conservative, so nothing proven is lost and
nothing unproven is claimed.
"""

from __future__ import annotations

import numpy as np

#: fraction of the largest admissible stake (WSR suggest 1/2 or 3/4); 1/2 keeps every
#: factor positive even for a marginal up to twice as far outside the plug-in support
STAKE_CAP = 0.5
#: the sample counts the bettors' stakes are tuned for (one bettor per count and side)
HORIZONS = tuple(8 * 4**j for j in range(7))
#: grid points per player (memory: 2 sides x bettors x 4 bytes x points x players); the
#: grid step must stay well below epsilon: with 1024 points a unanimity game whose marginals
#: span 12.7 (epsilon 0.05) left 13% of TMAB runs unconverged at 200k evaluations
MIN_POINTS, MAX_POINTS = 128, 2048
GRID_BUDGET = 1 << 24  # points x players x bettors


def _log_mean_exp(log_k: np.ndarray, axis: int) -> np.ndarray:
    top = log_k.max(axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    return np.squeeze(top, axis) + np.log(np.mean(np.exp(log_k - top), axis=axis))


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
        self.horizons = np.asarray(HORIZONS, dtype=np.float64)
        bettors = len(self.horizons)
        self.points = int(np.clip(GRID_BUDGET // max(n * bettors, 1), MIN_POINTS, MAX_POINTS))
        self.lo = np.inf  # observed support of all marginals
        self.hi = -np.inf
        self.start = 0.0  # grid: start + step * (j + 1/2), j < len
        self.step = 0.0
        # log capital (n, bettors, points) of the bets on "mean above m" (up), "below" (dn)
        self.log_up = np.zeros((n, bettors, 0), dtype=np.float32)
        self.log_dn = np.zeros((n, bettors, 0), dtype=np.float32)
        # surviving grid points of each player: first..last (inclusive)
        self.first = np.zeros(n, dtype=np.int64)
        self.last = np.full(n, -1, dtype=np.int64)
        self.seen = np.zeros(n, dtype=bool)

    # ------------------------------------------------------------------ support and grid
    def support(self) -> tuple[float, float]:
        """The support ``[a, b]`` bets are sized for: observed over all players, or, with
        ``value_range`` R, every interval of length R that contains what was observed."""
        if self.value_range is not None:
            return self.hi - self.value_range, self.lo + self.value_range
        return self.lo, self.hi

    @property
    def grid(self) -> np.ndarray:
        return self.start + self.step * (np.arange(self.log_up.shape[-1]) + 0.5)

    @property
    def _threshold(self) -> float:
        return float(np.log(1.0 / self.delta))

    def _log_capital(self, up: np.ndarray, dn: np.ndarray) -> np.ndarray:
        """Hedged log capital: half on each side, each side its bettors' average (axis 1)."""
        return np.logaddexp(_log_mean_exp(up, 1), _log_mean_exp(dn, 1)) - np.log(2.0)

    def _cover(self, a: float, b: float) -> None:
        """Extend the grid (same step) to cover ``[a, b]``, first coarsening it as often as
        needed to stay within twice ``points``."""
        if self.step == 0.0:
            span = b - a if b > a else max(abs(a), 1e-12)
            self.step = span / self.points
            self.start = a if b > a else a - span / 2
            shape = (self.n, len(self.horizons), self.points)
            self.log_up = np.zeros(shape, dtype=np.float32)
            self.log_dn = np.zeros(shape, dtype=np.float32)
            self.first[:], self.last[:] = 0, self.points - 1
            return
        while True:
            width = self.log_up.shape[-1]
            below = int(np.ceil(max(self.start - a, 0.0) / self.step))
            above = int(np.ceil(max(b - (self.start + self.step * width), 0.0) / self.step))
            if width + below + above <= 2 * self.points:
                break
            self._coarsen()  # before growing: a first support of ~0 width must not explode
        if below or above:
            self._extend(below, above)

    def _coarsen(self) -> None:
        """Keep points 0, 2, 4, ... as the centres of cells twice as wide (start + step
        (2i + 1/2) = new_start + 2 step (i + 1/2)); windows may widen, never shrink."""
        self.log_up, self.log_dn = self.log_up[..., ::2], self.log_dn[..., ::2]
        self.start -= self.step / 2
        self.step *= 2
        self.first //= 2
        self.last = np.minimum((self.last + 1) // 2, self.log_up.shape[-1] - 1)

    def _extend(self, below: int, above: int) -> None:
        """New points ``below`` / ``above`` the grid (see the module doc for their capital);
        a player's window grows to any new point its capital does not reject."""
        lowest, highest = self.log_up[..., :1], self.log_dn[..., -1:]
        floor = np.float32(-1e30)
        n, bettors = self.n, len(self.horizons)
        new_lo_up = np.broadcast_to(lowest, (n, bettors, below))
        new_hi_dn = np.broadcast_to(highest, (n, bettors, above))
        self.log_up = np.concatenate(
            [new_lo_up, self.log_up, np.full((n, bettors, above), floor)], axis=2)
        self.log_dn = np.concatenate(
            [np.full((n, bettors, below), floor), self.log_dn, new_hi_dn], axis=2)
        self.start -= below * self.step
        self.first += below
        self.last += below
        width = self.log_up.shape[-1]
        for cols in (np.arange(below), np.arange(width - above, width)):
            if cols.size == 0:
                continue
            alive = self._log_capital(self.log_up[..., cols], self.log_dn[..., cols]) \
                < self._threshold
            has = alive.any(axis=1)
            lowest_alive = cols[np.argmax(alive, axis=1)]
            highest_alive = cols[cols.size - 1 - np.argmax(alive[:, ::-1], axis=1)]
            self.first = np.where(has, np.minimum(self.first, lowest_alive), self.first)
            self.last = np.where(has, np.maximum(self.last, highest_alive), self.last)

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
        first, last = self.first[players], self.last[players]
        span = int((last - first).max()) + 1
        cols = first[:, None] + np.arange(span)[None, :]  # (B, W): each player's window
        valid = cols <= last[:, None]
        # padding repeats each row's last point: its duplicates compute and write the very
        # same values, so the scatter below needs no mask
        cols = np.minimum(cols, last[:, None])
        f32 = np.float32
        m = self.grid[cols][:, None, :].astype(f32)  # (B, 1, W)
        r2 = max(b - a, 1e-12) ** 2
        t = np.asarray(count, dtype=np.float64) + 1.0
        var = (r2 / 4.0 + np.asarray(m2, dtype=np.float64)) / t  # predictable variance
        log_term = np.log(2.0 * len(self.horizons) / self.delta)
        # (B, bettors, 1): each bettor's stake, best for its horizon
        bet = np.sqrt(2.0 * log_term / (var[:, None] * self.horizons[None, :]))[..., None]
        bet = bet.astype(f32)
        up = np.minimum(bet, f32(STAKE_CAP) / np.maximum(m - f32(a), f32(1e-30)))
        dn = np.minimum(bet, f32(STAKE_CAP) / np.maximum(f32(b) - m, f32(1e-30)))
        d = x.astype(f32)[:, None, None] - m
        rows = players[:, None, None]
        which = np.arange(len(self.horizons))[None, :, None]
        at = (rows, which, cols[:, None, :])
        # a factor can only go non-positive for a marginal far outside the support seen so
        # far: the capital then drops to ~0, which only makes the bound more conservative
        up *= d
        dn *= d
        new_up = self.log_up[at] + np.log(np.maximum(f32(1) + up, f32(1e-30)))
        new_dn = self.log_dn[at] + np.log(np.maximum(f32(1) - dn, f32(1e-30)))
        self.log_up[at] = new_up
        self.log_dn[at] = new_dn
        # points rejected now leave the window for good
        log_k = np.where(valid, self._log_capital(new_up, new_dn), np.inf)
        alive = log_k < self._threshold
        has = alive.any(axis=1)
        weakest = np.argmin(log_k, axis=1)  # none left: the sequence sits next to it
        lo_off = np.where(has, np.argmax(alive, axis=1), weakest)
        hi_off = np.where(has, span - 1 - np.argmax(alive[:, ::-1], axis=1), weakest)
        self.first[players] = first + lo_off
        self.last[players] = first + hi_off
        self.seen[players] = True

    # -------------------------------------------------------------------------- bounds
    def bounds(self, delta: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper bounds (n,) of each player's mean (-inf/inf before any data).

        ``delta`` None: the sequences at the level they were built for. A larger ``delta``
        reads the same capital at a lower bar ``1 / delta`` (Ville's inequality holds for
        any bar): narrower sequences, each holding with probability ``1 - delta``.
        """
        if self.log_up.shape[-1] == 0:
            return np.full(self.n, -np.inf), np.full(self.n, np.inf)
        first, last = self.first, self.last
        if delta is not None and delta > self.delta:
            first, last = self._window_at(float(np.log(1.0 / delta)))
        grid = self.grid
        a, b = self.support()
        low = np.maximum(grid[first] - self.step, a)
        high = np.minimum(grid[last] + self.step, b)
        return np.where(self.seen, low, -np.inf), np.where(self.seen, high, np.inf)

    def _window_at(self, threshold: float, rows: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """First and last grid points of each player's window whose current log capital is
        below ``threshold`` (none: the window's weakest point)."""
        first, last = self.first.copy(), self.last.copy()
        cols = np.arange(self.log_up.shape[-1])
        for r0 in range(0, self.n, rows):
            sl = slice(r0, r0 + rows)
            log_k = self._log_capital(self.log_up[sl], self.log_dn[sl]).astype(np.float64)
            inside = (cols >= self.first[sl, None]) & (cols <= self.last[sl, None])
            log_k = np.where(inside, log_k, np.inf)
            alive = log_k < threshold
            has = alive.any(axis=1)
            weakest = np.argmin(log_k, axis=1)
            first[sl] = np.where(has, np.argmax(alive, axis=1), weakest)
            last[sl] = np.where(has, cols.size - 1 - np.argmax(alive[:, ::-1], axis=1), weakest)
        return first, last

    # -------------------------------------------------------------------------- state
    def state(self) -> dict[str, np.ndarray]:
        return {"log_up": self.log_up, "log_dn": self.log_dn, "first": self.first,
                "last": self.last, "seen": self.seen,
                "grid": np.array([self.start, self.step, self.lo, self.hi])}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        self.log_up = np.asarray(arrays["log_up"], dtype=np.float32).copy()
        self.log_dn = np.asarray(arrays["log_dn"], dtype=np.float32).copy()
        self.first = np.asarray(arrays["first"], dtype=np.int64).copy()
        self.last = np.asarray(arrays["last"], dtype=np.int64).copy()
        self.seen = np.asarray(arrays["seen"], dtype=bool).copy()
        self.start, self.step, self.lo, self.hi = (float(v) for v in arrays["grid"])
