"""How much can any unbiased sampler still gain on the digits game? Measured, not assumed.

Walks ``--walks`` full (untruncated) permutations of the digits CNN accuracy game and asks
three questions of the recorded coalition values:

1. **Where is the variance?** Mean squared marginal by walk position (deciles), and where
   walks die (the truncation point).
2. **Position allocation (Neyman)**: if walks were cut into position segments and each
   segment sampled in proportion to its standard deviation per evaluation, how much lower
   would variance x cost be than truncated whole walks? (An upper bound on what smarter
   position sampling could buy.)
3. **Surrogate control variate**: fit a logistic single-index surrogate
   ``V(S) ~ lo + (hi - lo) * sigmoid(w . S + c)`` (the "collapse" shape of neuron games) on a
   pilot of walks; its Shapley values are cheap to compute, so ``phi = phi(surrogate) +
   E[marginal - surrogate marginal]`` is unbiased. How much smaller is the variance of the
   residual marginals on the walks not used for fitting?
4. **Overshoot**: evaluations a truncated walk spends past its dead point for a given number
   of steps per game call (what ``WalkSampler.walk_many`` lowers by sharing calls).

Writes ``results/headroom.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import RESULTS, digits_game, save_json, set_threads

from neuronshapley.estimators.walks import step_masks


def collect(n_walks: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Permutations (W, n) and coalition values along each walk (W, n + 1)."""
    game = digits_game()
    n = game.n_players
    rng = np.random.default_rng(seed)
    ends = np.asarray(game(np.array([np.ones(n, bool), np.zeros(n, bool)])), float)
    perms, values = [], []
    for _ in range(n_walks):
        perm = rng.permutation(n)
        pos = np.empty(n, int)
        pos[perm] = np.arange(n)
        v = np.asarray(game(step_masks(pos, np.arange(1, n))), float)
        perms.append(perm)
        values.append(np.concatenate([[ends[0]], v, [ends[1]]]))
    return np.array(perms), np.array(values)


def coalitions(perm: np.ndarray) -> np.ndarray:
    """Masks of every step of the walk over ``perm``, full network first: (n + 1, n)."""
    n = len(perm)
    pos = np.empty(n, int)
    pos[perm] = np.arange(n)
    return pos[None, :] >= np.arange(n + 1)[:, None]


def dead_points(values: np.ndarray, tolerance: float = 0.05, patience: int = 3) -> np.ndarray:
    """Step at which each walk's truncation rule fires (the library's default rule)."""
    out = []
    for v in values:
        dead = np.abs(v - v[-1]) <= tolerance * abs(v[0] - v[-1])
        streak, at = 0, len(v) - 1
        for j in range(1, len(v)):
            streak = streak + 1 if dead[j] else 0
            if streak >= patience:
                at = j
                break
        out.append(at)
    return np.array(out)


def neyman_gain(sq: np.ndarray, dead: float, seg: int) -> float:
    """Variance x cost of truncated whole walks over that of Neyman-allocated segments."""
    n = len(sq)
    starts = [s for s in range(0, n, seg) if s < dead]
    v = np.array([sq[s : s + seg].sum() / n for s in starts])
    c = np.array([min(seg, n - s) + 1.0 for s in starts])  # +1: the segment's first coalition
    return float(v.sum() * dead / np.sqrt(v * c).sum() ** 2)


def fit_surrogate(perms: np.ndarray, values: np.ndarray):
    """Least-squares logistic single-index surrogate; returns a masks -> values function."""
    x = torch.tensor(np.concatenate([coalitions(p) for p in perms]), dtype=torch.float64)
    y = torch.tensor(values.reshape(-1), dtype=torch.float64)
    lo, hi = float(values[:, -1].mean()), float(values[:, 0].mean())
    n = perms.shape[1]
    w = torch.full((n,), 6.0 / n, dtype=torch.float64, requires_grad=True)
    c = torch.tensor(-3.0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, c], max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        pred = lo + (hi - lo) * torch.sigmoid(x @ w + c)
        loss = ((pred - y) ** 2).mean() + 1e-6 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    wn, cn = w.detach().numpy(), float(c.detach())
    return lambda m: lo + (hi - lo) / (1.0 + np.exp(-(m @ wn + cn)))


def walk_marginals(perm: np.ndarray, v: np.ndarray) -> np.ndarray:
    out = np.empty(len(perm))
    out[perm] = v[:-1] - v[1:]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--walks", type=int, default=60)
    ap.add_argument("--seed", type=int, default=123)
    args = ap.parse_args()
    set_threads(1)
    t0 = time.perf_counter()
    perms, values = collect(args.walks, args.seed)
    seconds = time.perf_counter() - t0
    w, n = perms.shape
    by_pos = values[:, :-1] - values[:, 1:]
    sq = (by_pos**2).mean(0)
    dead = dead_points(values)
    deciles = [{"positions": f"{q}-{min(q + n // 10, n) - 1}",
                "mean_sq": float(sq[q : q + n // 10].mean()),
                "mean_abs": float(np.abs(by_pos[:, q : q + n // 10]).mean())}
               for q in range(0, n, n // 10)]
    neyman = {seg: neyman_gain(sq, float(dead.mean()), seg) for seg in (4, 8, 16)}
    raw = np.array([walk_marginals(p, v) for p, v in zip(perms, values, strict=True)])
    surrogate = []
    for pilot in (10, 20):
        f = fit_surrogate(perms[:pilot], values[:pilot])
        res = np.array([raw[i] - walk_marginals(perms[i], f(coalitions(perms[i]).astype(float)))
                        for i in range(pilot, w)])
        surrogate.append({"pilot_walks": pilot, "raw_var": float(raw[pilot:].var(0).mean()),
                          "residual_var": float(res.var(0).mean())})
    overshoot = {c: float(np.minimum(np.ceil(dead / c) * c, n - 1).mean())
                 for c in (1, 4, 8, 22, 32)}
    payload = {"walks": w, "n_players": n, "seconds_collecting": seconds,
               "dead_point_mean": float(dead.mean()), "dead_point_range": [int(dead.min()),
                                                                          int(dead.max())],
               "deciles": deciles, "neyman_gain": neyman, "surrogate": surrogate,
               "evaluations_per_truncated_walk": overshoot}
    save_json("headroom", payload)
    lines = [
        "# Headroom on the digits game (what smarter unbiased sampling could still buy)", "",
        f"{w} full walks of the digits CNN accuracy game ({n} filters, 359 valuation images), "
        f"seed {args.seed}; `benchmarks/headroom.py`.", "",
        f"Walks die (library's truncation rule) at step {dead.mean():.1f} on average "
        f"(range {dead.min()}-{dead.max()}) of {n}.", "",
        "| positions | mean squared marginal | mean abs marginal |", "| --- | ---: | ---: |",
        *[f"| {d['positions']} | {d['mean_sq']:.2e} | {d['mean_abs']:.4f} |" for d in deciles],
        "", "**Neyman position allocation** (variance x cost of truncated whole walks over "
        "optimally allocated position segments; > 1 means segments would win):", "",
        "| segment length | gain bound |", "| ---: | ---: |",
        *[f"| {k} | {v:.2f}x |" for k, v in neyman.items()],
        "", "**Logistic single-index surrogate as a control variate** (variance of raw "
        "marginals over residual marginals, on walks not used for fitting):", "",
        "| pilot walks | raw variance | residual variance | ratio |",
        "| ---: | ---: | ---: | ---: |",
        *[f"| {s['pilot_walks']} | {s['raw_var']:.2e} | {s['residual_var']:.2e} | "
          f"{s['raw_var'] / s['residual_var']:.2f}x |" for s in surrogate],
        "", "**Evaluations per truncated walk** by walk steps per game call (dead point "
        f"{dead.mean():.1f}):", "", "| steps per call | evaluations |", "| ---: | ---: |",
        *[f"| {k} | {v:.1f} |" for k, v in overshoot.items()], "",
    ]
    (RESULTS / "headroom.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
