"""Study "fairness": find the units that hurt an under-served group, remove them, re-measure.

Recipe (Neuron Shapley, §4.3), on a model with a known bias:

1. The **validation** split is cut in two parts (``selection_fraction``; examples that
   share a key, e.g. one digit drawn in two colours, stay together): the *value* part and
   the *selection* part. The **test** split is used by neither.
2. One estimation on the value part values every unit for every group score at once: the
   game's metric is the vector :func:`group_scores` (accuracy and class-balanced accuracy of
   each group, from the same forward passes). The estimator is a study-level choice
   (``method="auto"``: truncated walks with unbiased roulette truncation and position
   strata; ``"tmab"``, ``"truncated"`` and ``"permutation"`` selectable).
3. Candidate rankings, all from the same values (Shapley values are linear in the game):
   ``phi(target) - mu * phi(overall)`` for each ``mu`` in ``overall_weights`` (``mu = 0`` is
   the paper's ranking: most negative value for the under-served group's score first) and,
   with ``knapsack``, the ratio ranking (:func:`~.repair_common.knapsack_order`): units
   that hurt the target and help nothing else first, then by the target gain per point of
   overall accuracy lost.
4. The ranking and ``k`` are chosen on the **selection** part: the best target score
   among the ``k`` in ``k_grid`` whose overall accuracy (on the deployment mix of groups)
   drops at most ``max_overall_drop`` below the unrepaired model's.
5. :func:`~neuronshapley.network.repair.repair` builds the repaired model; every group's accuracy
   before and after is measured on the **test** split, beside ``random_draws`` removals of
   ``k`` random units and, with ``search_steps``, a greedy search that removes unit by unit
   whatever helps the target most on the selection part (no values: the control that shows
   how far removing units can go at all).

Two benchmarks (:func:`fairness_setup`): ``"digits"`` (coloured digits, a colour shortcut
for the 95% majority, V = minority accuracy) and ``"adult"`` (an MLP on UCI Adult trained
with only 10% of the female rows kept, V = class-balanced accuracy of women: the model
under-predicts high income for them).

Files written by :func:`write_fairness` into ``out_dir``: ``fairness.csv`` (scores per split,
model and removal), ``selection.csv`` (every ranking and ``k`` tried), ``curve.csv`` (scores
on the three splits along the chosen ranking), ``fairness.png``, ``values/`` (the Shapley
values, every output), ``repaired_model.pt`` (state dict;
:func:`~neuronshapley.network.repair.load_repaired`) with ``repaired_model.json``, ``summary.json``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuronshapley.evaluation.removal import random_masks
from neuronshapley.network.game import ModelGame
from neuronshapley.network.repair import repair
from neuronshapley.studies import repair_common as common
from neuronshapley.zoo.colored_digits import GroupedData

Log = Callable[[str], None]
BENCHMARKS = ("digits", "adult")
SCORES = ("accuracy", "balanced")
SPLITS = ("value", "selection", "test")

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

    @classmethod
    def mean(cls, scores: Sequence[GroupScores]) -> GroupScores:
        """The mean of several scores (e.g. the random-removal draws)."""
        return cls(*(tuple(np.mean([getattr(r, a) for r in scores], axis=0).tolist())
                     for a in ("accuracy", "balanced", "weights")),
                   float(np.mean([r.pooled for r in scores])))


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
    #: validation examples with the same key stay in the same part of the validation split
    val_keys: np.ndarray | None = None


def fairness_setup(
    name: str = "digits", seed: int = 0, epochs: int | None = None, max_train: int | None = None,
    minority_keep: float = 0.1,
) -> FairnessSetup:
    """Build (train, seconds) one benchmark: ``"digits"`` or ``"adult"``.

    ``minority_keep`` (Adult): share of the female training rows kept (1.0 trains the
    unbiased reference model).
    """
    if name == "digits":
        from neuronshapley.zoo.colored_digits import (
            MINORITY,
            load_colored_digits,
            train_colored_digits_cnn,
        )

        data = load_colored_digits(seed=seed)
        model = train_colored_digits_cnn(data, epochs=epochs or 20, seed=seed)
        maj = data.majority_fraction
        half = len(data.val) // 2  # validation digit i is example i (majority) and i + half
        return FairnessSetup(
            "digits", model, data.train, data.val, data.test, ("majority", "minority"),
            (maj, 1 - maj), "accuracy[minority]", ["features.*", "classifier.1"],
            f"coloured digits: colour = label for the majority ({maj:.0%} of training), random "
            f"for the minority ({int((data.train.group == MINORITY).sum())} training images); "
            "CNN 16-32-32 conv filters + 64 hidden units",
            {"train_images": len(data.train)},
            np.arange(len(data.val)) % half,
        )
    if name == "adult":
        from neuronshapley.zoo.tabular import load_adult, train_tabular_mlp

        data = load_adult("sex", seed=seed, minority_keep=minority_keep, max_train=max_train)
        model = train_tabular_mlp(data, epochs=epochs or 8, seed=seed)
        share = float((data.val.group == 1).double().mean())
        return FairnessSetup(
            "adult", model, data.train, data.val, data.test, data.group_names,
            (1 - share, share), "balanced[female]", None,
            f"UCI Adult (income > 50K), MLP 64-32 trained with {minority_keep:.0%} of the "
            f"female rows kept ({int((data.train.group == 1).sum())} of {len(data.train)} "
            "training rows)",
            {"train_rows": len(data.train), "features": data.num_features},
        )
    raise ValueError(f"unknown fairness benchmark {name!r}; choose one of {BENCHMARKS}")


def user_fairness_setup(settings: Mapping[str, Any], groups: str, target_group: int | str,
                        heldout: str | None = None, heldout_fraction: float | None = None,
                        score: str = "accuracy",
                        group_labels: Sequence[str] | None = None) -> FairnessSetup:
    """A :class:`FairnessSetup` for the user's model: ``groups`` names the integer array of
    group ids in the data files, ``target_group`` the group (id or name) whose ``score``
    (``"accuracy"`` or ``"balanced"``) the repair should raise; the deployment weights are the
    groups' shares of the valuation split."""
    from neuronshapley.studies.user_setup import group_names, load_user_study

    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    study = load_user_study(settings, heldout, heldout_fraction, groups=groups)
    assert study.value_groups is not None and study.heldout_groups is not None
    names = group_names(study.value_groups, study.heldout_groups, group_labels)
    target = str(target_group)
    if target not in names:
        try:
            target = names[int(target_group)]
        except (ValueError, IndexError):
            raise ValueError(f"target group {target_group!r} is not a group of {groups!r}: "
                             f"give an id 0..{len(names) - 1} or one of {list(names)}") from None
    val = GroupedData(study.value.x, study.value.y, study.value_groups)
    test = GroupedData(study.heldout.x, study.heldout.y, study.heldout_groups)
    for split, data in (("valuation", val), ("held-out", test)):
        missing = [g for i, g in enumerate(names) if not bool((data.group == i).any())]
        if missing:
            raise ValueError(f"the {split} split has no example of group(s) {missing}: every "
                             "group needs examples in both splits")
    shares = torch.bincount(val.group, minlength=len(names)).double() / len(val)
    return FairnessSetup(
        "user", study.model, val, val, test, names, tuple(float(s) for s in shares),
        f"{score}[{target}]", study.players, study.description, {"notes": study.notes})


# ------------------------------------------------------------------------------ study
@dataclass(kw_only=True)
class FairnessResult(common.RepairResult):
    """What :func:`run_fairness` found; scores are fractions in [0, 1].

    Curves (:class:`~.repair_common.RepairResult`) are (len(k_grid), 2G) group scores; the
    chosen ranking is ``"mu=<w>"`` or ``"knapsack"``.
    """

    setup: FairnessSetup
    scores: dict[str, GroupScores]  # "<split>/<model>": value|selection|test x original|repaired
    random_test: list[GroupScores]  # test scores after removing k random units

    @property
    def target_index(self) -> int:
        return score_names(self.setup.group_names).index(self.setup.target)

    def change(self, split: str = "test") -> dict[str, float]:
        """Repaired minus original, in accuracy points (x100), per group and overall."""
        a, b = self.scores[f"{split}/original"], self.scores[f"{split}/repaired"]
        return _change(a, b, self.setup.group_names)

    def rows(self) -> list[dict[str, Any]]:
        """Table rows: one per split and model (original, repaired, controls on test)."""
        entries = [(s, m, self.chosen_k if m == "repaired" else 0, self.scores[f"{s}/{m}"])
                   for s in SPLITS for m in ("original", "repaired")
                   if f"{s}/{m}" in self.scores]
        if self.random_test:
            entries.append(("test", f"random {self.chosen_k} (mean of {len(self.random_test)})",
                            self.chosen_k, GroupScores.mean(self.random_test)))
        if self.search is not None:
            entries.append(("test", "greedy search (control)", self.search["k"],
                            self.search["test"]))
        out = []
        for split, model, k, sc in entries:
            row: dict[str, Any] = {"split": split, "model": model, "removed": k}
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
            f"Removing {self.chosen_k} unit{'' if self.chosen_k == 1 else 's'} (ranking "
            f"{self.ranking}, chosen on the selection part of validation) moves test {t} from "
            f"{100 * flat_before[i]:.1f}% to {100 * flat_after[i]:.1f}% "
            f"({ch[t]:+.1f} points); overall accuracy on the deployment mix "
            f"{100 * before.overall:.1f}% -> {100 * after.overall:.1f}% ({ch['overall']:+.1f})."
        )

    def to_json(self) -> dict[str, Any]:
        search = None
        if self.search is not None:
            search = {**self.search, "test": self.search["test"].__dict__,
                      "change_test_points": _change(self.scores["test/original"],
                                                    self.search["test"],
                                                    self.setup.group_names)}
        return {
            "benchmark": self.setup.name,
            "description": self.setup.description,
            "target": self.setup.target,
            "groups": list(self.setup.group_names),
            "deployment_weights": list(self.setup.weights),
            "chosen_k": self.chosen_k,
            "ranking": self.ranking,
            "removed": self.removed,
            "table": self.rows(),
            "change_test_points": self.change("test"),
            **self.summary_tail(search, self.setup.info),
        }


def _change(a: GroupScores, b: GroupScores, groups: Sequence[str]) -> dict[str, float]:
    out = {f"accuracy[{g}]": 100 * (b.accuracy[i] - a.accuracy[i]) for i, g in enumerate(groups)}
    out.update({f"balanced[{g}]": 100 * (b.balanced[i] - a.balanced[i])
                for i, g in enumerate(groups)})
    out["overall"] = 100 * (b.overall - a.overall)
    out["pooled"] = 100 * (b.pooled - a.pooled)
    return out


@torch.inference_mode()
def evaluate_groups(model: nn.Module, data: GroupedData, weights: Sequence[float]) -> GroupScores:
    """Scores of ``model`` (a plain forward pass) on ``data``."""
    logits = model(data.x)
    values = group_scores(logits[None], data.y, data.group)[0].numpy()
    pooled = float((logits.argmax(-1) == data.y).double().mean())
    return GroupScores.from_values(values, weights, pooled)


def _subset(data: GroupedData, idx: np.ndarray) -> GroupedData:
    i = torch.as_tensor(idx)
    return GroupedData(data.x[i], data.y[i], data.group[i])


def run_fairness(
    setup: FairnessSetup,
    max_evaluations: int = 16000,
    method: str = "auto",
    seed: int = 0,
    k_grid: Sequence[int] | None = None,
    max_overall_drop: float = 0.05,
    overall_weights: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.5),
    knapsack: bool = True,
    selection_fraction: float = 0.5,
    replacement: str = "mean",
    search_steps: int = 0,
    random_draws: int = 10,
    estimator_options: Mapping[str, Any] | None = None,
    progress: bool | Callable[[dict[str, Any]], None] = False,
    log: Log | None = None,
) -> FairnessResult:
    """Value units for every group score, remove the worst for the target, re-measure.

    Args:
        setup: the benchmark (:func:`fairness_setup`).
        max_evaluations: budget of game evaluations of the estimator.
        method: estimator, one of :data:`~.repair_common.ESTIMATORS` (``"auto"``: truncated
            walks, roulette truncation, position strata; ``"tmab"`` separates the units most
            harmful to the target).
        seed: seed of the split, the estimator and the random control.
        k_grid: numbers of removed units tried (default 0..30, then by 5 to 60).
        max_overall_drop: largest drop of overall accuracy (deployment mix) on the selection
            part allowed when choosing ``k`` (0.05 = 5 points).
        overall_weights: weights ``mu`` of the rankings ``phi(target) - mu * phi(overall)``
            (0 is the paper's ranking by the target alone).
        knapsack: also try the ratio ranking (see the module doc).
        selection_fraction: share of the validation split kept for choosing the ranking and
            ``k`` (the rest values the units); 0 values and chooses on the whole split.
        replacement: how removed units are replaced, for the values and the repaired model
            alike (``"mean"`` activation over validation, ``"zero"``, ``"channel"``).
        search_steps: with > 0, the greedy-search control (that many steps).
        random_draws: random removals of ``k`` units measured on test as a control.
        estimator_options: more :func:`neuronshapley.estimate` options.
    """
    say = log or (lambda _msg: None)
    started = time.perf_counter()
    names = score_names(setup.group_names)
    if setup.target not in names:
        raise ValueError(f"target {setup.target!r} is not one of {names}")
    t_idx = names.index(setup.target)
    g = len(setup.group_names)
    w = np.asarray(setup.weights)
    metric = _named_metric(setup.group_names)
    value_idx, select_idx = common.split_indices(
        len(setup.val), selection_fraction, seed, keys=setup.val_keys,
        strata=setup.val.group.numpy())
    value_data, select_data = _subset(setup.val, value_idx), _subset(setup.val, select_idx)

    def make(data: GroupedData, players: Any) -> ModelGame:
        return ModelGame(setup.model, data.x, data.y, metric=metric, players=players,
                         reference=setup.val.x, replacement=replacement, extra=data.group)

    game = make(value_data, setup.players)
    select_game = game if selection_fraction == 0 else make(select_data, game.players_set)
    test_game = make(setup.test, game.players_set)
    n = game.n_players
    say(f"{setup.name}: {n} units; V = {', '.join(names)} on {len(value_data)} validation "
        f"examples (k chosen on {len(select_data)}); {method}, {max_evaluations} evaluations")
    estimated: Any = game
    if method == "tmab":  # the bandit separates the largest values: give it minus the target
        estimated = common.AppendedOutput(game, t_idx, f"minus {setup.target}")
    values = common.estimate_values(estimated, method, max_evaluations, seed,
                                    estimator_options, progress, tmab_output=len(names))
    values.info.update(game=repr(game), benchmark=setup.name, target=setup.target)
    phi = values.values[:, : len(names)]
    grid = common.k_grid(k_grid, n)
    phi_overall = phi[:, :g] @ w  # Shapley values are linear in the game
    rankings: dict[str, np.ndarray] = {
        f"mu={mu:g}": np.argsort(phi[:, t_idx] - mu * phi_overall, kind="stable")
        for mu in overall_weights}
    if knapsack:
        rankings[common.KNAPSACK] = common.knapsack_order(-phi[:, t_idx], phi_overall)
    if not rankings:
        raise ValueError("no ranking to try: give overall_weights or knapsack=True")

    def measure(g_: Any, order: np.ndarray, ks: Sequence[int]) -> np.ndarray:
        return g_(common.removal_masks(order, n, ks))

    def objective(curve: np.ndarray) -> np.ndarray:
        return -curve[:, t_idx]

    def allowed(curve: np.ndarray) -> np.ndarray:
        overall = curve[:, :g] @ w
        return overall >= overall[0] - max_overall_drop - 1e-12

    def describe(curve: np.ndarray) -> dict[str, Any]:
        return {"target": curve[..., t_idx], "overall": curve[..., :g] @ w}

    choice = common.choose_removal(rankings, grid, (game, select_game, test_game), measure,
                                   objective, allowed, describe, log=say)
    chosen_k = choice.chosen_k
    repaired = repair(setup.model, game, choice.removed(game.players))
    scores: dict[str, GroupScores] = {}
    for split, data in (("value", value_data), ("selection", select_data), ("test", setup.test)):
        if split == "selection" and selection_fraction == 0:
            continue
        for label, model in (("original", setup.model), ("repaired", repaired)):
            scores[f"{split}/{label}"] = evaluate_groups(model, data, setup.weights)
    random_test: list[GroupScores] = []
    if chosen_k > 0 and random_draws > 0:
        rng = np.random.default_rng([seed, 0xFA1])
        for row in test_game(random_masks(n, [chosen_k], random_draws, rng)[0]):
            random_test.append(GroupScores.from_values(row, setup.weights, float("nan")))
    search = None
    if search_steps > 0:
        say(f"greedy-search control: {search_steps} steps of {n} removals each")
        base = select_game(np.ones((1, n), dtype=bool))[0]
        floor = float(base[:g] @ w) - max_overall_drop - 1e-12
        control = common.search_control(
            select_game, test_game, n, search_steps,
            lambda v: np.where(v[:, :g] @ w >= floor, v[:, t_idx], -np.inf),
            measure, objective, allowed)
        search = {**control.as_dict(game.players, describe, with_test=False),
                  "test": GroupScores.from_values(control.test, setup.weights, float("nan"))}
    settings = {
        "seed": seed, "method": method, "max_evaluations": max_evaluations,
        "estimator_options": dict(estimator_options or {}),
        "k_grid": grid, "max_overall_drop": max_overall_drop, "random_draws": random_draws,
        "overall_weights": list(overall_weights), "knapsack": knapsack,
        "rankings": list(rankings), "selection_fraction": selection_fraction,
        "search_steps": search_steps,
        "players": setup.players, "n_players": n, "replacement": replacement,
        "reference": "activations on the whole validation split",
        "value_examples": len(value_data), "selection_examples": len(select_data),
        "test_examples": len(setup.test), "threads": torch.get_num_threads(),
    }
    result = FairnessResult.chosen(choice, game.players, values, search, repaired, settings,
                                   setup=setup, scores=scores, random_test=random_test)
    result.wall_time = time.perf_counter() - started
    return result


# ------------------------------------------------------------------------------ files
def write_fairness(result: FairnessResult, out_dir: str | os.PathLike[str],
                   plot: bool = True) -> dict[str, Path]:
    """Write the table, selection and curve CSVs, values, repaired model, plot and summary."""
    names = score_names(result.setup.group_names)
    g = len(result.setup.group_names)
    w = np.asarray(result.setup.weights)

    def columns(row: np.ndarray) -> dict[str, Any]:
        return {**{nm: row[j] for j, nm in enumerate(names)}, "overall": float(row[:g] @ w)}

    return result.write_files(
        out_dir, ("fairness.csv", result.rows()), columns,
        {"benchmark": result.setup.name, "removed": result.removed,
         "how": f"units replaced as in the game ({result.settings['replacement']} over the "
                "validation split)",
         "load": "neuronshapley.network.repair.load_repaired("
                 "<fresh model of the same architecture>, "
                 "'repaired_model.pt')",
         "architecture": type(result.setup.model).__name__},
        (lambda path: plot_fairness(result, path)) if plot else None, "fairness.png",
    )


def plot_fairness(result: FairnessResult, path: str | os.PathLike[str]) -> Path:
    """Group accuracies (selection part, test) as the chosen ranking's units are removed."""
    names = result.setup.group_names
    g = len(names)

    def draw(ax: Any, curve: np.ndarray) -> None:
        for i, nm in enumerate(names):
            ax.plot(result.k_grid, 100 * curve[:, i], marker=".", label=f"accuracy[{nm}]")
        if result.setup.target.startswith("balanced"):
            i = result.target_index
            ax.plot(result.k_grid, 100 * curve[:, i], ls="--", label=result.setup.target)
        ax.plot(result.k_grid, 100 * curve[:, :g] @ np.asarray(result.setup.weights),
                color="black", ls=":", label="overall (deployment mix)")

    return result.plot_curves(
        path, draw, f"fairness repair — {result.setup.name}: target {result.setup.target}")
