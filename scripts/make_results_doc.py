"""Run the studies on the digits CNN and on MTCNN's ONet and write docs/RESULTS.md.

    python scripts/make_results_doc.py                 # full run (CPU, one thread)
    python scripts/make_results_doc.py --reuse         # reuse saved values, redo curves + doc
    python scripts/make_results_doc.py --quick --out /tmp/results   # smoke run, tiny budgets

Writes ``<out>/RESULTS.md`` and, under ``<out>/results/``, one folder per study with its
table (CSV), plot (PNG), every ranking's values and ``summary.json``. ONet needs
``pip install --no-deps facenet-pytorch==2.6.0`` and ``pip install scikit-image``; without
them its section says so and the rest still runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from neuronshapley.runtime import reexec_with_fast_malloc

if __name__ == "__main__":  # faster batched passes; only if set before the process starts
    reexec_with_fast_malloc(sys.argv)

import torch  # noqa: E402

from neuronshapley import ShapleyResult  # noqa: E402
from neuronshapley.result import library_versions  # noqa: E402
from neuronshapley.studies.class_specific import run_class_specific  # noqa: E402
from neuronshapley.studies.compare import (  # noqa: E402
    SHAPLEY,
    CompareResult,
    run_compare,
    shapley_options,
    study_setup,
)

SHOW_K = (1, 2, 3, 5, 10)
_PARAMS = ("k", "delta", "max_evaluations", "strata", "truncation_fill")



from script_common import log  # noqa: E402


def _saved(folder: Path) -> ShapleyResult | None:
    try:
        return ShapleyResult.load(folder)
    except (FileNotFoundError, KeyError, ValueError):
        return None


def run_compare_study(name: str, out: Path, evaluations: int, seed: int, reuse: bool,
                      quick: bool, method: str) -> CompareResult:
    setup = study_setup(name, seed=seed)
    opts = shapley_options(setup, method, evaluations)
    rankings = {}
    if reuse:
        for sub in (out / "values").glob("*") if (out / "values").is_dir() else ():
            res = _saved(sub)
            if res is not None:
                rankings[sub.name] = res
        log(f"{name}: reusing saved rankings {sorted(rankings)}")
    max_k = setup.defaults.get("max_k")
    if quick:
        max_k = 8
    return run_compare(
        setup.model, setup.value_inputs, setup.value_targets, setup.heldout_inputs,
        setup.heldout_targets, metric=setup.metric, players=setup.players,
        shapley_method=method, shapley_options=opts, rankings=rankings, max_k=max_k,
        small_k=int(setup.defaults.get("small_k", 10)), random_draws=3 if quick else 10,
        conductance_options={"n_steps": 8 if quick else 50},
        game_options=setup.defaults.get("game_options"), seed=seed, out_dir=out,
        title=setup.description, log=lambda m: log(f"{name}: {m}"),
    ), setup


def run_seed(out: Path, evaluations: int, seed: int, data_seed: int, reuse: bool,
             quick: bool, method: str) -> CompareResult:
    """Digits: the Shapley ranking alone, from another estimator seed (same model and data)."""
    setup = study_setup("digits", seed=data_seed)
    opts = shapley_options(setup, method, evaluations)
    saved = _saved(out / "values" / SHAPLEY) if reuse else None
    return run_compare(
        setup.model, setup.value_inputs, setup.value_targets, setup.heldout_inputs,
        setup.heldout_targets, metric=setup.metric, players=setup.players,
        shapley_method=method, shapley_options=opts,
        rankings={SHAPLEY: saved} if saved is not None else None,
        baselines=[], max_k=8 if quick else None, seed=seed, out_dir=out,
        title=f"{setup.description}; {method} seed {seed}",
        log=lambda m: log(f"seed {seed}: {m}"),
    )


def seeds_section(main: CompareResult, extra: dict[int, CompareResult]) -> list[str]:
    ks = [k for k in SHOW_K if k <= main.max_k]
    base = {n: c.heldout for n, c in main.curves.items() if n != SHAPLEY}
    lines = [
        "### Digits: other estimator seeds", "",
        "The Shapley ranking again from other seeds of the estimator (same method, budget, "
        "model and data); "
        "*below every baseline*: the k in 1..10 where its held-out accuracy is at or below "
        "every baseline's curve above.", "",
        "| Shapley run | " + " | ".join(f"k={k}" for k in ks)
        + f" | mean k=1..{main.small_k} | units to level | below every baseline at k |",
        "| --- | " + " | ".join("---:" for _ in ks) + " | ---: | ---: | --- |",
    ]
    runs = {f"seed {main.settings['seed']} (above)": main, **{f"seed {s}": r
                                                             for s, r in extra.items()}}
    for label, r in runs.items():
        c = r.curves[SHAPLEY]
        below = [k for k in range(1, main.small_k + 1)
                 if all(c.heldout[k] <= b[k] + 1e-12 for b in base.values())]
        utl = str(c.units_to_level) if c.units_to_level is not None else f"> {r.max_k}"
        lines.append(f"| {label} | " + " | ".join(f"{c.heldout[k]:.4f}" for k in ks)
                     + f" | {r.drop_area(SHAPLEY, main.small_k):.4f} | {utl} | "
                     + (", ".join(map(str, below)) or "none") + " |")
    return lines + [""]


def run_class_study(out: Path, evaluations: int, seed: int, reuse: bool, method: str,
                    data_seed: int) -> Any:
    """Class-specific values from estimator ``seed`` on the model and splits of ``data_seed``."""
    setup = study_setup("digits", seed=data_seed)
    values = _saved(out / "values") if reuse else None
    return run_class_specific(
        setup.model, setup.value_inputs, setup.value_targets, setup.heldout_inputs,
        setup.heldout_targets, class_names=setup.class_names, players=setup.players,
        method="truncated" if method == "tmab" else method,
        estimate_options={"max_evaluations": evaluations}, values=values,
        remove=(1, 2, 3, 4, 5, 6, 8, 10, 15, 20), show_m=10, seed=seed, out_dir=out,
        title="Digits CNN: class-specific filters (top 20% for overall accuracy excluded; "
        f"values on {len(setup.value_targets)} valuation images, recall on "
        f"{len(setup.heldout_targets)} test images; {evaluations} evaluations, estimator seed "
        f"{seed})",
        log=lambda m: log(f"class-specific seed {seed}: {m}"),
    )


# ------------------------------------------------------------------------------ markdown
def _fmt(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def compare_section(res: CompareResult, setup: Any, rel: str, heading: str) -> list[str]:
    ks = [k for k in SHOW_K if k <= res.max_k]
    lines = [f"## {heading}", "", setup.description + ".", ""]
    splits = setup.defaults.get("splits")
    if splits:
        lines += [f"Splits (stratified, seed {res.settings['seed']}): train {splits['train']} "
                  f"images (the model's training data, nothing else), valuation "
                  f"{splits['valuation']} (every ranking is computed there), selection "
                  f"{splits['selection']} (for choices; this study makes none), test "
                  f"{splits['test']} (every held-out number below). Estimator seed "
                  f"{res.settings['seed']}; random baseline: {res.settings['random_draws']} "
                  "seeded orders.", ""]
    sh = res.curves.get(SHAPLEY)
    walk = (res.settings.get("game_options") or {}).get("walk_sample")
    if sh is not None:
        r = sh.result
        info = r.info
        lines.append(
            f"Shapley values: `{r.method}` with {r.evaluations} game evaluations "
            f"({info.get('walks')} walks, {r.wall_time:.0f} s"
            + (f", top-{r.params.get('k')} separated: {info.get('converged')}"
               if r.method == "tmab" else "") + "); "
            + (f"picked by `method=\"auto\"`: {info['auto']['reason']}; "
               if (info.get("auto") or {}).get("reason") else "") + "parameters "
            f"`{ {k: v for k, v in r.params.items() if k in _PARAMS} }`"
            + (f", each walk on a fresh random batch of {walk} examples" if walk else "")
            + "."
        )
    lines += [
        "",
        f"Held-out `{res.metric}` after removing the top-k units of each ranking "
        f"(V(N) = {res.full:.4f}); *units to level*: units removed before the held-out metric "
        f"first falls to {res.level:.4g} ({res.level_rule}); *mean k=1..{res.small_k}*: the "
        "mean held-out metric over the first removals (lower = faster drop).",
        "",
        "| ranking | " + " | ".join(f"k={k}" for k in ks)
        + f" | mean k=1..{res.small_k} | units to level | evaluations | seconds |",
        "| --- | " + " | ".join("---:" for _ in ks) + " | ---: | ---: | ---: | ---: |",
    ]
    for name, c in res.curves.items():
        label = f"random (mean of {len(c.draws)})" if c.draws is not None else name
        utl = str(c.units_to_level) if c.units_to_level is not None else f"> {res.max_k}"
        lines.append(
            f"| {label} | " + " | ".join(_fmt(float(c.heldout[k]), 4) for k in ks)
            + f" | {res.drop_area(name):.4f} | {utl} | {c.result.evaluations} | "
            f"{c.result.wall_time:.1f} |"
        )
    lines += ["", "Top 5 units: " + "; ".join(
        f"{n}: {', '.join(c.result.players[i] for i in c.order[:5])}"
        for n, c in res.curves.items() if c.draws is None) + ".", ""]
    if sh is not None:
        r = sh.result
        half = (r.ci_high - r.ci_low) / 2
        lines += [f"Shapley's top 6 with their {100 * (r.confidence or 0.95):.0f}% interval "
                  "half-widths (intervals that overlap leave the order unresolved): "
                  + ", ".join(f"{r.players[i]} {r.values[i]:.4g} ± {half[i]:.2g}"
                              for i in sh.order[:6]) + ".", ""]
    lines += [f"![{heading}]({rel}/compare.png)", ""]
    if sh is not None:
        wins = res.shapley_wins()
        at = [k for k, ok in zip(wins["k"], wins["lowest"], strict=True) if ok]
        best = sorted(res.curves, key=res.drop_area)
        others = {n: c.units_to_level for n, c in res.curves.items() if n != SHAPLEY}
        cond = others.get("conductance")
        ratio = (f"; conductance needed {cond} ({cond / sh.units_to_level:.2f}x Shapley's "
                 f"{sh.units_to_level})" if cond and sh.units_to_level else "")
        lines += [
            f"**Claim check.** Shapley's top-k gave the lowest held-out {res.metric} of all "
            f"rankings (ties counted) at {len(at)} of the {len(wins['k'])} values "
            f"k = 1..{res.small_k}"
            + (f" (k = {', '.join(map(str, at))})" if at else "")
            + f"; by the mean over k = 1..{res.small_k} it ranks {wins['area_rank']} of "
            f"{len(res.curves)} (fastest first: {', '.join(best)}). Units to reach the level: "
            f"Shapley {sh.units_to_level if sh.units_to_level is not None else '> K'}"
            + ratio + ".",
            "",
            "Removal curves on the value-estimation data (the data the rankings were computed "
            f"on), k = {', '.join(map(str, ks))}: "
            + "; ".join(f"{n} " + "/".join(_fmt(float(c.value_data[k]), 3) for k in ks)
                        for n, c in res.curves.items()) + ".",
            "",
        ]
    return lines


def class_section(res: Any, rel: str) -> list[str]:
    v = res.values
    ms = [m for m in (5, 10, res.show_m, max(res.removed)) if m in res.removed]
    ms = sorted(set(ms))
    lines = [
        "## Digits CNN: class-specific filters", "",
        f"One `{v.method}` run on the vector metric `class_recall` ({v.evaluations} "
        f"evaluations, {v.info.get('walks')} walks, {v.wall_time:.0f} s) gives every class's "
        "values at once; overall-accuracy values follow by linearity (class-frequency-weighted "
        f"sum). The top {len(res.excluded)} filters for overall accuracy "
        f"({100 * res.settings['exclude_fraction']:.0f}%) are excluded; for each class the "
        f"remaining {v.n_players - len(res.excluded)} filters are ranked by that class's value "
        f"and its top m are removed. Values on the {res.settings['value_examples']} valuation "
        f"images; recall on the {res.settings['heldout_examples']} held-out test images (seen "
        f"by neither training nor the estimate); estimator seed {res.settings['seed']}; "
        f"control: m random eligible filters ({res.settings['random_draws']} draws). "
        "Cells: target class recall / mean recall of the other classes (worst other class in "
        "brackets).", "",
        "| class | before | " + " | ".join(f"m = {m}" for m in ms)
        + f" | m = {ms[-1]} random |",
        "| --- | ---: | " + " | ".join("---:" for _ in ms) + " | ---: |",
    ]
    for c in res.classes:
        cells = []
        for m in ms:
            rec = res.recall[c][res.removed.index(m)]
            others = [float(x) for j, x in enumerate(rec) if j != c]
            cells.append(f"{rec[c]:.3f} / {sum(others) / len(others):.3f} ({min(others):.3f})")
        rnd = res.random_recall[c][res.removed.index(ms[-1])]
        before = res.recall[c][0]
        ob = [float(x) for j, x in enumerate(before) if j != c]
        lines.append(f"| {res.class_names[c]} | {before[c]:.3f} / {sum(ob) / len(ob):.3f} | "
                     + " | ".join(cells) + f" | {rnd[c]:.3f} |")
    for m in ms:
        col = res.collapse(m)
        drop_t = [r["target_before"] - r["target_after"] for r in col.values()]
        drop_o = [r["others_before"] - r["others_after"] for r in col.values()]
        drop_r = [r["target_before"] - r["random_target_after"] for r in col.values()]
        lines.append("")
        mean_t, mean_o, mean_r = (sum(d) / len(d) for d in (drop_t, drop_o, drop_r))
        lines.append(f"m = {m}: mean drop of the target class's recall {mean_t:.3f}, of the "
                     f"other classes' mean recall {mean_o:.3f}, of the target's recall with m "
                     f"random filters {mean_r:.3f}.")
    lines += ["", f"![class-specific]({rel}/class_specific.png)", ""]
    return lines


def _drops(res: Any, m: int) -> tuple[float, float, float]:
    """Mean over classes of the drop in target recall, others' mean recall and the target's
    recall with m random filters, after removing m class filters."""
    col = res.collapse(m).values()
    t = [r["target_before"] - r["target_after"] for r in col]
    o = [r["others_before"] - r["others_after"] for r in col]
    r_ = [r["target_before"] - r["random_target_after"] for r in col]
    return tuple(sum(d) / len(d) for d in (t, o, r_))  # type: ignore[return-value]


def class_seeds_section(runs: dict[int, Any]) -> list[str]:
    """One row per estimator seed: the class-specific study's mean drops (same model, data)."""
    first = next(iter(runs.values()))
    ms = [m for m in (5, 10, 20) if m in first.removed]
    lines = ["### Class-specific: other estimator seeds", "",
             "The class-specific study again from other seeds of the estimator (same model, "
             "splits and budget). Cells: mean over the 10 classes of the drop in the target "
             "class's test recall / in the other classes' mean recall / in the target's recall "
             "with m random eligible filters.", "",
             "| estimator seed | " + " | ".join(f"m = {m}" for m in ms) + " |",
             "| --- | " + " | ".join("---:" for _ in ms) + " |"]
    for seed, res in runs.items():
        lines.append(f"| {seed} | " + " | ".join(
            "{:.3f} / {:.3f} / {:.3f}".format(*_drops(res, m)) for m in ms) + " |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--method", default="auto", choices=["auto", "tmab", "truncated",
                                                         "permutation"],
                    help="Shapley estimator (auto: truncated walks, roulette truncation, "
                    "position strata; tmab: certify the top-10 within the budget)")
    ap.add_argument("--digits-evaluations", type=int, default=20000)
    ap.add_argument("--class-evaluations", type=int, default=30000)
    ap.add_argument("--onet-evaluations", type=int, default=40000)
    ap.add_argument("--extra-seeds", type=int, nargs="*", default=[1, 2],
                    help="more estimator seeds on digits: is Shapley's small-k result stable?")
    ap.add_argument("--class-seeds", type=int, nargs="*", default=[1, 2],
                    help="more estimator seeds of the class-specific study")
    ap.add_argument("--skip-onet", action="store_true")
    ap.add_argument("--only", choices=["digits", "seeds", "class", "onet"], action="append",
                    help="run only these studies (repeatable) and write their folders, not "
                    "RESULTS.md; afterwards `--reuse` assembles the document from saved values")
    ap.add_argument("--reuse", action="store_true", help="reuse values saved by a previous run")
    ap.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.quick:
        args.digits_evaluations = args.class_evaluations = args.onet_evaluations = 300
    started = time.perf_counter()
    base = args.out / "results"
    sections: list[str] = []
    claims: list[str] = []

    only = set(args.only or ("digits", "seeds", "class", "onet"))

    if "digits" in only:
        res, setup = run_compare_study("digits", base / "digits_compare",
                                       args.digits_evaluations, args.seed, args.reuse, args.quick,
                                       args.method)
        sections += compare_section(res, setup, "results/digits_compare",
                                    "Digits CNN: Shapley vs baselines")
        claims.append(_claim("digits CNN", res))
    if "seeds" in only and args.extra_seeds:
        extra = {s: run_seed(base / f"digits_compare_seed{s}", args.digits_evaluations, s,
                             args.seed, args.reuse, args.quick, args.method)
                 for s in args.extra_seeds}
        if "digits" in only:
            sections += seeds_section(res, extra)
            claims.append(_seeds_claim(res, extra))
    if "class" in only:
        cres = run_class_study(base / "digits_class_specific", args.class_evaluations, args.seed,
                               args.reuse, args.method, args.seed)
        sections += class_section(cres, "results/digits_class_specific")
        claims.append(_class_claim(cres))
        if args.class_seeds:
            cruns = {args.seed: cres, **{
                s: run_class_study(base / f"digits_class_specific_seed{s}",
                                   args.class_evaluations, s, args.reuse, args.method, args.seed)
                for s in args.class_seeds}}
            sections += class_seeds_section(cruns)
            claims.append(_class_seeds_claim(cruns))
    if "onet" not in only:
        pass
    elif args.skip_onet:
        sections += ["## MTCNN ONet", "", "Skipped (`--skip-onet`).", ""]
    else:
        try:
            ores, osetup = run_compare_study("onet", base / "onet_compare",
                                             args.onet_evaluations, args.seed,
                                             args.reuse, args.quick, args.method)
        except FileNotFoundError as exc:
            sections += ["## MTCNN ONet", "", f"Not run: {exc}", ""]
        else:
            sections += compare_section(ores, osetup, "results/onet_compare",
                                        "MTCNN ONet (real pretrained network): Shapley vs "
                                        "baselines")
            claims.append(_claim("ONet", ores))
    analysis = base / "onet_analysis" / "section.md"
    if "onet" in only and analysis.is_file():
        # written by scripts/run_onet_analysis.py (its own seeds and budgets, stated there)
        sections += [analysis.read_text().rstrip(), ""]
        claim = analysis.with_name("claim.md")
        if claim.is_file():
            claims.append(claim.read_text().strip())
    total = time.perf_counter() - started
    if args.only:
        log(f"ran {sorted(only)} into {base} ({total / 60:.1f} min); RESULTS.md not written")
        return
    versions = library_versions()
    head = [
        "# Results: Neuron Shapley against baseline rankings", "",
        "<!-- generated by scripts/make_results_doc.py; do not edit by hand -->", "",
        f"Generated {dt.date.today().isoformat()} by `python scripts/make_results_doc.py"
        + (" --quick" if args.quick else "") + (" --reuse" if args.reuse else "")
        + f"` in {total / 60:.1f} min on {os.cpu_count()} shared CPU cores with "
        f"{args.threads} torch thread(s) ({platform.machine()}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items()) + ")"
        + (". With `--reuse` the rankings come from earlier runs of this script (`--only ...`, "
           "same settings; their evaluations and seconds are in the tables) and every removal "
           "curve, table and figure is recomputed" if args.reuse else "") + ".", "",
        "**The question.** Does removing the units with the largest Shapley values lower the "
        "network's performance faster than removing the units ranked by simpler scores? The "
        "paper (Ghorbani & Zou 2020) reports that it does, and that conductance needs about "
        "twice as many filters as Shapley to break the network.", "",
        "**How it was measured.** Every ranking is computed on value-estimation data; the top-k "
        "units of each ranking are then removed (each replaced by its mean activation over the "
        "value data, as for the Shapley values) and the metric is measured on *held-out* data, "
        "all k = 0..K of one ranking in one batched game call. Baselines: leave-one-out "
        "(`loo`, drop in the metric when only that unit is removed), `conductance` (captum's "
        "LayerConductance for the true class's output from a zero input, summed over positions, "
        "averaged over the value data, 50 steps), `activation_norm` (mean L2 norm of the unit's "
        "output map), `weight_norm` (L2 norm of its filter) and `random` (mean of "
        f"{3 if args.quick else 10} seeded orders). Figures: left, the held-out metric after "
        "removing the top-k units of each ranking; right, the units each ranking removes "
        "before the metric reaches the level.",
        "",
        "**Summary.**", "",
        *[f"- {c}" for c in claims], "",
    ]
    n_seeds = 1 + len(args.extra_seeds)
    caveats = [
        "## Caveats", "",
        f"- One estimator seed for the ONet compare ({n_seeds} estimator seeds for the digits "
        f"compare, {1 + len(args.class_seeds)} for the class-specific study, above; the ONet "
        "analysis has its own seeds): at small k the curves differ by fractions of a percent, "
        "within what another seed of the estimator or of the random orders can change. All "
        "digits runs use one model and one split (seed "
        f"{args.seed}); the estimator seeds vary only the estimate.",
        (f"- Estimator `{args.method}` at budgets digits {args.digits_evaluations}, "
         f"class-specific {args.class_evaluations}, ONet {args.onet_evaluations} game "
         "evaluations. "
         + ("TMAB certifies only the top-k (`k = 10`) and only when its budget suffices (see "
            "\"top-10 separated\" above); below the top-k its order is rough, which matters "
            "for the units-to-level figure." if args.method == "tmab" else
            "These are anytime estimates without a certificate. On a digits game the README's "
            "benchmark (3 seeds) puts the auto estimator's tolerant precision@10 at 0.9 from "
            "2,000 evaluations, with the 6th to 13th values within two standard errors of "
            "each other: the order near the top-10 boundary is not resolved.")),
        "- What is compared: Shapley values average a unit's marginal over coalitions of "
        "every size, while the removal curves test the full network minus its top k. The "
        "unbiased roulette truncation of `auto` counts the marginals in nearly dead networks "
        "(where an unbounded metric such as ONet's `log_prob` swings widely); the paper's "
        "zero-fill truncation (`--method tmab`) drops them, which biases the values but leans "
        "them towards the full network that the removal curves start from.",
        "- Digits: four disjoint stratified splits of the 1,797 images (train 899, valuation "
        "359, selection 180, test 359; `neuronshapley.zoo.load_digits_split`). The CNN is "
        "trained on train only (100% accurate there; its test accuracy is the digits table's "
        "V(N)); values and baselines "
        "use valuation; every held-out curve is on test, which neither saw. The curves on "
        "the valuation data are listed beside each table. With 359 test images one image "
        "is 0.28 points of accuracy.",
        "- ONet: `log_prob` is unbounded below; removing some units makes the network "
        "confidently wrong, so a curve can fall far below V(empty) (all units removed).",
        "",
        "## Reproduce", "",
        "```bash",
        "pip install scikit-image && pip install --no-deps facenet-pytorch==2.6.0",
        "python scripts/make_results_doc.py        # or: neuronshapley compare --model onet",
        "```", "",
    ]
    doc = "\n".join(head + sections + caveats).rstrip() + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "RESULTS.md").write_text(doc)
    log(f"wrote {args.out / 'RESULTS.md'} ({total / 60:.1f} min)")


def _claim(model: str, res: CompareResult) -> str:
    wins = res.shapley_wins()
    at = [k for k, ok in zip(wins["k"], wins["lowest"], strict=True) if ok]
    n_strict = sum(wins["strictly_lowest"])
    sh = res.curves[SHAPLEY]
    cond = res.curves.get("conductance")
    if len(at) == len(wins["k"]):
        verdict = "holds"
    elif at:
        verdict = f"holds only at k = {', '.join(map(str, at))}"
    else:
        verdict = "does not hold at any k"
    best = min(res.curves, key=res.drop_area)
    text = (f"{model}: the claim {verdict} of 1..{res.small_k} (Shapley's top-k lowest of all "
            f"rankings, ties counted; strictly lowest at {n_strict}); by mean held-out "
            f"{res.metric} over k = 1..{res.small_k} Shapley ranks {wins['area_rank']} of "
            f"{len(res.curves)}" + (f", behind {best}" if best != SHAPLEY else "") + ".")
    if cond is not None:
        def fmt(c: Any) -> str:
            return str(c.units_to_level) if c.units_to_level is not None else f"> {res.max_k}"
        fewest = min((c.units_to_level if c.units_to_level is not None else res.max_k + 1)
                     for c in res.curves.values())
        text += (f" Units removed to reach {res.metric} <= {res.level:.3g}: Shapley {fmt(sh)}, "
                 f"conductance {fmt(cond)} (fewest of any ranking: {fewest}).")
    return text


def _seeds_claim(main: CompareResult, extra: dict[int, CompareResult]) -> str:
    base = [c.heldout for n, c in main.curves.items() if n != SHAPLEY]
    runs = [main, *extra.values()]
    sets = [{k for k in range(1, main.small_k + 1)
             if all(r.curves[SHAPLEY].heldout[k] <= b[k] + 1e-12 for b in base)} for r in runs]
    common = sorted(set.intersection(*sets))
    utl = [r.curves[SHAPLEY].units_to_level for r in runs]
    return (f"digits CNN, {len(runs)} estimator seeds: Shapley's top-k is at or below every "
            f"baseline at k = {', '.join(map(str, common)) or 'none'} in all of them; units to "
            f"the level {', '.join(str(u) if u is not None else '> K' for u in utl)}.")


def _class_seeds_claim(runs: dict[int, Any]) -> str:
    m = 10 if 10 in next(iter(runs.values())).removed else max(next(iter(runs.values())).removed)
    d = [_drops(r, m) for r in runs.values()]
    return (f"digits CNN, class-specific, {len(runs)} estimator seeds: top {m} class filters "
            "lower the target's test recall by " + ", ".join(f"{x[0]:.2f}" for x in d)
            + ", the other classes' by " + ", ".join(f"{x[1]:.2f}" for x in d)
            + f" ({m} random filters: " + ", ".join(f"{x[2]:.2f}" for x in d) + ").")


def _class_claim(res: Any) -> str:
    parts = []
    for m in (10, max(res.removed)):
        if m not in res.removed:
            continue
        col = res.collapse(m)
        drop_t = sum(r["target_before"] - r["target_after"] for r in col.values()) / len(col)
        drop_o = sum(r["others_before"] - r["others_after"] for r in col.values()) / len(col)
        drop_r = sum(r["target_before"] - r["random_target_after"] for r in col.values()) / len(
            col)
        parts.append(f"removing its top {m} class filters lowers a class's held-out recall by "
                     f"{drop_t:.2f} on average, the other classes' by {drop_o:.2f} "
                     f"({m} random filters: {drop_r:.2f})")
    return "digits CNN, class-specific: " + "; ".join(parts) + "."


if __name__ == "__main__":
    main()
