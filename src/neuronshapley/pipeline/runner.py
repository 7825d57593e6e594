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

from neuronshapley.errors import GameError, RunError
from neuronshapley.estimators import METHODS, accepts, estimate, method_options
from neuronshapley.estimators.checkpoint import has_state
from neuronshapley.files import atomic_write_text
from neuronshapley.interrupts import deferred_interrupts, later_interrupts_deferred
from neuronshapley.network import inputs
from neuronshapley.network.game import ModelGame, check_labels
from neuronshapley.network.players import PlayerSet, discover_players
from neuronshapley.pipeline.data import Dataset, is_text_file, load_data, load_text_data
from neuronshapley.pipeline.hf import max_positions
from neuronshapley.pipeline.loading import (
    LoadedModel,
    expected_input_shape,
    load_model,
    set_exported_eval,
)
from neuronshapley.pipeline.outdir import OutputFolder
from neuronshapley.pipeline.settings import check_settings
from neuronshapley.progress import ProgressFn, make_progress
from neuronshapley.result import ShapleyResult
from neuronshapley.runtime import torch_threads

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
    text_column: str = "text"
    label_column: str = "label"
    max_length: int | None = None
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

    def __post_init__(self) -> None:
        for key, value in check_settings(self._values(), "RunConfig").items():
            setattr(self, key, value)

    def _values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> RunConfig:
        """A config from ``values``, each checked against its declared type and range
        (:mod:`neuronshapley.pipeline.settings`); unknown keys are an error naming the
        valid ones."""
        aliases = {"eval": "eval_mode", "output": "out", "layers": "players"}
        renamed: dict[str, Any] = {}
        for key, value in values.items():
            k = str(key).replace("-", "_")
            renamed[aliases.get(k, k)] = value
        return cls(**check_settings(renamed, source))

    def merged(self, overrides: Mapping[str, Any]) -> RunConfig:
        """This config with the non-None ``overrides`` applied (options are merged)."""
        values = self._values()
        for key, value in overrides.items():
            if value is None:
                continue
            if key in ("options", "model_kwargs"):
                values[key] = {**values[key], **dict(value)}
            else:
                values[key] = value
        return RunConfig.from_mapping(values, source="settings")

    def validate(self) -> None:
        if not self.model:
            raise RunError("no model: give --model (module:factory, model.pt2 or a pickled "
                           "module with --trust-pickle) or 'model' in the config file")
        if not self.data:
            raise RunError("no data: give --data (.npz, .pt or an image folder) or 'data' in "
                           "the config file")
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
    check_resume(cfg)
    with OutputFolder(cfg.out, cfg.overwrite) as folder, torch_threads(cfg.threads):
        out = folder.path
        loaded = load_model(cfg.model, cfg.weights, cfg.trust_pickle, cfg.model_kwargs)
        notes = list(loaded.notes)
        model = prepare_model(loaded, cfg, notes)
        data = load_dataset(cfg.data, cfg, loaded)
        notes += data.notes
        ref = load_dataset(cfg.reference, cfg, loaded) if cfg.reference else None
        outputs = check_model_on_data(model, data, loaded)
        players = select_players(model, cfg)
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
        shows = bool(progress) and estimator_accepts(cfg.method, "progress")
        bar, close = make_progress(progress if shows else None,
                                   _budget(cfg.method, options, players.n_players), cfg.method)
        if shows:
            options["progress"] = bar
        interrupted = False
        # the first Ctrl-C stops the estimate; a second one waits until its values are saved
        with later_interrupts_deferred() as guard:
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
            guard.hold()  # from here on the values are saved whatever the user presses
            result.info.update(
                model=cfg.model, weights=cfg.weights, data=cfg.data, metric=game.metric_name,
                replacement=cfg.replacement, game=game.fingerprint(),
                layers=[ly.name for ly in players.layers],
                layer_kinds={ly.name: ly.kind for ly in players.layers},
                class_names=data.class_names, model_kind=loaded.kind,
            )
            files = {"values": out / "values.csv", "metadata": out / "metadata.json",
                     "config": out / "run_config.json"}
            with deferred_interrupts():  # the set is written whole
                kept = folder.clear_previous()  # the folder never holds files of two runs
                result.save(out)
                atomic_write_text(files["config"],
                                  json.dumps(asdict(cfg), indent=2, default=str) + "\n")
            stop_now = guard.take()  # Ctrl-C (again) while saving: the values are saved
            if stop_now:
                interrupted = True
                notes.append("Ctrl-C while saving: no report was written")
        if kept:
            notes.append(f"{len(kept)} files in {out} that this tool did not write were kept")
        if cfg.report and not stop_now:
            from neuronshapley.report import ReportError, write_report

            say("writing the report")
            # after Ctrl-C: quick, without the model's parts; token inputs: no unit images
            with_model = not interrupted and isinstance(data.x, torch.Tensor)
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


def check_resume(cfg: RunConfig) -> None:
    """Refuse a checkpoint path that is a file, and ``resume`` when the checkpoint folder
    holds no checkpoint: before any work is done."""
    if not cfg.checkpoint:
        return
    folder = Path(cfg.checkpoint)
    if folder.exists() and not folder.is_dir():
        raise RunError(f"checkpoint {folder} is a file, not a folder: give a folder to "
                       "--checkpoint")
    if not cfg.resume:
        return
    if not folder.is_dir():
        raise RunError(f"--resume: the checkpoint folder {folder} does not exist: give the "
                       "--checkpoint folder of the interrupted run, or drop --resume to start "
                       "afresh")
    if not has_state(folder):
        raise RunError(f"--resume: {folder} holds no checkpoint (no state.npz): give the "
                       "--checkpoint folder of the interrupted run, or drop --resume to start "
                       "afresh")


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


def load_dataset(path: str, cfg: RunConfig, loaded: LoadedModel | None = None) -> Dataset:
    """Load ``path`` with the data settings of ``cfg`` (texts: with ``loaded``'s tokenizer)."""
    if is_text_file(path):
        if loaded is None or loaded.kind != "huggingface":
            raise RunError(
                f"{path} is text data: it needs a Hugging Face model and its tokenizer "
                "(--model hf:FOLDER); for other models save arrays (.npz / .pt)"
            )
        return load_text_data(path, loaded.tokenizer, cfg.text_column, cfg.label_column,
                              cfg.max_length, max_positions(loaded.module, loaded.tokenizer),
                              cfg.max_examples, cfg.seed)
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
    described = ", ".join(f"{k} {tuple(v.shape)}" for k, v in data.x.items()) if isinstance(
        data.x, Mapping) else f"{tuple(data.x.shape)} ({data.x.dtype})"
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            part = inputs.to_device(inputs.take(data.x, slice(start, start + batch_size)),
                                    device)
            try:
                raw = inputs.call(model, part)
            except Exception as exc:  # noqa: BLE001 - the user's model raised; explain it
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                hint = f"; the model expects inputs {expected}" if expected else ""
                raise RunError(
                    f"the model failed on the data: inputs have shape "
                    f"{described}{hint}. "
                    f"{type(exc).__name__}: {first}. Fix the data (--image-size, --color, "
                    "the array's layout) or the model"
                ) from None
            try:
                out = inputs.model_output(raw)
            except GameError:
                raise RunError(
                    f"the model returns a {type(raw).__name__}, not a tensor of scores: wrap it "
                    "in a module whose forward returns the logits tensor (N, classes)"
                    + (" (a Hugging Face model without a task head: save a "
                       "...ForSequenceClassification model)" if isinstance(data.x, Mapping)
                       else "")
                ) from None
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
    check_labels(data.y, outputs.shape[1], "labels")
    return outputs


def select_players(model: nn.Module, cfg: RunConfig) -> PlayerSet:
    """The players ``cfg`` asks for (``players`` patterns, output layer, heads)."""
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


__all__ = [
    "RunConfig",
    "RunError",
    "RunOutcome",
    "check_model_on_data",
    "estimator_accepts",
    "load_config",
    "run",
]

