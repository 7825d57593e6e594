"""Study "adversarial repair": remove the units a targeted attack exploits (Neuron Shapley §4.4).

Recipe, on the digits CNN:

1. Targeted L-infinity PGD (:func:`~neuronshapley.studies.attacks.pgd_targeted`, a random wrong
   target class per image) crafts adversarial examples **on the full model** for the
   validation and the test images, once.
2. The validation images are cut in two parts (``selection_fraction``, stratified by
   label): the *value* part and the *selection* part. The test images are used by neither.
3. The game plays on the value part's clean and adversarial images, with
   ``V(S) = attack success - clean accuracy``
   (:func:`~neuronshapley.studies.attacks.adversarial_metric`, a vector game that also returns
   both parts). Units with the largest values carry the attack without carrying clean
   accuracy. The estimator is a study-level choice (``method="auto"``: truncated walks with
   roulette truncation and position strata; ``"tmab"`` separates the top of the paper's
   metric; ``"truncated"`` and ``"permutation"`` selectable).
4. Candidate rankings from the same values: ``phi(success) - lambda * phi(clean accuracy)``
   for each ``lambda`` in ``clean_weights`` (``lambda = 1`` is the paper's metric) and, with
   ``knapsack``, the ratio ranking (:func:`~.repair_common.knapsack_order`: success removed
   per point of clean accuracy lost). The ranking and the number ``k`` removed are chosen on
   the **selection** part: the lowest success whose clean accuracy drops at most
   ``max_clean_drop``.
5. The repaired model (:func:`~neuronshapley.network.repair.repair`) is measured on the **test**
   images: clean accuracy; success of the original attack (test examples crafted on the
   full model); success of a black-box transfer attack crafted on an independently trained
   second architecture (:class:`TransferCNN`); and, for honesty, success of a fresh
   white-box attack on the repaired model itself. ``random_draws`` removals of ``k`` random
   units and, with ``search_steps``, a greedy search on the selection part (no values) are
   the controls.

Files written by :func:`write_adversarial` into ``out_dir``: ``adversarial.csv``,
``selection.csv``, ``curve.csv``, ``adversarial.png``, ``values/``, ``repaired_model.pt``
(+ ``.json``), ``summary.json``.
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
from neuronshapley.network.repair import repair
from neuronshapley.studies import repair_common as common
from neuronshapley.studies.attacks import (
    ADVERSARIAL_OUTPUTS,
    adversarial_game,
    attack_success,
    pgd_targeted,
    random_targets,
)

Log = Callable[[str], None]
DEFAULT_PLAYERS: tuple[str, ...] = ("features.*", "classifier.1")

__all__ = [
    "AdversarialResult",
    "AdversarialSetup",
    "AttackSettings",
    "TransferCNN",
    "adversarial_setup",
    "plot_adversarial",
    "run_adversarial",
    "write_adversarial",
]


class TransferCNN(nn.Module):
    """A second, differently shaped digits CNN (the black-box attacker's surrogate).

    Conv(1->24, 5x5) ReLU MaxPool2, Conv(24->48, 3x3) ReLU MaxPool2, Linear(192 -> 10);
    input (N, 1, 8, 8).
    """

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(2 * width * 4, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@dataclass
class AdversarialSetup:
    """The attacked model, the transfer surrogate and the digits splits (x (N,1,8,8), y (N,))."""

    model: nn.Module
    surrogate: nn.Module
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    description: str
    info: dict[str, Any] = field(default_factory=dict)


def adversarial_setup(
    seed: int = 0, epochs: int = 20, channels: tuple[int, int, int] = (16, 32, 32),
    hidden: int = 64,
) -> AdversarialSetup:
    """The digits' splits of :func:`~neuronshapley.zoo.load_digits_split`: train (the models
    are trained on it), validation = its valuation and selection splits together (cut again
    by :func:`run_adversarial`'s ``selection_fraction``), test; the attacked
    :class:`~neuronshapley.zoo.DigitsCNN` and a :class:`TransferCNN` (another seed) trained on
    the same training images (seconds each)."""
    from neuronshapley.zoo.digits import accuracy, load_digits_split, train_digits_cnn
    from neuronshapley.zoo.training import fit_classifier

    data = load_digits_split(seed=seed)
    assert data.x_valuation is not None and data.x_selection is not None
    assert data.y_valuation is not None and data.y_selection is not None
    x_val = torch.cat([data.x_valuation, data.x_selection])
    y_val = torch.cat([data.y_valuation, data.y_selection])
    model = train_digits_cnn(data, epochs=epochs, seed=seed, channels=channels, hidden=hidden)
    torch.manual_seed(seed + 1)
    surrogate = fit_classifier(TransferCNN(), data.x_train, data.y_train, epochs=epochs,
                               seed=seed + 1)
    info = {
        "model_test_accuracy": accuracy(model, data.x_test, data.y_test),
        "surrogate_test_accuracy": accuracy(surrogate, data.x_test, data.y_test),
        "train_images": len(data.y_train), "val_images": len(y_val),
        "test_images": len(data.y_test),
    }
    desc = (f"scikit-learn digits; attacked: DigitsCNN {channels} conv filters + {hidden} "
            "hidden units; transfer surrogate: TransferCNN (24-48 filters, 5x5 then 3x3), "
            "trained separately on the same images")
    return AdversarialSetup(model, surrogate, data.x_train, data.y_train, x_val, y_val,
                            data.x_test, data.y_test, desc, info)


def user_adversarial_setup(settings: Mapping[str, Any], heldout: str | None = None,
                           heldout_fraction: float | None = None) -> AdversarialSetup:
    """An :class:`AdversarialSetup` for the user's model: attacks are crafted on the valuation
    split (values, ranking and k) and the held-out split (test); the transfer attacks use the
    model itself (white-box). ``info["players"]`` holds the unit layers asked for."""
    from neuronshapley.studies.user_setup import load_user_study

    study = load_user_study(settings, heldout, heldout_fraction)
    v, h = study.value, study.heldout
    return AdversarialSetup(
        study.model, study.model, v.x, v.y, v.x, v.y, h.x, h.y,
        f"{study.description}; transfer attacks from the model itself (white-box)",
        {"val_images": len(v), "test_images": len(h), "notes": study.notes,
         "players": study.players})


@dataclass(frozen=True)
class AttackSettings:
    """Targeted L-infinity PGD settings; adversarial inputs stay inside ``bounds``
    (pixels in [0, 1] by default; None: unbounded)."""

    eps: float = 0.2
    step_size: float = 0.05
    steps: int = 20
    random_start: bool = True
    bounds: tuple[float, float] | None = (0.0, 1.0)

    def run(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor,
            generator: torch.Generator) -> torch.Tensor:
        return pgd_targeted(model, x, target, self.eps, self.step_size, self.steps,
                            self.random_start, self.bounds, generator)


@dataclass(kw_only=True)
class AdversarialResult(common.RepairResult):
    """What :func:`run_adversarial` found; rates are fractions in [0, 1].

    Curves (:class:`~.repair_common.RepairResult`) are (len(k_grid), 2): attack success and
    clean accuracy; the chosen ranking is ``"lambda=<w>"`` or ``"knapsack"``.
    """

    setup: AdversarialSetup
    attack: AttackSettings
    table: dict[str, dict[str, float]]  # model -> measure -> rate (test split)

    def rows(self) -> list[dict[str, Any]]:
        return [{"model": m, **dict(r)} for m, r in self.table.items()]

    def hindsight(self) -> tuple[int, float]:
        """The k of ``k_grid`` (chosen ranking) with the lowest *test* success within the
        clean drop limit, and that success over the original: a ceiling, not a valid choice."""
        ok = self.test_curve[:, 1] >= self.test_curve[0, 1] - self.settings["max_clean_drop"]
        r = int(np.argmin(np.where(ok, self.test_curve[:, 0], np.inf)))
        return self.k_grid[r], float(self.test_curve[r, 0] / max(self.test_curve[0, 0], 1e-12))

    def interpretation(self) -> str:
        a, b = self.table["original"], self.table["repaired"]
        ratio = b["original_attack_success"] / max(a["original_attack_success"], 1e-12)
        return (
            f"Removing {self.chosen_k} unit{'' if self.chosen_k == 1 else 's'} (ranking "
            f"{self.ranking}, chosen on the selection part of validation) takes the original "
            f"attack's test success from {100 * a['original_attack_success']:.1f}% to "
            f"{100 * b['original_attack_success']:.1f}% (x{ratio:.2f}); clean accuracy "
            f"{100 * a['clean_accuracy']:.1f}% -> {100 * b['clean_accuracy']:.1f}% "
            f"({100 * (b['clean_accuracy'] - a['clean_accuracy']):+.1f} points); transfer "
            f"attack {100 * a['transfer_attack_success']:.1f}% -> "
            f"{100 * b['transfer_attack_success']:.1f}%; a new white-box attack on the "
            f"repaired model succeeds {100 * b['whitebox_attack_success']:.1f}%."
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.setup.description,
            "attack": vars(self.attack),
            "ranking": self.ranking,
            "chosen_k": self.chosen_k,
            "removed": self.removed,
            "table": self.rows(),
            **self.summary_tail(self.search, self.setup.info, ("v_full", "v_null")),
        }


@torch.inference_mode()
def _clean_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(-1) == y).double().mean())


def run_adversarial(
    setup: AdversarialSetup,
    attack: AttackSettings | None = None,
    max_evaluations: int = 16000,
    method: str = "auto",
    seed: int = 0,
    players: Sequence[str] | str | None = DEFAULT_PLAYERS,
    clean_weights: Sequence[float] = (0.5, 0.75, 1.0),
    knapsack: bool = True,
    k_grid: Sequence[int] | None = None,
    max_clean_drop: float = 0.10,
    selection_fraction: float = 0.5,
    replacement: str = "mean",
    search_steps: int = 0,
    random_draws: int = 10,
    estimator_options: Mapping[str, Any] | None = None,
    progress: bool | Callable[[dict[str, Any]], None] = False,
    log: Log | None = None,
) -> AdversarialResult:
    """Craft attacks, value units for ``success - clean accuracy``, remove the top, re-measure.

    Args:
        setup: models and splits (:func:`adversarial_setup`).
        attack: PGD settings (default :class:`AttackSettings`).
        max_evaluations: estimator budget (game evaluations).
        method: estimator, one of :data:`~.repair_common.ESTIMATORS` (``"auto"`` default;
            ``"tmab"`` separates the top units of the paper's metric, output 0).
        seed: seeds the target classes, PGD random starts, the split, the estimator and the
            control.
        players: unit layers (default: the conv filters and the hidden layer).
        clean_weights: weights ``lambda`` of ``phi(success) - lambda * phi(clean)`` tried
            (1.0 is the paper's metric; all come from the same estimate).
        knapsack: also try the ratio ranking (see the module doc).
        k_grid: numbers of removed units tried (default 0..30, then by 5 to 60).
        max_clean_drop: largest clean-accuracy drop on the selection part allowed (0.10 =
            10 points).
        selection_fraction: share of the validation images kept for choosing the ranking
            and ``k`` (the rest values the units); 0 values and chooses on all of them.
        replacement: how removed units are replaced, for the values and the repaired model
            alike (``"mean"`` activation over the clean validation images, ``"zero"``...).
        search_steps: with > 0, the greedy-search control (that many steps).
        random_draws: random removals of ``k`` units measured on test as a control.
        estimator_options: more :func:`neuronshapley.estimate` options.
    """
    say = log or (lambda _msg: None)
    attack = attack or AttackSettings()
    started = time.perf_counter()
    model, s = setup.model, setup
    gen = torch.Generator().manual_seed(seed)
    t_val = random_targets(s.y_val, 10, gen)
    t_test = random_targets(s.y_test, 10, gen)
    say(f"crafting targeted PGD (eps {attack.eps}, step {attack.step_size}, {attack.steps} "
        "steps) on the full model and on the transfer surrogate")
    adv_val = attack.run(model, s.x_val, t_val, gen)
    adv_test = attack.run(model, s.x_test, t_test, gen)
    adv_transfer = attack.run(s.surrogate, s.x_test, t_test, gen)

    value_idx, select_idx = common.split_indices(len(s.y_val), selection_fraction, seed,
                                                 strata=s.y_val.numpy())

    def make(x: torch.Tensor, y: torch.Tensor, adv: torch.Tensor, t: torch.Tensor,
             units: Any) -> Any:
        return adversarial_game(model, x, y, adv, t, players=units, reference=s.x_val,
                                replacement=replacement)

    vi, si = torch.as_tensor(value_idx), torch.as_tensor(select_idx)
    game = make(s.x_val[vi], s.y_val[vi], adv_val[vi], t_val[vi], players)
    select_game = game if selection_fraction == 0 else make(
        s.x_val[si], s.y_val[si], adv_val[si], t_val[si], game.players_set)
    test_game = make(s.x_test, s.y_test, adv_test, t_test, game.players_set)
    n = game.n_players
    say(f"{n} units; V = success - clean accuracy on {len(vi)} clean + {len(vi)} adversarial "
        f"validation images (k chosen on {len(si)} + {len(si)}); {method}, "
        f"{max_evaluations} evaluations")
    values = common.estimate_values(
        game, method, max_evaluations, seed, estimator_options, progress,
        tmab_output=ADVERSARIAL_OUTPUTS.index("success_minus_clean"))
    values.info.update(game=repr(game), outputs=list(ADVERSARIAL_OUTPUTS))
    i_succ = ADVERSARIAL_OUTPUTS.index("attack_success")
    i_clean = ADVERSARIAL_OUTPUTS.index("clean_accuracy")
    phi = values.values
    grid = common.k_grid(k_grid, n)
    rankings: dict[str, np.ndarray] = {
        f"lambda={lam:g}": np.argsort(-(phi[:, i_succ] - lam * phi[:, i_clean]), kind="stable")
        for lam in clean_weights}
    if knapsack:
        rankings[common.KNAPSACK] = common.knapsack_order(phi[:, i_succ], phi[:, i_clean])
    if not rankings:
        raise ValueError("no ranking to try: give clean_weights or knapsack=True")

    def rates(g: Any, order: np.ndarray, ks: Sequence[int]) -> np.ndarray:
        return g(common.removal_masks(order, n, ks))[:, [i_succ, i_clean]]

    def success(curve: np.ndarray) -> np.ndarray:
        return curve[:, 0]

    def allowed(curve: np.ndarray) -> np.ndarray:
        return curve[:, 1] >= curve[0, 1] - max_clean_drop - 1e-12

    def describe(curve: np.ndarray) -> dict[str, Any]:
        return {"success": curve[..., 0], "clean_accuracy": curve[..., 1]}

    choice = common.choose_removal(rankings, grid, (game, select_game, test_game), rates,
                                   success, allowed, describe, log=say)
    chosen_k = choice.chosen_k
    repaired = repair(model, game, choice.removed(game.players))
    table: dict[str, dict[str, float]] = {}
    for label, net in (("original", model), ("repaired", repaired)):
        whitebox = (adv_test if label == "original"
                    else attack.run(net, s.x_test, t_test, torch.Generator().manual_seed(seed)))
        table[label] = {
            "clean_accuracy": _clean_accuracy(net, s.x_test, s.y_test),
            "original_attack_success": attack_success(net, adv_test, t_test),
            "transfer_attack_success": attack_success(net, adv_transfer, t_test),
            "whitebox_attack_success": attack_success(net, whitebox, t_test),
        }
    nan = float("nan")
    if chosen_k > 0 and random_draws > 0:
        rng = np.random.default_rng([seed, 0xAD5])
        rv = test_game(random_masks(n, [chosen_k], random_draws, rng)[0])
        table[f"random {chosen_k} (mean of {random_draws})"] = {
            "clean_accuracy": float(rv[:, i_clean].mean()),
            "original_attack_success": float(rv[:, i_succ].mean()),
            "transfer_attack_success": nan, "whitebox_attack_success": nan,
        }
    search = None
    if search_steps > 0:
        say(f"greedy-search control: {search_steps} steps of {n} removals each")
        floor = float(select_game(np.ones((1, n), dtype=bool))[0, i_clean]) - max_clean_drop
        control = common.search_control(
            select_game, test_game, n, search_steps,
            lambda v: np.where(v[:, i_clean] >= floor - 1e-12, -v[:, i_succ], -np.inf),
            rates, success, allowed)
        search = control.as_dict(game.players, describe)
        table[f"greedy search {control.k} (control)"] = {
            "clean_accuracy": float(control.test[1]),
            "original_attack_success": float(control.test[0]),
            "transfer_attack_success": nan, "whitebox_attack_success": nan,
        }
    settings = {
        "seed": seed, "method": method, "max_evaluations": max_evaluations,
        "estimator_options": dict(estimator_options or {}),
        "players": players, "n_players": n, "clean_weights": list(clean_weights),
        "knapsack": knapsack, "rankings": list(rankings), "k_grid": grid,
        "max_clean_drop": max_clean_drop, "selection_fraction": selection_fraction,
        "search_steps": search_steps, "random_draws": random_draws,
        "replacement": replacement, "reference": "activations on the clean validation images",
        "value_images": len(vi), "selection_images": len(si), "test_images": len(s.y_test),
        "targets": "uniform over the 9 wrong classes, one per image",
        "threads": torch.get_num_threads(),
    }
    result = AdversarialResult.chosen(choice, game.players, values, search, repaired, settings,
                                      setup=setup, attack=attack, table=table)
    result.wall_time = time.perf_counter() - started
    return result


def write_adversarial(result: AdversarialResult, out_dir: str | os.PathLike[str],
                      plot: bool = True) -> dict[str, Path]:
    """Write the tables, values, repaired model, plot and summary."""

    def columns(row: np.ndarray) -> dict[str, float]:
        return {"success": float(row[0]), "clean_accuracy": float(row[1])}

    return result.write_files(
        out_dir, ("adversarial.csv", result.rows()), columns,
        {"removed": result.removed,
         "how": f"units replaced as in the game ({result.settings['replacement']} over the "
                "clean validation images)",
         "load": "neuronshapley.network.repair.load_repaired(neuronshapley.zoo.DigitsCNN(), "
                 "'repaired_model.pt')",
         "architecture": type(result.setup.model).__name__},
        (lambda path: plot_adversarial(result, path)) if plot else None, "adversarial.png",
    )


def plot_adversarial(result: AdversarialResult, path: str | os.PathLike[str]) -> Path:
    """Attack success and clean accuracy (selection part, test) as the top units go."""

    def draw(ax: Any, curve: np.ndarray) -> None:
        ax.plot(result.k_grid, 100 * curve[:, 0], marker=".", color="tab:red",
                label="original attack success")
        ax.plot(result.k_grid, 100 * curve[:, 1], marker=".", color="tab:blue",
                label="clean accuracy")
        ax.axhline(50 * curve[0, 0], color="tab:red", ls=":", lw=1, label="half the success")

    a = result.attack
    return result.plot_curves(
        path, draw, f"adversarial repair — targeted PGD eps {a.eps}, {a.steps} steps")
