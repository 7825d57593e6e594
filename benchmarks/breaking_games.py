"""Do TMAB's guarantees hold on games built to break them?

For each closed-form game (monotone or not) and each TMAB configuration that today's options
can express, over many seeds: joint coverage (every unit's interval holds at once, as the
union bound claims, at level 1 - delta) and whether the returned top-k is right up to
epsilon (claimed in >= 1 - delta of the runs), with the evaluations and wall time it took.

Games: a signed unanimity sum (n = 120, 300 terms of up to 5 players, standard-normal
coefficients: not monotone), a collapse game whose dead sub-networks revive
(``WeightedThresholdGame.reviving``), the rare-pivot game (value hidden in rare large
marginals), and the monotone neuron-like collapse game.

    python benchmarks/breaking_games.py [--seeds 20] [--games a,b] [--configs x,y]

Each finished run is appended to ``results/breaking_games.jsonl`` (a rerun skips what is
there); ``--summary`` writes ``results/breaking_games.md`` from it.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from typing import Any

import numpy as np
from common import RESULTS

import neuronshapley as ns
from neuronshapley.games import UnanimityGame, WeightedThresholdGame

DELTA = 0.1
LOG = RESULTS / "breaking_games.jsonl"


@functools.cache
def games() -> dict[str, tuple[Any, int]]:
    """name -> (game, k)."""
    return {
        "signed-unanimity-120": (UnanimityGame.random(120, 300, 5, rng=325), 8),
        "reviving-50": (WeightedThresholdGame.reviving(50, rng=np.random.default_rng(2)), 3),
        "rare-pivot-80": (UnanimityGame.rare_pivot(), 3),
        "collapse-60": (WeightedThresholdGame.neuron_like(60, rng=np.random.default_rng(0)), 3),
    }


CONFIGS: dict[str, dict[str, Any]] = {
    "zero-fill truncation (the paper's)": {"truncation": True},
    "whole walks (the default)": {},
    "roulette fill (keep 0.1)": {"truncation_fill": "roulette"},
    "roulette fill (keep 0.3)": {"truncation_fill": "roulette", "truncation_keep": 0.3},
}


def done() -> set[tuple[str, str, int]]:
    if not LOG.exists():
        return set()
    out = set()
    for line in LOG.read_text().splitlines():
        r = json.loads(line)
        out.add((r["game"], r["config"], r["seed"]))
    return out


def run(gname: str, cname: str, seed: int) -> dict[str, Any]:
    game, k = games()[gname]
    truth = game.shapley_values()
    t0 = time.perf_counter()
    res = ns.estimate(game, method="tmab", k=k, delta=DELTA, seed=seed,
                      max_evaluations=400_000, **CONFIGS[cname])
    inside = (res.ci_low <= truth + 1e-12) & (truth - 1e-12 <= res.ci_high)
    kth = np.sort(truth)[::-1][k - 1]
    top = res.ranking()[:k]
    eps = res.params["epsilon"]
    return {"game": gname, "config": cname, "seed": seed, "k": k,
            "evaluations": int(res.evaluations), "seconds": time.perf_counter() - t0,
            "joint": bool(inside.all()), "missed": int((~inside).sum()),
            "topk_eps": bool(np.all(truth[top] >= kth - eps)),
            "topk_strict": bool(np.all(truth[top] >= kth - 1e-12)),
            "converged": bool(res.info["converged"]), "epsilon": float(eps)}


def summary() -> str:
    rows = [json.loads(line) for line in LOG.read_text().splitlines()]
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault((r["game"], r["config"]), []).append(r)
    lines = ["# TMAB coverage on games built to break it", "",
             f"delta = {DELTA} (claimed: >= {1 - DELTA:.0%} of runs), one run per seed of "
             "`benchmarks/breaking_games.py`; closed-form truth.", "",
             "| game | k | configuration | seeds | joint coverage | top-k right (eps) "
             "| strict top-k | converged | mean evaluations | mean seconds |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for gname in games():
        for cname in CONFIGS:
            rs = cells.get((gname, cname))
            if not rs:
                continue
            m = len(rs)
            lines.append(
                f"| {gname} | {rs[0]['k']} | {cname} | {m} "
                f"| {sum(r['joint'] for r in rs)}/{m} | {sum(r['topk_eps'] for r in rs)}/{m} "
                f"| {sum(r['topk_strict'] for r in rs)}/{m} "
                f"| {sum(r['converged'] for r in rs)}/{m} "
                f"| {np.mean([r['evaluations'] for r in rs]):.0f} "
                f"| {np.mean([r['seconds'] for r in rs]):.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--games", default=None, help="comma-separated game names")
    ap.add_argument("--configs", default=None, help="comma-separated config indices (0-based)")
    ap.add_argument("--summary", action="store_true")
    args = ap.parse_args()
    if args.summary:
        md = summary()
        print(md)
        (RESULTS / "breaking_games.md").write_text(md + "\n")
        return
    names = list(games()) if args.games is None else args.games.split(",")
    cnames = list(CONFIGS)
    if args.configs is not None:
        cnames = [cnames[int(i)] for i in args.configs.split(",")]
    have = done()
    for seed in range(args.seeds):  # seeds outermost: a partial run covers every cell
        for gname in names:
            for cname in cnames:
                if (gname, cname, seed) in have:
                    continue
                row = run(gname, cname, seed)
                with LOG.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(row, flush=True)


if __name__ == "__main__":
    main()
