"""Parsing of the command line's compound values (KEY=VALUE options, sizes, normalisation)."""

from __future__ import annotations

import json
from typing import Any

import typer


def parse_option(text: str) -> tuple[str, Any]:
    """``"k=10"`` -> ``("k", 10)``; values are read as JSON when they parse, else strings."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise typer.BadParameter(f"expected KEY=VALUE, got {text!r}", param_hint="--option")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip().replace("-", "_"), value


def parse_size(text: str | None) -> list[int] | None:
    """``"32"`` or ``"32x48"`` (height x width) -> ``[32]`` / ``[32, 48]``."""
    if text is None:
        return None
    try:
        size = [int(p) for p in text.lower().replace(",", "x").split("x")]
    except ValueError:
        raise typer.BadParameter(f"expected N or HxW, got {text!r}",
                                 param_hint="--image-size") from None
    if not 1 <= len(size) <= 2 or min(size) < 1:
        raise typer.BadParameter(f"expected N or HxW, got {text!r}", param_hint="--image-size")
    return size


def parse_normalize(text: str | None) -> str | list[list[float]] | None:
    """``"dataset"`` or ``"0.5,0.5,0.5/0.2,0.2,0.2"`` (means / stds)."""
    if text is None or text == "dataset":
        return text
    means, sep, stds = text.partition("/")
    try:
        if not sep:
            raise ValueError
        return [[float(v) for v in means.split(",")], [float(v) for v in stds.split(",")]]
    except ValueError:
        raise typer.BadParameter("expected 'dataset' or 'MEANS/STDS' (comma-separated per "
                                 "channel)", param_hint="--normalize") from None
