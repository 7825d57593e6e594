"""``write_report(result_dir, ...)``: one self-contained HTML page plus PNG figures.

Writes into ``result_dir``:

- ``report.html``: opens offline; every image is embedded as a base64 PNG, no external CSS
  or JavaScript. A tiny inline script sets ``data-images-ok="yes"`` on ``<body>`` once every
  image has decoded (``naturalWidth > 0``), which a headless browser test reads.
- ``figures/values.png`` (distribution), ``figures/top_units.png`` (top units with their
  intervals), ``figures/removal.png`` (metric against units removed, when curves exist),
  ``figures/layers.png`` (how the top units spread over the layers), ``figures/samples.png``
  (marginal samples per unit).
- with the model: ``removal.csv`` (top-k versus random removal, unless the folder already
  holds ``compare.csv`` or ``ablation.csv``) and ``figures/units/`` (per top unit: the
  examples that activate it most and least, a feature visualisation, and ``units.json``
  indexing them), so that ``neuronshapley report`` can rebuild the page without the model.
"""

from __future__ import annotations

import base64
import html
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neuronshapley.errors import ReportError
from neuronshapley.files import atomic_write_text
from neuronshapley.network.players import PlayerSet, discover_players
from neuronshapley.report import figures as fig
from neuronshapley.report.visualize import UnitFigures, unit_figures
from neuronshapley.result import ShapleyResult

Log = Callable[[str], None]


_IMAGE_CHECK = """<script>
(function () {
  function check() {
    var imgs = document.images, ok = imgs.length > 0;
    for (var i = 0; i < imgs.length; i++) {
      if (!imgs[i].complete || imgs[i].naturalWidth === 0) { ok = false; }
    }
    document.body.setAttribute("data-images", String(imgs.length));
    document.body.setAttribute("data-images-ok", ok ? "yes" : "no");
  }
  window.addEventListener("load", check);
})();
</script>"""

_CSS = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif;
       margin: 0 auto; max-width: 1100px; padding: 24px; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 1.8em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; }
th { background: #f5f5f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; }
.facts td:first-child { color: #666; }
.warn { background: #fff4e5; border-left: 4px solid #f0a020; padding: 8px 12px; }
.note { color: #555; font-size: 0.9em; }
.units { display: flex; flex-wrap: wrap; gap: 16px; }
.unit { border: 1px solid #ddd; border-radius: 6px; padding: 10px; background: #fafafa; }
.unit h3 { margin: 0 0 6px 0; font-size: 1em; }
.unit .imgs { display: flex; gap: 8px; align-items: flex-start; }
figure { margin: 0.5em 0; }
.row { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
.row > div { flex: 1 1 420px; }
figcaption { color: #555; font-size: 0.9em; }
"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _scalar(result: ShapleyResult) -> tuple[ShapleyResult, str | None, int]:
    """The output the report shows: the result's only one, or ``params["output"]`` (0)."""
    if result.values.ndim == 1:
        return result, None, 0
    output = result.params.get("output", 0) or 0
    assert result.output_names is not None
    if isinstance(output, str) and output in result.output_names:
        output = result.output_names.index(output)
    if not isinstance(output, int) or not 0 <= output < len(result.output_names):
        output = 0
    return result.output(output), result.output_names[output], output


def _players_for(model: nn.Module, result: ShapleyResult) -> PlayerSet:
    names = list(dict.fromkeys(fig.layer_of(p) for p in result.players))
    players = discover_players(model, names, include_output_layer=True)
    if players.ids != list(result.players):
        raise ValueError("the model's units do not match the result's players: is this the "
                         "model the values were computed for?")
    return players


def write_report(
    result_dir: str | os.PathLike[str],
    model: nn.Module | None = None,
    game: Any = None,
    *,
    inputs: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    units: int = 6,
    feature_vis: bool = True,
    removal: bool = True,
    steps: int = 96,
    seed: int = 0,
    normalization: tuple[Sequence[float], Sequence[float]] | None = None,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    log: Log | None = None,
) -> Path:
    """Build ``report.html`` and the figures in ``result_dir`` (which holds a saved result).

    Args:
        result_dir: folder with ``values.csv`` and ``metadata.json``.
        model: the network (optional; ``game.model`` when a game is given).
        game: the :class:`~neuronshapley.ModelGame` the values were estimated on (optional):
            gives the model, the evaluation data and the removal curves.
        inputs, targets: evaluation data when ``game`` is not given.
        units: how many top units get example images and a feature visualisation.
        feature_vis: make the feature visualisations (one optimisation per unit).
        removal: evaluate top-k versus random removal when no curves are saved yet.
        steps: optimisation steps per feature visualisation.
        normalization: per-channel (mean, std) the inputs were normalised with (to undo for
            display).
        class_names: names of the classes (default: from the result's info).
    Returns:
        the path of ``report.html``.
    """
    say = log or (lambda _line: None)
    started = time.perf_counter()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError("the report needs matplotlib: pip install 'neuronshapley[plots]'"
                          ) from None
    out = Path(result_dir)
    full = ShapleyResult.load(out)
    result, output_name, output_index = _scalar(full)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    metric = str(full.info.get("metric") or getattr(game, "metric_name", None)
                 or _summary_setting(out, "metric") or "metric")
    if output_name:
        metric = f"{metric} [{output_name}]"
    k = int(full.params.get("k", 10) or 10)
    if game is not None:
        model = model if model is not None else game.model
        inputs = game.inputs if inputs is None else inputs
        targets = game.targets if targets is None else targets
    class_names = class_names or full.info.get("class_names")

    paths: dict[str, Path] = {}
    paths["values"] = fig.plot_value_distribution(result, figs / "values.png", k, metric)
    paths["top"] = fig.plot_top_units(result, figs / "top_units.png", max(k, 15))
    paths["layers"] = fig.plot_layers(result, figs / "layers.png", k)
    others = fig.find_other_results(out, result.players)
    paths["samples"] = fig.plot_samples(result, figs / "samples.png", others)
    curves, caption = fig.load_removal_curves(out)
    if not curves and removal and game is not None:
        say("removal curves: top-k versus random units")
        fig.compute_removal(game, result, out / "removal.csv", seed=seed,
                            output=output_index)
        curves, caption = fig.load_removal_curves(out)
    if curves:
        paths["removal"] = fig.plot_removal(curves, figs / "removal.png", metric)

    unit_dir = figs / "units"
    index_path = unit_dir / "units.json"
    unit_notes: list[str] = []
    made: list[UnitFigures] = []
    if model is not None and inputs is not None and units > 0:
        say(f"unit figures for the top {units} units")
        players = game.players_set if game is not None else _players_for(model, result)
        if unit_dir.exists():
            for old in unit_dir.glob("unit*.png"):
                old.unlink()
        made = unit_figures(model, players, result.table(min(units, result.n_players)),
                            inputs, targets, unit_dir, feature_vis=feature_vis, steps=steps,
                            seed=seed, normalization=normalization, class_names=class_names,
                            log=say)
        atomic_write_text(index_path, json.dumps([asdict(u) for u in made], indent=2) + "\n")
    elif index_path.is_file():
        made = _saved_units(index_path)
        unit_notes.append("Unit images saved by an earlier run with the model.")
    else:
        unit_notes.append("No model was available: run `neuronshapley run` (or write_report "
                          "with the model) to add the top units' images and feature "
                          "visualisations.")
    page = render_html(full, result, paths, curves_caption=caption, units=made,
                       unit_dir=unit_dir, unit_notes=unit_notes, others=list(others),
                       metric=metric, title=title)
    target = out / "report.html"
    atomic_write_text(target, page)
    say(f"report written to {target} ({time.perf_counter() - started:.1f} s)")
    return target


def _saved_units(index_path: Path) -> list[UnitFigures]:
    """The unit figures listed in ``units.json`` (a missing image is left out of the page)."""
    try:
        made = [UnitFigures(**u) for u in json.loads(index_path.read_text(encoding="utf-8"))]
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError) as exc:
        raise ReportError(
            f"{index_path} is damaged ({type(exc).__name__}: {exc}): delete the folder "
            f"{index_path.parent}, then rebuild the report (--refresh-units redoes the images)"
        ) from None
    return made


def render_html(
    full: ShapleyResult,
    result: ShapleyResult,
    paths: dict[str, Path],
    curves_caption: str,
    units: Sequence[UnitFigures],
    unit_dir: Path,
    unit_notes: Sequence[str],
    others: Sequence[str],
    metric: str,
    title: str | None = None,
) -> str:
    """The report page (a string of HTML, images inlined)."""
    info = full.info
    heading = title or f"Neuron Shapley report: {info.get('model', 'model')}"
    facts = [
        ("model", info.get("model")), ("weights", info.get("weights")),
        ("data", info.get("data")), ("metric", metric),
        ("units valued", f"{full.n_players} in {len(set(map(fig.layer_of, full.players)))} "
                         "layers"),
        ("method", full.method), ("seed", full.seed),
        ("evaluations", f"{full.evaluations:,}"), ("wall time", f"{full.wall_time:.1f} s"),
        ("walks", info.get("walks")), ("converged", info.get("converged")),
        ("top-k", result.top_k_summary() if result.values.ndim == 1 else None),
        ("intervals", info.get("intervals_note")),
        ("V(all units) / V(none)", _pair(info.get("v_full"), info.get("v_null"))),
    ]
    rows = "".join(f"<tr><td>{_esc(a)}</td><td>{_esc(b)}</td></tr>" for a, b in facts
                   if b is not None)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(heading)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(heading)}</h1>",
        '<p class="sub">Each unit\'s Shapley value is its average contribution to the '
        f"{_esc(metric)} of the network over random orders of removing units (a removed "
        "unit outputs its mean activation). Larger = the network relies on it more.</p>",
    ]
    if info.get("interrupted"):
        parts.append('<p class="warn">This run was interrupted (Ctrl-C): the values are those '
                     "computed so far, with wider intervals.</p>")
    parts.append(f'<table class="facts">{rows}</table>')
    heads, shown = result.display_table(15)
    top_rows = "".join(
        "<tr>" + "".join(f"<td>{_esc(c)}</td>" if j == 1 else f"<td class=num>{_esc(c)}</td>"
                         for j, c in enumerate(row)) + "</tr>" for row in shown)
    parts += [
        "<h2>Top units</h2>",
        '<div class="row"><div>'
        "<table><tr>" + "".join(f"<th>{_esc(h)}</th>" for h in heads) + "</tr>"
        f"{top_rows}</table></div><div>",
        _figure(paths["top"], "top units with confidence intervals",
                "The most valuable units; bars are the estimator's intervals ("
                + _esc(result.interval_label()) + ")."),
        "</div></div>",
        "<h2>Metric as units are removed</h2>",
    ]
    if "removal" in paths:
        parts.append(_figure(paths["removal"], "metric against units removed", curves_caption))
    else:
        parts.append('<p class="note">No removal curves: run with the model, or put a '
                     "compare.csv (neuronshapley compare) in this folder.</p>")
    parts.append("<h2>What the top units respond to</h2>")
    parts += [f'<p class="note">{_esc(n)}</p>' for n in unit_notes]
    cards = []
    for u in units:
        imgs = []
        for name, alt in ((u.examples, "most / least activating examples"),
                          (u.featvis, "feature visualisation")):
            if name and (unit_dir / name).is_file():
                imgs.append(_img(unit_dir / name, f"{u.player}: {alt}"))
        note = f'<p class="note">{_esc(u.note)}</p>' if u.note else ""
        cards.append(f'<div class="unit"><h3>#{u.rank} {_esc(u.player)} '
                     f"(value {u.value:+.4f})</h3><div class=\"imgs\">{''.join(imgs)}</div>"
                     f"{note}</div>")
    if cards:
        parts.append('<p class="note">Left: the evaluation examples with the highest (top row) '
                     "and lowest (bottom row) activation of the unit (a = mean activation). "
                     "Right: an input optimised to excite the unit (Fourier-parameterised, "
                     "decorrelated, with jitter).</p>")
        parts.append(f'<div class="units">{"".join(cards)}</div>')
    parts += [
        "<h2>Distribution of values</h2>",
        _figure(paths["values"], "distribution of values",
                "Most units matter little; the network's performance rests on a few."),
        "<h2>Where the top units are</h2>",
        _figure(paths["layers"], "top units per layer",
                "How many of the top units each layer holds, and each layer's total value."),
        "<h2>Samples per unit</h2>",
        _figure(paths["samples"], "samples per unit",
                "The bandit spends samples on units near the top-k boundary; plain "
                "Monte-Carlo gives every unit the same number."
                + (f" Other runs found: {', '.join(others)}." if others else "")),
    ]
    versions = ", ".join(f"{k} {v}" for k, v in full.versions.items())
    parts += [f'<p class="note">Made with {_esc(versions)}.</p>', _IMAGE_CHECK,
              "</body></html>"]
    return "\n".join(parts) + "\n"


def _summary_setting(folder: Path, key: str) -> Any:
    """``settings[key]`` of a ``summary.json`` in ``folder`` (the demo writes one), if any."""
    path = folder / "summary.json"
    try:
        return json.loads(path.read_text()).get("settings", {}).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def _figure(path: Path, alt: str, caption: str) -> str:
    return f"<figure>{_img(path, alt)}<figcaption>{_esc(caption)}</figcaption></figure>"


def _pair(a: Any, b: Any) -> str | None:
    if a is None or b is None:
        return None
    a0 = a[0] if isinstance(a, list) and a else a
    b0 = b[0] if isinstance(b, list) and b else b
    try:
        return f"{float(a0):.4f} / {float(b0):.4f}"
    except (TypeError, ValueError):
        return None
