"""Commands ``neuronshapley run`` (value the units of your own model) and ``neuronshapley
report RESULT_DIR`` (rebuild the HTML report from saved results).

Registered with :func:`register`; the work is done by :func:`neuronshapley.pipeline.runner.run` and
:func:`neuronshapley.report.write_report`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from neuronshapley.cli.common import (
    EXIT_INTERRUPTED,
    err_console,
    fail,
    library_errors,
    out_console,
)
from neuronshapley.cli.parsing import parse_normalize, parse_option, parse_size

_MODEL_HELP = (
    "The model: 'package.module:factory' or 'path/file.py:factory' (a class or function "
    "returning the nn.Module; give --weights), a torch.export program 'model.pt2', or a "
    "pickled module (needs --trust-pickle), or hf:FOLDER, a Hugging Face model saved in a "
    "local folder (with its tokenizer; nothing is downloaded)."
)


def register(app: typer.Typer) -> None:
    """Add the ``run`` and ``report`` commands to ``app``."""

    @app.command()
    def run(
        model: Annotated[str | None, typer.Option(help=_MODEL_HELP)] = None,
        data: Annotated[str | None, typer.Option(
            help="Evaluation data: .npz (arrays x, y), .pt (dict or (x, y)), an image "
                 "folder with one sub-folder per class, or texts as .csv / .jsonl for an "
                 "hf: model.")] = None,
        config: Annotated[Path | None, typer.Option(
            help="Settings file (TOML, or YAML with PyYAML); options given here override "
                 "it.", dir_okay=False)] = None,
        weights: Annotated[str | None, typer.Option(
            help="State dict for a factory model (torch.load(weights_only=True)).")] = None,
        trust_pickle: Annotated[bool | None, typer.Option(
            "--trust-pickle/--no-trust-pickle",
            help="Allow loading pickled files (runs code from the file).")] = None,
        eval_mode: Annotated[bool | None, typer.Option(
            "--eval/--no-eval", help="Call model.eval() on a model saved in training "
                                     "mode.")] = None,
        x_key: Annotated[str | None, typer.Option(help="Name of the inputs array.")] = None,
        y_key: Annotated[str | None, typer.Option(help="Name of the labels array.")] = None,
        image_size: Annotated[str | None, typer.Option(
            help="Resize images to N or HxW.")] = None,
        color: Annotated[str | None, typer.Option(
            help="Image folders: auto, rgb or gray.")] = None,
        normalize: Annotated[str | None, typer.Option(
            help="'dataset' or per-channel 'MEANS/STDS', e.g. 0.5,0.5,0.5/0.25,0.25,0.25."
        )] = None,
        max_examples: Annotated[int | None, typer.Option(
            min=1, help="Use a random subset of this many examples.")] = None,
        text_column: Annotated[str | None, typer.Option(
            help="Texts (.csv / .jsonl): the column holding each text (default 'text').")
        ] = None,
        label_column: Annotated[str | None, typer.Option(
            help="Texts: the column holding each integer label (default 'label').")] = None,
        max_length: Annotated[int | None, typer.Option(
            min=1, help="Texts: truncate to this many tokens (at most what the model "
                        "allows).")] = None,
        reference: Annotated[str | None, typer.Option(
            help="Data whose mean activations replace removed units (default: --data).")
        ] = None,
        metric: Annotated[str | None, typer.Option(
            help="accuracy, balanced_accuracy, log_prob, class_recall, ...")] = None,
        players: Annotated[list[str] | None, typer.Option(
            "--players", "--layers", help="Layer name or glob pattern (repeatable); default: "
                                          "every conv, hidden linear and attention layer.")
        ] = None,
        include_output_layer: Annotated[bool | None, typer.Option(
            "--include-output-layer/--no-include-output-layer",
            help="Also value the logit layer's units.")] = None,
        attention_heads: Annotated[bool | None, typer.Option(
            "--attention-heads/--no-attention-heads",
            help="Make attention heads players.")] = None,
        replacement: Annotated[str | None, typer.Option(
            help="How a removed unit is replaced: mean, channel or zero.")] = None,
        method: Annotated[str | None, typer.Option(
            help="exact, permutation, truncated or tmab.")] = None,
        k: Annotated[int | None, typer.Option(
            "--k", min=1, help="tmab: size of the top set to separate.")] = None,
        max_evaluations: Annotated[int | None, typer.Option(
            min=1, help="Budget of game evaluations.")] = None,
        max_time: Annotated[float | None, typer.Option(
            min=0, help="Stop after this many seconds.")] = None,
        option: Annotated[list[str] | None, typer.Option(
            "--option", "-o", help="Estimator option KEY=VALUE (repeatable), e.g. "
                                   "-o delta=0.1.")] = None,
        out: Annotated[str | None, typer.Option(help="Output folder.")] = None,
        overwrite: Annotated[bool | None, typer.Option(
            "--overwrite/--no-overwrite", help="Replace files in a non-empty --out.")] = None,
        seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
        threads: Annotated[int | None, typer.Option(
            min=1, help="Torch CPU threads (default 1: machines are shared).")] = None,
        device: Annotated[str | None, typer.Option(help="cpu or cuda.")] = None,
        precision: Annotated[str | None, typer.Option(
            help="float32 (default; on cuda without TF32), tf32, bfloat16 or float16: "
                 "accepted only if V(N) and V(empty) stay the same.")] = None,
        batch_size: Annotated[int | None, typer.Option(
            min=1, help="Examples per forward pass.")] = None,
        walk_sample: Annotated[int | None, typer.Option(
            min=1, help="Fresh random batch of this many examples per walk.")] = None,
        checkpoint: Annotated[str | None, typer.Option(
            help="Folder to checkpoint the estimate in (resumable).")] = None,
        resume: Annotated[bool | None, typer.Option(
            "--resume/--no-resume", help="Continue the checkpoint in --checkpoint.")] = None,
        report: Annotated[bool | None, typer.Option(
            "--report/--no-report", help="Write report.html and figures.")] = None,
        report_units: Annotated[int | None, typer.Option(
            min=0, help="Top units shown with images and feature visualisation.")] = None,
        feature_vis: Annotated[bool | None, typer.Option(
            "--feature-vis/--no-feature-vis", help="Optimise an input per top unit.")] = None,
        progress: Annotated[bool, typer.Option(
            "--progress/--no-progress", help="Show a progress bar.")] = True,
    ) -> None:
        """Value every unit of YOUR model on YOUR data, save the values and an HTML report.

        Example: neuronshapley run --model mypkg.nets:Net --weights net.pt --data eval.npz
        --players 'features.*' --k 10 --out shapley-out
        """
        from neuronshapley.pipeline.runner import RunConfig, load_config
        from neuronshapley.pipeline.runner import run as run_fn

        options: dict[str, Any] = {}
        for text in option or []:
            key, value = parse_option(text)
            options[key] = value
        for key, value in (("k", k), ("max_evaluations", max_evaluations),
                           ("max_time", max_time)):
            if value is not None:
                options[key] = value
        overrides = {
            "model": model, "data": data, "weights": weights, "trust_pickle": trust_pickle,
            "eval_mode": eval_mode, "x_key": x_key, "y_key": y_key,
            "image_size": parse_size(image_size), "color": color,
            "normalize": parse_normalize(normalize), "max_examples": max_examples,
            "text_column": text_column, "label_column": label_column,
            "max_length": max_length,
            "reference": reference, "metric": metric, "players": players or None,
            "include_output_layer": include_output_layer, "attention_heads": attention_heads,
            "replacement": replacement, "method": method, "options": options or None,
            "out": out, "overwrite": overwrite, "seed": seed, "threads": threads,
            "device": device, "precision": precision, "batch_size": batch_size,
            "walk_sample": walk_sample,
            "checkpoint": checkpoint, "resume": resume, "report": report,
            "report_units": report_units, "feature_vis": feature_vis,
        }
        console = out_console()
        with library_errors():
            base = load_config(config) if config is not None else RunConfig()
            outcome = run_fn(base, progress=progress, log=lambda line: console.print(
                f"[dim]{escape(line)}[/]", highlight=False), **overrides)
        _print_outcome(console, outcome)
        if outcome.interrupted:
            err_console().print(
                f"[yellow]interrupted:[/] the values computed so far are saved in "
                f"{escape(str(outcome.out_dir))} (info.interrupted = true)")
            raise typer.Exit(EXIT_INTERRUPTED)

    @app.command("report")
    def report_cmd(
        result_dir: Annotated[Path, typer.Argument(
            help="A result folder (values.csv, metadata.json) from run, demo or estimate.",
            file_okay=False)],
        refresh_units: Annotated[bool, typer.Option(
            "--refresh-units/--saved-units",
            help="Reload the model and data from run_config.json to redo the unit images "
                 "(default: reuse the saved PNGs).")] = False,
        units: Annotated[int, typer.Option(
            min=0, help="With --refresh-units: top units to show.")] = 6,
        threads: Annotated[int, typer.Option(min=1, help="Torch CPU threads.")] = 1,
        trust_pickle: Annotated[bool, typer.Option(
            "--trust-pickle/--no-trust-pickle",
            help="With --refresh-units: allow unpickling the model (runs code from the "
                 "file). Only this flag counts, never the folder's run_config.json.")] = False,
    ) -> None:
        """Rebuild report.html and the figures from saved results (no values recomputed)."""
        from neuronshapley.report import write_report

        if not (result_dir / "values.csv").is_file():
            raise fail(f"{result_dir} holds no values.csv: give a folder written by "
                       "'neuronshapley run', the demo or ShapleyResult.save")
        console = out_console()
        with library_errors():
            if refresh_units:
                path = _refresh(result_dir, units, threads, trust_pickle)
            else:
                path = write_report(result_dir, removal=False)
        console.print(f"Report: [bold]{escape(str(path))}[/]", highlight=False)


def _refresh(result_dir: Path, units: int, threads: int, trust_pickle: bool) -> Path:
    """Rebuild the report with the model and data named in ``run_config.json``.

    A pickled model is unpickled only with ``trust_pickle`` (the command's flag): the
    ``trust_pickle`` saved in the folder is ignored, so a folder from someone else cannot
    make this command run code from a pickle."""
    from neuronshapley.network.game import ModelGame
    from neuronshapley.pipeline.loading import load_model
    from neuronshapley.pipeline.runner import RunConfig, RunError, load_dataset, prepare_model
    from neuronshapley.report import write_report
    from neuronshapley.runtime import torch_threads

    cfg_path = result_dir / "run_config.json"
    if not cfg_path.is_file():
        raise RunError(f"{cfg_path} not found: --refresh-units needs a folder written by "
                       "'neuronshapley run'")
    try:
        saved = json.loads(cfg_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{cfg_path} is not valid JSON ({exc}): rerun 'neuronshapley run' to "
                       "rewrite it, or rebuild the report without --refresh-units") from None
    if not isinstance(saved, dict):
        raise RunError(f"{cfg_path} must hold a table of settings: rerun 'neuronshapley run'")
    saved["trust_pickle"] = trust_pickle
    cfg = RunConfig.from_mapping(saved, source=str(cfg_path))
    with torch_threads(threads):
        loaded = load_model(cfg.model, cfg.weights, cfg.trust_pickle, cfg.model_kwargs)
        model = prepare_model(loaded, cfg, [])
        data = load_dataset(cfg.data, cfg)
        game = ModelGame(model, data.x, data.y, metric=cfg.metric,
                         players=_players_from_result(model, result_dir, cfg),
                         replacement=cfg.replacement)
        return write_report(result_dir, game=game, units=units, feature_vis=cfg.feature_vis,
                            seed=cfg.seed, normalization=data.normalization)


def _players_from_result(model: Any, result_dir: Path, cfg: Any) -> Any:
    from neuronshapley.network.players import discover_players
    from neuronshapley.result import ShapleyResult

    result = ShapleyResult.load(result_dir)
    names = list(dict.fromkeys(p.rpartition(":")[0] for p in result.players))
    return discover_players(model, names, include_output_layer=True,
                            attention_heads=cfg.attention_heads)


def _print_outcome(console: Any, outcome: Any) -> None:
    result = outcome.result
    from neuronshapley.console import top_units_table

    shown = result if result.values.ndim == 1 else result.output(0)
    metric = escape(str(result.info.get("metric")))
    console.print(top_units_table(shown, 10, f"Top {min(10, shown.n_players)} units by "
                                  f"Shapley value ({metric})"))
    info = result.info
    console.print(
        f"{result.method}: {result.evaluations} evaluations, {info.get('walks', '?')} walks, "
        f"{result.wall_time:.1f} s"
        + (f"; converged: {info.get('converged')}" if "converged" in info else ""),
        highlight=False)
    summary = shown.top_k_summary()
    if summary:
        console.print(summary, highlight=False)
    if info.get("intervals_note"):
        console.print(f"intervals: {escape(str(info['intervals_note']))}", highlight=False)
    for note in outcome.notes:
        console.print(f"note: {escape(note)}", highlight=False)
    files = ", ".join(escape(str(p)) for p in outcome.files.values())
    console.print(f"Files: {files}", highlight=False)
