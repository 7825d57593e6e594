"""Study "adversarial repair": remove the units a targeted attack exploits (Neuron Shapley §4.4).

Recipe, on the digits CNN:

1. Targeted L-infinity PGD (:func:`~neuronshapley.adversarial.pgd_targeted`, a random wrong
   target class per image) crafts adversarial examples **on the full model** for the
   validation and the test images, once.
2. The game plays on one fixed validation batch of clean and adversarial images, with
   ``V(S) = attack success - clean accuracy``
   (:func:`~neuronshapley.adversarial.adversarial_metric`, a vector game that also returns
   both parts). Units with the largest values carry the
   attack without carrying clean accuracy.
3. Units are ranked by ``phi(success) - clean_weight * phi(clean accuracy)``
   (``clean_weight=1`` is the paper's metric; Shapley values are linear, so other weights
   need no new estimation). The number ``k`` removed (and the weight, when several are
   given) is chosen on validation: the lowest validation success whose clean accuracy drops
   at most ``max_clean_drop``.
4. The repaired model (:func:`~neuronshapley.repair.repair`) is measured on the **test**
   images: clean accuracy; success of the original attack (test examples crafted on the
   full model); success of a black-box transfer attack crafted on an independently trained
   second architecture (:class:`TransferCNN`); and, for honesty, success of a fresh
   white-box attack on the repaired model itself. ``random_draws`` removals of ``k`` random
   units are the control.

Files written by :func:`write_adversarial` into ``out_dir``: ``adversarial.csv``,
``selection.csv``, ``adversarial.png``, ``values/``, ``repaired_model.pt`` (+ ``.json``),
``summary.json``.
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

from ..adversarial import (
    ADVERSARIAL_OUTPUTS,
    adversarial_game,
    attack_success,
    pgd_targeted,
    random_targets,
)
from ..estimators import estimate
from ..repair import repair, save_repaired
from ..result import ShapleyResult, library_versions
from .fairness import _csv, _json_safe, _removal_masks, _write

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
    """Digits split into train / validation (25% of the training part) / test (20%); the
    attacked :class:`~neuronshapley.zoo.DigitsCNN` and a :class:`TransferCNN` (another seed)
    trained on the same training images (seconds each)."""
    from sklearn.model_selection import train_test_split

    from ..zoo.colored_digits import fit_classifier
    from ..zoo.digits import DigitsData, accuracy, load_digits_split, train_digits_cnn

    data = load_digits_split(seed=seed)
    idx = np.arange(len(data.y_train))
    i_tr, i_val = train_test_split(idx, test_size=0.25, random_state=seed,
                                   stratify=data.y_train.numpy())
    tr = torch.as_tensor(i_tr)
    va = torch.as_tensor(i_val)
    fit = DigitsData(data.x_train[tr], data.y_train[tr], data.x_train[va], data.y_train[va])
    model = train_digits_cnn(fit, epochs=epochs, seed=seed, channels=channels, hidden=hidden)
    torch.manual_seed(seed + 1)
    surrogate = fit_classifier(TransferCNN(), fit.x_train, fit.y_train, epochs=epochs,
                               seed=seed + 1)
    info = {
        "model_test_accuracy": accuracy(model, data.x_test, data.y_test),
        "surrogate_test_accuracy": accuracy(surrogate, data.x_test, data.y_test),
        "train_images": len(tr), "val_images": len(va), "test_images": len(data.y_test),
    }
    desc = (f"scikit-learn digits; attacked: DigitsCNN {channels} conv filters + {hidden} "
            "hidden units; transfer surrogate: TransferCNN (24-48 filters, 5x5 then 3x3), "
            "trained separately on the same images")
    return AdversarialSetup(model, surrogate, fit.x_train, fit.y_train, fit.x_test, fit.y_test,
                            data.x_test, data.y_test, desc, info)


@dataclass(frozen=True)
class AttackSettings:
    """Targeted L-infinity PGD settings; pixels in [0, 1]."""

    eps: float = 0.2
    step_size: float = 0.05
    steps: int = 20
    random_start: bool = True

    def run(self, model: nn.Module, x: torch.Tensor, target: torch.Tensor,
            generator: torch.Generator) -> torch.Tensor:
        return pgd_targeted(model, x, target, self.eps, self.step_size, self.steps,
                            self.random_start, (0.0, 1.0), generator)


@dataclass
class AdversarialResult:
    """What :func:`run_adversarial` found; rates are fractions in [0, 1]."""

    setup: AdversarialSetup
    attack: AttackSettings
    values: ShapleyResult
    clean_weight: float
    order: list[str]  # units by decreasing phi(success) - clean_weight * phi(clean)
    k_grid: list[int]
    val_curve: np.ndarray  # (len(k_grid), 2): success, clean accuracy on validation
    test_curve: np.ndarray  # same on test (for the plot only)
    chosen_k: int
    removed: list[str]
    table: dict[str, dict[str, float]]  # model -> measure -> rate (test split)
    selection: list[dict[str, Any]]  # every (weight, k) tried on validation
    per_weight: list[dict[str, Any]]  # each weight's own validation choice, and its test rates
    repaired: nn.Module
    settings: dict[str, Any]
    wall_time: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)

    def rows(self) -> list[dict[str, Any]]:
        return [{"model": m, **{k: v for k, v in r.items()}} for m, r in self.table.items()]

    def hindsight(self) -> tuple[int, float]:
        """The k of ``k_grid`` (chosen weight) with the lowest *test* success within the clean
        drop limit, and that success over the original: a ceiling, not a valid choice."""
        ok = self.test_curve[:, 1] >= self.test_curve[0, 1] - self.settings["max_clean_drop"]
        r = int(np.argmin(np.where(ok, self.test_curve[:, 0], np.inf)))
        return self.k_grid[r], float(self.test_curve[r, 0] / max(self.test_curve[0, 0], 1e-12))

    def interpretation(self) -> str:
        a, b = self.table["original"], self.table["repaired"]
        ratio = b["original_attack_success"] / max(a["original_attack_success"], 1e-12)
        return (
            f"Removing {self.chosen_k} unit{'' if self.chosen_k == 1 else 's'} (chosen on "
            "validation) takes the original "
            f"attack's test success from {100 * a['original_attack_success']:.1f}% to "
            f"{100 * b['original_attack_success']:.1f}% (x{ratio:.2f}); clean accuracy "
            f"{100 * a['clean_accuracy']:.1f}% -> {100 * b['clean_accuracy']:.1f}%; transfer "
            f"attack {100 * a['transfer_attack_success']:.1f}% -> "
            f"{100 * b['transfer_attack_success']:.1f}%; a new white-box attack on the "
            f"repaired model succeeds {100 * b['whitebox_attack_success']:.1f}%."
        )

    def to_json(self) -> dict[str, Any]:
        info = self.values.info
        return {
            "description": self.setup.description,
            "attack": vars(self.attack),
            "clean_weight": self.clean_weight,
            "chosen_k": self.chosen_k,
            "removed": self.removed,
            "table": self.rows(),
            "selection": self.selection,
            "per_weight": self.per_weight,
            "estimate": {"method": self.values.method,
                         "evaluations": int(self.values.evaluations),
                         "walks": info.get("walks"),
                         "wall_time_s": round(self.values.wall_time, 3),
                         "v_full": info.get("v_full"), "v_null": info.get("v_null")},
            "interpretation": self.interpretation(),
            "settings": self.settings,
            "wall_time_s": round(self.wall_time, 3),
            "setup_info": self.setup.info,
            "versions": library_versions(),
        }


@torch.inference_mode()
def _clean_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((model(x).argmax(-1) == y).double().mean())


def run_adversarial(
    setup: AdversarialSetup,
    attack: AttackSettings | None = None,
    max_evaluations: int = 6000,
    method: str = "truncated",
    seed: int = 0,
    players: Sequence[str] | str | None = DEFAULT_PLAYERS,
    clean_weights: Sequence[float] = (0.5, 0.75, 1.0),
    k_grid: Sequence[int] | None = None,
    max_clean_drop: float = 0.10,
    random_draws: int = 10,
    progress: bool | Callable[[dict[str, Any]], None] = False,
    log: Log | None = None,
) -> AdversarialResult:
    """Craft attacks, value units for ``success - clean accuracy``, remove the top, re-measure.

    Args:
        setup: models and splits (:func:`adversarial_setup`).
        attack: PGD settings (default :class:`AttackSettings`).
        max_evaluations: estimator budget (game evaluations).
        method: ``"truncated"`` (walks stop once both success and clean accuracy are at the
            dead network's level) or ``"permutation"``.
        seed: seeds the target classes, PGD random starts, the estimator and the control.
        players: unit layers (default: the conv filters and the hidden layer).
        clean_weights: weights ``lambda`` of ``phi(success) - lambda * phi(clean)`` tried on
            validation (1.0 is the paper's metric; all come from the same estimate).
        k_grid: numbers of removed units tried (default 0..30, then by 5 to 60).
        max_clean_drop: largest validation clean-accuracy drop allowed (0.10 = 10 points).
        random_draws: random removals of ``k`` units measured on test as a control.
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

    game = adversarial_game(model, s.x_val, s.y_val, adv_val, t_val, players=players)
    test_game = adversarial_game(model, s.x_test, s.y_test, adv_test, t_test,
                                 players=game.players_set, reference=s.x_val)
    n = game.n_players
    say(f"{n} units; V = success - clean accuracy on {len(s.y_val)} clean + {len(s.y_val)} "
        f"adversarial validation images; {method} Monte-Carlo, {max_evaluations} evaluations")
    values = estimate(game, method=method, seed=seed, max_evaluations=max_evaluations,
                      progress=progress)
    values.info.update(game=repr(game), outputs=list(ADVERSARIAL_OUTPUTS))
    i_succ, i_clean = ADVERSARIAL_OUTPUTS.index("attack_success"), ADVERSARIAL_OUTPUTS.index(
        "clean_accuracy")

    grid = sorted({k for k in (k_grid if k_grid is not None else
                               [*range(0, 31), *range(35, 61, 5)]) if 0 <= k <= n} | {0})
    selection: list[dict[str, Any]] = []
    best: tuple[float, int, float] | None = None  # (val success, k, weight)
    curves: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    for lam in clean_weights:
        score = values.values[:, i_succ] - lam * values.values[:, i_clean]
        order_idx = np.argsort(-score, kind="stable")
        curve = game(_removal_masks(order_idx, n, grid))[:, [i_succ, i_clean]]
        curves[float(lam)] = (order_idx, curve)
        for r, k in enumerate(grid):
            ok = curve[r, 1] >= curve[0, 1] - max_clean_drop - 1e-12
            selection.append({"clean_weight": float(lam), "removed": k,
                              "val_success": float(curve[r, 0]),
                              "val_clean_accuracy": float(curve[r, 1]), "allowed": int(ok)})
            cand = (float(curve[r, 0]), k, float(lam))
            if ok and (best is None or cand[:2] < best[:2]):
                best = cand
    assert best is not None  # k = 0 is always allowed
    _, chosen_k, lam = best
    per_weight = []  # each weight's own validation choice, measured on test (for the report)
    for w, (o, c) in curves.items():
        ok = c[:, 1] >= c[0, 1] - max_clean_drop - 1e-12
        r = int(np.argmin(np.where(ok, c[:, 0], np.inf)))
        t = test_game(_removal_masks(o, n, [grid[r]]))[0]
        per_weight.append({"clean_weight": w, "removed": grid[r], "val_success": float(c[r, 0]),
                           "val_clean_accuracy": float(c[r, 1]),
                           "test_success": float(t[i_succ]),
                           "test_clean_accuracy": float(t[i_clean])})
    order_idx, val_curve = curves[lam]
    test_curve = test_game(_removal_masks(order_idx, n, grid))[:, [i_succ, i_clean]]
    order = [game.players[i] for i in order_idx]
    removed = order[:chosen_k]
    say(f"chosen on validation: remove {chosen_k} unit{'' if chosen_k == 1 else 's'} "
        f"(clean weight {lam:g})")

    repaired = repair(model, game, removed)
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
    if chosen_k > 0 and random_draws > 0:
        rng = np.random.default_rng([seed, 0xAD5])
        rmasks = np.ones((random_draws, n), dtype=bool)
        for d in range(random_draws):
            rmasks[d, rng.permutation(n)[:chosen_k]] = False
        rv = test_game(rmasks)
        table[f"random {chosen_k} (mean of {random_draws})"] = {
            "clean_accuracy": float(rv[:, i_clean].mean()),
            "original_attack_success": float(rv[:, i_succ].mean()),
            "transfer_attack_success": float("nan"),
            "whitebox_attack_success": float("nan"),
        }
    settings = {
        "seed": seed, "method": method, "max_evaluations": max_evaluations,
        "players": players, "n_players": n, "clean_weights": list(clean_weights),
        "k_grid": grid, "max_clean_drop": max_clean_drop, "random_draws": random_draws,
        "replacement": "mean", "reference": "mean activations on the clean validation images",
        "targets": "uniform over the 9 wrong classes, one per image",
        "threads": torch.get_num_threads(),
    }
    result = AdversarialResult(setup, attack, values, lam, order, grid, val_curve, test_curve,
                               chosen_k, removed, table, selection, per_weight, repaired,
                               settings)
    result.wall_time = time.perf_counter() - started
    return result


def write_adversarial(result: AdversarialResult, out_dir: str | os.PathLike[str],
                      plot: bool = True) -> dict[str, Path]:
    """Write the table, selection curve, values, repaired model, plot and summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"table": out / "adversarial.csv", "selection": out / "selection.csv",
             "values": out / "values", "model": out / "repaired_model.pt",
             "summary": out / "summary.json"}
    _write(files["table"], _csv(result.rows()))
    _write(files["selection"], _csv(result.selection))
    result.values.save(files["values"])
    save_repaired(result.repaired, files["model"], {
        "removed": result.removed,
        "how": "units replaced by their mean activation on the clean validation images",
        "load": "neuronshapley.repair.load_repaired(neuronshapley.zoo.DigitsCNN(), "
                "'repaired_model.pt')",
        "architecture": type(result.setup.model).__name__,
    })
    if plot:
        files["plot"] = out / "adversarial.png"
        plot_adversarial(result, files["plot"])
    result.files = files
    summary = {**result.to_json(), "files": {k: str(v) for k, v in files.items()}}
    _write(files["summary"], json.dumps(_json_safe(summary), indent=2) + "\n")
    return files


def plot_adversarial(result: AdversarialResult, path: str | os.PathLike[str]) -> Path:
    """Attack success and clean accuracy (validation, test) as the top units are removed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, curve, split in ((axes[0], result.val_curve, "validation (values, choice of k)"),
                             (axes[1], result.test_curve, "test (held out)")):
        ax.plot(result.k_grid, 100 * curve[:, 0], marker=".", color="tab:red",
                label="original attack success")
        ax.plot(result.k_grid, 100 * curve[:, 1], marker=".", color="tab:blue",
                label="clean accuracy")
        ax.axhline(50 * curve[0, 0], color="tab:red", ls=":", lw=1, label="half the success")
        ax.axvline(result.chosen_k, color="grey", lw=1)
        ax.set_title(split, fontsize=10)
        ax.set_xlabel(f"units removed (by phi(success) - {result.clean_weight:g} phi(clean))")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("%")
    axes[0].legend(fontsize=8)
    a = result.attack
    fig.suptitle(f"adversarial repair — targeted PGD eps {a.eps}, {a.steps} steps", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
