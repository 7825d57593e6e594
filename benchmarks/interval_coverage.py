"""Do the reported intervals and top-k claims hold at the stated confidence?

Over many seeds on closed-form games (known truth), for each estimator configuration:
per-unit coverage of the intervals, joint coverage (all units' intervals at once, what TMAB's
union bound claims), and how often a converged TMAB run's top-k is the true top-k (claimed:
at least 1 - delta). Truncation is off for TMAB here: its intervals are about the truncated
game, whose values differ from the closed-form ones by the truncation bias.

    python benchmarks/interval_coverage.py [--seeds 100]

Writes ``results/coverage.json`` and ``results/coverage.md``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from common import RESULTS, save_json

import neuronshapley as ns
from neuronshapley.games import NoisyGame, UnanimityGame, WeightedThresholdGame


def games(seed: int) -> dict[str, tuple[Any, np.ndarray]]:
    collapse = WeightedThresholdGame.neuron_like(60, rng=np.random.default_rng(0))
    unanimity = UnanimityGame.random(40, n_terms=80, max_size=5, rng=np.random.default_rng(1))
    noisy = NoisyGame(collapse, noise_std=0.02, rng=np.random.default_rng(1000 + seed))
    # four additive units (0.3, 0.2, 0.15, 0.1) and one unanimity term over 60 others: each
    # of those is worth 1/60 but its marginal is 1 in one walk of 60 and 0 otherwise (a rare
    # large marginal, like a filter that only matters at the collapse step)
    rare = UnanimityGame([[0], [1], [2], [3], list(range(20, 80))],
                         [0.3, 0.2, 0.15, 0.1, 1.0], 80)
    return {
        "collapse-60": (collapse, collapse.shapley_values()),
        "noisy-collapse-60": (noisy, collapse.shapley_values()),
        "unanimity-40": (unanimity, unanimity.shapley_values()),
        "rare-pivot-80": (rare, rare.shapley_values()),
    }


CONFIGS: dict[str, dict[str, Any]] = {
    "permutation (95% per unit)": {"method": "permutation", "max_evaluations": 3000},
    "tmab k=3 delta=0.1 (betting sequences, default)": {
        "method": "tmab", "k": 3, "delta": 0.1, "truncation": False,
        "max_evaluations": 200_000},
    "tmab k=3 delta=0.1, empirical Bernstein": {
        "method": "tmab", "k": 3, "delta": 0.1, "truncation": False, "bound": "bernstein",
        "max_evaluations": 200_000},
    "tmab k=3 delta=0.1, normal bound, 20 min. samples": {
        "method": "tmab", "k": 3, "delta": 0.1, "truncation": False, "bound": "normal",
        "min_samples": 20, "max_evaluations": 200_000},
    "tmab k=3 delta=0.1, local Bernstein, 30 min. samples": {
        "method": "tmab", "k": 3, "delta": 0.1, "truncation": False,
        "bound": "bernstein-local", "min_samples": 30, "max_evaluations": 200_000},
    "tmab k=3 delta=0.1, paper rule": {"method": "tmab", "k": 3, "delta": 0.1,
                                       "truncation": False, "rule": "paper",
                                       "bound": "bernstein", "sampling": "walk",
                                       "max_evaluations": 200_000},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=100)
    args = ap.parse_args()
    rows = []
    for cname, cfg in CONFIGS.items():
        for gname in games(0):
            unit_cov, joint_cov, topk_ok, converged, evals = [], [], [], [], []
            strict_ok: list[bool] = []
            for seed in range(args.seeds):
                game, truth = games(seed)[gname]
                res = ns.estimate(game, seed=seed, **cfg)
                inside = (res.ci_low <= truth + 1e-12) & (truth - 1e-12 <= res.ci_high)
                unit_cov.append(inside.mean())
                joint_cov.append(inside.all())
                evals.append(res.evaluations)
                if "k" in cfg:
                    k = cfg["k"]
                    converged.append(res.info["converged"])
                    kth = np.sort(truth)[::-1][k - 1]
                    # the claim: right up to epsilon (units within epsilon of the k-th count)
                    eps = res.params["epsilon"]
                    topk_ok.append(bool(np.all(truth[res.ranking()[:k]] >= kth - eps)))
                    strict_ok.append(bool(np.all(truth[res.ranking()[:k]] >= kth - 1e-12)))
            row = {"config": cname, "game": gname, "seeds": args.seeds,
                   "unit_coverage": float(np.mean(unit_cov)),
                   "joint_coverage": float(np.mean(joint_cov)),
                   "mean_evaluations": float(np.mean(evals))}
            if topk_ok:
                row["converged"] = float(np.mean(converged))
                row["topk_correct"] = float(np.mean(topk_ok))
                row["topk_strict"] = float(np.mean(strict_ok))
                row["claimed"] = 1 - cfg["delta"]
            rows.append(row)
            print(row)
    lines = ["# Coverage of intervals and top-k claims", "",
             f"{args.seeds} seeds per cell; closed-form truth.", "",
             "| configuration | game | per-unit coverage | joint coverage | top-k correct "
             "(within epsilon) | claimed | strict top-k | converged | mean evaluations |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['game']} | {r['unit_coverage']:.3f} | "
            f"{r['joint_coverage']:.2f} | {r.get('topk_correct', float('nan')):.2f} | "
            f"{r.get('claimed', float('nan')):.2f} | {r.get('topk_strict', float('nan')):.2f} | "
            f"{r.get('converged', float('nan')):.2f} | "
            f"{r['mean_evaluations']:.0f} |"
        )
    md = "\n".join(lines)
    print(md)
    save_json("coverage", {"rows": rows})
    (RESULTS / "coverage.md").write_text(md + "\n")


if __name__ == "__main__":
    main()
