"""Study "compare": which ranking of units finds the ones a network's performance rests on?

Given a model, value-estimation data and *held-out* data, every ranking (Neuron Shapley from
:func:`neuronshapley.estimate` and each baseline of :mod:`neuronshapley.evaluation.baselines`) is
computed on the value data; then, for k = 0..K, the top-k units of each ranking are removed
(replaced by their mean activation over the value data, as for the values) and the metric is
measured on the held-out data. The K + 1 nested masks of one ranking are one batched game
call. A good ranking lowers the metric fastest.

The second figure is the number of units each ranking must remove before the metric first
falls to a level: by default ``chance + level_fraction * (V(N) - chance)`` (chance: ``1/C``
for accuracy-like metrics, ``-log C`` for ``log_prob``, else ``V(empty)`` on the held-out
data), or a level given by the user. The paper (Ghorbani & Zou 2020) reports that conductance
needs about twice as many filters as Shapley to break the network.

The random baseline is averaged over ``random_draws`` seeded rankings; its units-to-level is
the median over draws (None when more than half never reach the level within K).

Files written by :func:`run_compare` into ``out_dir``:

- ``compare.csv``: ``ranking, removed, heldout, value_data, unit`` per ranking and k
  (``unit``: the unit removed at step k; random: mean over draws, no unit);
- ``levels.csv``: ``ranking, units_to_level, reached, level, drop_area, evaluations,
  wall_time_s`` (``drop_area``: mean held-out metric over k = 1..``small_k``, lower = faster);
- ``compare.png``: metric after removing the top-k units per ranking, and units to the level;
- ``values/<ranking>/``: each ranking's values (``values.csv``, ``metadata.json``);
- ``summary.json``: all numbers, settings and versions.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuronshapley.estimators import estimate
from neuronshapley.evaluation.baselines import BASELINES, PAPER_BASELINES, rank_units
from neuronshapley.evaluation.removal import prefix_masks
from neuronshapley.files import atomic_write_text as write_text
from neuronshapley.files import csv_text
from neuronshapley.network.game import ModelGame
from neuronshapley.network.metrics import chance_level
from neuronshapley.network.players import PlayerSet
from neuronshapley.report.figures import save_figure
from neuronshapley.result import ShapleyResult, library_versions

#: Name of the Shapley ranking in the tables and plots.
SHAPLEY = "shapley"
#: Display order and colours of the rankings in the plots.
COLOURS = {
    SHAPLEY: "#d62728", "loo": "#1f77b4", "conductance": "#2ca02c", "head_importance": "#ff7f0e",
    "activation_norm": "#9467bd", "weight_norm": "#8c564b", "random": "#7f7f7f",
}

Log = Callable[[str], None]


@dataclass
class RankingCurve:
    """One ranking and the metric as its top units are removed.

    ``heldout`` / ``value_data``: (K + 1,) metric after removing the top k = 0..K units (for
    the random baseline: the mean over draws, whose curves are in ``draws`` (R, K + 1)).
    """

    name: str
    result: ShapleyResult
    order: np.ndarray
    heldout: np.ndarray
    value_data: np.ndarray
    units_to_level: int | None
    draws: np.ndarray | None = None
    draw_units: list[int | None] | None = None


@dataclass
class CompareResult:
    """What :func:`run_compare` measured."""

    curves: dict[str, RankingCurve]
    metric: str
    level: float
    level_rule: str
    full: float  # V(N) on the held-out data
    floor: float  # chance level (or V(empty)) used for the default level
    n_players: int
    max_k: int
    small_k: int
    settings: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def ks(self) -> np.ndarray:
        """Numbers of removed units, 0..K."""
        return np.arange(self.max_k + 1)

    def drop_area(self, name: str, small_k: int | None = None) -> float:
        """Mean held-out metric over k = 1..small_k for ranking ``name`` (lower: faster drop)."""
        kk = min(small_k or self.small_k, self.max_k)
        return float(self.curves[name].heldout[1 : kk + 1].mean()) if kk >= 1 else math.nan

    def fastest_at(self, k: int) -> list[str]:
        """Rankings with the lowest held-out metric after removing ``k`` units (ties kept)."""
        vals = {n: float(c.heldout[k]) for n, c in self.curves.items()}
        best = min(vals.values())
        return [n for n, v in vals.items() if v <= best + 1e-12]

    def shapley_wins(self, small_k: int | None = None) -> dict[str, Any]:
        """Does removing the top Shapley units lower the metric faster than every baseline?

        Returns ``{"k": [...], "lowest": [bool per k], "strictly_lowest": [...],
        "area_rank": rank of Shapley's drop area among the rankings (1 = fastest)}``.
        """
        if SHAPLEY not in self.curves:
            raise KeyError("no Shapley ranking in this comparison")
        kk = min(small_k or self.small_k, self.max_k)
        ks = list(range(1, kk + 1))
        sh = self.curves[SHAPLEY].heldout
        others = [c.heldout for n, c in self.curves.items() if n != SHAPLEY]
        lowest = [bool(all(sh[k] <= o[k] + 1e-12 for o in others)) for k in ks]
        strict = [bool(all(sh[k] < o[k] - 1e-12 for o in others)) for k in ks]
        areas = sorted(self.drop_area(n, kk) for n in self.curves)
        return {"k": ks, "lowest": lowest, "strictly_lowest": strict,
                "area_rank": 1 + areas.index(self.drop_area(SHAPLEY, kk))}

    # ------------------------------------------------------------------ tables
    def rows(self) -> list[dict[str, Any]]:
        """One row per ranking and k: ``ranking, removed, heldout, value_data, unit``."""
        out = []
        for name, c in self.curves.items():
            for k in range(self.max_k + 1):
                unit = "" if k == 0 or c.draws is not None else c.result.players[c.order[k - 1]]
                out.append({"ranking": name, "removed": k, "heldout": float(c.heldout[k]),
                            "value_data": float(c.value_data[k]), "unit": unit})
        return out

    def level_rows(self) -> list[dict[str, Any]]:
        """One row per ranking: units to reach the level and the cost of the ranking."""
        return [
            {"ranking": name, "units_to_level": c.units_to_level,
             "reached": c.units_to_level is not None, "level": self.level,
             "drop_area": self.drop_area(name), "evaluations": int(c.result.evaluations),
             "wall_time_s": round(float(c.result.wall_time), 3)}
            for name, c in self.curves.items()
        ]

    def to_json(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        curves = {}
        for name, c in self.curves.items():
            curves[name] = {
                "heldout": c.heldout.tolist(), "value_data": c.value_data.tolist(),
                "units_to_level": c.units_to_level, "drop_area": self.drop_area(name),
                "top": [c.result.players[i] for i in c.order[: self.small_k]]
                if c.draws is None else None,
                "evaluations": int(c.result.evaluations),
                "wall_time_s": float(c.result.wall_time),
                "draw_units_to_level": c.draw_units,
            }
        summary: dict[str, Any] = {
            "metric": self.metric, "level": self.level, "level_rule": self.level_rule,
            "full_heldout": self.full, "floor": self.floor, "n_players": self.n_players,
            "max_k": self.max_k, "small_k": self.small_k, "curves": curves,
            "settings": self.settings, "versions": library_versions(),
            "files": {k: str(v) for k, v in self.files.items()},
        }
        if SHAPLEY in self.curves and len(self.curves) > 1:
            summary["shapley_wins"] = self.shapley_wins()
        return summary


# ------------------------------------------------------------------------------ masks
def nested_masks(order: Sequence[int] | np.ndarray, n_players: int, max_k: int) -> np.ndarray:
    """Masks (max_k + 1, n_players): row k removes (False) the first k players of ``order``."""
    order = np.asarray(order, dtype=np.int64)
    if not 0 <= max_k <= n_players or len(order) < max_k:
        raise ValueError(f"cannot remove up to {max_k} of {n_players} players")
    return prefix_masks(order, n_players, range(max_k + 1))


def units_to_level(curve: np.ndarray, level: float, strict: bool = False) -> int | None:
    """Smallest k with ``curve[k] <= level`` (``strict``: ``< level``), or None if the curve
    never gets there."""
    curve = np.asarray(curve)
    hit = np.flatnonzero(curve < level if strict else curve <= level)
    return int(hit[0]) if len(hit) else None


def removal_curves(game: Callable[[np.ndarray], np.ndarray], orders: np.ndarray,
                   n_players: int, max_k: int) -> np.ndarray:
    """Metric after removing the top k = 0..max_k of each order (R, n): (R, max_k + 1).

    All R * (max_k + 1) nested masks go to the game in one call.
    """
    orders = np.atleast_2d(orders)
    masks = np.concatenate([nested_masks(o, n_players, max_k) for o in orders])
    vals = np.asarray(game(masks), dtype=np.float64)
    if vals.ndim != 1:
        raise ValueError("the comparison needs a scalar metric; pick one output of a vector "
                         "metric with a callable")
    return vals.reshape(len(orders), max_k + 1)


# ---------------------------------------------------------------------------- the study
def run_compare(
    model: nn.Module,
    value_inputs: torch.Tensor,
    value_targets: torch.Tensor,
    heldout_inputs: torch.Tensor,
    heldout_targets: torch.Tensor,
    *,
    metric: str | Callable[..., torch.Tensor] = "accuracy",
    players: PlayerSet | Sequence[str] | str | None = None,
    replacement: str = "mean",
    value_extra: Any = None,
    heldout_extra: Any = None,
    shapley_method: str | None = "auto",
    shapley_options: Mapping[str, Any] | None = None,
    baselines: Sequence[str] = PAPER_BASELINES,
    rankings: Mapping[str, ShapleyResult] | None = None,
    max_k: int | None = None,
    small_k: int = 10,
    level: float | None = None,
    level_fraction: float = 0.1,
    chance: float | None = None,
    random_draws: int = 10,
    conductance_options: Mapping[str, Any] | None = None,
    game_options: Mapping[str, Any] | None = None,
    seed: int = 0,
    out_dir: str | os.PathLike[str] | None = None,
    title: str | None = None,
    log: Log | None = None,
) -> CompareResult:
    """Compare Shapley with the baselines by removing each ranking's top units.

    Args:
        model: the trained network (eval mode).
        value_inputs, value_targets: data the values (and baselines) are computed on, (N, ...)
            and (N,).
        heldout_inputs, heldout_targets: data the removal curves are measured on.
        metric: a scalar metric (name or callable), larger = better.
        players: which units (see :class:`ModelGame`).
        shapley_method, shapley_options: passed to :func:`neuronshapley.estimate`
            (``seed`` is ``seed``). The default ``"auto"`` runs truncated walks with roulette
            truncation and position strata (the best anytime estimator measured in
            ``benchmarks/``); ``"tmab"`` (with ``k`` in the options) certifies a top-k when
            its budget suffices (:func:`shapley_options` builds the options of a setup for
            a method). ``shapley_method=None`` leaves Shapley out.
        baselines: names from :data:`neuronshapley.evaluation.baselines.BASELINES` (default:
            ``PAPER_BASELINES``, the paper's five).
        rankings: precomputed results by name (e.g. ``{"shapley": ShapleyResult.load(...)}``),
            used instead of computing them.
        max_k: K, the largest number of removed units (default: all players).
        small_k: the "small k" range 1..small_k of the drop area and the Shapley-wins check.
        level: the metric level for units-to-level; default from ``level_fraction`` and
            ``chance`` (see module doc).
        random_draws: random rankings averaged for the random baseline.
        conductance_options: options of the conductance baseline (``n_steps``, ``baseline``).
        game_options: more :class:`ModelGame` options for the value game (e.g.
            ``walk_sample``, ``pass_size``).
        out_dir: if set, write the files listed in the module doc there.
        log: callable receiving one-line progress messages.
    Returns:
        a :class:`CompareResult`.
    """
    say = log or (lambda _msg: None)
    started = time.perf_counter()
    gopts = dict(game_options or {})
    value_game = ModelGame(model, value_inputs, value_targets, metric=metric, players=players,
                           replacement=replacement, extra=value_extra, **gopts)
    if value_game.output_dim != 1:
        raise ValueError(f"the comparison needs a scalar metric; {value_game.metric_name!r} "
                         f"has {value_game.output_dim} outputs")
    n = value_game.n_players
    pass_size = gopts.get("pass_size", 8192)
    full_value_game = value_game if gopts.get("walk_sample") is None else ModelGame(
        model, value_inputs, value_targets, metric=metric, players=value_game.players_set,
        replacement=replacement, extra=value_extra, pass_size=pass_size)
    heldout_game = ModelGame(model, heldout_inputs, heldout_targets, metric=metric,
                             players=value_game.players_set, reference=value_inputs,
                             replacement=replacement, extra=heldout_extra, pass_size=pass_size)
    K = n if max_k is None else int(max_k)
    if not 1 <= K <= n:
        raise ValueError(f"max_k must be in 1..{n}, got {max_k}")
    if random_draws < 1:
        raise ValueError(f"random_draws must be at least 1, got {random_draws}")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; choose among {BASELINES}")

    results: dict[str, ShapleyResult] = dict(rankings or {})
    for name, res in results.items():
        if res.players != value_game.players:
            raise ValueError(f"precomputed ranking {name!r} is over other players")
    if shapley_method is not None and SHAPLEY not in results:
        say(f"Shapley values ({shapley_method}) of {n} units on {len(value_targets)} examples")
        res = estimate(value_game, method=shapley_method, seed=seed, **dict(shapley_options or {}))
        res.info.update(game=repr(value_game), game_fingerprint=value_game.fingerprint())
        results[SHAPLEY] = res
        say(f"  {res.evaluations} evaluations, {res.wall_time:.1f} s")
    for b in baselines:
        if b in results:
            continue
        say(f"baseline {b}")
        opts = dict(conductance_options or {}) if b == "conductance" else {}
        results[b] = rank_units(full_value_game, b, seed=seed, **opts)

    full = float(heldout_game(np.ones((1, n), dtype=bool))[0])
    floor, rule = _floor(value_game, heldout_game, chance, level)
    if level is None:
        level = floor + level_fraction * (full - floor)
        rule += f" + {level_fraction:g} x (V(N) - that)"
    curves: dict[str, RankingCurve] = {}
    ordered = [SHAPLEY, *[b for b in COLOURS if b != SHAPLEY]]
    names = sorted(results, key=lambda s: ordered.index(s) if s in ordered else len(ordered))
    for name in names:
        res = results[name]
        if res.values.ndim != 1:
            raise ValueError(f"ranking {name!r} has a vector of values: pick one output")
        say(f"removal curves of {name}")
        if name == "random":
            # Draw 0 is the saved random ranking; the others come from (seed, draw).
            rng_orders = np.stack([res.ranking()] + [
                np.random.default_rng([seed, r]).permutation(n) for r in range(1, random_draws)])
            held = removal_curves(heldout_game, rng_orders, n, K)
            val = removal_curves(full_value_game, rng_orders, n, K)
            draw_units = [units_to_level(c, level) for c in held]
            reached = sorted(u for u in draw_units if u is not None)
            median = (int(np.median(reached + [K + 1] * (len(draw_units) - len(reached))))
                      if 2 * len(reached) > len(draw_units) else None)
            curves[name] = RankingCurve(name, res, rng_orders[0], held.mean(0), val.mean(0),
                                        median, held, draw_units)
        else:
            order = res.ranking()
            held = removal_curves(heldout_game, order, n, K)[0]
            val = removal_curves(full_value_game, order, n, K)[0]
            curves[name] = RankingCurve(name, res, order, held, val, units_to_level(held, level))
    settings = {
        "metric": value_game.metric_name,
        "players": [ly.name for ly in value_game.players_set.layers], "n_players": n,
        "replacement": replacement, "value_examples": len(value_targets),
        "heldout_examples": len(heldout_targets), "shapley_method": shapley_method,
        "shapley_options": dict(shapley_options or {}), "baselines": list(baselines),
        "random_draws": random_draws, "conductance_options": dict(conductance_options or {}),
        "game_options": gopts, "seed": seed, "max_k": K, "level_fraction": level_fraction,
        "model": type(model).__name__, "title": title,
        "torch_threads": torch.get_num_threads(),
    }
    out = CompareResult(curves, value_game.metric_name, float(level), rule, full, floor, n, K,
                        min(small_k, K), settings)
    out.settings["wall_time_s"] = round(time.perf_counter() - started, 3)
    if out_dir is not None:
        write_compare(out, out_dir, title=title)
    return out


def _floor(value_game: ModelGame, heldout_game: ModelGame, chance: float | None,
           level: float | None) -> tuple[float, str]:
    """The level's floor: ``chance`` if given, else the metric's chance level, else V(empty)."""
    if chance is not None:
        return float(chance), f"chance {chance:g}"
    with torch.no_grad():
        n_classes = int(heldout_game.model(heldout_game.inputs[:1]).shape[-1])
    c = chance_level(value_game.metric_name, n_classes)
    if c is not None:
        return c, f"chance ({value_game.metric_name}, {n_classes} classes: {c:.4g})"
    empty = float(heldout_game(np.zeros((1, heldout_game.n_players), dtype=bool))[0])
    return empty, f"V(empty) on held-out data ({empty:.4g})"


# ---------------------------------------------------------------------- ready-made setups
@dataclass
class StudySetup:
    """A model with value-estimation and held-out data, and the study's defaults for it.

    ``heldout_*`` is the test data every reported curve is measured on. ``selection_*``
    (None where a setup has none) is a third split for choices made from the values (a
    number of units, a ranking, an estimator setting): choose there, report on held-out.
    ``compare`` and ``class-specific`` choose nothing and do not use it.
    """

    name: str
    model: nn.Module
    value_inputs: torch.Tensor
    value_targets: torch.Tensor
    heldout_inputs: torch.Tensor
    heldout_targets: torch.Tensor
    players: list[str]
    metric: str
    description: str
    class_names: list[str] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    selection_inputs: torch.Tensor | None = None
    selection_targets: torch.Tensor | None = None


STUDY_MODELS = ("digits", "onet")


def study_setup(name: str = "digits", seed: int = 0, cache_dir: str | os.PathLike[str] | None
                = None, include_dense: bool = False) -> StudySetup:
    """The built-in setups of the studies.

    ``digits``: the cached digits CNN (:func:`~neuronshapley.zoo.pretrained_digits_cnn`), 80
    conv filters, accuracy, on the disjoint splits of
    :func:`~neuronshapley.zoo.load_digits_split`: trained on the train split (899 images),
    values on the valuation split (359), selection split (180) for choices, held-out curves
    on the test split (359), which neither training nor the estimate saw.
    ``onet``: MTCNN's ONet (:mod:`neuronshapley.zoo.onet`), its 288 conv filters (plus the
    256 ``dense5`` units with ``include_dense``), mean log-probability of the true label
    (accuracy is 100%: no headroom); values on the 100 even-indexed LFW-subset images,
    held-out check on the 100 odd-indexed ones (50 faces and 50 non-faces each).
    """
    if name == "digits":
        from neuronshapley.zoo.digits import pretrained_digits_cnn

        model, data = pretrained_digits_cnn(cache_dir=cache_dir, seed=seed)
        assert data.x_valuation is not None and data.y_valuation is not None
        n = data.sizes()
        return StudySetup(
            "digits", model, data.x_valuation, data.y_valuation, data.x_test, data.y_test,
            ["features.*"], "accuracy",
            f"digits CNN ({model.arch_id}, 80 conv filters, trained on {n['train']} images), "
            f"accuracy; values on {n['valuation']} valuation images, held-out curves on "
            f"{n['test']} test images (split seed {seed})", [str(c) for c in range(10)],
            {"shapley_options": {"max_evaluations": 20000}, "tmab_k": 10, "max_k": None,
             "small_k": 10, "splits": n},
            data.x_selection, data.y_selection,
        )
    if name == "onet":
        from neuronshapley.zoo.onet import CONV_LAYERS, load_lfw_faces, pretrained_onet

        model = pretrained_onet()
        value, held = load_lfw_faces().split()
        layers = [*CONV_LAYERS, "dense5"] if include_dense else list(CONV_LAYERS)
        return StudySetup(
            "onet", model, value.x, value.y, held.x, held.y, layers, "log_prob",
            "MTCNN ONet (facenet-pytorch weights), conv filters"
            + (" and dense5 units" if include_dense else "")
            + f", mean log-probability of the true label; values on {len(value.y)} LFW-subset "
            f"images, held-out check on {len(held.y)}", ["nonface", "face"],
            {"shapley_options": {"max_evaluations": 40000}, "tmab_k": 10,
             "game_options": {"walk_sample": 32}, "max_k": 60, "small_k": 10},
        )
    raise ValueError(f"unknown study model {name!r}; choose one of {STUDY_MODELS}")


def user_compare_setup(settings: Mapping[str, Any], heldout: str | None,
                       heldout_fraction: float | None, metric: str = "accuracy") -> StudySetup:
    """A :class:`StudySetup` for the user's model (see :func:`~.user_setup.load_user_study`)."""
    from neuronshapley.studies.user_setup import load_user_study

    study = load_user_study(settings, heldout, heldout_fraction)
    return StudySetup(
        "user", study.model, study.value.x, study.value.y, study.heldout.x, study.heldout.y,
        study.players, metric, f"{study.description}; metric {metric}",
        study.value.class_names, {"shapley_options": {}, "tmab_k": 10, "max_k": None,
                                  "small_k": 10, "notes": study.notes},
    )


def shapley_options(setup: StudySetup, method: str, max_evaluations: int | None = None,
                    k: int | None = None) -> dict[str, Any]:
    """The estimator options of ``setup`` for ``method``: its default budget (or
    ``max_evaluations``) and, for ``"tmab"`` only, the top-k to separate (``k``, default the
    setup's ``tmab_k``, 10). ``k`` with another method is an error (``"auto"`` given a ``k``
    would silently switch to TMAB)."""
    opts: dict[str, Any] = dict(setup.defaults.get("shapley_options", {}))
    if max_evaluations is not None:
        opts["max_evaluations"] = int(max_evaluations)
    if method == "tmab":
        opts["k"] = int(k if k is not None else opts.get("k", setup.defaults.get("tmab_k", 10)))
    elif k is not None:
        raise ValueError(f"k (the top set TMAB separates) applies to method 'tmab' only, "
                         f"not {method!r}")
    else:
        opts.pop("k", None)
    return opts


# ------------------------------------------------------------------------------ files
def write_compare(result: CompareResult, out_dir: str | os.PathLike[str],
                  title: str | None = None, plot_k: int | None = None) -> dict[str, Path]:
    """Write the tables, the plot, each ranking's values and ``summary.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"table": out / "compare.csv", "levels": out / "levels.csv",
             "plot": out / "compare.png", "summary": out / "summary.json"}
    write_text(files["table"], csv_text(result.rows()))
    write_text(files["levels"], csv_text(result.level_rows()))
    for name, c in result.curves.items():
        folder = out / "values" / name
        c.result.save(folder)
        files[f"values_{name}"] = folder
    plot_compare(result, files["plot"], title=title, plot_k=plot_k)
    result.files = files
    write_text(files["summary"], json.dumps(result.to_json(), indent=2) + "\n")
    return files


def plot_compare(result: CompareResult, path: str | os.PathLike[str], title: str | None = None,
                 plot_k: int | None = None) -> Path:
    """Two panels: held-out metric after removing the top-k units per ranking (k <= plot_k),
    and the units each ranking removes before reaching the level."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    kmax = min(plot_k or min(result.max_k, 40), result.max_k)
    ks = np.arange(kmax + 1)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    for name, c in result.curves.items():
        colour = COLOURS.get(name)
        lw = 2.4 if name == SHAPLEY else 1.4
        if c.draws is not None:
            ax.fill_between(ks, c.draws[:, : kmax + 1].min(0), c.draws[:, : kmax + 1].max(0),
                            color=colour, alpha=0.15, linewidth=0)
            label = f"random (mean of {len(c.draws)}, min-max band)"
        else:
            label = name
        ax.plot(ks, c.heldout[: kmax + 1], color=colour, lw=lw, label=label,
                marker="o" if kmax <= 20 else None, ms=3)
    ax.axhline(result.level, color="k", ls=":", lw=1, label=f"level {result.level:.3g}")
    ax.set_xlabel("units removed (top-k of each ranking)")
    ax.set_ylabel(f"{result.metric} on held-out data")
    ax.legend(fontsize=7.5, loc="best", framealpha=0.8)
    ax.grid(alpha=0.3)
    names = list(result.curves)
    vals = [c.units_to_level if c.units_to_level is not None else result.max_k + 1
            for c in result.curves.values()]
    bars = bx.barh(names, vals, color=[COLOURS.get(nm, "#333333") for nm in names])
    for bar, c in zip(bars, result.curves.values(), strict=True):
        text = str(c.units_to_level) if c.units_to_level is not None else f"> {result.max_k}"
        if c.units_to_level is None:
            bar.set_hatch("//")
            bar.set_alpha(0.5)
        bx.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {text}",
                va="center", fontsize=8)
    bx.invert_yaxis()
    bx.set_xlabel(f"units removed to reach {result.metric} <= {result.level:.3g}")
    bx.set_xlim(0, (max(vals) if vals else 1) * 1.2 + 1)
    bx.grid(axis="x", alpha=0.3)
    fig.suptitle(textwrap.fill(title or f"Removing each ranking's top units "
                               f"({result.n_players} units)", 110), fontsize=10)
    return save_figure(fig, path, dpi=110)


__all__ = [
    "SHAPLEY",
    "STUDY_MODELS",
    "StudySetup",
    "study_setup",
    "CompareResult",
    "RankingCurve",
    "nested_masks",
    "plot_compare",
    "removal_curves",
    "run_compare",
    "shapley_options",
    "units_to_level",
    "write_compare",
]
