"""Study "class-specific": units a single class rests on, and what removing them does.

One estimation gives every class's values: the game's metric is the vector
``class_recall`` (M, C), so every forward pass yields all C recalls, and a permutation walk
gives every class's marginal of every unit it visits. We therefore use walks:
``method="auto"`` (truncated walks with unbiased roulette truncation and position strata),
``"truncated"`` or ``"permutation"``, whose samples serve all classes at once, so one run
with one budget gives values for every class with per-class intervals. TMAB's bandit
(``output=c``) would spend its budget certifying one class's top-k and would need C runs for
C classes. A walk is truncated only when *every* class's recall is dead.

Overall accuracy is the class-frequency-weighted mean of the class recalls,
``acc = sum_c (n_c / N) recall_c``, and Shapley values are linear in the game, so the units'
values for overall accuracy follow from the same run: ``phi_acc = phi_recall @ (n_c / N)``
(exactly, walk by walk: truncation, its fill and the roulette's rescaling act on whole walks,
the same for every output).

Following the paper, units in the top ``exclude_fraction`` (20%) for overall accuracy are set
aside: they matter for every class. For each chosen class c, the remaining units are ranked by
their value for c's recall; removing the top m of them (m in ``remove``) should collapse c's
recall on held-out data while the other classes keep theirs. As a control, m random units
from the same eligible pool are removed (mean over ``random_draws``).

Files written by :func:`run_class_specific` into ``out_dir``:

- ``class_specific.csv``: ``target, removed, ranking, target_recall, others_mean,
  others_min, recall_<class>..., units`` (``ranking``: ``class`` or ``random``);
- ``class_specific.png``: target recall vs the other classes' mean recall as m grows, and
  the held-out recall matrix (removed class x measured class) at ``m = show_m``;
- ``values/``: the class-recall values (every class, one output each), ``values_accuracy/``:
  the derived overall-accuracy values;
- ``summary.json``.
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
from neuronshapley.files import atomic_write_text as _write
from neuronshapley.files import csv_text as _csv
from neuronshapley.network.game import ModelGame
from neuronshapley.network.players import PlayerSet
from neuronshapley.report.figures import save_figure
from neuronshapley.result import ShapleyResult, library_versions

Log = Callable[[str], None]
DEFAULT_REMOVE: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 8, 10)


@dataclass
class ClassSpecificResult:
    """What :func:`run_class_specific` measured.

    ``recall[c]``: (len(removed), C) held-out recall of every class after removing the top m
    units of class c's ranking; ``random_recall[c]``: the same for m random eligible units
    (mean over draws); ``value_recall[c]``: as ``recall`` on the value data.
    """

    values: ShapleyResult  # (n, C) class-recall values
    accuracy_values: ShapleyResult  # (n,) overall-accuracy values, derived
    classes: list[int]
    class_names: list[str]
    excluded: list[int]  # player indices set aside (top for overall accuracy)
    removed: list[int]
    orders: dict[int, np.ndarray]  # class -> eligible players, best first
    recall: dict[int, np.ndarray]
    random_recall: dict[int, np.ndarray]
    value_recall: dict[int, np.ndarray]
    show_m: int
    settings: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        """Table rows, one per target class, m and ranking (class-specific or random)."""
        out = []
        for c in self.classes:
            for ranking, table in (("class", self.recall[c]), ("random", self.random_recall[c])):
                for s, m in enumerate(self.removed):
                    rec = table[s]
                    others = np.delete(rec, c)
                    row: dict[str, Any] = {
                        "target": self.class_names[c], "removed": m, "ranking": ranking,
                        "target_recall": float(rec[c]),
                        "others_mean": float(others.mean()) if len(others) else math.nan,
                        "others_min": float(others.min()) if len(others) else math.nan,
                    }
                    row.update({f"recall_{nm}": float(rec[j])
                                for j, nm in enumerate(self.class_names)})
                    row["units"] = " ".join(self.values.players[i]
                                            for i in self.orders[c][:m]) if ranking == "class" \
                        else ""
                    out.append(row)
        return out

    def collapse(self, m: int | None = None) -> dict[str, dict[str, float]]:
        """Per target class at ``m`` removed (default ``show_m``): target recall before and
        after, other classes' mean before and after, and the random control's target recall."""
        m = self.show_m if m is None else m
        s, s0 = self.removed.index(m), self.removed.index(0) if 0 in self.removed else None
        out = {}
        for c in self.classes:
            rec, rnd = self.recall[c], self.random_recall[c]
            before = rec[s0] if s0 is not None else np.full(rec.shape[1], math.nan)
            out[self.class_names[c]] = {
                "target_before": float(before[c]), "target_after": float(rec[s, c]),
                "others_before": float(np.delete(before, c).mean()),
                "others_after": float(np.delete(rec[s], c).mean()),
                "random_target_after": float(rnd[s, c]),
            }
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": [self.class_names[c] for c in self.classes],
            "excluded": [self.values.players[i] for i in self.excluded],
            "removed": self.removed, "show_m": self.show_m,
            "collapse": self.collapse(),
            "top_units": {self.class_names[c]: [self.values.players[i]
                                                for i in self.orders[c][: max(self.removed)]]
                          for c in self.classes},
            "recall": {self.class_names[c]: self.recall[c].tolist() for c in self.classes},
            "random_recall": {self.class_names[c]: self.random_recall[c].tolist()
                              for c in self.classes},
            "value_recall": {self.class_names[c]: self.value_recall[c].tolist()
                             for c in self.classes},
            "estimate": {"method": self.values.method, "evaluations": self.values.evaluations,
                         "wall_time_s": self.values.wall_time, "walks": self.values.info.get(
                             "walks")},
            "settings": self.settings, "versions": library_versions(),
            "files": {k: str(v) for k, v in self.files.items()},
        }


def accuracy_values(values: ShapleyResult, targets: torch.Tensor | np.ndarray,
                    n_classes: int | None = None) -> ShapleyResult:
    """Overall-accuracy Shapley values from class-recall values (n, C), by linearity.

    ``acc = sum_c w_c recall_c`` with ``w_c = n_c / N`` (class frequencies in ``targets``),
    so ``phi_acc = phi_recall @ w``; the intervals are combined the same way (conservative).
    """
    if values.values.ndim != 2:
        raise ValueError("accuracy_values needs a class-recall result with values (n, C)")
    c = values.values.shape[1] if n_classes is None else n_classes
    counts = np.bincount(np.asarray(targets).astype(np.int64), minlength=c)[:c]
    w = counts / counts.sum()
    mid = values.values @ w
    half = ((values.ci_high - values.ci_low) / 2) @ w
    return ShapleyResult(mid, mid - half, mid + half, values.samples.copy(), values.evaluations,
                         list(values.players), values.method, values.seed,
                         dict(values.params), values.wall_time, values.confidence, None,
                         dict(values.versions), {**values.info, "derived": "accuracy from "
                                                 "class recalls, weighted by class frequency"})


def run_class_specific(
    model: nn.Module,
    value_inputs: torch.Tensor,
    value_targets: torch.Tensor,
    heldout_inputs: torch.Tensor,
    heldout_targets: torch.Tensor,
    *,
    classes: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    players: PlayerSet | Sequence[str] | str | None = None,
    replacement: str = "mean",
    method: str = "auto",
    estimate_options: Mapping[str, Any] | None = None,
    values: ShapleyResult | None = None,
    exclude_fraction: float = 0.2,
    remove: Sequence[int] = DEFAULT_REMOVE,
    show_m: int | None = None,
    random_draws: int = 5,
    game_options: Mapping[str, Any] | None = None,
    seed: int = 0,
    out_dir: str | os.PathLike[str] | None = None,
    title: str | None = None,
    log: Log | None = None,
) -> ClassSpecificResult:
    """Class-specific Shapley values from one run, and the removal check on held-out data.

    Args:
        model: the trained classifier (eval mode), outputs (N, C).
        value_inputs, value_targets: data the values are estimated on; every class needs
            examples.
        heldout_inputs, heldout_targets: data the removal check is measured on.
        classes: target classes (default: all C).
        method: ``"auto"``, ``"truncated"`` or ``"permutation"`` (one run gives every class;
            see module doc) or ``"exact"`` for tiny models.
        estimate_options: options of :func:`neuronshapley.estimate` (``max_evaluations``...).
        values: a precomputed class-recall result (n, C) to use instead of estimating.
        exclude_fraction: share of units, top for overall accuracy, set aside.
        remove: numbers m of class-specific units to remove (0 is added).
        show_m: m of the recall matrix in the plot (default: the largest in ``remove``).
        random_draws: random eligible sets per m for the control.
        out_dir: if set, write the files listed in the module doc.
    """
    say = log or (lambda _msg: None)
    started = time.perf_counter()
    if method not in ("auto", "truncated", "permutation", "exact"):
        raise ValueError(
            f"method must be 'auto', 'truncated', 'permutation' or 'exact' (one run for every "
            f"class), got {method!r}"
        )
    if method == "auto" and (estimate_options or {}).get("k") is not None:
        raise ValueError("method 'auto' with k would run TMAB on one class: leave k out")
    if not 0 <= exclude_fraction < 1:
        raise ValueError(f"exclude_fraction must be in [0, 1), got {exclude_fraction}")
    gopts = dict(game_options or {})
    game = ModelGame(model, value_inputs, value_targets, metric="class_recall",
                     players=players, replacement=replacement, **gopts)
    C, n = game.output_dim, game.n_players
    names = [str(s) for s in class_names] if class_names is not None else [
        str(c) for c in range(C)]
    if len(names) != C:
        raise ValueError(f"{len(names)} class names for {C} classes")
    chosen = list(range(C)) if classes is None else [int(c) for c in classes]
    bad = [c for c in chosen if not 0 <= c < C]
    if bad:
        raise ValueError(f"classes {bad} are out of range 0..{C - 1}")
    removed = sorted({0, *(int(m) for m in remove)})
    n_excluded = int(math.ceil(exclude_fraction * n))
    if removed[-1] > n - n_excluded:
        raise ValueError(f"cannot remove {removed[-1]} units: only {n - n_excluded} are "
                         "eligible after the exclusion")
    show = removed[-1] if show_m is None else int(show_m)
    if show not in removed:
        raise ValueError(f"show_m={show} must be one of the removed counts {removed}")
    heldout = ModelGame(model, heldout_inputs, heldout_targets, metric="class_recall",
                        players=game.players_set, reference=value_inputs,
                        replacement=replacement, pass_size=gopts.get("pass_size", 8192))
    if heldout.output_dim != C:
        raise ValueError("held-out data give a different number of classes")

    if values is None:
        say(f"class-recall Shapley values ({method}) of {n} units for {C} classes")
        values = estimate(game, method=method, seed=seed, **dict(estimate_options or {}))
        values.info.update(game=repr(game), game_fingerprint=game.fingerprint())
        say(f"  {values.evaluations} evaluations, {values.wall_time:.1f} s")
    if values.values.shape != (n, C) or values.players != game.players:
        raise ValueError(f"class-recall values must be (n={n}, C={C}) over the game's players")
    values.output_names = [f"class{nm}" if nm.isdigit() else nm for nm in names]
    acc = accuracy_values(values, value_targets, C)
    excluded = [int(i) for i in acc.ranking()[:n_excluded]]
    eligible = np.setdiff1d(np.arange(n), excluded)
    orders: dict[int, np.ndarray] = {}
    masks = []
    rng = np.random.default_rng([seed, 0xC1A55])
    rand_masks = []
    for c in chosen:
        col = values.values[eligible, c]
        orders[c] = eligible[np.argsort(-col, kind="stable")]
        for m in removed:
            mk = np.ones(n, dtype=bool)
            mk[orders[c][:m]] = False
            masks.append(mk)
            for _ in range(random_draws):
                rk = np.ones(n, dtype=bool)
                rk[rng.permutation(eligible)[:m]] = False
                rand_masks.append(rk)
    say("removal check on held-out and value data")
    S = len(removed)
    cls_masks = np.stack(masks)
    held = heldout(cls_masks).reshape(len(chosen), S, C)
    val = game(cls_masks).reshape(len(chosen), S, C) if gopts.get("walk_sample") is None \
        else held * math.nan
    rnd = heldout(np.stack(rand_masks)).reshape(len(chosen), S, random_draws, C).mean(2)
    settings = {
        "method": method, "estimate_options": dict(estimate_options or {}),
        "players": [ly.name for ly in game.players_set.layers], "n_players": n,
        "replacement": replacement, "exclude_fraction": exclude_fraction,
        "excluded": n_excluded, "random_draws": random_draws, "seed": seed,
        "value_examples": len(value_targets), "heldout_examples": len(heldout_targets),
        "model": type(model).__name__, "title": title, "torch_threads": torch.get_num_threads(),
    }
    result = ClassSpecificResult(
        values, acc, chosen, names, excluded, removed, orders,
        {c: held[i] for i, c in enumerate(chosen)}, {c: rnd[i] for i, c in enumerate(chosen)},
        {c: val[i] for i, c in enumerate(chosen)}, show, settings,
    )
    result.settings["wall_time_s"] = round(time.perf_counter() - started, 3)
    if out_dir is not None:
        write_class_specific(result, out_dir, title=title)
    return result


def write_class_specific(result: ClassSpecificResult, out_dir: str | os.PathLike[str],
                         title: str | None = None) -> dict[str, Path]:
    """Write the table, the plot, the values and ``summary.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"table": out / "class_specific.csv", "plot": out / "class_specific.png",
             "values": out / "values", "values_accuracy": out / "values_accuracy",
             "summary": out / "summary.json"}
    _write(files["table"], _csv(result.rows()))
    result.values.save(files["values"])
    result.accuracy_values.save(files["values_accuracy"])
    plot_class_specific(result, files["plot"], title=title)
    result.files = files
    _write(files["summary"], json.dumps(result.to_json(), indent=2) + "\n")
    return files


def plot_class_specific(result: ClassSpecificResult, path: str | os.PathLike[str],
                        title: str | None = None) -> Path:
    """Left: each target class's held-out recall (solid) and the other classes' mean
    (dashed) vs units removed. Right: recall matrix at ``show_m`` (rows: class whose units
    were removed; columns: class measured)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4))
    cmap = plt.get_cmap("tab10")
    ms = np.asarray(result.removed)
    for i, c in enumerate(result.classes):
        rec = result.recall[c]
        colour = cmap(i % 10)
        ax.plot(ms, rec[:, c], color=colour, lw=1.8, marker="o", ms=3,
                label=f"{result.class_names[c]}")
        ax.plot(ms, np.delete(rec, c, axis=1).mean(1), color=colour, lw=1, ls="--")
    rnd = np.stack([result.random_recall[c][:, c] for c in result.classes]).mean(0)
    ax.plot(ms, rnd, color="k", lw=1.5, ls=":", label="target, random units (mean)")
    ax.set_xlabel("class-specific units removed (m)")
    ax.set_ylabel("held-out recall")
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("solid: target class; dashed: mean of the other classes", fontsize=9)
    ax.legend(fontsize=7, ncol=2, title="target class", title_fontsize=7)
    ax.grid(alpha=0.3)
    s = result.removed.index(result.show_m)
    mat = np.stack([result.recall[c][s] for c in result.classes])
    im = bx.imshow(mat, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    bx.set_yticks(range(len(result.classes)), [result.class_names[c] for c in result.classes])
    bx.set_xticks(range(len(result.class_names)), result.class_names)
    bx.set_ylabel("class whose top units were removed")
    bx.set_xlabel("class whose recall is measured (held-out)")
    bx.set_title(f"held-out recall after removing {result.show_m} units", fontsize=9)
    fig.colorbar(im, ax=bx, fraction=0.046)
    fig.suptitle(textwrap.fill(title or "Class-specific units (top "
                               f"{100 * result.settings.get('exclude_fraction', 0.2):.0f}% for "
                               "overall accuracy excluded)", 110), fontsize=10)
    return save_figure(fig, path, dpi=110)


__all__ = [
    "ClassSpecificResult",
    "accuracy_values",
    "plot_class_specific",
    "run_class_specific",
    "write_class_specific",
]
