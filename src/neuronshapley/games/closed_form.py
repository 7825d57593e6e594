"""Games with exactly known Shapley values, used as ground truth for estimators.

A *game* is a callable ``game(masks) -> values`` where ``masks`` is a boolean array of
shape ``(M, n_players)`` (``True`` = player present) and ``values`` is a float array of
shape ``(M,)`` (or ``(M, d)`` for vector-valued games). Every game here also exposes

* ``n_players`` -- number of players ``n``;
* ``players`` -- player ids, ``["p0", "p1", ...]`` unless given;
* ``value_range`` -- ``max_S V(S) - min_S V(S)``, or ``None`` when not known exactly;
* ``shapley_values()`` -- the exact Shapley values, shape ``(n,)`` (``(n, d)`` for vector games);
* ``n_evaluations`` -- how many coalitions have been evaluated so far.

Games:

* :class:`AdditiveGame` -- ``V(S) = sum_{i in S} w_i``.
* :class:`UnanimityGame` -- ``V(S) = sum_T c_T [T subset of S]`` (Harsanyi dividends); with
  signed coefficients (``UnanimityGame.random``) it is not monotone, and
  ``UnanimityGame.rare_pivot`` hides most of the value in one rare large marginal.
* :class:`WeightedThresholdGame` -- ``V(S) = f(sum_{i in S} w_i)`` for integer weights, with exact
  Shapley values by dynamic programming (weighted voting, logistic "collapse" games, and
  ``WeightedThresholdGame.reviving``: a collapse whose dead sub-networks come back to life).
* :class:`NoisyGame` -- adds Gaussian noise to each evaluation of another game.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

# Rows of masks processed at once when a dense intermediate would otherwise be large.
_CHUNK_ELEMENTS = 1 << 23


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _default_players(n_players: int, players: Sequence[str] | None) -> list[str]:
    if players is None:
        return [f"p{i}" for i in range(n_players)]
    players = [str(p) for p in players]
    if len(players) != n_players:
        raise ValueError(f"got {len(players)} player ids for a game with {n_players} players")
    if len(set(players)) != len(players):
        raise ValueError("player ids must be unique")
    return players


def _validate_masks(masks: Any, n_players: int) -> np.ndarray:
    """Return ``masks`` as a bool array of shape ``(M, n_players)`` or raise ``ValueError``."""
    arr = np.asarray(masks)
    if arr.ndim != 2:
        raise ValueError(
            f"masks must be a 2-D array of shape (M, n_players={n_players}); "
            f"got an array with ndim={arr.ndim} and shape {arr.shape}"
        )
    if arr.shape[1] != n_players:
        raise ValueError(f"masks must have n_players={n_players} columns; got shape {arr.shape}")
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"masks must be a boolean array; got dtype {arr.dtype}")
    if arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError("masks must be boolean (or contain only 0 and 1)")
    return arr.astype(bool)


class _ExactGame:
    """Shared plumbing: player ids, mask validation and an evaluation counter."""

    n_players: int
    players: list[str]
    value_range: float | None

    def __init__(self, n_players: int, players: Sequence[str] | None) -> None:
        if n_players < 1:
            raise ValueError(f"a game needs at least one player; got n_players={n_players}")
        self.n_players = int(n_players)
        self.players = _default_players(self.n_players, players)
        self.n_evaluations = 0

    def __call__(self, masks: ArrayLike) -> np.ndarray:
        """Evaluate ``V`` on each row of ``masks`` (bool, shape ``(M, n)``) -> shape ``(M,)``."""
        m = _validate_masks(masks, self.n_players)
        self.n_evaluations += m.shape[0]
        return self._evaluate(m)

    def _evaluate(self, masks: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def shapley_values(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_players={self.n_players})"


def _weighted_sums(masks: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``masks @ weights`` in float64, chunked over rows.

    masks ``(M, n)`` bool, weights ``(n,)`` or ``(n, d)`` -> ``(M,)`` or ``(M, d)``.
    """
    M, n = masks.shape
    out = np.empty((M,) + weights.shape[1:], dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // max(n, 1))
    for start in range(0, M, step):
        block = masks[start : start + step].astype(np.float64)
        out[start : start + step] = block @ weights
    return out


# --------------------------------------------------------------------------------------------
# Additive
# --------------------------------------------------------------------------------------------


class AdditiveGame(_ExactGame):
    """``V(S) = sum_{i in S} w_i``; the Shapley value of player ``i`` is ``w_i``.

    Args:
        weights: shape ``(n,)`` for a scalar game or ``(n, d)`` for a vector game with
            ``d`` outputs (then ``V`` returns ``(M, d)`` and ``shapley_values`` ``(n, d)``).
        players: optional player ids.

    ``value_range`` is exact; for a vector game it is the largest range over the outputs.
    """

    def __init__(self, weights: ArrayLike, players: Sequence[str] | None = None) -> None:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim not in (1, 2) or w.shape[0] == 0:
            raise ValueError(f"weights must have shape (n,) or (n, d) with n >= 1; got {w.shape}")
        if not np.isfinite(w).all():
            raise ValueError("weights must be finite")
        super().__init__(w.shape[0], players)
        self.weights = w
        ranges = np.clip(w, 0, None).sum(axis=0) - np.clip(w, None, 0).sum(axis=0)
        self.value_range = float(np.max(ranges))

    def _evaluate(self, masks: np.ndarray) -> np.ndarray:
        return _weighted_sums(masks, self.weights)

    def shapley_values(self) -> np.ndarray:
        """Exact Shapley values, shape ``(n,)`` (or ``(n, d)``)."""
        return self.weights.copy()


# --------------------------------------------------------------------------------------------
# Unanimity (Harsanyi) games
# --------------------------------------------------------------------------------------------


class UnanimityGame(_ExactGame):
    """``V(S) = sum_T c_T * [T subset of S]``, a weighted sum of unanimity games.

    Every game is of this form (``c_T`` are its Harsanyi dividends); the Shapley value is
    ``phi_i = sum_{T containing i} c_T / |T|``.

    Args:
        coalitions: non-empty collections of player indices in ``[0, n_players)``.
        coefficients: one coefficient ``c_T`` per coalition.
        n_players: number of players ``n`` (players in no coalition are null players).
        players: optional player ids.

    ``value_range`` is exact when all coefficients share a sign or when ``n <= 16``
    (by enumeration), else ``None``.
    """

    _ENUMERATE_MAX_PLAYERS = 16

    def __init__(
        self,
        coalitions: Iterable[Iterable[int]],
        coefficients: ArrayLike,
        n_players: int,
        players: Sequence[str] | None = None,
    ) -> None:
        super().__init__(n_players, players)
        terms: list[np.ndarray] = []
        for k, T in enumerate(coalitions):
            idx = np.unique(np.asarray(list(T), dtype=np.int64))
            if idx.size == 0:
                raise ValueError(f"coalition {k} is empty; unanimity terms need >= 1 player")
            if idx[0] < 0 or idx[-1] >= self.n_players:
                raise ValueError(f"coalition {k} has player indices outside [0, {self.n_players})")
            terms.append(idx)
        c = np.asarray(coefficients, dtype=np.float64).reshape(-1)
        if c.size != len(terms):
            raise ValueError(f"got {len(terms)} coalitions but {c.size} coefficients")
        if not np.isfinite(c).all():
            raise ValueError("coefficients must be finite")
        self.coalitions: list[np.ndarray] = terms
        self.coefficients = c
        self._sizes = np.array([t.size for t in terms], dtype=np.int64)
        # Terms grouped by size: (term indices, member matrix of shape (n_terms_k, k)).
        self._groups: list[tuple[np.ndarray, np.ndarray]] = []
        for k in np.unique(self._sizes):
            sel = np.flatnonzero(self._sizes == k)
            self._groups.append((sel, np.stack([terms[j] for j in sel])))
        self.value_range = self._compute_value_range()

    @classmethod
    def random(
        cls,
        n_players: int,
        n_terms: int,
        max_size: int,
        rng: np.random.Generator | int | None = None,
    ) -> UnanimityGame:
        """Random game: ``n_terms`` coalitions of uniform size in ``[1, max_size]`` (members
        drawn without replacement) with standard-normal coefficients.

        The coefficients are signed, so the game is not monotone (removing a player can
        raise ``V``); ``V(empty) = 0`` since every term is non-empty."""
        if not 1 <= max_size <= n_players:
            raise ValueError(f"max_size must be in [1, n_players={n_players}]; got {max_size}")
        gen = _as_rng(rng)
        sizes = gen.integers(1, max_size + 1, size=n_terms)
        coalitions = [gen.choice(n_players, size=int(k), replace=False) for k in sizes]
        coefficients = gen.standard_normal(n_terms)
        return cls(coalitions, coefficients, n_players)

    @classmethod
    def rare_pivot(
        cls,
        n_players: int = 80,
        additive: Sequence[float] = (0.3, 0.2, 0.15, 0.1),
        pivot_size: int = 60,
        pivot_value: float = 1.0,
    ) -> UnanimityGame:
        """A game whose value hides in rare large marginals.

        Players ``0..len(additive)-1`` are additive (``V`` gains ``additive[i]`` when ``i`` is
        present); the last ``pivot_size`` players form one unanimity term worth
        ``pivot_value``; everyone else is a null player. Each pivot player is worth
        ``pivot_value / pivot_size``, but its marginal in a uniform random walk is
        ``pivot_value`` with probability ``1 / pivot_size`` (when it is the first of its term
        to go) and 0 otherwise: a few samples look constant while the mean is not.

        Args:
            n_players: number of players ``n``; must hold ``len(additive) + pivot_size``.
            additive: values of the additive players (any sign).
            pivot_size: players in the pivot term, ``>= 1``.
            pivot_value: coefficient of the pivot term.
        """
        a = len(additive)
        if pivot_size < 1 or a + pivot_size > n_players:
            raise ValueError(
                f"need 1 <= pivot_size and len(additive) + pivot_size <= n_players; got "
                f"{a} additive, pivot_size={pivot_size}, n_players={n_players}"
            )
        coalitions = [[i] for i in range(a)] + [list(range(n_players - pivot_size, n_players))]
        return cls(coalitions, [*map(float, additive), float(pivot_value)], n_players)

    def _evaluate(self, masks: np.ndarray) -> np.ndarray:
        M = masks.shape[0]
        out = np.zeros(M, dtype=np.float64)
        if not self._groups:
            return out
        largest = max(sel.size for sel, _ in self._groups)
        step = max(1, _CHUNK_ELEMENTS // max(largest, self.n_players))
        for start in range(0, M, step):
            # Players x coalitions layout makes gathering a term's members a row gather.
            present = np.ascontiguousarray(masks[start : start + step].T)
            for sel, members in self._groups:
                satisfied = present[members[:, 0]]  # fancy indexing copies
                for col in range(1, members.shape[1]):
                    satisfied &= present[members[:, col]]
                out[start : start + step] += self.coefficients[sel] @ satisfied.astype(np.float64)
        return out

    def shapley_values(self) -> np.ndarray:
        """Exact Shapley values, shape ``(n,)``."""
        phi = np.zeros(self.n_players, dtype=np.float64)
        for sel, members in self._groups:
            share = self.coefficients[sel] / members.shape[1]
            np.add.at(phi, members, np.broadcast_to(share[:, None], members.shape))
        return phi

    def _compute_value_range(self) -> float | None:
        c = self.coefficients
        if (c >= 0).all() or (c <= 0).all():
            return float(abs(c.sum()))
        if self.n_players <= self._ENUMERATE_MAX_PLAYERS:
            n = self.n_players
            codes = np.arange(1 << n, dtype=np.int64)
            masks = ((codes[:, None] >> np.arange(n)) & 1).astype(bool)
            values = self._evaluate(masks)
            return float(values.max() - values.min())
        return None


# --------------------------------------------------------------------------------------------
# Weighted threshold games, V(S) = f(w(S))
# --------------------------------------------------------------------------------------------


def heavy_tailed_weights(
    n_players: int,
    rng: np.random.Generator | int | None = None,
    total_weight: int | None = None,
    tail_index: float = 1.1,
    max_share: float = 0.12,
) -> np.ndarray:
    """Draw positive integer weights with a heavy (Pareto) tail: a few large, many small.

    Args:
        n_players: number of weights ``n``.
        rng: generator or seed.
        total_weight: approximate sum of the weights (default ``min(12 n, 5000)``, at least
            ``n``); the result sums to roughly this.
        tail_index: Pareto shape; smaller means a heavier tail.
        max_share: cap on any single weight as a fraction of the total.

    Returns:
        int64 array of shape ``(n,)``, every entry ``>= 1``.
    """
    if n_players < 1:
        raise ValueError(f"n_players must be >= 1; got {n_players}")
    gen = _as_rng(rng)
    if total_weight is None:
        total_weight = max(n_players, min(12 * n_players, 5000))
    if total_weight < n_players:
        raise ValueError(f"total_weight must be >= n_players={n_players}; got {total_weight}")
    x = 1.0 + gen.pareto(tail_index, size=n_players)

    def top_share(p: float) -> float:
        y = x**p
        return float(y.max() / y.sum())

    # Flatten the tail with a power x -> x**p (order-preserving, unlike clipping, so the
    # largest weights stay distinct), choosing the largest p in (0, 1] that meets max_share.
    if n_players * max_share > 1 and top_share(1.0) > max_share:
        lo, hi = 0.0, 1.0
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if top_share(mid) <= max_share else (lo, mid)
        x = x**lo
    x *= total_weight / x.sum()
    return np.maximum(1, np.rint(x)).astype(np.int64)


def _tabulate(f: Callable[[Any], Any], totals: np.ndarray) -> np.ndarray:
    """Evaluate ``f`` on every integer total; vectorised if ``f`` allows, else elementwise."""
    try:
        vals = np.asarray(f(totals), dtype=np.float64)
        if vals.shape == totals.shape:
            return vals
    except (TypeError, ValueError):
        pass
    return np.array([float(f(int(t))) for t in totals], dtype=np.float64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class WeightedThresholdGame(_ExactGame):
    """``V(S) = f(w(S))`` with ``w(S) = sum_{i in S} w_i`` for non-negative integer weights.

    Exact Shapley values come from a dynamic programme over (coalition size, total weight)::

        phi_i = sum_s s!(n-1-s)!/n! * sum_w count_{-i}(s, w) * (f(w + w_i) - f(w)),

    where ``count_{-i}(s, w)`` counts size-``s`` coalitions of the other players with total
    weight ``w``. Counts are kept as probabilities ``count(s, w) / C(n, s)`` (no overflow); the
    table for all players is built once, and each distinct weight's "without one such player"
    table is derived from it by the removal recurrence
    ``count_{-i}(s, w) = count(s, w) - count_{-i}(s-1, w - w_i)``, run only for
    ``s <= (n-1)/2`` where it is numerically stable (errors shrink each step); the upper
    half follows from the complement symmetry ``count_{-i}(s, w) = count_{-i}(n-1-s, W-w_i-w)``.
    Cost is about ``n^2 W / 4`` flops for the table plus ``n W / 2`` per distinct weight
    (``W`` = total weight); n = 500, W = 5000 takes well under a second.

    Args:
        weights: non-negative integers, shape ``(n,)``.
        f: function of the total present weight; called once on ``np.arange(W + 1)`` (or
            elementwise on ints if it does not vectorise) and tabulated.
        players: optional player ids.

    ``value_range`` is exact: the spread of ``f`` over the achievable totals.
    """

    def __init__(
        self,
        weights: ArrayLike,
        f: Callable[[Any], Any],
        players: Sequence[str] | None = None,
    ) -> None:
        w = np.asarray(weights)
        if w.ndim != 1 or w.size == 0:
            raise ValueError(f"weights must be a non-empty 1-D array; got shape {w.shape}")
        if w.dtype.kind not in "biuf":
            raise ValueError(f"weights must be numeric; got dtype {w.dtype}")
        if not np.isfinite(w).all() or (w < 0).any() or (np.rint(w) != w).any():
            raise ValueError("weights must be non-negative integers")
        w = w.astype(np.int64)
        super().__init__(w.size, players)
        self.weights = w
        self.total_weight = int(w.sum())
        self.f = f
        self.f_table = _tabulate(f, np.arange(self.total_weight + 1, dtype=np.int64))
        if not np.isfinite(self.f_table).all():
            raise ValueError("f must be finite on every total in [0, sum(weights)]")
        reachable = self._reachable_totals()
        attained = self.f_table[reachable]
        self.value_range = float(attained.max() - attained.min())
        self._phi: np.ndarray | None = None

    # ---- constructors ------------------------------------------------------------------------

    @classmethod
    def voting(
        cls, weights: ArrayLike, quota: float, players: Sequence[str] | None = None
    ) -> WeightedThresholdGame:
        """Weighted voting game: ``V(S) = 1`` if ``w(S) >= quota`` else ``0``.

        Its Shapley values are the Shapley-Shubik power indices.
        """
        q = float(quota)

        def f(total: np.ndarray) -> np.ndarray:
            return (np.asarray(total) >= q).astype(np.float64)

        game = cls(weights, f, players)
        game.quota = q
        return game

    @classmethod
    def collapse(
        cls,
        weights: ArrayLike | int,
        midpoint: float,
        steepness: float,
        floor: float = 0.1,
        ceiling: float = 0.95,
        rng: np.random.Generator | int | None = None,
        players: Sequence[str] | None = None,
    ) -> WeightedThresholdGame:
        """Logistic "collapse" game shaped like a neuron-removal game::

            V(S) = floor + (ceiling - floor) * sigmoid(steepness * (w(S) - midpoint))

        Accuracy stays near ``ceiling`` while enough weight is present and collapses to
        ``floor`` (chance) once the present weight drops well below ``midpoint``.

        Args:
            weights: non-negative integer weights, shape ``(n,)``; or an int ``n``, in which
                case ``heavy_tailed_weights(n, rng)`` are drawn (``rng`` is used only then).
            midpoint: total weight at which ``V`` is halfway between floor and ceiling.
            steepness: slope of the logistic, per unit of weight.
            floor, ceiling: values of ``V`` far below / far above ``midpoint``.
        """
        if isinstance(weights, int | np.integer):
            weights = heavy_tailed_weights(int(weights), rng)
        lo, hi, k, mid = float(floor), float(ceiling), float(steepness), float(midpoint)

        def f(total: np.ndarray) -> np.ndarray:
            return lo + (hi - lo) * _sigmoid(k * (np.asarray(total, dtype=np.float64) - mid))

        game = cls(weights, f, players)
        game.midpoint, game.steepness, game.floor, game.ceiling = mid, k, lo, hi
        return game

    @classmethod
    def neuron_like(
        cls,
        n_players: int,
        rng: np.random.Generator | int | None = None,
        *,
        total_weight: int | None = None,
        tail_index: float = 1.1,
        collapse_at: float = 0.6,
        sharpness: float = 10.0,
        floor: float = 0.1,
        ceiling: float = 0.95,
    ) -> WeightedThresholdGame:
        """A collapse game with heavy-tailed weights, mimicking filter importances.

        A few players carry much of the weight (a clear top-k), the many small ones have
        close or tied values. ``V(N)`` is near ``ceiling``; removing players until the
        present weight falls below ``collapse_at * W`` collapses ``V`` towards ``floor``.

        Args:
            n_players: number of players ``n``.
            rng: generator or seed for the weights.
            total_weight: approximate total weight ``W`` (default ``min(12 n, 5000)``).
            tail_index: Pareto shape of the weights (smaller = heavier tail).
            collapse_at: midpoint as a fraction of the total weight.
            sharpness: logistic slope in units of ``1 / W``.
            floor, ceiling: chance level and full accuracy.
        """
        w = heavy_tailed_weights(n_players, rng, total_weight=total_weight, tail_index=tail_index)
        W = int(w.sum())
        return cls.collapse(w, collapse_at * W, sharpness / W, floor=floor, ceiling=ceiling)

    @classmethod
    def reviving(
        cls,
        n_players: int,
        rng: np.random.Generator | int | None = None,
        *,
        revive_at: float = 0.08,
        revive_width: float = 0.03,
        revive_height: float = 0.5,
        **collapse: Any,
    ) -> WeightedThresholdGame:
        """A neuron-like collapse game whose dead sub-networks come back to life.

        ``V`` is :meth:`neuron_like`'s logistic plus a Gaussian bump at small totals::

            V(S) = floor + (ceiling - floor) sigmoid(sharpness (w(S)/W - collapse_at))
                   + revive_height exp(-((w(S)/W - revive_at) / revive_width)^2 / 2)

        Removing players collapses ``V`` to ``floor`` (the sub-network looks dead) and then,
        once only about ``revive_at * W`` weight is left, ``V`` rises again by up to
        ``revive_height`` before falling back to ``V(empty) ~ floor``: not monotone, and a
        walk cut off at the first dead stretch misses the revival.

        Args:
            n_players, rng, **collapse: as in :meth:`neuron_like` (``total_weight``,
                ``tail_index``, ``collapse_at``, ``sharpness``, ``floor``, ``ceiling``).
            revive_at: centre of the bump, as a fraction of the total weight ``W``.
            revive_width: its standard deviation, as a fraction of ``W``; ``> 0``.
            revive_height: its height (any sign).
        """
        if not revive_width > 0:
            raise ValueError(f"revive_width must be > 0; got {revive_width}")
        base = cls.neuron_like(n_players, rng, **collapse)
        W = float(base.total_weight)
        at, width, height = float(revive_at), float(revive_width), float(revive_height)

        def f(total: np.ndarray) -> np.ndarray:
            x = np.asarray(total, dtype=np.float64) / W
            return base.f(total) + height * np.exp(-0.5 * ((x - at) / width) ** 2)

        game = cls(base.weights, f)
        game.midpoint, game.steepness = base.midpoint, base.steepness
        game.floor, game.ceiling = base.floor, base.ceiling
        game.revive_at, game.revive_width, game.revive_height = at, width, height
        return game

    # ---- evaluation --------------------------------------------------------------------------

    def _evaluate(self, masks: np.ndarray) -> np.ndarray:
        totals = np.rint(_weighted_sums(masks, self.weights.astype(np.float64))).astype(np.int64)
        return self.f_table[totals]

    def _reachable_totals(self) -> np.ndarray:
        """Boolean mask over ``0..W`` of totals attained by some coalition, shape ``(W + 1,)``."""
        reach = np.zeros(self.total_weight + 1, dtype=bool)
        reach[0] = True
        top = 0
        for v in self.weights[self.weights > 0]:
            reach[v : top + v + 1] |= reach[: top + 1].copy()
            top += int(v)
        return reach

    # ---- exact Shapley values ----------------------------------------------------------------

    def _size_weight_table(self, max_size: int) -> np.ndarray:
        """``P[s, w] = count(s, w) / C(n, s)`` over all players for ``s <= max_size``.

        Shape ``(max_size + 1, W + 1)``; each row is the distribution of the total weight of
        a uniformly random size-``s`` coalition. Built one player at a time (lightest first)
        with ``P'[s] = (j+1-s)/(j+1) P[s] + s/(j+1) P[s-1] shifted by v`` -- convex
        combinations only, so it is numerically benign.
        """
        W = self.total_weight
        P = np.zeros((max_size + 1, W + 1), dtype=np.float64)
        P[0, 0] = 1.0
        top = 0  # largest total reachable so far
        for j, v in enumerate(np.sort(self.weights)):
            v = int(v)
            r = min(j + 1, max_size)
            s = np.arange(r + 1, dtype=np.float64)
            a = (j + 1 - s) / (j + 1)
            b = s / (j + 1)
            shifted = b[1:, None] * P[:r, : top + 1]
            P[: r + 1, : top + v + 1] *= a[:, None]
            P[1 : r + 1, v : v + top + 1] += shifted
            top += v
        return P

    def shapley_values(self) -> np.ndarray:
        """Exact Shapley values, shape ``(n,)`` (computed once, then cached)."""
        if self._phi is None:
            self._phi = self._exact_shapley()
        return self._phi.copy()

    def _exact_shapley(self) -> np.ndarray:
        n, W, fv = self.n_players, self.total_weight, self.f_table
        phi = np.zeros(n, dtype=np.float64)
        if n == 1:
            phi[0] = fv[W] - fv[0]
            return phi
        m = n - 1  # number of "other" players
        h = m // 2  # rows computed by the forward removal recurrence
        P = self._size_weight_table(h)
        s_all = np.arange(h + 1, dtype=np.float64)
        c_p = n / (n - s_all)  # C(n, s) / C(n-1, s)
        c_q = s_all / (n - s_all)  # C(n-1, s-1) / C(n-1, s)
        for v in np.unique(self.weights):
            v = int(v)
            if v == 0:
                continue  # null players
            Wv = W - v  # total weight of the other players
            # q[s, w] = count_{-i}(s, w) / C(n-1, s); the first h+1 rows only.
            q_prev = P[0, : Wv + 1].copy()
            A = q_prev.copy()  # sum_{s <= h} q[s]
            B = q_prev.copy()  # sum_{s <= m-h-1} q[s]; m-h-1 >= 0 since m >= 1
            for s in range(1, h + 1):
                q = c_p[s] * P[s, : Wv + 1]
                q[v:] -= c_q[s] * q_prev[: Wv + 1 - v]
                np.maximum(q, 0.0, out=q)  # counts are non-negative; drop rounding noise
                A += q
                if s <= m - h - 1:
                    B += q
                q_prev = q
            # Complement symmetry: rows s > h are rows m-s mirrored in weight.
            Q = A + B[::-1]
            delta = fv[v : v + Wv + 1] - fv[: Wv + 1]
            phi[self.weights == v] = float(Q @ delta) / n
        return phi


# --------------------------------------------------------------------------------------------
# Noise wrapper
# --------------------------------------------------------------------------------------------


class NoisyGame:
    """Wrap a game and add independent ``N(0, noise_std^2)`` noise to every evaluation.

    Mimics evaluating a network on a random data batch: each call returns an unbiased but
    noisy value. ``shapley_values()`` are those of the wrapped game (noise has mean zero);
    ``value_range`` is the wrapped game's (noise excluded).

    Args:
        game: the wrapped game (any object with ``n_players`` and ``__call__``).
        noise_std: standard deviation of the noise, ``>= 0``.
        rng: generator or seed for the noise.
    """

    def __init__(
        self,
        game: Any,
        noise_std: float,
        rng: np.random.Generator | int | None = None,
    ) -> None:
        if not np.isfinite(noise_std) or noise_std < 0:
            raise ValueError(f"noise_std must be finite and >= 0; got {noise_std}")
        self.game = game
        self.noise_std = float(noise_std)
        self.rng = _as_rng(rng)
        self.n_players: int = int(game.n_players)
        self.players: list[str] = list(
            getattr(game, "players", None) or _default_players(self.n_players, None)
        )
        self.value_range: float | None = getattr(game, "value_range", None)
        self.n_evaluations = 0

    def __call__(self, masks: ArrayLike) -> np.ndarray:
        """Noisy values of the wrapped game; masks ``(M, n)`` -> ``(M,)`` (or ``(M, d)``)."""
        m = _validate_masks(masks, self.n_players)
        self.n_evaluations += m.shape[0]
        values = np.asarray(self.game(m), dtype=np.float64)
        if self.noise_std == 0:
            return values
        return values + self.rng.normal(0.0, self.noise_std, size=values.shape)

    def shapley_values(self) -> np.ndarray:
        """Exact Shapley values of the wrapped game."""
        return self.game.shapley_values()

    def __repr__(self) -> str:
        return f"NoisyGame({self.game!r}, noise_std={self.noise_std})"
