"""Commands ``compare`` and ``class-specific``: the paper's studies from the command line.

Both run on your model (``--model``, ``--data`` for the valuation split, ``--heldout`` or
``--heldout-fraction`` for the split the curves are measured on; the options of ``run``) or on
a built-in setup (:func:`neuronshapley.studies.compare.study_setup`: the digits CNN, or
``--model onet`` for MTCNN's ONet), and write a table (CSV), a plot (PNG), the values and
``summary.json`` into ``--out``. Registered by :func:`register`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from neuronshapley.cli.common import OutFolder, ShowProgress, Threads, int_list
from neuronshapley.cli.model_options import ModelOptions, with_model_options


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t for t in text.replace(" ", "").split(",") if t]


def _setup(spec: ModelOptions, seed: int, metric: str | None, include_dense: bool = False
           ) -> Any:
    """The built-in setup ``spec.model`` names, or the user's model and splits."""
    from neuronshapley.studies.compare import STUDY_MODELS, study_setup, user_compare_setup

    if not spec.is_user_model(STUDY_MODELS):
        if metric is not None:
            raise ValueError("--metric goes with your own --model; the built-in setups fix it")
        return study_setup(spec.model or "digits", seed=seed, include_dense=include_dense)
    return user_compare_setup(spec.run_settings(seed), spec.heldout, spec.heldout_fraction,
                              metric or "accuracy")


def register(app: typer.Typer) -> None:
    """Add the ``compare`` and ``class-specific`` commands to ``app``."""
    from neuronshapley.cli.common import study_command

    @app.command()
    @with_model_options
    def compare(
        spec: ModelOptions,
        out: OutFolder = Path("neuronshapley-compare"),
        metric: Annotated[str | None, typer.Option(
            help="Your model: the metric V (accuracy, log_prob, ...; default accuracy).")
        ] = None,
        seed: Annotated[int, typer.Option(help="Seed of the estimate and random rankings.")] = 0,
        method: Annotated[str, typer.Option(
            help="Shapley estimator: auto (truncated walks, roulette truncation, Sobol "
            "permutations), tmab, truncated or permutation.")] = "auto",
        max_evaluations: Annotated[int | None, typer.Option(
            min=1, help="Shapley budget of game evaluations (default per model).")] = None,
        k: Annotated[int | None, typer.Option(
            "--k", min=1, help="Top set TMAB separates (--method tmab only; default 10).")
        ] = None,
        max_k: Annotated[int | None, typer.Option(
            min=1, help="Largest number of removed units (default per model).")] = None,
        level: Annotated[float | None, typer.Option(
            help="Metric level for units-to-level (default: chance + level-fraction of "
            "the range).")] = None,
        level_fraction: Annotated[float, typer.Option(
            help="Default level: chance + this fraction of (V(N) - chance).")] = 0.1,
        baselines: Annotated[str, typer.Option(
            help="Comma-separated baselines.")] = "loo,weight_norm,activation_norm,random,"
        "conductance",
        random_draws: Annotated[int, typer.Option(min=1, help="Random rankings averaged.")] = 10,
        conductance_steps: Annotated[int, typer.Option(
            min=2, help="Integration steps of captum's LayerConductance.")] = 50,
        walk_sample: Annotated[int | None, typer.Option(
            min=1, help="Examples drawn per permutation walk (default per model).")] = None,
        include_dense: Annotated[bool, typer.Option(
            help="ONet: also value the 256 dense5 units.")] = False,
        threads: Threads = 1,
        progress: ShowProgress = True,
    ) -> None:
        """Remove each ranking's top units (Shapley vs baselines) and measure held-out metric."""
        from neuronshapley.studies.compare import run_compare, shapley_options

        with study_command(threads, progress) as (console, log):
            setup = _setup(spec, seed, metric, include_dense=include_dense)
            opts = shapley_options(setup, method, max_evaluations, k)
            gopts = dict(setup.defaults.get("game_options", {}))
            if walk_sample is not None:
                gopts["walk_sample"] = walk_sample
            result = run_compare(
                setup.model, setup.value_inputs, setup.value_targets,
                setup.heldout_inputs, setup.heldout_targets, metric=setup.metric,
                players=setup.players, shapley_method=method, shapley_options=opts,
                baselines=_names(baselines) or [],
                max_k=max_k if max_k is not None else setup.defaults.get("max_k"),
                small_k=int(setup.defaults.get("small_k", 10)), level=level,
                level_fraction=level_fraction, random_draws=random_draws,
                conductance_options={"n_steps": conductance_steps}, game_options=gopts,
                seed=seed, out_dir=out, title=setup.description,
                log=log,
            )
        _print_compare(console, result)

    @app.command("class-specific")
    @with_model_options
    def class_specific(
        spec: ModelOptions,
        out: OutFolder = Path("neuronshapley-classes"),
        classes: Annotated[str | None, typer.Option(
            help="Comma-separated target classes (default: all).")] = None,
        seed: Annotated[int, typer.Option(help="Seed of the estimate and controls.")] = 0,
        method: Annotated[str, typer.Option(
            help="auto, truncated or permutation: one run gives every class.")] = "auto",
        max_evaluations: Annotated[int, typer.Option(
            min=1, help="Budget of game evaluations.")] = 20000,
        remove: Annotated[str, typer.Option(
            help="Comma-separated numbers of class units to remove.")] = "1,2,3,4,5,6,8,10",
        exclude_fraction: Annotated[float, typer.Option(
            help="Share of units, top for overall accuracy, set aside.")] = 0.2,
        random_draws: Annotated[int, typer.Option(min=1, help="Random control draws.")] = 5,
        threads: Threads = 1,
        progress: ShowProgress = True,
    ) -> None:
        """Class-specific Shapley values (class recall), and removing each class's top units."""
        from neuronshapley.studies.class_specific import run_class_specific

        with study_command(threads, progress) as (console, log):
            setup = _setup(spec, seed, None)
            result = run_class_specific(
                setup.model, setup.value_inputs, setup.value_targets,
                setup.heldout_inputs, setup.heldout_targets,
                classes=int_list(classes, "--classes"), class_names=setup.class_names,
                players=setup.players, method=method,
                estimate_options={"max_evaluations": max_evaluations},
                exclude_fraction=exclude_fraction,
                remove=int_list(remove, "--remove") or [1], random_draws=random_draws,
                game_options=setup.defaults.get("game_options"), seed=seed, out_dir=out,
                log=log,
            )
        _print_class_specific(console, result)


def _print_compare(console: Any, result: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Units removed to reach {result.metric} <= {result.level:.4g} "
                  f"({result.level_rule})", title_justify="left")
    for col in ("ranking", "units to level", f"mean {result.metric}, k=1..{result.small_k}",
                "evaluations", "seconds"):
        table.add_column(col, justify="left" if col == "ranking" else "right")
    for row in result.level_rows():
        reached = str(row["units_to_level"]) if row["reached"] else f"> {result.max_k}"
        table.add_row(row["ranking"], reached, f"{row['drop_area']:.4f}",
                      str(row["evaluations"]), f"{row['wall_time_s']:.1f}")
    console.print(table)
    if "shapley" in result.curves and len(result.curves) > 1:
        wins = result.shapley_wins()
        ks = [k for k, ok in zip(wins["k"], wins["lowest"], strict=True) if ok]
        console.print(f"Shapley's top-k gives the lowest held-out {result.metric} at k = "
                      f"{', '.join(map(str, ks)) or 'none'} of 1..{result.small_k}; its mean "
                      f"over those k ranks {wins['area_rank']} of {len(result.curves)}.")
    console.print(f"Files in [bold]{escape(str(result.files['table'].parent))}[/]: "
                  "compare.csv, levels.csv, compare.png, values/, summary.json")


def _print_class_specific(console: Any, result: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    m = result.show_m
    table = Table(title=f"Held-out recall after removing each class's top {m} units "
                  f"(top {len(result.excluded)} units for overall accuracy excluded)",
                  title_justify="left")
    for col in ("class", "target before", "target after", "others after",
                "target, random units"):
        table.add_column(col, justify="right")
    for name, row in result.collapse().items():
        table.add_row(name, f"{row['target_before']:.3f}", f"{row['target_after']:.3f}",
                      f"{row['others_after']:.3f}", f"{row['random_target_after']:.3f}")
    console.print(table)
    console.print(f"Files in [bold]{escape(str(result.files['table'].parent))}[/]: "
                  "class_specific.csv, class_specific.png, values/, values_accuracy/, "
                  "summary.json")


__all__ = ["register"]
