"""Study "fairness": find the units that hurt an under-served group, remove them, re-measure.

Recipe (Neuron Shapley, §4.3), on a model with a known bias:

1. One estimation on the **validation** split values every unit for every group score at
   once: the game's metric is the vector :func:`group_scores` (accuracy and class-balanced
   accuracy of each group, from the same forward passes), estimated with truncated
   Monte-Carlo walks whose samples serve all outputs.
2. Units are ranked by their value for the **target** output (the under-served group's
   score), most negative first: those are the units that hurt that group.
   Optionally units that carry overall accuracy are protected: the ranking is by
   ``phi(target) - mu * phi(overall)`` (``mu = 0`` is the paper's ranking; values are linear
   in the game, so every ``mu`` comes from the same estimate).
3. ``k`` (and ``mu``) are chosen on the validation split: the best target score among the
   ``k`` in ``k_grid`` whose overall accuracy (on the deployment mix of groups) drops at most
   ``max_overall_drop`` below the unrepaired model's.
4. :func:`~neuronshapley.repair.repair` builds the repaired model; every group's accuracy
   before and after is measured on the **test** split, which nothing above has seen,
   beside ``random_draws`` removals of ``k`` random units (a control).

Two benchmarks (:func:`fairness_setup`): ``"digits"`` (coloured digits, a colour shortcut
for the 95% majority, V = minority accuracy) and ``"adult"`` (an MLP on UCI Adult trained
with only 10% of the female rows kept, V = class-balanced accuracy of women: the model
under-predicts high income for them).

Files written by :func:`write_fairness` into ``out_dir``: ``fairness.csv`` (scores per split,
model and removal), ``selection.csv`` (every ``mu, k`` tried on validation), ``curve.csv``
(validation and test scores along the chosen ranking), ``fairness.png``,
``values/`` (the Shapley values, every output), ``repaired_model.pt`` (state dict;
:func:`~neuronshapley.repair.load_repaired`) with ``repaired_model.json``, ``summary.json``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..estimators import estimate
from ..files import atomic_write_text as _write
from ..files import csv_text as _csv
from ..files import json_safe as _json_safe
from ..game import ModelGame
from ..repair import repair, save_repaired
from ..result import ShapleyResult, library_versions
from ..zoo.colored_digits import GroupedData

Log = Callable[[str], None]
BENCHMARKS = ("digits", "adult")
SCORES = ("accuracy", "balanced")

__all__ = [
    "BENCHMARKS",
    "FairnessResult",
    "FairnessSetup",
    "GroupScores",
    "evaluate_groups",
    "fairness_setup",
    "group_scores",
    "plot_fairness",
    "run_fairness",
    "score_names",
    "write_fairness",
]


# ----------------------------------------------------------------------------- metric
def group_scores(outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None) -> torch.Tensor:
    """Accuracy of each group, then class-balanced accuracy of each group, (M, 2G).

    ``extra``: per-example group ids, int tensor (B,) (G = max id + 1). Balanced accuracy is
    the mean recall over the classes present in the group.
    """
    if outputs.ndim != 3:
        raise ValueError(f"expected outputs (M, B, C), got {tuple(outputs.shape)}")
    if extra is None:
        raise ValueError("group_scores needs per-example group ids as extra")
    groups = torch.as_tensor(extra, device=outputs.device).long()
    n_groups, n_classes = int(groups.max()) + 1, outputs.shape[-1]
    correct = (outputs.argmax(-1) == targets).double()  # (M, B)
    cell = torch.nn.functional.one_hot(groups * n_classes + targets, n_groups * n_classes)
    cell = cell.double()  # (B, G*C)
    counts = cell.sum(0).view(n_groups, n_classes)
    hits = (correct @ cell).view(-1, n_groups, n_classes)
    per_group = counts.sum(1)
    if bool((per_group == 0).any()):
        raise ValueError("every group needs at least one example")
    accuracy = hits.sum(-1) / per_group
    present = counts > 0
    recall = hits / counts.clamp(min=1)
    balanced = (recall * present).sum(-1) / present.sum(-1)
    return torch.cat([accuracy, balanced], dim=-1)


def score_names(group_names: Sequence[str]) -> list[str]:
    """Output names of :func:`group_scores`: ``accuracy[<group>]``, then ``balanced[<group>]``."""
    return [f"{s}[{g}]" for s in SCORES for g in group_names]


def _named_metric(group_names: Sequence[str]) -> Callable[..., torch.Tensor]:
    def metric(outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None) -> torch.Tensor:
        return group_scores(outputs, targets, extra)

    metric.__name__ = "group_scores"
    metric.output_names = lambda d: score_names(group_names)[:d]  # type: ignore[attr-defined]
    return metric


@dataclass(frozen=True)
class GroupScores:
    """Scores of one model on one split: per group, on the deployment mix and pooled."""

    accuracy: tuple[float, ...]
    balanced: tuple[float, ...]
    weights: tuple[float, ...]  # deployment share of each group
    pooled: float  # accuracy over the split's examples as they are

    @property
    def overall(self) -> float:
        """Accuracy on the deployment mix of groups: ``sum_g weights[g] * accuracy[g]``."""
        return float(np.dot(self.weights, self.accuracy))

    @classmethod
    def from_values(cls, values: np.ndarray, weights: Sequence[float], pooled: float
                    ) -> GroupScores:
        g = len(weights)
        return cls(tuple(map(float, values[:g])), tuple(map(float, values[g : 2 * g])),
                   tuple(map(float, weights)), float(pooled))


# ------------------------------------------------------------------------------ setup
@dataclass
class FairnessSetup:
    """A trained model with a known bias, its grouped splits and what to improve."""

    name: str
    model: nn.Module
    train: GroupedData
    val: GroupedData
    test: GroupedData
    group_names: tuple[str, ...]
    weights: tuple[float, ...]  # deployment share of each group ("overall" accuracy)
    target: str  # output of group_scores to raise, e.g. "accuracy[minority]"
    players: Sequence[str] | str | None
    description: str
    info: dict[str, Any] = field(default_factory=dict)


def fairness_setup(
    name: str = "digits", seed: int = 0, epochs: int | None = None, max_train: int | None = None
) -> FairnessSetup:
    """Build (train, seconds) one benchmark: ``"digits"`` or ``"adult"``."""
    if name == "digits":
        from ..zoo.colored_digits import MINORITY, load_colored_digits, train_colored_digits_cnn

        data = load_colored_digits(seed=seed)
        model = train_colored_digits_cnn(data, epochs=epochs or 20, seed=seed)
        maj = data.majority_fraction
        return FairnessSetup(
            "digits", model, data.train, data.val, data.test, ("majority", "minority"),
            (maj, 1 - maj), "accuracy[minority]", ["features.*", "classifier.1"],
            f"coloured digits: colour = label for the majority ({maj:.0%} of training), random "
            f"for the minority ({int((data.train.group == MINORITY).sum())} training images); "
            "CNN 16-32-32 conv filters + 64 hidden units",
            {"train_images": len(data.train)},
        )
    if name == "adult":
        from ..zoo.tabular import load_adult, train_tabular_mlp

        keep = 0.1
        data = load_adult("sex", seed=seed, minority_keep=keep, max_train=max_train)
        model = train_tabular_mlp(data, epochs=epochs or 8, seed=seed)
        share = float((data.val.group == 1).double().mean())
        return FairnessSetup(
            "adult", model, data.train, data.val, data.test, data.group_names,
            (1 - share, share), "balanced[female]", None,
            f"UCI Adult (income > 50K), MLP 64-32 trained with {keep:.0%} of the female rows "
            f"kept ({int((data.train.group == 1).sum())} of {len(data.train)} training rows)",
            {"train_rows": len(data.train), "features": data.num_features},
        )
    raise ValueError(f"unknown fairness benchmark {name!r}; choose one of {BENCHMARKS}")


# ------------------------------------------------------------------------------ study
@dataclass
class FairnessResult:
    """What :func:`run_fairness` found; scores are fractions in [0, 1]."""

    setup: FairnessSetup
    values: ShapleyResult
    overall_weight: float  # mu of the chosen ranking phi(target) - mu * phi(overall)
    order: list[str]  # units by increasing phi(target) - mu * phi(overall)
    k_grid: list[int]
    val_curve: np.ndarray  # (len(k_grid), 2G) group scores on validation after removing k
    test_curve: np.ndarray  # same on test (for the plot only; k is not chosen on it)
    chosen_k: int
    removed: list[str]
    scores: dict[str, GroupScores]  # "<split>/<model>": val|test x original|repaired
    random_test: list[GroupScores]  # test scores after removing k random units
    selection: list[dict[str, Any]]  # every (weight, k) tried on validation
    per_weight: list[dict[str, Any]]  # each weight's own validation choice, and its test scores
    repaired: nn.Module
    settings: dict[str, Any]
    wall_time: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def target_index(self) -> int:
        return score_names(self.setup.group_names).index(self.setup.target)

    def change(self, split: str = "test") -> dict[str, float]:
        """Repaired minus original, in accuracy points (x100), per group and overall."""
        a, b = self.scores[f"{split}/original"], self.scores[f"{split}/repaired"]
        out = {f"accuracy[{g}]": 100 * (b.accuracy[i] - a.accuracy[i])
               for i, g in enumerate(self.setup.group_names)}
        out.update({f"balanced[{g}]": 100 * (b.balanced[i] - a.balanced[i])
                    for i, g in enumerate(self.setup.group_names)})
        out["overall"] = 100 * (b.overall - a.overall)
        out["pooled"] = 100 * (b.pooled - a.pooled)
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Table rows: one per split and model (original, repaired, random control)."""
        out = []
        keys = [("val", "original"), ("val", "repaired"), ("test", "original"),
                ("test", "repaired")]
        entries = [(s, m, self.scores[f"{s}/{m}"]) for s, m in keys]
        if self.random_test:
            mean = GroupScores(
                *(tuple(np.mean([getattr(r, a) for r in self.random_test], axis=0).tolist())
                  for a in ("accuracy", "balanced", "weights")),
                float(np.mean([r.pooled for r in self.random_test])),
            )
            entries.append(("test", f"random {self.chosen_k} (mean of {len(self.random_test)})",
                            mean))
        for split, model, sc in entries:
            row: dict[str, Any] = {"split": split, "model": model,
                                   "removed": 0 if model == "original" else self.chosen_k}
            for i, g in enumerate(self.setup.group_names):
                row[f"accuracy[{g}]"] = sc.accuracy[i]
            for i, g in enumerate(self.setup.group_names):
                row[f"balanced[{g}]"] = sc.balanced[i]
            row["overall"] = sc.overall
            row["pooled"] = sc.pooled
            out.append(row)
        return out

    def hindsight(self) -> tuple[int, float]:
        """The k of ``k_grid`` with the best *test* target within the overall-drop limit, and
        its gain in points: a ceiling for this ranking, not a valid choice (it peeks at test)."""
        g = len(self.setup.group_names)
        overall = self.test_curve[:, :g] @ np.asarray(self.setup.weights)
        ok = overall >= overall[0] - self.settings["max_overall_drop"] - 1e-12
        t = self.target_index
        r = int(np.argmax(np.where(ok, self.test_curve[:, t], -np.inf)))
        return self.k_grid[r], 100 * float(self.test_curve[r, t] - self.test_curve[0, t])

    def interpretation(self) -> str:
        ch = self.change("test")
        t = self.setup.target
        before = self.scores["test/original"]
        after = self.scores["test/repaired"]
        i = self.target_index
        flat_before = [*before.accuracy, *before.balanced]
        flat_after = [*after.accuracy, *after.balanced]
        return (
            f"Removing {self.chosen_k} unit{'' if self.chosen_k == 1 else 's'} (chosen on "
            f"validation) moves test {t} from "
            f"{100 * flat_before[i]:.1f}% to {100 * flat_after[i]:.1f}% "
            f"({ch[t]:+.1f} points); overall accuracy on the deployment mix "
            f"{100 * before.overall:.1f}% -> {100 * after.overall:.1f}% ({ch['overall']:+.1f})."
        )

    def to_json(self) -> dict[str, Any]:
        info = self.values.info
        return {
            "benchmark": self.setup.name,
            "description": self.setup.description,
            "target": self.setup.target,
            "groups": list(self.setup.group_names),
            "deployment_weights": list(self.setup.weights),
            "chosen_k": self.chosen_k,
            "overall_weight": self.overall_weight,
            "removed": self.removed,
            "table": self.rows(),
            "change_test_points": self.change("test"),
            "selection": self.selection,
            "per_weight": self.per_weight,
            "estimate": {"method": self.values.method,
                         "evaluations": int(self.values.evaluations),
                         "walks": info.get("walks"),
                         "wall_time_s": round(self.values.wall_time, 3)},
            "interpretation": self.interpretation(),
            "settings": self.settings,
            "wall_time_s": round(self.wall_time, 3),
            "setup_info": self.setup.info,
            "versions": library_versions(),
        }


@torch.inference_mode()
def evaluate_groups(model: nn.Module, data: GroupedData, weights: Sequence[float]) -> GroupScores:
    """Scores of ``model`` (a plain forward pass) on ``data``."""
    logits = model(data.x)
    values = group_scores(logits[None], data.y, data.group)[0].numpy()
    pooled = float((logits.argmax(-1) == data.y).double().mean())
    return GroupScores.from_values(values, weights, pooled)


def run_fairness(
    setup: FairnessSetup,
    max_evaluations: int = 4000,
    method: str = "truncated",
    seed: int = 0,
    k_grid: Sequence[int] | None = None,
    max_overall_drop: float = 0.05,
    overall_weights: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.5),
    random_draws: int = 10,
    progress: bool | Callable[[dict[str, Any]], None] = False,
    log: Log | None = None,
) -> FairnessResult:
    """Value units for every group score on validation, remove the worst for the target.

    Args:
        setup: the benchmark (:func:`fairness_setup`).
        max_evaluations: budget of game evaluations of the estimator.
        method: ``"truncated"`` or ``"permutation"`` (walks serve all outputs at once).
        seed: seed of the estimator and of the random control.
        k_grid: numbers of removed units tried on validation (default 0..30, then by 5 to 60).
        max_overall_drop: largest drop of validation overall accuracy (deployment mix)
            allowed when choosing ``k`` (0.05 = 5 points).
        overall_weights: weights ``mu`` of the ranking ``phi(target) - mu * phi(overall)``
            tried on validation (0 is the paper's ranking by the target alone; every weight
            comes from the same estimate, as Shapley values are linear in the game).
        random_draws: random removals of ``k`` units measured on test as a control.
    """
    say = log or (lambda _msg: None)
    started = time.perf_counter()
    names = score_names(setup.group_names)
    if setup.target not in names:
        raise ValueError(f"target {setup.target!r} is not one of {names}")
    t_idx = names.index(setup.target)
    metric = _named_metric(setup.group_names)
    game = ModelGame(setup.model, setup.val.x, setup.val.y, metric=metric,
                     players=setup.players, extra=setup.val.group)
    test_game = ModelGame(setup.model, setup.test.x, setup.test.y, metric=metric,
                          players=game.players_set, reference=setup.val.x,
                          extra=setup.test.group)
    n = game.n_players
    say(f"{setup.name}: {n} units; V = {', '.join(names)} on {len(setup.val)} validation "
        f"examples; {method} Monte-Carlo, {max_evaluations} evaluations")
    values = estimate(game, method=method, seed=seed, max_evaluations=max_evaluations,
                      progress=progress)
    values.info.update(game=repr(game), benchmark=setup.name, target=setup.target)
    grid = sorted({k for k in (k_grid if k_grid is not None else
                               [*range(0, 31), *range(35, 61, 5)]) if 0 <= k <= n} | {0})
    w = np.asarray(setup.weights)
    g = len(setup.group_names)
    phi_overall = values.values[:, :g] @ w  # Shapley values are linear in the game
    selection: list[dict[str, Any]] = []
    best: tuple[float, int, float] | None = None  # (-val target, k, weight)
    curves: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    for mu in overall_weights:
        order_mu = np.argsort(values.values[:, t_idx] - mu * phi_overall, kind="stable")
        curve = game(_removal_masks(order_mu, n, grid))
        curves[float(mu)] = (order_mu, curve)
        overall = curve[:, :g] @ w
        for r, k in enumerate(grid):
            ok = bool(overall[r] >= overall[0] - max_overall_drop - 1e-12)
            selection.append({"overall_weight": float(mu), "removed": k,
                              "val_target": float(curve[r, t_idx]),
                              "val_overall": float(overall[r]), "allowed": int(ok)})
            cand = (-float(curve[r, t_idx]), k, float(mu))
            if ok and (best is None or cand < best):
                best = cand
    assert best is not None  # k = 0 is always allowed
    _, chosen_k, mu = best
    per_weight = []  # each weight's own validation choice, measured on test (for the report)
    for wt, (o, c) in curves.items():
        ov = c[:, :g] @ w
        ok = ov >= ov[0] - max_overall_drop - 1e-12
        r = int(np.argmax(np.where(ok, c[:, t_idx], -np.inf)))
        tv = test_game(_removal_masks(o, n, [grid[r]]))[0]
        per_weight.append({"overall_weight": wt, "removed": grid[r],
                           "val_target": float(c[r, t_idx]), "val_overall": float(ov[r]),
                           "test_target": float(tv[t_idx]),
                           "test_overall": float(tv[:g] @ w)})
    order_idx, val_curve = curves[mu]
    test_curve = test_game(_removal_masks(order_idx, n, grid))
    order = [game.players[i] for i in order_idx]
    removed = order[:chosen_k]
    say(f"chosen on validation: remove {chosen_k} unit{'' if chosen_k == 1 else 's'} "
        f"(overall weight {mu:g})")

    repaired = repair(setup.model, game, removed)
    scores: dict[str, GroupScores] = {}
    for split, data in (("val", setup.val), ("test", setup.test)):
        for label, model in (("original", setup.model), ("repaired", repaired)):
            scores[f"{split}/{label}"] = evaluate_groups(model, data, setup.weights)
    rng = np.random.default_rng([seed, 0xFA1])
    random_test: list[GroupScores] = []
    if chosen_k > 0 and random_draws > 0:
        rmasks = np.ones((random_draws, n), dtype=bool)
        for d in range(random_draws):
            rmasks[d, rng.permutation(n)[:chosen_k]] = False
        for row in test_game(rmasks):
            random_test.append(GroupScores.from_values(row, setup.weights, float("nan")))
    settings = {
        "seed": seed, "method": method, "max_evaluations": max_evaluations,
        "k_grid": grid, "max_overall_drop": max_overall_drop, "random_draws": random_draws,
        "overall_weights": list(overall_weights),
        "players": setup.players, "n_players": n, "replacement": "mean",
        "reference": "mean activations on the validation split",
        "val_examples": len(setup.val), "test_examples": len(setup.test),
        "threads": torch.get_num_threads(),
    }
    result = FairnessResult(
        setup, values, float(mu), order, grid, val_curve, test_curve, chosen_k, removed,
        scores, random_test, selection, per_weight, repaired, settings,
    )
    result.wall_time = time.perf_counter() - started
    return result


def _removal_masks(order: np.ndarray, n: int, grid: Sequence[int]) -> np.ndarray:
    """Masks (len(grid), n) removing the first k players of ``order`` for each k."""
    masks = np.ones((len(grid), n), dtype=bool)
    for r, k in enumerate(grid):
        masks[r, order[:k]] = False
    return masks


# ------------------------------------------------------------------------------ files
def write_fairness(result: FairnessResult, out_dir: str | os.PathLike[str],
                   plot: bool = True) -> dict[str, Path]:
    """Write the table, selection curve, values, repaired model, plot and summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"table": out / "fairness.csv", "selection": out / "selection.csv",
             "values": out / "values", "model": out / "repaired_model.pt",
             "summary": out / "summary.json"}
    _write(files["table"], _csv(result.rows()))
    names = score_names(result.setup.group_names)
    curve_rows = []
    g = len(result.setup.group_names)
    for r, k in enumerate(result.k_grid):
        row: dict[str, Any] = {"removed": k}
        row.update({f"val {nm}": result.val_curve[r, j] for j, nm in enumerate(names)})
        row["val overall"] = float(result.val_curve[r, :g] @ np.asarray(result.setup.weights))
        row.update({f"test {nm}": result.test_curve[r, j] for j, nm in enumerate(names)})
        row["chosen"] = int(k == result.chosen_k)
        curve_rows.append(row)
    files["curve"] = out / "curve.csv"
    _write(files["curve"], _csv(curve_rows))
    _write(files["selection"], _csv(result.selection))
    result.values.save(files["values"])
    save_repaired(result.repaired, files["model"], {
        "benchmark": result.setup.name, "removed": result.removed,
        "how": "units replaced by their mean activation on the validation split",
        "load": "neuronshapley.repair.load_repaired(<fresh model of the same architecture>, "
                "'repaired_model.pt')",
        "architecture": type(result.setup.model).__name__,
    })
    if plot:
        files["plot"] = out / "fairness.png"
        plot_fairness(result, files["plot"])
    result.files = files
    summary = {**result.to_json(), "files": {k: str(v) for k, v in files.items()}}
    _write(files["summary"], json.dumps(_json_safe(summary), indent=2) + "\n")
    return files


def plot_fairness(result: FairnessResult, path: str | os.PathLike[str]) -> Path:
    """Group accuracies (validation and test) as the most harmful units are removed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = result.setup.group_names
    g = len(names)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, curve, split in ((axes[0], result.val_curve, "validation (values, choice of k)"),
                             (axes[1], result.test_curve, "test (held out)")):
        for i, nm in enumerate(names):
            ax.plot(result.k_grid, 100 * curve[:, i], marker=".", label=f"accuracy[{nm}]")
        if result.setup.target.startswith("balanced"):
            i = result.target_index
            ax.plot(result.k_grid, 100 * curve[:, i], ls="--", label=result.setup.target)
        ax.plot(result.k_grid, 100 * curve[:, :g] @ np.asarray(result.setup.weights),
                color="black", ls=":", label="overall (deployment mix)")
        ax.axvline(result.chosen_k, color="grey", lw=1)
        ax.set_title(split, fontsize=10)
        ax.set_xlabel(f"units removed (by phi(target) - {result.overall_weight:g} phi(overall))")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("%")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"fairness repair — {result.setup.name}: target {result.setup.target}",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


