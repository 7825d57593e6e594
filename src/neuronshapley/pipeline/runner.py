"""``run(config)``: the Python one-call equivalent of ``neuronshapley run``.

Loads a model (:mod:`neuronshapley.pipeline.loading`) and data
(:mod:`neuronshapley.pipeline.data`), checks that
they fit together, estimates the Shapley values of the chosen units, saves them
(``values.csv``, ``metadata.json``, ``run_config.json``) and writes the HTML report
(:func:`neuronshapley.report.write_report`).

Settings come from a :class:`RunConfig`, a mapping, or a config file (TOML, or YAML when PyYAML
is installed) read by :func:`load_config`; the same keys as the command's options, plus
``options`` (a table of estimator options) and ``model_kwargs``. Example ``run.toml``::

    model = "mypkg.models:Net"      # or "net.py:Net", or "model.pt2"
    weights = "net_state.pt"
    data = "eval.npz"
    metric = "accuracy"
    players = ["features.*"]
    method = "tmab"
    out = "shapley-out"
    [options]
    k = 10
    max_evaluations = 20000

Input problems raise :class:`RunError` (a ``ValueError``) with the problem and the fix.
Ctrl-C stops the estimate cleanly: what was computed is saved with
``info["interrupted"] = True`` and :attr:`RunOutcome.interrupted` is set.
"""

from __future__ import annotations

import json
import os
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neuronshapley.errors import RunError
from neuronshapley.estimators import METHODS, accepts, estimate, method_options
from neuronshapley.network.game import ModelGame
from neuronshapley.network.players import PlayerSet, discover_players
from neuronshapley.pipeline.data import Dataset, load_data
from neuronshapley.pipeline.loading import (
    LoadedModel,
    expected_input_shape,
    load_model,
    set_exported_eval,
)
from neuronshapley.progress import ProgressFn
from neuronshapley.result import ShapleyResult

Log = Callable[[str], None]

#: Modules that behave differently in training mode.
_MODE_DEPENDENT = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm,
                   nn.modules.instancenorm._InstanceNorm)


@dataclass
class RunConfig:
    """Everything ``neuronshapley run`` needs; see the command's ``--help`` for each field."""

    model: str = ""
    data: str = ""
    weights: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    trust_pickle: bool = False
    eval_mode: bool = False
    x_key: str = "x"
    y_key: str = "y"
    image_size: list[int] | None = None
    color: str = "auto"
    normalize: str | list[list[float]] | None = None
    max_examples: int | None = None
    reference: str | None = None
    metric: str = "accuracy"
    players: list[str] | None = None
    include_output_layer: bool = False
    attention_heads: bool = True
    replacement: str = "mean"
    method: str = "tmab"
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int | None = None
    pass_size: int | None = None
    walk_sample: int | None = None
    precision: str = "float32"
    out: str = "neuronshapley-run"
    overwrite: bool = False
    seed: int = 0
    threads: int = 1
    device: str = "cpu"
    checkpoint: str | None = None
    resume: bool = False
    report: bool = True
    report_units: int = 6
    feature_vis: bool = True
    feature_vis_steps: int = 96

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> RunConfig:
        """A config from ``values`` (unknown keys are an error naming the valid ones)."""
        names = {f.name for f in fields(cls)}
        aliases = {"eval": "eval_mode", "output": "out", "layers": "players"}
        clean: dict[str, Any] = {}
        for key, value in values.items():
            k = aliases.get(str(key).replace("-", "_"), str(key).replace("-", "_"))
            if k not in names:
                raise RunError(
                    f"{source}: unknown setting {key!r}; valid settings: "
                    f"{', '.join(sorted(names))}"
                )
            clean[k] = value
        if isinstance(clean.get("players"), str):
            clean["players"] = [clean["players"]]
        if isinstance(clean.get("image_size"), int):
            clean["image_size"] = [clean["image_size"]]
        for key in ("options", "model_kwargs"):
            if key in clean and not isinstance(clean[key], Mapping):
                raise RunError(f"{source}: {key!r} must be a table of settings")
        return cls(**clean)

    def merged(self, overrides: Mapping[str, Any]) -> RunConfig:
        """This config with the non-None ``overrides`` applied (options are merged)."""
        values = asdict(self)
        for key, value in overrides.items():
            if value is None:
                continue
            if key in ("options", "model_kwargs"):
                values[key] = {**values[key], **dict(value)}
            else:
                values[key] = value
        return RunConfig.from_mapping(values)

    def validate(self) -> None:
        if not self.model:
            raise RunError("no model: give --model (module:factory, model.pt2 or a pickled "
                           "module with --trust-pickle) or 'model' in the config file")
        if not self.data:
            raise RunError("no data: give --data (.npz, .pt or an image folder) or 'data' in "
                           "the config file")
        if self.method not in METHODS:
            raise RunError(f"unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.threads < 1:
            raise RunError(f"threads must be at least 1, got {self.threads}")
        if self.resume and not self.checkpoint:
            raise RunError("--resume needs --checkpoint FOLDER (the folder of the run to resume)")


def load_config(path: str | os.PathLike[str]) -> RunConfig:
    """Read a TOML (``.toml``) or YAML (``.yaml``/``.yml``, needs PyYAML) config file."""
    p = Path(path)
    if not p.is_file():
        raise RunError(f"config file {str(path)!r} not found")
    text = p.read_text()
    if p.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise RunError(f"{p} is YAML but PyYAML is not installed: pip install pyyaml, "
                           "or write the config as TOML") from None
        try:
            values = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise RunError(f"{p} is not valid YAML: {exc}") from None
    else:
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RunError(f"{p} is not valid TOML: {exc}") from None
    if not isinstance(values, Mapping):
        raise RunError(f"{p} must hold a table of settings, not a {type(values).__name__}")
    base = p.parent
    values = dict(values)
    for key in ("model", "weights", "data", "reference", "out", "checkpoint"):
        value = values.get(key)
        if isinstance(value, str) and value and not Path(value).is_absolute():
            candidate = base / value.split(":")[0] if key == "model" else base / value
            if key != "out" and candidate.exists():
                values[key] = str(base / value)
    return RunConfig.from_mapping(values, source=str(p))


@dataclass
class RunOutcome:
    """What :func:`run` did: the result, where it is, and what it noticed."""

    result: ShapleyResult
    out_dir: Path
    config: RunConfig
    game: ModelGame | None
    loaded: LoadedModel | None
    data: Dataset | None
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    wall_time: float = 0.0


@contextmanager
def _threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def check_out_dir(out: str | os.PathLike[str], overwrite: bool) -> Path:
    """Refuse an output folder that holds files unless ``overwrite``."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise RunError(f"output {p} is a file, not a folder: choose another --out")
    if p.is_dir() and any(p.iterdir()) and not overwrite:
        raise RunError(f"output folder {p} is not empty and would be overwritten: pass "
                       "--overwrite, or choose another --out")
    return p


def run(
    config: RunConfig | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    progress: bool | ProgressFn | None = True,
    log: Log | None = None,
    **overrides: Any,
) -> RunOutcome:
    """Estimate, save and report the Shapley values of a model's units in one call.

    Args:
        config: a :class:`RunConfig`, a mapping of its fields, or a config file path.
        progress: True for a rich progress bar, a callable ``state -> None``, or None/False.
        log: called with one line per step (default: silent).
        **overrides: fields of :class:`RunConfig` overriding ``config`` (None: not set).
    Returns:
        a :class:`RunOutcome`; ``outcome.interrupted`` after Ctrl-C (partial result saved).
    """
    if config is None:
        cfg = RunConfig()
    elif isinstance(config, RunConfig):
        cfg = config
    elif isinstance(config, Mapping):
        cfg = RunConfig.from_mapping(config)
    else:
        cfg = load_config(config)
    cfg = cfg.merged(overrides)
    cfg.validate()
    say = log or (lambda _line: None)
    started = time.perf_counter()
    out = check_out_dir(cfg.out, cfg.overwrite)
    with _threads(cfg.threads):
        loaded = load_model(cfg.model, cfg.weights, cfg.trust_pickle, cfg.model_kwargs)
        notes = list(loaded.notes)
        model = prepare_model(loaded, cfg, notes)
        data = load_dataset(cfg.data, cfg)
        notes += data.notes
        ref = load_dataset(cfg.reference, cfg) if cfg.reference else None
        outputs = check_model_on_data(model, data, loaded)
        players = _players(model, cfg)
        say(f"model {cfg.model}: {players.n_players} units in {len(players.layers)} layers; "
            f"data {cfg.data}: {len(data)} examples, outputs {tuple(outputs.shape[1:])}")
        with _explained("setting up the game (reference activations)"):
            game = ModelGame(
                model, data.x, data.y, metric=cfg.metric, players=players,
                reference=ref.x if ref is not None else None, replacement=cfg.replacement,
                batch_size=cfg.batch_size, pass_size=cfg.pass_size,
                walk_sample=cfg.walk_sample, precision=cfg.precision,
            )
        options = _estimator_options(cfg)
        say(f"{cfg.method}: {game!r}")
        bar, close = _progress(progress if estimator_accepts(cfg.method, "progress") else None,
                               _budget(cfg.method, options, players.n_players), cfg.method)
        if bar is not None:
            options["progress"] = bar
        interrupted = False
        try:
            with _explained("evaluating the model with units removed"):
                result = estimate(game, method=cfg.method, seed=cfg.seed, **options)
        except KeyboardInterrupt as exc:
            partial = getattr(exc, "result", None)
            if not isinstance(partial, ShapleyResult):  # exact enumeration: nothing partial
                raise
            interrupted, result = True, partial
            result.info["interrupted"] = True
            notes.append("interrupted by Ctrl-C: the values are those computed so far")
        finally:
            close()
        result.info.update(
            model=cfg.model, weights=cfg.weights, data=cfg.data, metric=game.metric_name,
            replacement=cfg.replacement, game=game.fingerprint(),
            layers=[ly.name for ly in players.layers],
            layer_kinds={ly.name: ly.kind for ly in players.layers},
            class_names=data.class_names, model_kind=loaded.kind,
        )
        out.mkdir(parents=True, exist_ok=True)
        result.save(out)
        files = {"values": out / "values.csv", "metadata": out / "metadata.json"}
        files["config"] = out / "run_config.json"
        files["config"].write_text(json.dumps(asdict(cfg), indent=2, default=str) + "\n")
        if cfg.report:
            from neuronshapley.report import ReportError, write_report

            say("writing the report")
            with_model = not interrupted  # after Ctrl-C: quick, without the model's parts
            try:
                files["report"] = write_report(
                    out, model=model if with_model else None,
                    game=game if with_model else None, units=cfg.report_units,
                    feature_vis=cfg.feature_vis, steps=cfg.feature_vis_steps, seed=cfg.seed,
                    normalization=data.normalization, log=say,
                )
            except ReportError as exc:
                notes.append(f"no report: {exc}")
    return RunOutcome(result, out, cfg, game, loaded, data, interrupted, notes, files,
                      time.perf_counter() - started)


# ------------------------------------------------------------------------------ steps
@contextmanager
def _explained(step: str) -> Iterator[None]:
    """Turn a bare torch ``RuntimeError`` from the user's model into a :class:`RunError`."""
    from neuronshapley.network.ablation import AblationError

    try:
        yield
    except AblationError:
        raise
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(
            f"the model failed while {step}: {first}. Units are removed with forward hooks "
            "on a batch repeated once per mask: the model must keep the batch dimension "
            "first and must not fix the batch size (e.g. x.view(32, -1); use "
            "x.flatten(1)). Choose other layers with --players if one layer is the cause"
        ) from None


def load_dataset(path: str, cfg: RunConfig) -> Dataset:
    """Load ``path`` with the data settings of ``cfg``."""
    normalize: Any = cfg.normalize
    if isinstance(normalize, (list, tuple)):
        if len(normalize) != 2:
            raise RunError("normalize must be 'dataset' or [means, stds]")
        normalize = (list(normalize[0]), list(normalize[1]))
    return load_data(path, cfg.x_key, cfg.y_key, cfg.image_size, cfg.color, normalize,
                     cfg.max_examples, cfg.seed)


def prepare_model(loaded: LoadedModel, cfg: RunConfig, notes: list[str]) -> nn.Module:
    """Put the model in evaluation mode (or explain why not) and on ``cfg.device``."""
    model = loaded.module
    if loaded.kind == "exported":
        if loaded.training_ops:
            if not cfg.eval_mode:
                raise RunError(
                    f"the exported program was traced in training mode (ops "
                    f"{', '.join(loaded.training_ops[:4])}): dropout and batch-norm would make "
                    "the values random. Pass --eval to switch them to evaluation mode, or "
                    "export after model.eval()"
                )
            n = set_exported_eval(model)  # type: ignore[arg-type]
            notes.append(f"--eval: {n} training-mode ops switched to evaluation mode")
    elif model.training:
        if loaded.kind == "factory":
            model.eval()
            notes.append("the factory's model was put in eval mode (model.eval())")
        elif cfg.eval_mode:
            model.eval()
            notes.append("--eval: model.eval() called")
        else:
            layers = [n for n, m in model.named_modules() if isinstance(m, _MODE_DEPENDENT)]
            which = (f" (it has {', '.join(layers[:4])}{' ...' if len(layers) > 4 else ''})"
                     if layers else "")
            raise RunError(
                f"the model was saved in training mode{which}: dropout and batch-norm would "
                "make its outputs random. Pass --eval to call model.eval(), or save it after "
                "model.eval()"
            )
    device = torch.device(cfg.device)
    if device.type != "cpu":
        model.to(device)
    return model


def check_model_on_data(
    model: nn.Module, data: Dataset, loaded: LoadedModel | None = None, batch_size: int = 512
) -> torch.Tensor:
    """Run ``model`` on all of ``data``; explain shape errors, NaN outputs and bad labels.

    Returns the outputs (N, C).
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    expected = None
    if loaded is not None and loaded.input_shape is not None:
        expected = "(" + ", ".join(map(str, loaded.input_shape)) + ")"
    expected = expected or expected_input_shape(model)
    outs = []
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            batch = data.x[start:start + batch_size].to(device)
            try:
                out = model(batch)
            except Exception as exc:  # noqa: BLE001 - the user's model raised; explain it
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                hint = f"; the model expects inputs {expected}" if expected else ""
                raise RunError(
                    f"the model failed on the data: inputs have shape "
                    f"{tuple(data.x.shape)} ({data.x.dtype}){hint}. "
                    f"{type(exc).__name__}: {first}. Fix the data (--image-size, --color, "
                    "the array's layout) or the model"
                ) from None
            if not isinstance(out, torch.Tensor):
                raise RunError(
                    f"the model returns a {type(out).__name__}, not a tensor of scores: wrap it "
                    "in a module whose forward returns the logits tensor (N, classes)"
                )
            outs.append(out.detach().float().cpu())
    outputs = torch.cat(outs)
    if outputs.ndim != 2:
        raise RunError(
            f"the model's output has shape {tuple(outputs.shape)}; the metrics need scores "
            "(N, classes): flatten or pool it in the model"
        )
    bad = ~torch.isfinite(outputs).all(dim=1)
    if bool(bad.any()):
        idx = torch.nonzero(bad).flatten()[:5].tolist()
        raise RunError(
            f"the model's outputs are NaN or infinite for {int(bad.sum())} of {len(outputs)} "
            f"examples (e.g. {idx}): check the inputs' scale and preprocessing "
            "(--normalize) and the weights"
        )
    n_classes = outputs.shape[1]
    y_max = int(data.y.max())
    if y_max >= n_classes:
        raise RunError(
            f"labels go up to {y_max} but the model scores {n_classes} classes (0.."
            f"{n_classes - 1}): check --y-key, the label encoding, or the model's output layer"
        )
    return outputs


def _players(model: nn.Module, cfg: RunConfig) -> PlayerSet:
    players = discover_players(model, cfg.players, cfg.include_output_layer,
                               attention_heads=cfg.attention_heads)
    return players


def estimator_accepts(method: str, option: str) -> bool:
    """Whether ``ns.estimate(method=...)`` takes ``option`` (checked at run time)."""
    return method in METHODS and accepts(method, option)


def _estimator_options(cfg: RunConfig) -> dict[str, Any]:
    options = dict(cfg.options)
    if "progress" in options:
        raise RunError("'progress' is not an estimator option here: use --progress/--no-progress")
    if cfg.checkpoint:
        if not estimator_accepts(cfg.method, "checkpoint"):
            raise RunError(
                f"method {cfg.method!r} cannot checkpoint in this version: drop --checkpoint"
            )
        options["checkpoint"] = cfg.checkpoint
        if cfg.resume:
            options["resume"] = True
    unknown = [k for k in options if not estimator_accepts(cfg.method, k)]
    if unknown:
        allowed = sorted(set(method_options(cfg.method)) - {"progress"})
        raise RunError(
            f"method {cfg.method!r} takes no option {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(allowed)}"
        )
    return options


# --------------------------------------------------------------------------- progress
def _budget(method: str, options: dict[str, Any], n: int) -> int | None:
    """The evaluation budget ``estimate`` will use (its documented defaults), for the bar."""
    if options.get("max_evaluations") is not None:
        return int(options["max_evaluations"])
    if method == "tmab":
        return 2000 * n
    if method in ("permutation", "truncated") and options.get("n_permutations") is None:
        return 100 * (n + 1)
    return None


def _progress(
    progress: bool | ProgressFn | None, total: Any, method: str
) -> tuple[ProgressFn | None, Callable[[], None]]:
    if callable(progress):
        return progress, lambda: None
    if progress:
        bar = RunProgress(None if total is None else int(total), method)
        return bar, bar.close
    return None, lambda: None


class RunProgress:
    """A rich bar: evaluations done of the budget, units still in play, walks, time left."""

    def __init__(self, total: int | None, method: str, console: Any = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn(f"[bold]{method}"), BarColumn(bar_width=16), MofNCompleteColumn(),
            TextColumn("evals · {task.fields[status]}"), TimeElapsedColumn(),
            TextColumn("left ≤"), TimeRemainingColumn(compact=True),
            console=console, transient=False,
        )
        self._task = self._progress.add_task(method, total=total, status="")
        self._progress.start()

    def __call__(self, state: dict[str, Any]) -> None:
        status = f"{state.get('walks', 0)} walks"
        if state.get("active") is not None:
            status = f"{state['active']} units in play, " + status
        self._progress.update(self._task, completed=int(state.get("evaluations", 0)),
                              status=status)

    def close(self) -> None:
        self._progress.stop()


def summary_rows(result: ShapleyResult, k: int = 10) -> list[dict[str, Any]]:
    """The top ``k`` rows of a (scalar, or first output of a vector) result."""
    res = result if result.values.ndim == 1 else result.output(0)
    return res.table(min(k, res.n_players))


__all__ = [
    "RunConfig",
    "RunError",
    "RunOutcome",
    "RunProgress",
    "check_model_on_data",
    "check_out_dir",
    "estimator_accepts",
    "load_config",
    "run",
    "summary_rows",
]

