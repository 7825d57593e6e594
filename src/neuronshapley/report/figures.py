"""The report's figures (PNG, matplotlib ``Agg``) and the removal curves they draw.

Each ``plot_*`` function takes plain data, writes one PNG and returns its path. Removal
curves (the metric as units are removed) come, in this order of preference, from
``compare.csv`` (written by :mod:`neuronshapley.studies.compare`: every ranking against its
baselines on held-out data), ``ablation.csv`` (the demo's top-k versus random removal),
``removal.csv`` (written by :func:`compute_removal` when the report had the model), see
:func:`load_removal_curves`.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuronshapley.errors import ReportError
from neuronshapley.files import atomic_write_text
from neuronshapley.result import ShapleyResult

#: Colours of the rankings (Shapley first); others get matplotlib's cycle.
COLOURS = {"shapley": "#d62728", "top": "#d62728", "loo": "#1f77b4", "conductance": "#2ca02c",
           "activation_norm": "#9467bd", "weight_norm": "#8c564b", "random": "#7f7f7f"}
DPI = 100


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = DPI) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure."""
    plt = _plt()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(p, dpi=dpi)
    plt.close(fig)
    return p


def layer_of(player: str) -> str:
    """The layer part of a player id ``"layer:unit"``."""
    return player.rpartition(":")[0] or player


# ------------------------------------------------------------------------------- values
def plot_value_distribution(result: ShapleyResult, path: str | os.PathLike[str],
                            k: int = 10, metric: str = "metric") -> Path:
    """Histogram of all values, the top-``k`` marked."""
    plt = _plt()
    v = result.values
    fig, ax = plt.subplots(figsize=(7, 3.4))
    ax.hist(v, bins=min(60, max(10, len(v) // 3)), color="#8fa8c8", edgecolor="white")
    top = np.sort(v)[::-1][: min(k, len(v))]
    ax.plot(top, np.zeros_like(top), "|", color=COLOURS["shapley"], ms=18, mew=2,
            label=f"top {len(top)}")
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel(f"Shapley value (contribution to {metric})")
    ax.set_ylabel("units")
    ax.set_title(f"Values of {len(v)} units: a few carry most of the {metric}", fontsize=10)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_top_units(result: ShapleyResult, path: str | os.PathLike[str], k: int = 20) -> Path:
    """The ``k`` largest values with their confidence intervals, best on top."""
    plt = _plt()
    rows = result.table(min(k, result.n_players))
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(rows) + 1.2))
    y = np.arange(len(rows))
    vals = np.array([r["value"] for r in rows])
    lo = np.array([r["ci_low"] for r in rows])
    hi = np.array([r["ci_high"] for r in rows])
    finite = np.isfinite(lo) & np.isfinite(hi)
    err = np.vstack([np.where(finite, vals - lo, 0), np.where(finite, hi - vals, 0)])
    ax.errorbar(vals, y, xerr=err, fmt="o", color=COLOURS["shapley"], ecolor="#555555",
                capsize=3, ms=4)
    ax.set_yticks(y, [r["player"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel(f"Shapley value with its {result.interval_label()}")
    ax.set_title(f"Top {len(rows)} units", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path)


def plot_layers(result: ShapleyResult, path: str | os.PathLike[str], k: int = 10) -> Path:
    """Per layer: how many of the top-``k`` units it holds, and the sum of its values."""
    plt = _plt()
    layers = list(dict.fromkeys(layer_of(p) for p in result.players))
    idx = {name: i for i, name in enumerate(layers)}
    which = np.array([idx[layer_of(p)] for p in result.players])
    sizes = np.bincount(which, minlength=len(layers))
    top = result.ranking()[: min(k, result.n_players)]
    in_top = np.bincount(which[top], minlength=len(layers))
    total = np.bincount(which, weights=result.values, minlength=len(layers))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 0.32 * len(layers) + 1.6), sharey=True)
    y = np.arange(len(layers))
    ax.barh(y, in_top, color=COLOURS["shapley"])
    ax.set_yticks(y, [f"{n} ({s})" for n, s in zip(layers, sizes, strict=True)], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"units among the top {len(top)}")
    bx.barh(y, total, color=np.where(total >= 0, "#6b8fbf", "#c77c7c"))
    bx.axvline(0, color="k", lw=0.8)
    bx.set_xlabel("sum of the layer's values")
    fig.suptitle("Where the important units are (layer, number of units)", fontsize=10)
    return save_figure(fig, path)


def plot_samples(result: ShapleyResult, path: str | os.PathLike[str],
                 others: dict[str, ShapleyResult] | None = None) -> Path:
    """Marginal samples each unit got, units ordered by value; other runs of the same units
    (e.g. plain Monte-Carlo) overlaid, and what plain Monte-Carlo with the same number of
    evaluations would have given every unit."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    order = result.ranking()
    x = np.arange(1, result.n_players + 1)
    ax.plot(x, np.maximum(result.samples[order], 1), color=COLOURS["shapley"], lw=1.5,
            label=f"{result.method}: {int(result.samples.sum())} samples, "
                  f"{result.evaluations} evaluations")
    pos = {p: i for i, p in enumerate(result.players)}
    for name, other in (others or {}).items():
        o_order = [pos[p] for p in other.players if p in pos]
        if len(o_order) != result.n_players:
            continue
        samples = np.zeros(result.n_players)
        samples[o_order] = other.samples
        ax.plot(x, np.maximum(samples[order], 1), lw=1.2,
                label=f"{name}: {int(other.samples.sum())} samples, "
                      f"{other.evaluations} evaluations")
    if result.method == "tmab" and result.evaluations:
        even = result.evaluations / max(result.n_players, 1)
        ax.axhline(even, color="#555555", ls="--", lw=1,
                   label=f"plain MC, same evaluations: ~{even:.0f} each")
    lines = [ln.get_ydata() for ln in ax.get_lines()]
    top, bottom = max(float(np.max(y)) for y in lines), min(float(np.min(y)) for y in lines)
    if top > 20 * max(bottom, 1):
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, top * 1.15)
    ax.set_xlabel("unit, by value rank")
    ax.set_ylabel("marginal samples")
    ax.set_title("Samples each unit needed", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


# ----------------------------------------------------------------------- removal curves
@dataclass
class Curve:
    """The metric after removing ``removed`` units of one ranking (``band``: min/max)."""

    name: str
    removed: np.ndarray
    values: np.ndarray
    band: tuple[np.ndarray, np.ndarray] | None = None
    style: str = "-"


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _floats(rows: Sequence[dict[str, str]], key: str) -> np.ndarray:
    """Column ``key`` as floats (an empty cell is NaN; a missing column or cell an error)."""
    if rows and key not in rows[0]:
        raise KeyError(f"no column {key!r}")
    if any(r.get(key) is None for r in rows):
        raise ValueError(f"a row is cut short before column {key!r}")
    return np.array([float(r[key]) if r[key] != "" else np.nan for r in rows])


def _by(rows: Sequence[dict[str, str]], key: str) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """The rows of each value of ``key`` (in order of appearance), sorted by ``removed``."""
    for name in dict.fromkeys(r[key] for r in rows):
        yield name, sorted((r for r in rows if r[key] == name), key=lambda r: int(r["removed"]))


def load_removal_curves(result_dir: str | os.PathLike[str]) -> tuple[list[Curve], str]:
    """Removal curves saved in ``result_dir`` and a caption saying what they are.

    A damaged curves file (a missing column, a field that is not a number) raises
    :class:`~neuronshapley.errors.ReportError` naming it."""
    d = Path(result_dir)
    try:
        return _removal_curves(d)
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise ReportError(
            f"a removal-curve file in {d} (compare.csv, ablation.csv or removal.csv) is "
            f"damaged ({type(exc).__name__}: {exc}): delete it, then rebuild the report "
            "(with the model the curves are computed again)"
        ) from None


def _removal_curves(d: Path) -> tuple[list[Curve], str]:
    for path in (d / "compare.csv", d / "compare" / "compare.csv"):
        if path.is_file():
            curves = [Curve(name, _floats(mine, "removed"), _floats(mine, "heldout"))
                      for name, mine in _by(_read_csv(path), "ranking")]
            return curves, (f"From {path.relative_to(d)}: the metric on held-out data after "
                            "removing each ranking's top units (random: mean over draws).")
    path = d / "ablation.csv"
    if path.is_file():
        curves = []
        for i, (split, mine) in enumerate(_by(_read_csv(path), "split")):
            k = _floats(mine, "removed")
            style = "-" if i == 0 else "--"  # the first split is the one values came from
            curves.append(Curve(f"top Shapley ({split})", k, _floats(mine, "top_accuracy"),
                                style=style))
            curves.append(Curve(f"random ({split})", k, _floats(mine, "random_mean"),
                                (_floats(mine, "random_min"), _floats(mine, "random_max")),
                                style=style))
        return curves, ("From ablation.csv: accuracy after removing the top-k Shapley units "
                        "versus k random units (band: min-max over draws); solid: the data the "
                        "values were estimated on, dashed: held-out data.")
    path = d / "removal.csv"
    if path.is_file():
        rows = _read_csv(path)
        k = _floats(rows, "removed")
        return [
            Curve("top Shapley", k, _floats(rows, "top")),
            Curve("random", k, _floats(rows, "random_mean"),
                  (_floats(rows, "random_min"), _floats(rows, "random_max"))),
        ], ("From removal.csv: the metric on the evaluation data after removing the top-k "
            "Shapley units versus k random units (band: min-max over draws).")
    return [], ""


def removal_sizes(n: int, points: int = 14) -> list[int]:
    """0 and about ``points`` geometrically spaced numbers of units up to ``n``."""
    sizes = {0, n} | {int(round(s)) for s in np.geomspace(1, max(n, 1), points)}
    return sorted(s for s in sizes if 0 <= s <= n)


def compute_removal(
    game: Callable[[np.ndarray], np.ndarray], result: ShapleyResult,
    path: str | os.PathLike[str], draws: int = 10, seed: int = 0, output: int = 0,
) -> Path:
    """Evaluate top-k versus random removal on ``game`` and write ``removal.csv``.

    ``result`` is scalar (one output); for a vector game (values (M, d)) the curves follow
    its column ``output``, the one ``result`` ranks."""
    from neuronshapley.evaluation.removal import removal_curve, removal_masks

    n = result.n_players
    sizes = removal_sizes(n)
    top, rand = removal_masks(result.ranking(), n, sizes, draws, np.random.default_rng(seed))
    def column(masks: np.ndarray) -> np.ndarray:
        values = np.asarray(game(masks), dtype=np.float64)
        return values[:, output] if values.ndim == 2 else values

    with game.all_examples() if hasattr(game, "all_examples") else nullcontext():
        top_v, rand_v = removal_curve(column, top, rand)
    lines = ["removed,top,random_mean,random_min,random_max,draws"]
    for i, k in enumerate(sizes):
        nums = (top_v[i], rand_v[i].mean(), rand_v[i].min(), rand_v[i].max())
        lines.append(f"{k}," + ",".join(repr(float(v)) for v in nums) + f",{draws}")
    p = Path(path)
    atomic_write_text(p, "\n".join(lines) + "\n")
    return p


def plot_removal(curves: Sequence[Curve], path: str | os.PathLike[str],
                 metric: str = "metric") -> Path:
    """The metric against the number of units removed, one line per ranking."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    cycle = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    for c in curves:
        key = c.name.split(" ")[0].lower()
        colour = COLOURS.get(key) or COLOURS.get(c.name) or next(cycle, "#333333")
        if c.band is not None:
            ax.fill_between(c.removed, c.band[0], c.band[1], color=colour, alpha=0.15, lw=0)
        lw = 2.2 if key in ("shapley", "top") else 1.3
        ax.plot(c.removed, c.values, c.style, color=colour, lw=lw, marker="o", ms=3,
                label=c.name)
    ax.set_xlabel("units removed")
    ax.set_ylabel(metric)
    ax.set_title("Removing the most valuable units first breaks the network fastest",
                 fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def find_other_results(result_dir: str | os.PathLike[str],
                       players: Sequence[str]) -> dict[str, ShapleyResult]:
    """Results of other sampling methods on the same units in sub-folders of ``result_dir``
    (e.g. a plain Monte-Carlo run saved in ``result_dir/mc``), by folder name."""
    d = Path(result_dir)
    found: dict[str, ShapleyResult] = {}
    for meta in sorted(d.glob("*/metadata.json")) + sorted(d.glob("*/*/metadata.json")):
        folder = meta.parent
        try:
            other = ShapleyResult.load(folder)
        except (OSError, ValueError, KeyError):
            continue
        if other.method in ("permutation", "truncated", "tmab") and set(other.players) == set(
            players
        ) and other.values.ndim == 1:
            found[str(folder.relative_to(d))] = other
    return found
