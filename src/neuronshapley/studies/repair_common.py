"""What the two repair studies (fairness, adversarial) share.

- :func:`estimate_values`: the study-level estimator choice (``method="auto"`` by default:
  truncated walks with unbiased roulette truncation and position strata; ``"tmab"``,
  ``"truncated"`` and ``"permutation"`` stay selectable).
- :func:`split_indices`: the validation split in two parts, one the values are estimated on,
  one the ranking and the number of removed units are chosen on, so that the choice is
  measured on data the values never saw (the test split is seen by neither).
- :func:`removal_masks`, :func:`knapsack_order`, :func:`greedy_search`: the removal
  curves, the ratio ranking and the greedy-search control.
- :func:`choose_removal`: every candidate ranking's curve on the selection part, the best
  ``(ranking, k)`` under the study's constraint, each ranking's own choice measured on test,
  and the chosen ranking's curves on the three splits; :func:`search_control` does the same
  for the greedy search.
- :func:`estimate_summary`, :func:`curve_rows`, :func:`write_repair_files`: the file-writing
  tail (tables, values, repaired model, plot, ``summary.json``).

A study says what it measures and how it chooses with three functions of a curve
``(R, m)`` (the game's outputs after removing the first ``k`` units of a ranking, one row
per ``k``): ``measure(game, order, ks)`` computes it, ``objective(curve)`` (R,) is what the
choice minimises, ``allowed(curve)`` (R,) bool is its constraint (row 0, nothing removed,
is always allowed), and ``describe(curve)`` names the scores reported, for a curve or one
row of it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from neuronshapley.estimators import estimate
from neuronshapley.evaluation.removal import prefix_masks as removal_masks
from neuronshapley.files import atomic_write_text, csv_text, json_safe
from neuronshapley.network.repair import save_repaired
from neuronshapley.result import ShapleyResult, library_versions

#: Estimators a repair study accepts (each returns values for every output of the game).
ESTIMATORS = ("auto", "truncated", "permutation", "tmab")
#: Default numbers of removed units tried on the selection split.
DEFAULT_K_GRID: tuple[int, ...] = (*range(0, 31), *range(35, 61, 5))
#: Name of the ratio ranking among the candidates.
KNAPSACK = "knapsack"

__all__ = [
    "DEFAULT_K_GRID",
    "ESTIMATORS",
    "KNAPSACK",
    "AppendedOutput",
    "RemovalChoice",
    "RepairResult",
    "SearchControl",
    "choose_removal",
    "curve_rows",
    "estimate_summary",
    "estimate_values",
    "greedy_search",
    "k_grid",
    "knapsack_order",
    "removal_masks",
    "search_control",
    "split_indices",
    "write_repair_files",
]


# ------------------------------------------------------------------------------ values
class AppendedOutput:
    """``game`` with one more output, ``sign * output[index]``, named ``name``.

    TMAB separates the *largest* values of one output; a study that wants the most negative
    units of an output gives TMAB this wrapper with ``sign=-1`` and the new output. Every
    other attribute (``n_players``, ``players``, ``masks_per_pass``...) is the game's.
    """

    def __init__(self, game: Any, index: int, name: str, sign: float = -1.0) -> None:
        self._game = game
        self._index = int(index)
        self._sign = float(sign)
        names = list(getattr(game, "output_names", None) or [])
        self.output_names = [*names, name] if names else None

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._game, attr)

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        v = np.asarray(self._game(masks), dtype=np.float64)
        v = v[:, None] if v.ndim == 1 else v
        return np.concatenate([v, self._sign * v[:, self._index : self._index + 1]], axis=1)


def estimate_values(
    game: Any,
    method: str = "auto",
    max_evaluations: int = 8000,
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
    progress: bool | Callable[[dict[str, Any]], None] = False,
    tmab_output: int = 0,
) -> ShapleyResult:
    """Shapley values of every unit for every output of ``game`` (a vector game).

    ``method``: one of :data:`ESTIMATORS`. ``"auto"`` picks truncated walks with roulette
    truncation and position strata (``neuronshapley.estimate``); ``"tmab"`` ranks output
    ``tmab_output`` (unless ``options`` name ``output``) and estimates the other outputs
    from the same samples. ``options``: more :func:`neuronshapley.estimate` options.
    """
    if method not in ESTIMATORS:
        raise ValueError(f"method must be one of {ESTIMATORS}, got {method!r}")
    opts = dict(options or {})
    if method == "tmab":
        opts.setdefault("output", tmab_output)
    return estimate(game, method=method, seed=seed, max_evaluations=int(max_evaluations),
                    progress=progress, **opts)


# ------------------------------------------------------------------------------- split
def split_indices(
    n: int,
    fraction: float,
    seed: int,
    keys: np.ndarray | None = None,
    strata: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into a value part and a selection part (``fraction`` of the keys).

    Examples with the same ``keys`` entry go to the same part (e.g. one digit rendered in
    two colours); keys are split within each stratum (``strata``: one label per example,
    the label of a key's first example counts), so both parts keep the mix. ``fraction=0``
    returns every index for both parts (values and choice on the same data).
    """
    idx = np.arange(n)
    if fraction == 0:
        return idx, idx
    if not 0 < fraction < 1:
        raise ValueError(f"selection_fraction must be in [0, 1), got {fraction}")
    keys = idx if keys is None else np.asarray(keys)
    strata = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata)
    if keys.shape != (n,) or strata.shape != (n,):
        raise ValueError("keys and strata need one entry per example")
    uniq, first = np.unique(keys, return_index=True)
    rng = np.random.default_rng([seed, 0x5E1])
    chosen: list[np.ndarray] = []
    for s in np.unique(strata[first]):
        members = uniq[strata[first] == s]
        take = int(round(fraction * len(members)))
        chosen.append(rng.permutation(members)[:take])
    pick = np.isin(keys, np.concatenate(chosen) if chosen else np.empty(0))
    if pick.all() or not pick.any():
        raise ValueError("the validation split is too small to split for selection")
    return idx[~pick], idx[pick]


# ------------------------------------------------------------------------------ ranking
def k_grid(grid: Sequence[int] | None, n: int) -> list[int]:
    """The numbers of removed units tried: ``grid`` (default :data:`DEFAULT_K_GRID`) within
    0..n, with 0 always in."""
    return sorted({int(k) for k in (DEFAULT_K_GRID if grid is None else grid)
                   if 0 <= int(k) <= n} | {0})


def knapsack_order(gain: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Units by what removing them is predicted to gain per unit of what it costs.

    ``gain`` (n,): the predicted improvement from removing each unit (e.g. minus its value
    for the under-served group); ``cost`` (n,): the predicted loss (its value for overall
    accuracy). Under additive values, taking units in this order is the greedy answer to
    "gain the most for a given cost". First the *free* units (gain > 0, cost <= 0: they hurt
    the target and help nothing else), largest gain first; then units with gain > 0 by
    decreasing ``gain / cost``; then the rest by decreasing gain.
    """
    gain = np.asarray(gain, dtype=np.float64)
    cost = np.asarray(cost, dtype=np.float64)
    free = (gain > 0) & (cost <= 0)
    paid = (gain > 0) & (cost > 0)
    rest = ~(free | paid)
    parts = [
        np.flatnonzero(free)[np.argsort(-gain[free], kind="stable")],
        np.flatnonzero(paid)[np.argsort(-(gain[paid] / cost[paid]), kind="stable")],
        np.flatnonzero(rest)[np.argsort(-gain[rest], kind="stable")],
    ]
    return np.concatenate(parts).astype(np.int64)


def greedy_search(
    game: Callable[[np.ndarray], np.ndarray], n: int, score: Callable[[np.ndarray], np.ndarray],
    steps: int,
) -> np.ndarray:
    """Greedy removal without values: the control for a Shapley ranking.

    Step ``j`` tries removing each remaining unit (one batched game call on the data the
    choice is made on) and removes the one with the best ``score`` (a function of the game's
    outputs (M, d) to (M,), larger is better; ``-inf`` for a removal not allowed). Returns
    the units in the order removed (at most ``steps``; it stops when nothing is allowed).
    """
    keep = np.ones(n, dtype=bool)
    order: list[int] = []
    for _ in range(min(steps, n)):
        cand = np.flatnonzero(keep)
        masks = np.repeat(keep[None], len(cand), axis=0)
        masks[np.arange(len(cand)), cand] = False
        s = np.asarray(score(np.asarray(game(masks), dtype=np.float64)), dtype=np.float64)
        if not np.isfinite(s).any():
            break
        j = int(np.argmax(s))
        keep[cand[j]] = False
        order.append(int(cand[j]))
    return np.asarray(order, dtype=np.int64)


# ------------------------------------------------------------------------------ choice
Measure = Callable[[Any, np.ndarray, Sequence[int]], np.ndarray]
CurveFn = Callable[[np.ndarray], np.ndarray]
Describe = Callable[[np.ndarray], Mapping[str, Any]]


def _best_row(curve: np.ndarray, objective: CurveFn, allowed: CurveFn) -> int:
    """The first allowed row of ``curve`` with the smallest objective."""
    return int(np.argmin(np.where(allowed(curve), objective(curve), np.inf)))


def _named(prefix: str, scores: Mapping[str, Any]) -> dict[str, float]:
    return {f"{prefix}_{key}": float(v) for key, v in scores.items()}


@dataclass
class RemovalChoice:
    """What :func:`choose_removal` chose, and the chosen ranking's curves (len(grid), m)."""

    ranking: str  # name of the chosen candidate ranking
    chosen_k: int
    order: np.ndarray  # unit indices (n,) of the chosen ranking
    k_grid: list[int]  # the numbers of removed units tried
    selection: list[dict[str, Any]]  # every (ranking, k) tried on the selection part
    per_ranking: list[dict[str, Any]]  # each ranking's own choice, and its test scores
    value_curve: np.ndarray
    select_curve: np.ndarray
    test_curve: np.ndarray

    def units(self, players: Sequence[str]) -> list[str]:
        """The chosen ranking's units by name, first removed first."""
        return [players[i] for i in self.order]

    def removed(self, players: Sequence[str]) -> list[str]:
        """The ``chosen_k`` units removed, by name."""
        return self.units(players)[: self.chosen_k]


def choose_removal(
    rankings: Mapping[str, np.ndarray],
    grid: Sequence[int],
    games: tuple[Any, Any, Any],
    measure: Measure,
    objective: CurveFn,
    allowed: CurveFn,
    describe: Describe,
    log: Callable[[str], None] | None = None,
) -> RemovalChoice:
    """Choose the ranking and the number ``k`` of units removed on the selection part.

    ``rankings``: name -> unit indices, best to remove first; ``games``: the value,
    selection and test games. For each ranking the curve over ``grid`` is measured on the
    selection game; the choice is the allowed ``(ranking, k)`` of smallest objective (ties:
    smaller ``k``, then the earlier ranking). Each ranking's own best ``k`` is also
    measured on the test game (``per_ranking``, for the report). Selection rows hold
    ``select_<name>`` for each score of ``describe``; per-ranking rows ``select_<name>``
    and ``test_<name>``.
    """
    game, select_game, test_game = games
    selection: list[dict[str, Any]] = []
    best: tuple[float, int, int] | None = None  # (objective, k, ranking position)
    curves: dict[str, np.ndarray] = {}
    for pos, (name, order) in enumerate(rankings.items()):
        curve = curves[name] = measure(select_game, order, grid)
        ok, obj, scores = allowed(curve), objective(curve), describe(curve)
        for r, k in enumerate(grid):
            selection.append({"ranking": name, "removed": k,
                              **_named("select", {key: v[r] for key, v in scores.items()}),
                              "allowed": int(ok[r])})
            cand = (float(obj[r]), k, pos)
            if ok[r] and (best is None or cand < best):
                best = cand
    if best is None:
        raise ValueError("no (ranking, k) is allowed: the grid needs k = 0 and a ranking")
    _, chosen_k, pos = best
    ranking = list(rankings)[pos]
    if log is not None:
        log(f"chosen on the selection part: remove {chosen_k} unit"
            f"{'' if chosen_k == 1 else 's'} (ranking {ranking})")
    per_ranking = []
    for name, order in rankings.items():
        c = curves[name]
        r = _best_row(c, objective, allowed)
        t = measure(test_game, order, [grid[r]])[0]
        per_ranking.append({"ranking": name, "removed": grid[r],
                            **_named("select", describe(c[r])), **_named("test", describe(t))})
    order = rankings[ranking]
    return RemovalChoice(ranking, chosen_k, order, list(grid), selection, per_ranking,
                         measure(game, order, grid), curves[ranking],
                         measure(test_game, order, grid))


@dataclass
class RepairResult:
    """What a repair study found: the parts both studies share; rates are fractions.

    Curves are (len(k_grid), m) scores after removing the first k units of the chosen
    ranking, on the value part, the selection part (where k was chosen) and the test split
    (for the plot and the hindsight ceiling only).
    """

    values: ShapleyResult
    ranking: str  # the chosen candidate ranking's name
    order: list[str]  # units in the chosen ranking's order
    k_grid: list[int]
    value_curve: np.ndarray
    select_curve: np.ndarray
    test_curve: np.ndarray
    chosen_k: int
    removed: list[str]
    search: dict[str, Any] | None  # the greedy-search control
    selection: list[dict[str, Any]]  # every (ranking, k) tried on the selection part
    per_ranking: list[dict[str, Any]]  # each ranking's own choice, and its test scores
    repaired: nn.Module
    settings: dict[str, Any]
    wall_time: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def chosen(cls, choice: RemovalChoice, players: Sequence[str], values: ShapleyResult,
               search: dict[str, Any] | None, repaired: nn.Module, settings: dict[str, Any],
               **study: Any) -> Any:
        """The result of ``choice`` (``study``: the study's own fields)."""
        order = choice.units(players)
        return cls(values=values, ranking=choice.ranking, order=order,
                   k_grid=choice.k_grid, value_curve=choice.value_curve,
                   select_curve=choice.select_curve, test_curve=choice.test_curve,
                   chosen_k=choice.chosen_k, removed=order[: choice.chosen_k], search=search,
                   selection=choice.selection, per_ranking=choice.per_ranking,
                   repaired=repaired, settings=settings, **study)

    def interpretation(self) -> str:
        """One sentence on what the repair did (each study says its own)."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        """The content of ``summary.json`` (each study says its own)."""
        raise NotImplementedError

    def write_files(
        self,
        out_dir: str | os.PathLike[str],
        table: tuple[str, list[dict[str, Any]]],
        columns: Callable[[np.ndarray], Mapping[str, Any]],
        model_info: Mapping[str, Any],
        plot: Callable[[Path], object] | None = None,
        plot_name: str = "plot.png",
    ) -> dict[str, Path]:
        """:func:`write_repair_files` with ``table`` (file name, rows), ``selection.csv``,
        ``curve.csv`` (:func:`curve_rows` of the three curves; ``columns`` names one row's
        scores) and ``summary.json`` (:meth:`to_json`, after ``files`` is set)."""
        rows = curve_rows(self.k_grid, {"value": self.value_curve, "selection": self.select_curve,
                                        "test": self.test_curve}, columns, self.chosen_k)

        def summary(files: dict[str, Path]) -> dict[str, Any]:
            self.files = files
            return self.to_json()

        return write_repair_files(
            out_dir, {"table": table, "selection": ("selection.csv", self.selection),
                      "curve": ("curve.csv", rows)},
            self.values, self.repaired, model_info, summary, plot, plot_name)

    def plot_curves(self, path: str | os.PathLike[str], draw: Callable[[Any, np.ndarray], None],
                    title: str) -> Path:
        """Two panels, the selection part and test: ``draw(ax, curve)`` draws the scores in
        percent; the chosen ``k`` is marked. Written as PNG to ``path``."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from neuronshapley.report.figures import save_figure

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
        for ax, curve, split in ((axes[0], self.select_curve, "selection part of validation "
                                  "(choice of k)"), (axes[1], self.test_curve, "test (held out)")):
            draw(ax, curve)
            ax.axvline(self.chosen_k, color="grey", lw=1)
            ax.set_title(split, fontsize=10)
            ax.set_xlabel(f"units removed (ranking {self.ranking})")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("%")
        axes[0].legend(fontsize=8)
        fig.suptitle(title, fontsize=11)
        return save_figure(fig, path, dpi=110)

    def summary_tail(self, search: dict[str, Any] | None, setup_info: Mapping[str, Any],
                     estimate_extra: Sequence[str] = ()) -> dict[str, Any]:
        """The end of ``summary.json`` both studies write: the choice, the estimate
        (:func:`estimate_summary`), the interpretation, settings, timing and versions."""
        return {
            "selection": self.selection,
            "per_ranking": self.per_ranking,
            "greedy_search": search,
            "estimate": estimate_summary(self.values, estimate_extra),
            "interpretation": self.interpretation(),
            "settings": self.settings,
            "wall_time_s": round(self.wall_time, 3),
            "setup_info": setup_info,
            "versions": library_versions(),
        }


@dataclass
class SearchControl:
    """The greedy-search control of :func:`search_control`."""

    path: np.ndarray  # units (indices) in the order removed
    k: int  # the number removed, chosen on the selection part
    select: np.ndarray  # selection-part scores (m,) after removing ``path[:k]``
    test: np.ndarray  # test scores (m,) after removing ``path[:k]``
    evaluations: int  # game evaluations of the search

    def as_dict(self, players: Sequence[str], describe: Describe,
                with_test: bool = True) -> dict[str, Any]:
        """``k``, the removed units and the whole path by name, the ``select_*`` (and with
        ``with_test`` the ``test_*``) scores, the evaluations."""
        out: dict[str, Any] = {"k": self.k, "units": [players[i] for i in self.path[: self.k]],
                               "path": [players[i] for i in self.path],
                               **_named("select", describe(self.select))}
        if with_test:
            out.update(_named("test", describe(self.test)))
        out["evaluations"] = self.evaluations
        return out


def search_control(
    select_game: Any,
    test_game: Any,
    n: int,
    steps: int,
    score: Callable[[np.ndarray], np.ndarray],
    measure: Measure,
    objective: CurveFn,
    allowed: CurveFn,
) -> SearchControl:
    """:func:`greedy_search` on the selection game (``score``: larger is better), ``k``
    chosen along its path like :func:`choose_removal` chooses, measured on test."""
    path = greedy_search(select_game, n, score, steps)
    curve = measure(select_game, path, range(len(path) + 1))
    r = _best_row(curve, objective, allowed)
    test = measure(test_game, path, [r])[0]
    return SearchControl(path, r, curve[r], test, int(sum(n - j for j in range(len(path)))))


# ------------------------------------------------------------------------------- files
def estimate_summary(values: ShapleyResult, extra: Sequence[str] = ()) -> dict[str, Any]:
    """The estimate's part of a study's ``summary.json``: method, evaluations, walks, the
    ``auto`` choice, wall time, and the ``extra`` keys of ``values.info``."""
    info = values.info
    return {"method": values.method, "evaluations": int(values.evaluations),
            "walks": info.get("walks"), "auto": info.get("auto"),
            "wall_time_s": round(values.wall_time, 3), **{key: info.get(key) for key in extra}}


def curve_rows(
    k_grid: Sequence[int],
    curves: Mapping[str, np.ndarray],
    columns: Callable[[np.ndarray], Mapping[str, Any]],
    chosen_k: int,
) -> list[dict[str, Any]]:
    """Rows of ``curve.csv``: ``removed``, ``"<split> <column>"`` for each split's curve
    (``columns`` names the scores of one row), and ``chosen`` (1 on the chosen ``k``)."""
    rows = []
    for r, k in enumerate(k_grid):
        row: dict[str, Any] = {"removed": k}
        for split, curve in curves.items():
            row.update({f"{split} {name}": v for name, v in columns(curve[r]).items()})
        row["chosen"] = int(k == chosen_k)
        rows.append(row)
    return rows


def write_repair_files(
    out_dir: str | os.PathLike[str],
    tables: Mapping[str, tuple[str, list[dict[str, Any]]]],
    values: ShapleyResult,
    repaired: nn.Module,
    model_info: Mapping[str, Any],
    summary: Callable[[dict[str, Path]], dict[str, Any]],
    plot: Callable[[Path], object] | None = None,
    plot_name: str = "plot.png",
) -> dict[str, Path]:
    """Write a repair study's files into ``out_dir`` and return them by key.

    ``tables``: key -> (file name, rows), each written as CSV; ``values/`` (the Shapley
    values); ``repaired_model.pt`` with ``model_info`` as its JSON
    (:func:`~neuronshapley.network.repair.save_repaired`); the plot (``plot(path)``, file
    ``plot_name``) when given; ``summary.json``: ``summary(files)`` plus the file list.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for key, (name, rows) in tables.items():
        files[key] = out / name
        atomic_write_text(files[key], csv_text(rows))
    files["values"] = out / "values"
    values.save(files["values"])
    files["model"] = out / "repaired_model.pt"
    save_repaired(repaired, files["model"], dict(model_info))
    if plot is not None:
        files["plot"] = out / plot_name
        plot(files["plot"])
    files["summary"] = out / "summary.json"
    text = {**summary(files), "files": {k: str(v) for k, v in files.items()}}
    atomic_write_text(files["summary"], json.dumps(json_safe(text), indent=2) + "\n")
    return files
