"""A fitted "collapse" surrogate of the game as a control variate for walk marginals.

Neuron games look like ``V(S) ~ lo + (hi - lo) * sigmoid(w . S + c)``: the metric holds
while enough weight is present and collapses once it is gone. Such a surrogate ``f`` is
fitted to the coalitions the walks already evaluated, and its Shapley values are cheap
(no forward passes: along a permutation, ``w . S`` is a running sum). Then

    phi_i(V) = phi_i(f) + E[ marginal_i of V - marginal_i of f ]

and each walk contributes ``phi_i(f) + (its marginal of V - its marginal of f)`` per unit.
The surrogate used for walk ``t`` is fitted on walks before ``t`` only, so every
contribution is conditionally unbiased whatever the fit; the fit only decides how much of
the variance goes away (measured in ``benchmarks/headroom.py``). ``phi(f)`` is itself a
Monte-Carlo estimate over many cheap permutations (unbiased, independent of the walks).

The surrogate's part is scaled by a coefficient ``beta`` (regression-adjusted Monte-Carlo):
each walk contributes ``marginal of V + beta (phi_i(f) - marginal of f)``, with ``beta`` the
least-squares slope of V's marginals on f's over the walks before (1 until enough are seen,
kept in [0, 1.5]). A good fit gives beta ~ 1; a poor one shrinks it towards plain
Monte-Carlo instead of adding its noise. Being fixed before each walk, it keeps every
contribution unbiased.
"""

from __future__ import annotations

from typing import Any

import numpy as np

KEEP_WALKS = 64  # the surrogate is fitted on at most this many of the latest walks
MIN_PAIRS = 64  # marginals (V's and f's) seen with one fit before beta is estimated
BETA_RANGE = (0.0, 1.5)
FIRST_FIT = 8  # walks before the first fit; refits at 2x, 4x, ... that many


class CollapseSurrogate:
    """``f(S) = lo + (hi - lo) * sigmoid(w . S + c)`` with ``lo = V(empty)``, ``hi = V(N)``."""

    def __init__(self, n: int, lo: float, hi: float) -> None:
        self.n, self.lo, self.hi = n, float(lo), float(hi)
        self.w = np.full(n, 6.0 / n)
        self.c = -3.0

    def along(self, perms: np.ndarray) -> np.ndarray:
        """Values along removal walks (B, n) -> (B, n + 1), full coalition first."""
        w = self.w[perms]
        totals = self.w.sum() - np.concatenate(
            [np.zeros((len(perms), 1)), np.cumsum(w, axis=1)], axis=1)
        return self.lo + (self.hi - self.lo) / (1.0 + np.exp(-(totals + self.c)))

    def marginals(self, perm: np.ndarray) -> np.ndarray:
        """Marginals of ``perm[j]`` at step ``j`` of the walk, (n,)."""
        v = self.along(perm[None, :])[0]
        return v[:-1] - v[1:]

    def shapley(self, rng: np.random.Generator, permutations: int) -> np.ndarray:
        """Monte-Carlo Shapley values of the surrogate over ``permutations`` walks."""
        n = self.n
        batch = max(1, min(permutations, 2_000_000 // n))
        total = np.zeros(n)
        done = 0
        while done < permutations:
            b = min(batch, permutations - done)
            perms = np.argsort(rng.random((b, n)), axis=1)
            v = self.along(perms)
            total += np.bincount(perms.ravel(), weights=(v[:, :-1] - v[:, 1:]).ravel(),
                                 minlength=n)
            done += b
        return total / permutations

    def fit(self, perms: np.ndarray, values: np.ndarray) -> None:
        """Least squares on the evaluated steps of walks (``values`` NaN where not evaluated).

        Fitted with torch's L-BFGS, imported here: importing the estimators needs no torch.
        """
        import torch

        p = torch.as_tensor(perms, dtype=torch.int64)
        y = torch.as_tensor(values, dtype=torch.float64)
        seen = ~torch.isnan(y)
        if int(seen.sum()) < 2:
            return
        y = torch.where(seen, y, torch.zeros_like(y))
        w = torch.tensor(self.w, dtype=torch.float64, requires_grad=True)
        c = torch.tensor(self.c, dtype=torch.float64, requires_grad=True)
        lo, span = self.lo, self.hi - self.lo
        opt = torch.optim.LBFGS([w, c], max_iter=200, line_search_fn="strong_wolfe")
        zeros = torch.zeros(len(perms), 1, dtype=torch.float64)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            totals = w.sum() - torch.cat([zeros, torch.cumsum(w[p], dim=1)], dim=1)
            pred = lo + span * torch.sigmoid(totals + c)
            loss = (((pred - y) * seen) ** 2).sum() / seen.sum() + 1e-6 * (w**2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        w_new, c_new = w.detach().numpy().copy(), float(c.detach())
        if np.all(np.isfinite(w_new)) and np.isfinite(c_new):
            self.w, self.c = w_new, c_new


class SurrogateControl:
    """Turns each walk's marginals into control-variate samples (see the module docstring).

    ``adjust(walk_index, perm, marginals, values)`` must be called for walks in order;
    it refits at walks ``FIRST_FIT * 2**j`` on the walks before, then records the walk.
    """

    def __init__(self, n: int, v_full: float, v_null: float, seed: int,
                 permutations: int = 20_000, estimate_beta: bool = True) -> None:
        self.n, self.seed, self.permutations = n, int(seed), int(permutations)
        self.estimate_beta = bool(estimate_beta)
        self.beta = 1.0
        self.sums = np.zeros(5)  # count, sum f, sum V, sum f*f, sum f*V (this fit's walks)
        self.surrogate = CollapseSurrogate(n, v_null, v_full)
        self.phi: np.ndarray | None = None  # surrogate's Shapley values once fitted
        self.next_fit = FIRST_FIT
        self.fits = 0
        self.perms = np.zeros((0, n), dtype=np.int64)
        self.values = np.zeros((0, n + 1))

    def adjust(self, walk_index: int, perm: np.ndarray, marginals: np.ndarray,
               values: np.ndarray) -> np.ndarray:
        """Control-variate samples for the first ``len(marginals)`` units of ``perm``."""
        if walk_index >= self.next_fit and len(self.perms):
            self.surrogate.fit(self.perms, self.values)
            self.phi = self.surrogate.shapley(
                np.random.default_rng([self.seed, self.fits]), self.permutations)
            self.fits += 1
            self.next_fit = 2 * max(self.next_fit, walk_index)
            self.sums[:] = 0.0  # the slope is of V's marginals on this fit's
        out = np.array(marginals, dtype=np.float64, copy=True)
        if self.phi is not None:
            m = len(out)
            g = self.surrogate.marginals(perm)[:m]
            x = out[:, 0].copy()
            out[:, 0] += self.beta * (self.phi[perm[:m]] - g)
            if self.estimate_beta:  # the next walk's beta: from this walk and the ones before
                self.sums += (m, g.sum(), x.sum(), (g * g).sum(), (g * x).sum())
                count, sg, sx, sgg, sgx = self.sums
                var = sgg - sg * sg / count
                if count >= MIN_PAIRS and var > 1e-12:
                    self.beta = float(np.clip((sgx - sg * sx / count) / var, *BETA_RANGE))
        row = np.full(self.n + 1, np.nan)
        row[: len(values)] = values
        self.perms = np.concatenate([self.perms, perm[None, :]])[-KEEP_WALKS:]
        self.values = np.concatenate([self.values, row[None, :]])[-KEEP_WALKS:]
        return out

    def state(self) -> dict[str, np.ndarray]:
        return {"cv.w": self.surrogate.w.copy(), "cv.c": np.array(self.surrogate.c),
                "cv.phi": np.array([]) if self.phi is None else self.phi.copy(),
                "cv.counters": np.array([self.next_fit, self.fits]),
                "cv.beta": np.array([self.beta, *self.sums]),
                "cv.perms": self.perms.copy(), "cv.values": self.values.copy()}

    def restore(self, arrays: dict[str, Any]) -> None:
        self.surrogate.w = np.asarray(arrays["cv.w"], dtype=np.float64).copy()
        self.surrogate.c = float(arrays["cv.c"])
        phi = np.asarray(arrays["cv.phi"], dtype=np.float64)
        self.phi = phi.copy() if phi.size else None
        self.next_fit, self.fits = (int(x) for x in arrays["cv.counters"])
        if "cv.beta" in arrays:  # checkpoints written before beta was estimated: beta 1
            beta = np.asarray(arrays["cv.beta"], dtype=np.float64)
            self.beta, self.sums = float(beta[0]), beta[1:].copy()
        self.perms = np.asarray(arrays["cv.perms"], dtype=np.int64).copy()
        self.values = np.asarray(arrays["cv.values"], dtype=np.float64).copy()
