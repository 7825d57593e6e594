"""Scale study: Neuron Shapley of EfficientNet-Lite0's last-stage channels (ImageNet).

The paper's large-network finding (Ghorbani & Zou 2020, Inception-v3): removing about 30 of
17k filters with the highest Shapley values destroys accuracy, while conductance needs about
twice as many. Here the analogue on EfficientNet-Lite0 with its ImageNet weights
(:mod:`neuronshapley.zoo.efficientnet`):

- players: every channel of the given layers (default the head conv's 1,280 channels); the
  layers before the first player layer run once per image (``ModelGame``'s prefix cache);
- game: fidelity, V(S) = agreement of the network with S kept (the rest mean-replaced, means
  over the valuation crops) with the full network's own top-1;
- data: seeded random crops and flips of the bundled photos (:mod:`neuronshapley.zoo.photos`),
  two disjoint crop sets: *valuation* (every ranking is computed on it) and *test* (every
  removal curve is measured on it); nothing is selected on either;
- rankings: Shapley (truncated walks with roulette fill and position strata, what
  ``method="auto"`` picks for such a budget, one run per seed, the seeds' walks pooled with
  :func:`~neuronshapley.estimators.merge.merge_results`), and the paper's baselines from
  :mod:`neuronshapley.evaluation.baselines` (leave-one-out, conductance, weight norm,
  activation norm, random) through :func:`~neuronshapley.studies.compare.run_compare`;
- report: test fidelity after removing each ranking's top-k channels, and the k at which it
  first falls below each of ``thresholds`` (default 0.5 and 0.1).
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

from neuronshapley.estimators import estimate
from neuronshapley.estimators.merge import merge_results
from neuronshapley.files import atomic_write_text, csv_text, json_safe
from neuronshapley.network.game import ModelGame
from neuronshapley.report.figures import save_figure
from neuronshapley.result import ShapleyResult
from neuronshapley.studies.compare import (
    COLOURS,
    SHAPLEY,
    CompareResult,
    removal_curves,
    run_compare,
    units_to_level,
    write_compare,
)
from neuronshapley.zoo.photos import Crop, bundled_photos, crop_inputs, random_crops

Log = Callable[[str], None]
THRESHOLDS = (0.5, 0.1)


@dataclass
class EfficientNetSetup:
    """The network, its players and the two disjoint crop sets with their targets (the full
    network's top-1)."""

    model: torch.nn.Module
    players: list[str]
    value_crops: list[Crop]
    test_crops: list[Crop]
    value_x: torch.Tensor
    value_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    crop_seeds: tuple[int, int]


def efficientnet_setup(n_value: int = 32, n_test: int = 48, crop_seeds: tuple[int, int] = (0, 1),
                       players: Sequence[str] = ("_conv_head",),
                       model: torch.nn.Module | None = None) -> EfficientNetSetup:
    """Pretrained EfficientNet-Lite0 (or ``model``), ``n_value`` valuation crops from seed
    ``crop_seeds[0]`` and ``n_test`` test crops from ``crop_seeds[1]`` sharing none of them."""
    if model is None:
        from neuronshapley.zoo.efficientnet import pretrained_efficientnet_lite0

        model = pretrained_efficientnet_lite0()
    photos = bundled_photos()
    value = random_crops(n_value, crop_seeds[0], photos)
    test = random_crops(n_test, crop_seeds[1], photos, exclude=value)
    vx, tx = crop_inputs(value, photos), crop_inputs(test, photos)
    with torch.inference_mode():
        vy, ty = model(vx).argmax(1), model(tx).argmax(1)
    return EfficientNetSetup(model, list(players), value, test, vx, vy, tx, ty,
                             tuple(crop_seeds))


def top_overlap(a: np.ndarray, b: np.ndarray, k: int) -> int:
    """How many of the top-``k`` of values ``a`` are in the top-``k`` of values ``b``."""
    return len(set(np.argsort(-a, kind="stable")[:k]) & set(np.argsort(-b, kind="stable")[:k]))


@dataclass
class EfficientNetStudy:
    """What :func:`run_efficientnet_study` measured."""

    compare: CompareResult
    seed_results: list[ShapleyResult]
    seed_curves: list[np.ndarray]  # each seed's own ranking, test fidelity for k = 0..K
    breaks: dict[str, dict[str, int | None]]  # ranking -> threshold -> k
    settings: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)


def run_efficientnet_study(
    out_dir: str | os.PathLike[str], setup: EfficientNetSetup | None = None,
    shapley_seeds: Sequence[int] = (0, 1), max_evaluations: int = 40_000, strata: int = 4,
    n_steps: int = 16, random_draws: int = 3, thresholds: Sequence[float] = THRESHOLDS,
    max_k: int | None = None, log: Log | None = None,
) -> EfficientNetStudy:
    """Run the study (see the module doc) and write its files into ``out_dir``:
    ``compare.csv``, ``levels.csv``, ``compare.png``, ``values/<ranking>/``,
    ``breaks.csv``, ``removal.png`` and ``summary.json``."""
    say = log or (lambda _msg: None)
    started = time.perf_counter()
    s = setup or efficientnet_setup()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    game = ModelGame(s.model, s.value_x, s.value_y, metric="accuracy", players=s.players)
    say(f"{game!r}; prefix cached: {game.split is not None}, {game.masks_per_pass} masks/pass")
    runs = []
    for seed in shapley_seeds:
        res = estimate(game, method="truncated", seed=seed, max_evaluations=max_evaluations,
                       truncation_fill="roulette", strata=strata, progress=False)
        res.info.update(game=repr(game), game_fingerprint=game.fingerprint())
        runs.append(res)
        say(f"  Shapley seed {seed}: {res.evaluations} evaluations, {res.wall_time:.0f} s")
    shapley = runs[0] if len(runs) == 1 else merge_results(runs)
    shapley.info.update(seeds=list(shapley_seeds), game=repr(game))
    n = game.n_players
    K = n if max_k is None else int(max_k)
    comp = run_compare(
        s.model, s.value_x, s.value_y, s.test_x, s.test_y, metric="accuracy",
        players=game.players_set, rankings={SHAPLEY: shapley}, max_k=K, small_k=30,
        level=float(thresholds[0]), random_draws=random_draws,
        conductance_options={"n_steps": n_steps, "batch_size": 2}, seed=0, log=say,
        game_options={"pass_size": game.pass_size},
        title=f"EfficientNet-Lite0, {n} channels ({', '.join(s.players)}): fidelity on "
              f"{len(s.test_y)} test crops after removing each ranking's top channels")
    test_game = ModelGame(s.model, s.test_x, s.test_y, metric="accuracy",
                          players=game.players_set, reference=s.value_x,
                          pass_size=game.pass_size)
    seed_curves = [removal_curves(test_game, r.ranking(), n, K)[0] for r in runs]
    breaks = {name: {f"{t:g}": units_to_level(c.heldout, t, strict=True)
                     for t in thresholds}
              for name, c in comp.curves.items()}
    if comp.curves["random"].draws is not None:
        for t in thresholds:
            per = [units_to_level(d, t, strict=True) for d in comp.curves["random"].draws]
            breaks["random"][f"{t:g}"] = (None if any(p is None for p in per)
                                          else int(np.median(per)))
    for seed, curve in zip(shapley_seeds, seed_curves, strict=True):
        breaks[f"{SHAPLEY} seed {seed}"] = {f"{t:g}": units_to_level(curve, t, strict=True)
                                            for t in thresholds}
    settings = {
        "players": s.players, "n_players": n, "value_crops": len(s.value_y),
        "test_crops": len(s.test_y), "crop_seeds": list(s.crop_seeds),
        "shared_crops": len(set(s.value_crops) & set(s.test_crops)),
        "photos": sorted({c.photo for c in s.value_crops}),
        "shapley": {"method": "truncated", "truncation_fill": "roulette", "strata": strata,
                    "seeds": list(shapley_seeds), "max_evaluations_per_seed": max_evaluations,
                    "walks": [int(r.info.get("walks", 0)) or None for r in runs],
                    "evaluations": [int(r.evaluations) for r in runs],
                    "wall_time_s": [round(float(r.wall_time), 1) for r in runs]},
        "conductance_steps": n_steps, "random_draws": random_draws, "max_k": K,
        "thresholds": list(thresholds), "torch_threads": torch.get_num_threads(),
        "prefix_cached": game.split is not None, "masks_per_pass": game.masks_per_pass,
    }
    k30 = min(30, n)
    facts = {
        "seed_top30_overlap": top_overlap(runs[0].values, runs[1].values, k30)
        if len(runs) > 1 else None,
        "value_classes": sorted(set(s.value_y.tolist())),
        "test_classes": sorted(set(s.test_y.tolist())),
        "fidelity_after_30": {name: float(c.heldout[min(30, K)])
                              for name, c in comp.curves.items()},
        "wall_time_s": round(time.perf_counter() - started, 1),
    }
    study = EfficientNetStudy(comp, runs, seed_curves, breaks, settings, facts)
    write_efficientnet_study(study, out)
    return study


def write_efficientnet_study(study: EfficientNetStudy, out: Path) -> None:
    """The comparison's files plus ``breaks.csv``, ``removal.png`` and ``summary.json``."""
    write_compare(study.compare, out, title=study.compare.settings.get("title"), plot_k=60)
    rows = [{"ranking": name, **{f"below_{t}": v for t, v in b.items()}}
            for name, b in study.breaks.items()]
    atomic_write_text(out / "breaks.csv", csv_text(rows))
    for seed_result in study.seed_results:
        seed_result.save(out / "values" / f"{SHAPLEY}_seed{seed_result.seed}")
    plot_removal(study, out / "removal.png")
    summary = {"compare": study.compare.to_json(), "breaks": study.breaks,
               "settings": study.settings, "facts": study.facts,
               "seed_curves": [c.tolist() for c in study.seed_curves]}
    atomic_write_text(out / "summary.json", json.dumps(json_safe(summary), indent=2) + "\n")


def plot_removal(study: EfficientNetStudy, path: Path) -> Path:
    """Test fidelity against channels removed (log axis), each ranking, thresholds dotted."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    comp = study.compare
    ks = np.arange(1, comp.max_k + 1)
    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    for name, c in comp.curves.items():
        colour = COLOURS.get(name)
        if c.draws is not None:
            ax.fill_between(ks, c.draws[:, 1:].min(0), c.draws[:, 1:].max(0), color=colour,
                            alpha=0.15, linewidth=0)
        label = f"random (mean of {len(c.draws)})" if c.draws is not None else name
        ax.plot(ks, c.heldout[1:], color=colour, lw=2.4 if name == SHAPLEY else 1.4,
                label=label)
    for seed_result, curve in zip(study.seed_results, study.seed_curves, strict=True):
        ax.plot(ks, curve[1:], color=COLOURS[SHAPLEY], lw=0.8, ls="--", alpha=0.7,
                label=f"shapley, seed {seed_result.seed} alone")
    for t in study.settings["thresholds"]:
        ax.axhline(t, color="k", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("channels removed (top-k of each ranking, log scale)")
    ax.set_ylabel("fidelity on the test crops")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower left", framealpha=0.85)
    st = study.settings
    ax.set_title(f"EfficientNet-Lite0, {st['n_players']} channels: valuation on "
                 f"{st['value_crops']} crops, test on {st['test_crops']} other crops",
                 fontsize=9.5)
    return save_figure(fig, path, dpi=110)


__all__ = ["THRESHOLDS", "EfficientNetSetup", "EfficientNetStudy", "efficientnet_setup",
           "plot_removal", "run_efficientnet_study", "top_overlap",
           "write_efficientnet_study"]
