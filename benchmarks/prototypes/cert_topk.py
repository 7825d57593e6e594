"""Certified top-k against plain Monte-Carlo's uncertified top-k, in one run.

On the neuron-like collapse game (n = 200, k = 10, game seed 32: a clean gap at the 10th
value), for several seeds: evaluations until each certifying method stops (TMAB as it is
today, with and without truncation; the CMCS prototypes with and without boundary pairs)
and whether its top-k is right, against the budget plain Monte-Carlo (``method=
"permutation"``) needs for a mean strict p@10 >= 0.9. Then the prototypes' coverage on the
breaking games.

    python benchmarks/prototypes/cert_topk.py [--seeds 3] [--coverage-seeds 20]

Writes ``benchmarks/results/research_cert.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ranking_proto import CertifiedTopK  # noqa: E402

import neuronshapley as ns  # noqa: E402
from neuronshapley.games import UnanimityGame, WeightedThresholdGame  # noqa: E402

RESULTS = Path(__file__).resolve().parents[1] / "results"


def p_at_k(values: np.ndarray, truth: np.ndarray, k: int) -> float:
    return len(set(np.argsort(-values)[:k]) & set(np.argsort(-truth)[:k])) / k


def run_cert(game, k: int, delta: float, eps: float, seed: int, pairs: bool,
             cap: int) -> dict:
    n = game.n_players
    t0 = time.perf_counter()
    cert = CertifiedTopK(game, n, k, delta, eps, np.random.default_rng(seed), pairs=pairs)
    while not cert.finished() and cert.evaluations < cap:
        cert.step()
    lo, hi = cert.bounds()
    truth = game.shapley_values()
    kth = np.sort(truth)[::-1][k - 1]
    top = cert.ranking()[:k]
    return {"evaluations": cert.evaluations, "seconds": time.perf_counter() - t0,
            "converged": cert.finished(),
            "topk_eps": bool(np.all(truth[top] >= kth - eps)),
            "p@k": len(set(top) & set(np.argsort(-truth)[:k])) / k,
            "joint": bool(np.all((lo <= truth + 1e-12) & (truth <= hi + 1e-12)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--mc-seeds", type=int, default=8)
    ap.add_argument("--coverage-seeds", type=int, default=0)
    ap.add_argument("--cap", type=int, default=400_000)
    ap.add_argument("--skip-tmab", action="store_true")
    ap.add_argument("--arms", default="0,1", help="prototype arms: 0 individual, 1 pairs")
    args = ap.parse_args()
    game = WeightedThresholdGame.neuron_like(200, rng=np.random.default_rng(32))
    truth = game.shapley_values()
    ranked = np.sort(truth)[::-1]
    k, delta = 10, 0.05
    eps_default = 0.005 * abs(game(np.ones((1, 200), bool))[0] - game(np.zeros((1, 200),
                                                                            bool))[0])
    out: dict = {"game": "neuron_like(200, rng=32)", "k": k, "delta": delta,
                 "kth": float(ranked[k - 1]), "gap": float(ranked[k - 1] - ranked[k]),
                 "epsilon_default": float(eps_default), "mc": {}, "certified": {}}
    print(out, flush=True)
    budgets = [1000, 2000, 4000, 10000]
    for b in budgets:
        ps = [p_at_k(ns.estimate(game, method="permutation", max_evaluations=b, seed=s).values,
                     truth, k) for s in range(args.mc_seeds)]
        out["mc"][b] = float(np.mean(ps))
        print("mc", b, out["mc"][b], flush=True)
    arms = {
        "tmab default": lambda s: ns.estimate(game, method="tmab", k=k, delta=delta, seed=s),
        "tmab truncation=False": lambda s: ns.estimate(game, method="tmab", k=k, delta=delta,
                                                       seed=s, truncation=False),
    }
    for name, fn in ({} if args.skip_tmab else arms).items():
        rows = []
        for s in range(args.seeds):
            t0 = time.perf_counter()
            r = fn(s)
            kth = ranked[k - 1]
            rows.append({"evaluations": r.evaluations, "seconds": time.perf_counter() - t0,
                         "converged": r.info["converged"],
                         "topk_eps": bool(np.all(truth[r.ranking()[:k]] >= kth - eps_default)),
                         "p@k": p_at_k(r.values, truth, k)})
            print(name, rows[-1], flush=True)
        out["certified"][name] = rows
    protos = (("cmcs individual", False), ("cmcs + boundary pairs", True))
    for name, pairs in (protos[int(i)] for i in args.arms.split(",")):
        for eps_name, eps in (("eps default", eps_default),):
            rows = [run_cert(game, k, delta, eps, s, pairs, args.cap) for s in range(args.seeds)]
            for r in rows:
                print(name, eps_name, r, flush=True)
            out["certified"][f"{name} ({eps_name})"] = rows
    if args.coverage_seeds:
        breaking = {
            "signed-unanimity-120": (UnanimityGame.random(120, 300, 5, rng=325), 8),
            "reviving-50": (WeightedThresholdGame.reviving(50, rng=np.random.default_rng(2)), 3),
            "rare-pivot-80": (UnanimityGame.rare_pivot(), 3),
        }
        out["coverage"] = {}
        for gname, (g, kk) in breaking.items():
            span = abs(g(np.ones((1, g.n_players), bool))[0]
                       - g(np.zeros((1, g.n_players), bool))[0])
            rows = [run_cert(g, kk, 0.1, 0.005 * span, s, True, args.cap)
                    for s in range(args.coverage_seeds)]
            out["coverage"][gname] = rows
            print(gname, sum(r["joint"] for r in rows), "/", len(rows), "joint;",
                  sum(r["topk_eps"] for r in rows), "top-k;",
                  np.mean([r["evaluations"] for r in rows]), "evals", flush=True)
    (RESULTS / "research_cert.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
