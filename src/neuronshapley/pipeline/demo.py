"""End-to-end demo: a certified top-k of the last conv layer's filters of a small digits CNN.

:func:`run_demo` trains (or loads from the cache) :func:`~neuronshapley.zoo.pretrained_digits_cnn`,
values the 32 filters of its last conv layer by their Shapley value towards accuracy on the
valuation split with TMAB (the paper's multi-armed bandit for the top-k, whose joint
confidence sequences certify the top-k within the budget), then checks the values by
ablation: accuracy after removing the ``j`` filters with the largest values versus ``j`` random
filters, on the valuation images the values were estimated on and on the test images, which
neither the training nor the estimate saw (:func:`~neuronshapley.zoo.load_digits_split`).

Files written into ``out_dir``:

- ``values.csv``, ``metadata.json``: the Shapley values (see :meth:`ShapleyResult.save`);
- ``ablation.csv``: one row per split and number of removed filters;
- ``summary.json``: accuracies, evaluations, wall times, model accuracy and the settings.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neuronshapley.estimators import estimate
from neuronshapley.evaluation.removal import removal_curve, removal_masks
from neuronshapley.files import atomic_write_text, csv_text
from neuronshapley.interrupts import deferred_interrupts
from neuronshapley.network.game import ModelGame
from neuronshapley.pipeline.outdir import OutputFolder
from neuronshapley.progress import ProgressFn, make_progress
from neuronshapley.result import ShapleyResult, library_versions
from neuronshapley.runtime import torch_threads

#: Default TMAB evaluation budget. One evaluation (accuracy of a sub-network on the 359
#: valuation images) costs ~1 ms on one CPU thread: the layers before the players run once
#: (the game's prefix cache). The default top-3 was certified after 9,999 evaluations
#: (seed 0, 9.6 s on a 2-core machine), seeds 1 and 2 after 15,538 and 17,686; a top 5 is
#: not separated as reliably (seed 0 up to epsilon after 18,172, seed 1 not within 30,000).
DEFAULT_MAX_EVALUATIONS = 30_000
#: Default size of the top set the demo certifies.
DEFAULT_K = 3
#: Numbers of removed filters in the ablation check (``k`` is always added).
ABLATION_SIZES: tuple[int, ...] = (0, 1, 2, 3, 5, 10, 15, 20)
#: Random draws of ``j`` filters per ablation size.
RANDOM_DRAWS = 20
#: Which units are players: the 32 filters of the digits CNN's last conv layer.
PLAYER_LAYERS = "features.5"

_ABLATION_SEED_TAG = 0x5EED_AB1A  # separates the ablation draws' random stream from TMAB's


@dataclass(frozen=True)
class AblationRow:
    """Accuracy on one split after removing ``removed`` filters."""

    split: str  # "valuation" (the values were estimated on it) or "test" (held out)
    removed: int
    top: float  # accuracy without the ``removed`` filters of largest Shapley value
    random_mean: float  # mean accuracy over the random draws of ``removed`` filters
    random_min: float
    random_max: float
    draws: int


@dataclass
class DemoSummary:
    """What :func:`run_demo` did and found."""

    out_dir: Path
    result: ShapleyResult
    ablation: list[AblationRow]
    top_removed: list[str]  # filters by decreasing Shapley value (the removal order)
    model_test_accuracy: float  # on the test split (held out)
    model_valuation_accuracy: float
    evaluations: int  # game evaluations spent by TMAB
    ablation_evaluations: int  # game evaluations spent by the ablation check (both splits)
    estimate_time: float  # seconds spent in TMAB
    wall_time: float  # seconds for the whole demo, training or loading included
    settings: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def row(self, split: str, removed: int) -> AblationRow:
        """The ablation row for ``split`` ("valuation" or "test") and ``removed`` filters."""
        for r in self.ablation:
            if r.split == split and r.removed == removed:
                return r
        raise KeyError(f"no ablation row for split={split!r}, removed={removed}")

    def interpretation(self) -> str:
        """One sentence on what the ablation shows."""
        j = int(self.settings["k"])
        test, val = self.row("test", j), self.row("valuation", j)
        base_test, base_val = self.row("test", 0), self.row("valuation", 0)
        noun = "filter" if j == 1 else "filters"
        return (
            f"Removing the {j} top Shapley {noun} drops held-out test accuracy from "
            f"{_pct(base_test.top)} to {_pct(test.top)} (valuation images, where the values "
            f"were estimated: {_pct(base_val.top)} to {_pct(val.top)}); removing {j} random "
            f"{noun} leaves {_pct(test.random_mean)} on test on average "
            f"(worst of {test.draws} draws: {_pct(test.random_min)})."
        )

    def to_json(self) -> dict[str, Any]:
        """The content of ``summary.json``."""
        info = self.result.info
        return {
            "model_test_accuracy": self.model_test_accuracy,
            "model_valuation_accuracy": self.model_valuation_accuracy,
            "tmab": {
                "evaluations": int(self.evaluations),
                "wall_time_s": round(self.estimate_time, 3),
                "walks": info.get("walks"),
                "converged": info.get("converged"),
                "undecided": info.get("undecided"),
                "top": self.result.table(int(self.settings["k"])),
            },
            "ablation": {
                "evaluations": int(self.ablation_evaluations),
                "removal_order": self.top_removed[: max(self.settings["ablation_sizes"])],
                "rows": [vars(r) for r in self.ablation],
            },
            "interpretation": self.interpretation(),
            "wall_time_s": round(self.wall_time, 3),
            "settings": self.settings,
            "files": {name: str(p) for name, p in self.files.items()},
            "versions": library_versions(),
        }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def run_demo(
    out_dir: str | os.PathLike[str] = "neuronshapley-out",
    seed: int = 0,
    k: int = DEFAULT_K,
    max_evaluations: int = DEFAULT_MAX_EVALUATIONS,
    num_threads: int | None = 1,
    progress: bool | ProgressFn = True,
    console: Any = None,
    cache_dir: str | os.PathLike[str] | None = None,
    delta: float = 0.05,
    ablation_sizes: Sequence[int] = ABLATION_SIZES,
    random_draws: int = RANDOM_DRAWS,
    report_html: bool = True,
    overwrite: bool = False,
) -> DemoSummary:
    """Certify the top-``k`` of the digits CNN's last conv filters, check them by ablation,
    save files.

    Args:
        out_dir: folder for ``values.csv``, ``metadata.json``, ``ablation.csv`` and
            ``summary.json`` (created if needed; see ``overwrite``).
        seed: sets the data split and training of the model, the TMAB walks and the random
            ablation draws.
        k: size of the top set TMAB separates (and an ablation size).
        report_html: also write ``report.html`` and its figures (see :mod:`.report`).
        max_evaluations: TMAB's budget of game evaluations (one evaluation = accuracy of one
            sub-network on the 359 valuation images); the default keeps the demo under
            1.5 minutes on one idle CPU core.
        num_threads: torch CPU threads while the demo runs (restored after); 1 by default
            because the machines this runs on are shared; None leaves torch's setting.
        progress: True for a rich progress bar, False for none, or a callable
            ``state -> None`` as for :func:`~neuronshapley.estimate`.
        console: a :class:`rich.console.Console` to print on (default: a new one on stdout).
        cache_dir: where the trained model is cached (default ``$NEURONSHAPLEY_CACHE`` or
            ``~/.cache/neuronshapley``).
        delta: TMAB's failure probability; intervals are joint at confidence ``1 - delta``.
        ablation_sizes: numbers of filters removed in the ablation check.
        random_draws: random sets drawn per ablation size.
        overwrite: replace the files of an earlier result in ``out_dir`` (otherwise a
            folder that holds files is refused before any work).
    Returns:
        a :class:`DemoSummary`.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if max_evaluations < 1:
        raise ValueError(f"max_evaluations must be positive, got {max_evaluations}")
    if num_threads is not None and num_threads < 1:
        raise ValueError(f"num_threads must be at least 1, got {num_threads}")
    if random_draws < 1:
        raise ValueError(f"random_draws must be at least 1, got {random_draws}")
    if console is None:
        from rich.console import Console

        console = Console()
    started = time.perf_counter()
    # claimed now (refused, locked), not after minutes of computing
    with OutputFolder(out_dir, overwrite) as folder, torch_threads(num_threads):
        summary = _run(folder, seed, k, max_evaluations, num_threads, progress, console,
                       cache_dir, delta, ablation_sizes, random_draws, started, report_html)
    _print_summary(console, summary)
    return summary


def _run(
    folder: OutputFolder,
    seed: int,
    k: int,
    max_evaluations: int,
    num_threads: int | None,
    progress: bool | ProgressFn,
    console: Any,
    cache_dir: str | os.PathLike[str] | None,
    delta: float,
    ablation_sizes: Sequence[int],
    random_draws: int,
    started: float,
    report_html: bool = True,
) -> DemoSummary:
    from neuronshapley.zoo import pretrained_digits_cnn

    out = folder.path
    threads = torch.get_num_threads()
    console.print(
        f"[bold]neuronshapley demo[/]: a certified top-{k} of the last conv layer's filters "
        f"of a small CNN on scikit-learn digits (seed {seed}, {threads} torch "
        f"thread{'s' if threads > 1 else ''})"
    )
    with console.status("Loading the digits CNN (training it on first use, a few seconds)..."):
        t0 = time.perf_counter()
        model, data = pretrained_digits_cnn(cache_dir=cache_dir, seed=seed)
        model_seconds = time.perf_counter() - t0
        game = ModelGame(model, data.x_valuation, data.y_valuation, metric="accuracy",
                         players=PLAYER_LAYERS, replacement="mean")
        # Held-out check: the same players, removed the same way (replaced by their mean
        # activation on the valuation images), evaluated on the test images.
        test_game = ModelGame(model, data.x_test, data.y_test, metric="accuracy",
                              players=game.players_set, reference=data.x_valuation,
                              replacement="mean")
    n_split = data.sizes()
    layers = ", ".join(f"{ly.name} ({ly.n_units})" for ly in game.players_set.layers)
    console.print(
        f"Model ready in {model_seconds:.1f} s. Players: {game.n_players} filters in {layers}; "
        f"V = accuracy on {n_split['valuation']} valuation images, removed filters replaced by "
        f"their mean activation; held-out check on {n_split['test']} test images (model "
        f"trained on {n_split['train']})."
    )
    sizes = sorted({j for j in (*ablation_sizes, k) if 0 <= j <= game.n_players} | {0})

    report, close = make_progress(progress, max_evaluations, "TMAB", console)
    try:
        result = estimate(game, method="tmab", seed=seed, k=k, delta=delta,
                          max_evaluations=max_evaluations, progress=report if progress else False)
    finally:
        close()
    result.info.update(
        game=repr(game), game_fingerprint=game.fingerprint(), model=model.arch_id,
        data=f"scikit-learn digits, valuation split of seed {seed} "
        f"({n_split['valuation']} images)",
    )

    order = result.ranking()
    rng = np.random.default_rng([_ABLATION_SEED_TAG, seed])
    top_masks, rand_masks = removal_masks(order, game.n_players, sizes, random_draws, rng)
    rows: list[AblationRow] = []
    ablation_evals = 0
    accuracies: dict[str, float] = {}
    with console.status("Ablation check: removing top and random filters..."):
        for split, g in (("valuation", game), ("test", test_game)):
            before = g.evaluations
            top_v, rand_v = removal_curve(g, top_masks, rand_masks)
            ablation_evals += g.evaluations - before
            for s, j in enumerate(sizes):
                rows.append(AblationRow(split, j, float(top_v[s]), float(rand_v[s].mean()),
                                        float(rand_v[s].min()), float(rand_v[s].max()),
                                        random_draws))
            accuracies[split] = float(top_v[sizes.index(0)])

    settings: dict[str, Any] = {
        "seed": seed,
        "method": "tmab",
        "k": k,
        "delta": delta,
        "max_evaluations": max_evaluations,
        "num_threads": threads,
        "metric": "accuracy",
        "players": PLAYER_LAYERS,
        "n_players": game.n_players,
        "replacement": "mean",
        "ablation_sizes": sizes,
        "random_draws": random_draws,
        "ablation_reference": "mean activations on the valuation images (as for the values)",
        "split_sizes": n_split,
        "model": model.arch_id,
        "cache_dir": str(cache_dir) if cache_dir is not None else None,
    }
    summary = DemoSummary(
        out_dir=out, result=result, ablation=rows, top_removed=result.top(game.n_players),
        model_test_accuracy=accuracies["test"],
        model_valuation_accuracy=accuracies["valuation"],
        evaluations=int(result.evaluations), ablation_evaluations=ablation_evals,
        estimate_time=float(result.wall_time), wall_time=0.0, settings=settings,
    )
    ablation_path = out / "ablation.csv"
    with deferred_interrupts():  # a second Ctrl-C waits until the set is written
        folder.clear_previous()  # the folder never holds files of two runs
        result.save(out)
        atomic_write_text(ablation_path, _ablation_csv(rows, summary.top_removed))
    summary.files = {
        "values": out / "values.csv",
        "metadata": out / "metadata.json",
        "ablation": ablation_path,
        "summary": out / "summary.json",
    }
    if report_html:
        from neuronshapley.report import write_report

        with console.status("Writing the report (figures, top images, feature visualisation)"):
            summary.files["report"] = write_report(out, game=game)
    summary.wall_time = time.perf_counter() - started
    atomic_write_text(summary.files["summary"], json.dumps(summary.to_json(), indent=2) + "\n")
    return summary


def _ablation_csv(rows: Sequence[AblationRow], order: Sequence[str]) -> str:
    return csv_text([
        {"split": r.split, "removed": r.removed, "top_accuracy": r.top,
         "random_mean": r.random_mean, "random_min": r.random_min, "random_max": r.random_max,
         "random_draws": r.draws, "top_removed": " ".join(order[: r.removed])}
        for r in rows])


def _print_summary(console: Any, summary: DemoSummary) -> None:
    from rich.markup import escape
    from rich.table import Table

    from neuronshapley.console import top_units_table

    result, k = summary.result, int(summary.settings["k"])
    console.print(top_units_table(result, k, f"Top {k} filters by Shapley value (valuation "
                                  "accuracy)"))
    info, walks = result.info, result.info.get("walks")
    status = result.top_k_status() or []
    spent = (f"{summary.evaluations} evaluations ({walks} walks, "
             f"{summary.estimate_time:.1f} s)")
    if status.count("in") == k:
        console.print(f"[bold green]Certified[/]: these {k} filters are the top {k} (joint "
                      f"{100 * (result.confidence or 0):.0f}% confidence: every filter's "
                      f"interval holds at once), after {spent}.")
    elif info.get("converged"):
        console.print(f"[bold green]Certified up to epsilon = {result.params.get('epsilon'):.4f}"
                      f"[/]: TMAB separated the top {k} after {spent}; "
                      f"{result.top_k_summary()}.")
    else:
        console.print(
            f"Not certified within the budget of {summary.settings['max_evaluations']} "
            f"evaluations ({spent}): {result.top_k_summary()}; the ranking is the best "
            "estimate for this budget; raise --max-evaluations to settle the rest.")

    draws = int(summary.settings["random_draws"])
    abl = Table(
        title="Accuracy (%) after removing filters",
        title_justify="left",
        caption="valuation: the images the values were estimated on; test: held out. "
        f"top: the filters with the largest values; random: mean (min-max) of {draws} draws",
        caption_justify="left",
    )
    abl.add_column("removed", justify="right")
    for label in ("valuation", "test"):
        abl.add_column(f"{label}\ntop", justify="right")
        abl.add_column(f"{label}\nrandom", justify="right")
    for j in summary.settings["ablation_sizes"]:
        cells = [str(j)]
        for split in ("valuation", "test"):
            r = summary.row(split, j)
            cells += [f"{100 * r.top:.1f}", f"{100 * r.random_mean:.1f} "
                      f"({100 * r.random_min:.1f}-{100 * r.random_max:.1f})"]
        abl.add_row(*cells)
    console.print(abl)
    console.print(f"Files in [bold]{escape(str(summary.out_dir))}[/]: "
                  + ", ".join(p.name for p in summary.files.values())
                  + f". Demo took {summary.wall_time:.1f} s.")
    console.print(summary.interpretation())
