"""Error and bias of the walk estimators at a fixed budget, on closed-form games.

Mean squared error over units and seeds, and squared bias (of the mean over seeds), for:
plain Monte-Carlo, position-stratified walks, the paper's truncation (marginals after the
dead point counted as 0), and unbiased "roulette" truncation.

    python benchmarks/variance.py [--seeds 40] [--budget 2000]

Writes ``results/variance.json`` and ``results/variance.md``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from common import RESULTS, save_json

import neuronshapley as ns
from neuronshapley.games import UnanimityGame, WeightedThresholdGame

CONFIGS: dict[str, dict[str, Any]] = {
    "permutation": {"method": "permutation"},
    "permutation, strata=5": {"method": "permutation", "strata": 5},
    "permutation, strata=10": {"method": "permutation", "strata": 10},
    "truncated (paper: zeros)": {"method": "truncated"},
    "truncated, share": {"method": "truncated", "truncation_fill": "share"},
    "truncated, roulette": {"method": "truncated", "truncation_fill": "roulette"},
    "truncated, roulette, strata=5": {"method": "truncated", "truncation_fill": "roulette",
                                      "strata": 5},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--budget", type=int, default=2000)
    args = ap.parse_args()
    games = {
        "collapse-80": WeightedThresholdGame.neuron_like(80, rng=np.random.default_rng(3)),
        "unanimity-80": UnanimityGame.random(80, 200, 8, rng=np.random.default_rng(1)),
    }
    rows = []
    for gname, game in games.items():
        truth = game.shapley_values()
        for cname, cfg in CONFIGS.items():
            est = np.array([ns.estimate(game, seed=s, max_evaluations=args.budget, **cfg).values
                            for s in range(args.seeds)])
            mse = float(np.mean(np.sum((est - truth) ** 2, axis=1)))
            bias2 = float(np.sum((est.mean(0) - truth) ** 2))
            rows.append({"game": gname, "config": cname, "mse": mse, "bias2": bias2})
            print(rows[-1], flush=True)
    lines = ["# Error at a fixed budget", "",
             f"{args.budget} evaluations, {args.seeds} seeds; sum over units of the squared "
             "error (MSE) and of the squared mean error (bias^2, which includes noise of "
             f"about MSE/{args.seeds}).", "",
             "| game | configuration | MSE | MSE / plain | bias^2 |",
             "| --- | --- | ---: | ---: | ---: |"]
    for r in rows:
        plain = next(x["mse"] for x in rows if x["game"] == r["game"]
                     and x["config"] == "permutation")
        lines.append(f"| {r['game']} | {r['config']} | {r['mse']:.3g} | "
                     f"{r['mse'] / plain:.2f} | {r['bias2']:.3g} |")
    md = "\n".join(lines)
    print(md)
    save_json("variance", {"rows": rows, "budget": args.budget, "seeds": args.seeds})
    (RESULTS / "variance.md").write_text(md + "\n")


if __name__ == "__main__":
    main()
