"""Commands ``fairness`` and ``adversarial``: repair a model by removing units (paper §4.3-4.4).

Each builds its benchmark (trains small models in seconds), values the units, removes the
chosen ones and writes a table (CSV), a plot (PNG), the values, the repaired model (state
dict + JSON) and ``summary.json`` into ``--out``. Registered by :func:`register`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from neuronshapley.cli.common import OutFolder, ShowProgress, Threads, int_list
from neuronshapley.cli.model_options import PANEL, ModelOptions, with_model_options


def _floats(text: str, what: str = "--clean-weights", count: int | None = None) -> list[float]:
    try:
        out = [float(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if not out or (count is not None and len(out) != count):
        raise ValueError(f"{what} needs {count or 'at least one'} number(s), got {text!r}")
    return out


def _check_method(method: str) -> None:
    from neuronshapley.studies.repair_common import ESTIMATORS

    if method not in ESTIMATORS:
        raise ValueError(f"--method must be one of {', '.join(ESTIMATORS)}, got {method!r}")


# Options the two commands share.
SelectionFraction = Annotated[float, typer.Option(
    help="Share of validation that chooses the ranking and k; the rest values the units "
    "(0: both on all of it).")]
Replacement = Annotated[str, typer.Option(
    help="Removed units output their mean activation (mean) or zero (zero).")]
SearchSteps = Annotated[int, typer.Option(
    min=0, help="Steps of the greedy-search control (0: none).")]
KGrid = Annotated[str | None, typer.Option(
    help="Comma-separated numbers of removed units tried on validation.")]
Method = Annotated[str, typer.Option(
    help="Shapley estimator: auto (truncated walks, roulette truncation, Sobol permutations), "
    "tmab, truncated or permutation.")]
MaxEvaluations = Annotated[int, typer.Option(min=1, help="Shapley budget of game evaluations.")]


def register(app: typer.Typer) -> None:
    """Add the ``fairness`` and ``adversarial`` commands to ``app``."""
    from neuronshapley.cli.common import study_command

    @app.command()
    @with_model_options
    def fairness(
        spec: ModelOptions,
        out: OutFolder = Path("neuronshapley-fairness"),
        benchmark: Annotated[str, typer.Option(
            help="Built-in: digits (coloured digits, colour shortcut) or adult (UCI Adult, "
                 "sex); ignored with your own --model.")] = "digits",
        groups: Annotated[str | None, typer.Option(
            help="Your model: name of the integer array of group ids in the data files.",
            rich_help_panel=PANEL)] = None,
        target_group: Annotated[str | None, typer.Option(
            help="Your model: the group (id or name) whose score the repair should raise.",
            rich_help_panel=PANEL)] = None,
        group_labels: Annotated[str | None, typer.Option(
            help="Your model: comma-separated names of groups 0, 1, ...",
            rich_help_panel=PANEL)] = None,
        score: Annotated[str, typer.Option(
            help="Your model: accuracy or balanced (class-balanced accuracy) of the target "
                 "group.", rich_help_panel=PANEL)] = "accuracy",
        seed: Annotated[int, typer.Option(help="Seed of data, training and estimate.")] = 0,
        max_evaluations: MaxEvaluations = 16000,
        method: Method = "auto",
        max_overall_drop: Annotated[float, typer.Option(
            help="Largest overall-accuracy drop (selection part) allowed when choosing k.")
        ] = 0.05,
        selection_fraction: SelectionFraction = 0.5,
        replacement: Replacement = "mean",
        search_steps: SearchSteps = 0,
        k_grid: KGrid = None,
        epochs: Annotated[int | None, typer.Option(min=1, help="Training epochs.")] = None,
        threads: Threads = 1,
        progress: ShowProgress = True,
    ) -> None:
        """Remove the units that hurt an under-served group; report every group before/after."""
        from neuronshapley.studies.fairness import (
            fairness_setup,
            run_fairness,
            user_fairness_setup,
            write_fairness,
        )

        with study_command(threads, progress) as (console, log):
            _check_method(method)
            if spec.is_user_model(()):
                if groups is None or target_group is None:
                    raise ValueError("your own --model needs --groups NAME (the array of "
                                     "group ids in the data files) and --target-group G")
                setup = user_fairness_setup(
                    spec.run_settings(seed), groups, target_group, spec.heldout,
                    spec.heldout_fraction, score,
                    [s for s in group_labels.split(",") if s] if group_labels else None)
            else:
                if groups is not None or target_group is not None:
                    raise ValueError("--groups and --target-group go with your own --model "
                                     "and --data; the built-in benchmarks fix them")
                setup = fairness_setup(benchmark, seed=seed, epochs=epochs)
            if log:
                log(f"benchmark: {setup.description}")
            result = run_fairness(setup, max_evaluations=max_evaluations, method=method,
                                  seed=seed, k_grid=int_list(k_grid, "--k-grid"),
                                  max_overall_drop=max_overall_drop,
                                  selection_fraction=selection_fraction,
                                  replacement=replacement, search_steps=search_steps, log=log)
            files = write_fairness(result, out)
        _print_rows(console, f"Fairness repair ({setup.name}, target {setup.target}), %",
                    result.rows(), skip=("split", "model", "removed"),
                    lead=("split", "model", "removed"))
        console.print(result.interpretation(), highlight=False)
        console.print("Files: " + ", ".join(str(p) for p in files.values()), highlight=False)

    @app.command()
    @with_model_options
    def adversarial(
        spec: ModelOptions,
        out: OutFolder = Path("neuronshapley-adversarial"),
        input_range: Annotated[str, typer.Option(
            help="LOW,HIGH: adversarial inputs stay in this range (the data's pixel range).")
        ] = "0,1",
        seed: Annotated[int, typer.Option(help="Seed of data, training, attack, estimate.")] = 0,
        eps: Annotated[float, typer.Option(help="L-infinity radius (pixels in [0, 1]).")] = 0.2,
        step_size: Annotated[float | None, typer.Option(
            help="PGD step (default eps / 4).")] = None,
        steps: Annotated[int, typer.Option(min=1, help="PGD iterations.")] = 20,
        random_start: Annotated[bool, typer.Option(
            "--random-start/--no-random-start", help="Start PGD at a random point.")] = True,
        max_evaluations: MaxEvaluations = 16000,
        method: Method = "auto",
        clean_weights: Annotated[str, typer.Option(
            help="Weights lambda of phi(success) - lambda phi(clean) tried on validation "
            "(1 is the paper's metric).")
        ] = "0.5,0.75,1",
        max_clean_drop: Annotated[float, typer.Option(
            help="Largest clean-accuracy drop (selection part) allowed when choosing k.")
        ] = 0.10,
        selection_fraction: SelectionFraction = 0.5,
        replacement: Replacement = "mean",
        search_steps: SearchSteps = 0,
        k_grid: KGrid = None,
        epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = 20,
        threads: Threads = 1,
        progress: ShowProgress = True,
    ) -> None:
        """Remove the units a targeted PGD attack exploits; report attacks before/after."""
        from neuronshapley.studies.adversarial_repair import (
            DEFAULT_PLAYERS,
            AttackSettings,
            adversarial_setup,
            run_adversarial,
            user_adversarial_setup,
            write_adversarial,
        )

        with study_command(threads, progress) as (console, log):
            _check_method(method)
            if eps <= 0:
                raise ValueError(f"--eps must be positive, got {eps}")
            low, high = _floats(input_range, "--input-range", 2)
            attack = AttackSettings(eps, step_size if step_size is not None else eps / 4,
                                    steps, random_start, (low, high))
            if spec.is_user_model(()):
                setup = user_adversarial_setup(spec.run_settings(seed), spec.heldout,
                                               spec.heldout_fraction)
            else:
                setup = adversarial_setup(seed=seed, epochs=epochs)
            result = run_adversarial(setup, attack, max_evaluations=max_evaluations,
                                     method=method, seed=seed,
                                     players=setup.info.get("players", DEFAULT_PLAYERS),
                                     clean_weights=_floats(clean_weights),
                                     k_grid=int_list(k_grid, "--k-grid"),
                                     max_clean_drop=max_clean_drop,
                                     selection_fraction=selection_fraction,
                                     replacement=replacement, search_steps=search_steps,
                                     log=log)
            files = write_adversarial(result, out)
        _print_rows(console, "Adversarial repair (test images), %", result.rows(),
                    skip=("model",), lead=("model",))
        console.print(result.interpretation(), highlight=False)
        console.print("Files: " + ", ".join(str(p) for p in files.values()), highlight=False)


def _print_rows(console: Any, title: str, rows: list[dict[str, Any]],
                skip: tuple[str, ...], lead: tuple[str, ...]) -> None:
    from rich.table import Table

    if not rows:
        return
    table = Table(title=title, title_justify="left")
    cols = list(rows[0])
    for c in cols:
        table.add_column(c, justify="left" if c in lead else "right")
    for row in rows:
        table.add_row(*[str(row[c]) if c in skip else _pct(row[c]) for c in cols])
    console.print(table)


def _pct(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    return "-" if f != f else f"{100 * f:.1f}"
