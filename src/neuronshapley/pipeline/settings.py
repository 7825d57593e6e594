"""Declared types and ranges of the run settings, checked in one place.

Every setting of :class:`~neuronshapley.pipeline.runner.RunConfig` has a :class:`Setting`
here; :func:`check_settings` checks a mapping of them, whether it came from a TOML or YAML
file, the command line or Python. Nothing is coerced: ``"no"`` is not a boolean and
``"2"`` is not an integer, so a config file never means something other than it says.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from neuronshapley.errors import RunError


@dataclass(frozen=True)
class Setting:
    """One setting: ``check(value)`` returns the value (paths as ``str``) or raises."""

    expected: str
    check: Callable[[Any], Any]
    optional: bool = False


class _NotAllowedError(Exception):
    """Raised inside a check: the value does not fit."""


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _NotAllowedError
    return value


def _int(low: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _NotAllowedError
        if low is not None and value < low:
            raise _NotAllowedError
        return value

    return check


def _text(choices: Sequence[str] | None = None) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or (choices is not None and value not in choices):
            raise _NotAllowedError
        return value

    return check


def _path(value: Any) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise _NotAllowedError
    return value


def _names(value: Any) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or not all(
        isinstance(v, str) and v for v in items
    ):
        raise _NotAllowedError
    return list(items)


def _size(value: Any) -> list[int]:
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, (list, tuple)) or not 1 <= len(items) <= 2:
        raise _NotAllowedError
    return [_int(1)(v) for v in items]


def _normalize(value: Any) -> str | list[list[float]]:
    if value == "dataset":
        return value
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _NotAllowedError
    out = []
    for part in value:
        if not isinstance(part, (list, tuple)) or not part:
            raise _NotAllowedError
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in part):
            raise _NotAllowedError
        out.append([float(v) for v in part])
    if len(out[0]) != len(out[1]) or min(out[1]) <= 0:
        raise _NotAllowedError
    return out


def _table(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _NotAllowedError
    return dict(value)


def _choices(names: Sequence[str]) -> str:
    return "one of " + ", ".join(repr(n) for n in names)


def run_settings() -> dict[str, Setting]:
    """The declared type and range of every run setting, by name."""
    from neuronshapley.estimators import METHODS
    from neuronshapley.network.game import PRECISIONS
    from neuronshapley.network.metrics import METRICS

    boolean = Setting("true or false", _bool)
    path = Setting("a path (text)", _path)
    opt_path = Setting("a path (text)", _path, optional=True)
    positive = Setting("an integer >= 1", _int(1), optional=True)
    replacements = ("mean", "channel", "zero")
    colors = ("auto", "rgb", "gray")
    return {
        "model": Setting("text: 'module:factory', 'file.py:factory' or a file", _path),
        "data": path,
        "weights": opt_path,
        "model_kwargs": Setting("a table of keyword arguments", _table),
        "trust_pickle": boolean,
        "eval_mode": boolean,
        "x_key": Setting("text", _text()),
        "y_key": Setting("text", _text()),
        "image_size": Setting("N or [height, width], integers >= 1", _size, optional=True),
        "color": Setting(_choices(colors), _text(colors)),
        "normalize": Setting("'dataset' or [means, stds] (lists of numbers, stds > 0)",
                             _normalize, optional=True),
        "max_examples": positive,
        "text_column": Setting("text (a column name)", _text()),
        "label_column": Setting("text (a column name)", _text()),
        "max_length": positive,
        "reference": opt_path,
        "metric": Setting(_choices(sorted(METRICS)), _text(sorted(METRICS))),
        "players": Setting("a layer name or pattern, or a list of them", _names,
                           optional=True),
        "include_output_layer": boolean,
        "attention_heads": boolean,
        "replacement": Setting(_choices(replacements), _text(replacements)),
        "method": Setting(_choices(METHODS), _text(tuple(METHODS))),
        "options": Setting("a table of estimator options", _table),
        "batch_size": positive,
        "pass_size": positive,
        "walk_sample": positive,
        "precision": Setting(_choices(tuple(PRECISIONS)), _text(tuple(PRECISIONS))),
        "out": Setting("a folder path (text)", _nonempty_path),
        "overwrite": boolean,
        "seed": Setting("an integer >= 0", _int(0)),
        "threads": Setting("an integer >= 1", _int(1)),
        "device": Setting("text: cpu, cuda or cuda:N", _device),
        "checkpoint": opt_path,
        "resume": boolean,
        "report": boolean,
        "report_units": Setting("an integer >= 0", _int(0)),
        "feature_vis": boolean,
        "feature_vis_steps": Setting("an integer >= 1", _int(1)),
    }


def _nonempty_path(value: Any) -> str:
    text = _path(value)
    if not text:
        raise _NotAllowedError
    return text


def _device(value: Any) -> str:
    import torch

    if not isinstance(value, str):
        raise _NotAllowedError
    try:
        torch.device(value)
    except (RuntimeError, ValueError):
        raise _NotAllowedError from None
    return value


def check_settings(values: Mapping[str, Any], source: str = "settings") -> dict[str, Any]:
    """``values`` checked against :func:`run_settings` (paths made ``str``).

    Raises :class:`RunError` naming the source, the setting, the value and what is allowed;
    unknown names are errors too.
    """
    declared = run_settings()
    clean: dict[str, Any] = {}
    for key, value in values.items():
        setting = declared.get(key)
        if setting is None:
            raise RunError(f"{source}: unknown setting {key!r}; valid settings: "
                           f"{', '.join(sorted(declared))}")
        if value is None and setting.optional:
            clean[key] = None
            continue
        try:
            clean[key] = setting.check(value)
        except _NotAllowedError:
            raise RunError(
                f"{source}: {key} = {_show(value)} is not allowed; {key} must be "
                f"{setting.expected}"
            ) from None
    return clean


def _show(value: Any) -> str:
    """The value as the user wrote it, with its type when that is the problem."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    kind = {str: "text", bool: "a boolean", int: "an integer", float: "a number",
            type(None): "empty"}.get(type(value), type(value).__name__)
    return f"{text} ({kind})"


__all__ = ["Setting", "check_settings", "run_settings"]
