"""Research prototypes: comparable marginals, boundary pairs, regression-adjusted walks.

Numpy only (plus :class:`neuronshapley.estimators.betting.BettingIntervals`, reused as is),
written as small classes so they can be ported into the estimator design: a sampler that
proposes coalitions, an update of statistics, a stopping rule.

Certified top-k (target a):

* :class:`CMCSampler` -- comparable marginal contributions (Kolpaczki et al. 2025): one
  coalition ``S`` per round, size uniform on ``0..n``, members uniform; every unit ``i`` in
  play gets ``V(S) - V(S - i)`` if ``i in S`` else ``V(S + i) - V(S)``. The coalition
  without ``i`` then has size uniform on ``0..n-1`` (``P(c) = ((c+1) + (n-c)) / (n(n+1))``),
  so every marginal is unbiased for ``phi_i`` with no weights, and all share ``V(S)``.
  Cost ``1 + m`` evaluations for ``m`` units in play.
* :class:`PairStats` -- anytime-valid confidence sequences of ``phi_i - phi_j`` for the pairs
  of a boundary set ``B`` fixed at a stopping time (only later samples are used, so the
  union bound is over the pairs of ``B`` alone); a pair's sample is ``X_i(S) - X_j(S)`` on
  the same coalition (common random numbers).
* :class:`CertifiedTopK` -- the stopping rule: unit ``i`` is certainly in when it certainly
  beats ``n - k`` units (individual bounds or pair bounds), certainly out when ``k`` units
  certainly beat it; play goes on for the undecided ones wider than ``epsilon``.

Anytime estimates (target b):

* :func:`walk` -- one removal walk, optionally with roulette truncation (unbiased).
* :class:`LogisticSurrogate` -- ``f(S) = lo + (hi - lo) sigmoid(w . S + c)``, fitted by
  damped Gauss-Newton; its Shapley values by many cheap permutations.
* :class:`AnytimeWalks` -- walks (plain, antithetic pairs, or stratified), optional roulette
  truncation, and regression adjustment with cross-fitting and an estimated coefficient.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from neuronshapley.estimators.betting import BettingIntervals
from neuronshapley.estimators.surrogate import CollapseSurrogate

Game = Callable[[np.ndarray], np.ndarray]


def _values(game: Game, masks: np.ndarray) -> np.ndarray:
    v = np.asarray(game(masks), dtype=np.float64)
    return v[:, 0] if v.ndim == 2 else v


# ============================================================== certified top-k
class CMCSampler:
    """Comparable marginal contributions around one random coalition per round."""

    def __init__(self, game: Game, n: int, rng: np.random.Generator) -> None:
        self.game, self.n, self.rng = game, n, rng
        self.evaluations = 0

    def round(self, players: np.ndarray) -> np.ndarray:
        """One unbiased marginal (len(players),) for each listed unit, all around one S."""
        n = self.n
        size = int(self.rng.integers(0, n + 1))
        s = np.zeros(n, dtype=bool)
        s[self.rng.choice(n, size=size, replace=False)] = True
        masks = np.repeat(s[None, :], len(players) + 1, axis=0)
        masks[np.arange(1, len(players) + 1), players] ^= True  # flip i
        v = _values(self.game, masks)
        self.evaluations += len(masks)
        inside = s[players]
        return np.where(inside, v[0] - v[1:], v[1:] - v[0])


class RunningMoments:
    """count, mean, m2 per index (Welford), for predictable bets."""

    def __init__(self, m: int) -> None:
        self.count = np.zeros(m, dtype=np.int64)
        self.mean = np.zeros(m)
        self.m2 = np.zeros(m)

    def update(self, idx: np.ndarray, x: np.ndarray) -> None:
        c = self.count[idx] + 1
        d = x - self.mean[idx]
        new = self.mean[idx] + d / c
        self.m2[idx] += d * (x - new)
        self.mean[idx] = new
        self.count[idx] = c


class PairStats:
    """Confidence sequences of ``phi_i - phi_j`` for every pair of a fixed set ``members``."""

    def __init__(self, members: np.ndarray, delta: float) -> None:
        self.members = np.asarray(members, dtype=np.int64)
        b = len(self.members)
        iu, ju = np.triu_indices(b, 1)
        self.a, self.b = self.members[iu], self.members[ju]
        self.pairs = len(self.a)
        self.betting = BettingIntervals(max(self.pairs, 1), delta / max(self.pairs, 1))
        self.moments = RunningMoments(max(self.pairs, 1))

    def observe(self, players: np.ndarray, x: np.ndarray, n: int) -> None:
        """Samples of the pairs whose two units are both among ``players`` (x: their X)."""
        pos = np.full(n, -1)
        pos[players] = np.arange(len(players))
        pa, pb = pos[self.a], pos[self.b]
        on = np.flatnonzero((pa >= 0) & (pb >= 0))
        if on.size == 0:
            return
        d = x[pa[on]] - x[pb[on]]
        self.betting.observe(on, d, self.moments.count[on], self.moments.m2[on])
        self.moments.update(on, d)

    def beats(self, n: int) -> np.ndarray:
        """(n, n) bool: certified ``phi_i > phi_j`` from the pair bounds."""
        out = np.zeros((n, n), dtype=bool)
        if self.pairs == 0:
            return out
        lo, hi = self.betting.bounds()
        out[self.a[lo > 0], self.b[lo > 0]] = True
        out[self.b[hi < 0], self.a[hi < 0]] = True
        return out

    def halfwidth(self, n: int) -> np.ndarray:
        """(n, n) half-width of each tracked pair's interval (inf where untracked)."""
        hw = np.full((n, n), np.inf)
        if self.pairs:
            lo, hi = self.betting.bounds()
            hw[self.a, self.b] = hw[self.b, self.a] = (hi - lo) / 2
        return hw


class CertifiedTopK:
    """CMCS rounds + individual betting sequences + boundary pair sequences.

    ``pairs=False``: individual sequences only (at ``delta / n`` each, as TMAB).
    ``pairs=True``: ``delta / 2`` for the individual ones (``delta / (2n)`` each) and
    ``delta / 2`` for the pairs of the boundary set (the ``pair_set`` units in play with the
    highest means, fixed once at most ``pair_set`` units are in play).
    """

    def __init__(self, game: Game, n: int, k: int, delta: float, epsilon: float,
                 rng: np.random.Generator, pairs: bool = True, pair_set: int = 30,
                 min_samples: int = 3) -> None:
        self.n, self.k, self.delta, self.epsilon = n, k, delta, epsilon
        self.sampler = CMCSampler(game, n, rng)
        self.use_pairs, self.pair_set, self.min_samples = pairs, pair_set, min_samples
        self.ind = BettingIntervals(n, (delta / 2 if pairs else delta) / n)
        self.moments = RunningMoments(n)
        self.pairs: PairStats | None = None
        self.active = np.ones(n, dtype=bool)
        self.certain_in = np.zeros(n, dtype=bool)
        self.certain_out = np.zeros(n, dtype=bool)

    @property
    def evaluations(self) -> int:
        return self.sampler.evaluations

    def finished(self) -> bool:
        return not self.active.any()

    def step(self) -> None:
        ids = np.flatnonzero(self.active)
        x = self.sampler.round(ids)
        self.ind.observe(ids, x, self.moments.count[ids], self.moments.m2[ids])
        self.moments.update(ids, x)
        if self.pairs is not None:
            self.pairs.observe(ids, x, self.n)
        self._decide()

    def _decide(self) -> None:
        n, k = self.n, self.k
        lo, hi = self.ind.bounds()
        beats = lo[:, None] > hi[None, :]
        hw = (hi - lo) / 2
        if self.pairs is not None:
            beats |= self.pairs.beats(n)
        wins, losses = beats.sum(axis=1), beats.sum(axis=0)
        self.certain_in = wins >= n - k
        self.certain_out = losses >= k
        undecided = ~(self.certain_in | self.certain_out)
        wide = hw > self.epsilon
        if self.pairs is not None and undecided.any():
            und = np.flatnonzero(undecided)
            phw = self.pairs.halfwidth(n)[np.ix_(und, und)]
            np.fill_diagonal(phw, 0.0)
            wide[und] &= phw.max(axis=1) > self.epsilon
        self.active = (undecided & wide) | (self.moments.count < self.min_samples)
        if (self.use_pairs and self.pairs is None and self.active.sum() <= self.pair_set
                and self.moments.count.min() >= self.min_samples):
            members = np.flatnonzero(self.active)
            self.pairs = PairStats(members, self.delta / 2)

    def ranking(self) -> np.ndarray:
        """Certain-in units first, then by mean."""
        key = self.moments.mean + 1e9 * self.certain_in - 1e9 * self.certain_out
        return np.argsort(-key, kind="stable")

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.ind.bounds()


# ================================================================== anytime walks
def walk(game: Game, perm: np.ndarray, v_full: float, v_null: float,
         rng: np.random.Generator, keep: float | None = None, tolerance: float = 0.05,
         patience: int = 3, chunk: int = 8) -> tuple[np.ndarray, np.ndarray, int]:
    """One removal walk; returns (marginals (n,) of perm's units in walk order, values
    (n + 1,) along the walk with NaN where not evaluated, evaluations).

    ``keep``: roulette truncation (after ``patience`` dead steps in a row the walk goes on
    with probability ``keep`` and the rest of its marginals are divided by it, else they
    are 0): unbiased. ``None``: the whole walk.
    """
    n = len(perm)
    pos = np.empty(n, dtype=np.int64)
    pos[perm] = np.arange(n)
    vals = np.full(n + 1, np.nan)
    vals[0], vals[n] = v_full, v_null
    scale = abs(v_full - v_null)
    step, streak, evals, cut, scale_from = 1, 0, 0, None, None
    while step < n:
        steps = np.arange(step, min(step + chunk, n))
        got = _values(game, pos[None, :] >= steps[:, None])
        evals += len(steps)
        for r, j in enumerate(steps):
            vals[j] = got[r]
            if keep is None or scale_from is not None:
                continue
            streak = streak + 1 if abs(got[r] - v_null) <= tolerance * scale else 0
            if streak >= patience:
                if rng.random() < keep:
                    scale_from = int(j)
                else:
                    cut = int(j)
                    break
        if cut is not None:
            break
        step = int(steps[-1]) + 1
    filled = vals.copy()
    if cut is not None:
        filled[cut + 1:] = filled[cut]
    marg = filled[:-1] - filled[1:]
    if scale_from is not None:
        marg[scale_from:] /= keep  # type: ignore[operator]
    return marg, vals, evals


class LogisticSurrogate(CollapseSurrogate):
    """The library's ``f(S) = lo + (hi - lo) sigmoid(w . S + c)``, evaluated on masks and
    fitted by least squares on coalitions instead of walks."""

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        z = masks.astype(np.float64) @ self.w + self.c
        return self.lo + (self.hi - self.lo) / (1.0 + np.exp(-z))

    def fit(self, masks: np.ndarray, y: np.ndarray, iters: int = 30, ridge: float = 1e-4
            ) -> None:
        """Damped Gauss-Newton least squares on (masks (M, n), y (M,))."""
        X = np.hstack([masks.astype(np.float64), np.ones((len(masks), 1))])
        theta = np.append(self.w, self.c)
        span = self.hi - self.lo
        lam = 1e-2

        def loss(t: np.ndarray) -> float:
            p = self.lo + span / (1 + np.exp(-(X @ t)))
            return float(((p - y) ** 2).sum() + ridge * (t[:-1] ** 2).sum())

        cur = loss(theta)
        for _ in range(iters):
            s = 1 / (1 + np.exp(-(X @ theta)))
            r = self.lo + span * s - y
            J = X * (span * s * (1 - s))[:, None]
            g = J.T @ r + ridge * np.append(theta[:-1], 0.0)
            H = J.T @ J + ridge * np.diag(np.append(np.ones(self.n), 0.0))
            while lam < 1e8:
                step = np.linalg.solve(H + lam * np.diag(np.diag(H) + 1e-9), g)
                cand = theta - step
                new = loss(cand)
                if new < cur:
                    theta, cur, lam = cand, new, max(lam / 3, 1e-6)
                    break
                lam *= 4
            else:
                break
        if np.isfinite(theta).all():
            self.w, self.c = theta[:-1].copy(), float(theta[-1])

    def shapley(self, rng: np.random.Generator, permutations: int = 8000) -> np.ndarray:
        """Monte-Carlo Shapley values of f over antithetic pairs of permutations."""
        n = self.n
        half = permutations // 2
        perms = np.argsort(rng.random((half, n)), axis=1)
        perms = np.concatenate([perms, perms[:, ::-1]])
        v = self.along(perms)
        tot = np.bincount(perms.ravel(), weights=(v[:, :-1] - v[:, 1:]).ravel(), minlength=n)
        return tot / len(perms)


class AnytimeWalks:
    """Walk-based anytime estimator with the options under study.

    ``design``: "iid" (uniform permutations), "antithetic" (each permutation followed by
    its reverse), "sobol" (argsort of scrambled Sobol points: each walk a uniform
    permutation, the run one low-discrepancy sequence), "strata" (position-stratified
    blocks of ``strata`` walks, as the library).
    ``keep``: roulette truncation probability (None: whole walks). ``adjust``: regression
    adjustment with a logistic surrogate, 2-fold cross-fitted, coefficient estimated by
    pooled least squares of V's marginals on f's (``"fixed"``: coefficient 1).
    """

    def __init__(self, game: Game, n: int, seed: int, design: str = "iid",
                 keep: float | None = 0.1, adjust: str | None = None, strata: int = 4) -> None:
        self.game, self.n, self.rng = game, n, np.random.default_rng(seed)
        self.design, self.keep, self.adjust, self.strata = design, keep, adjust, strata
        ends = _values(game, np.array([np.ones(n, bool), np.zeros(n, bool)]))
        self.v_full, self.v_null = float(ends[0]), float(ends[1])
        self.evaluations = 2
        self.perms: list[np.ndarray] = []
        self.margs: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []
        self._queue: list[np.ndarray] = []

    def _next_perm(self) -> np.ndarray:
        if not self._queue:
            n = self.n
            if self.design == "antithetic":
                p = self.rng.permutation(n)
                self._queue = [p, p[::-1].copy()]
            elif self.design == "strata":
                m = self.strata
                labels = (self.rng.permutation(n) * m) // n
                shifts = self.rng.permutation(m)
                self._queue = [np.argsort((labels + s) % m + self.rng.random(n), kind="stable")
                               for s in shifts]
            elif self.design == "sobol":
                if not hasattr(self, "_sobol"):
                    from scipy.stats import qmc

                    self._sobol = qmc.Sobol(d=n, scramble=True, seed=self.rng)
                self._queue = list(np.argsort(self._sobol.random(8), axis=1))
            else:
                self._queue = [self.rng.permutation(n)]
        return self._queue.pop(0)

    def run_to(self, budget: int) -> None:
        while self.evaluations < budget:
            p = self._next_perm()
            m, v, e = walk(self.game, p, self.v_full, self.v_null, self.rng, self.keep)
            self.evaluations += e
            self.perms.append(p)
            self.margs.append(m)
            self.vals.append(v)

    def _plain(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-unit sum and count of marginals over walks ``idx``."""
        n = self.n
        P = np.array([self.perms[i] for i in idx])
        M = np.array([self.margs[i] for i in idx])
        s = np.bincount(P.ravel(), weights=M.ravel(), minlength=n)
        return s, np.full(n, len(idx), dtype=np.float64)

    def estimate(self) -> np.ndarray:
        """Current estimate of every unit's value, (n,)."""
        T = len(self.perms)
        if self.adjust is None or T < 4:
            s, c = self._plain(np.arange(T))
            return s / c
        folds = [np.arange(0, T, 2), np.arange(1, T, 2)]
        est = np.zeros(self.n)
        for a, b in ((0, 1), (1, 0)):
            f = self._fit(folds[a])
            est += self._adjusted(f, folds[b]) * len(folds[b])
        return est / T

    def surrogate_only(self) -> np.ndarray:
        f = self._fit(np.arange(len(self.perms)))
        return f.shapley(np.random.default_rng(12345))

    def _fit(self, idx: np.ndarray) -> LogisticSurrogate:
        n = self.n
        masks, ys = [], []
        for i in idx:
            v = self.vals[i]
            seen = np.flatnonzero(~np.isnan(v))
            pos = np.empty(n, dtype=np.int64)
            pos[self.perms[i]] = np.arange(n)
            masks.append(pos[None, :] >= seen[:, None])
            ys.append(v[seen])
        f = LogisticSurrogate(n, self.v_null, self.v_full)
        f.fit(np.concatenate(masks), np.concatenate(ys))
        return f

    def _adjusted(self, f: LogisticSurrogate, idx: np.ndarray) -> np.ndarray:
        n = self.n
        P = np.array([self.perms[i] for i in idx])
        M = np.array([self.margs[i] for i in idx])
        fv = f.along(P)
        Mf = fv[:, :-1] - fv[:, 1:]
        if self.adjust == "fixed":
            beta = 1.0
        else:
            beta = float((M * Mf).sum() / max((Mf * Mf).sum(), 1e-300))
            beta = float(np.clip(beta, 0.0, 1.5))
        phi_f = f.shapley(np.random.default_rng(len(idx)))
        resid = np.bincount(P.ravel(), weights=(M - beta * Mf).ravel(), minlength=n)
        return beta * phi_f + resid / len(idx)
