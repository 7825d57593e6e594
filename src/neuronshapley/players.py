"""Discover the removable units ("players") of any ``nn.Module``.

A player is one output channel of a convolution (1d/2d/3d) or one hidden unit of a
``nn.Linear`` layer. Its id is ``"<module path>:<index>"``, e.g. ``"features.3:17"``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import nn

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class PlayerError(ValueError):
    """The requested players cannot be found in the model."""


@dataclass(frozen=True)
class Layer:
    """A module whose output units are players.

    ``channel_axis`` is the axis of the module's output that indexes units (1 for
    convolutions, -1 for linear layers); ``offset`` is the index of its first unit
    in the flat player vector.
    """

    name: str
    kind: str
    n_units: int
    channel_axis: int
    offset: int

    @property
    def ids(self) -> list[str]:
        return [f"{self.name}:{i}" for i in range(self.n_units)]

    @property
    def slice(self) -> slice:
        return slice(self.offset, self.offset + self.n_units)


@dataclass(frozen=True)
class PlayerSet:
    """The players of a model, grouped by layer, in module order."""

    layers: tuple[Layer, ...]

    @property
    def n_players(self) -> int:
        return sum(layer.n_units for layer in self.layers)

    @property
    def ids(self) -> list[str]:
        return [pid for layer in self.layers for pid in layer.ids]

    @property
    def layer_of(self) -> np.ndarray:
        """Index of each player's layer, shape (n_players,)."""
        return np.repeat(np.arange(len(self.layers)), [ly.n_units for ly in self.layers])

    def index(self, player_id: str) -> int:
        """Position of ``player_id`` (``"layer:unit"``) in the flat player vector."""
        name, _, unit = player_id.rpartition(":")
        for layer in self.layers:
            if layer.name == name:
                u = int(unit)
                if not 0 <= u < layer.n_units:
                    raise PlayerError(f"{player_id!r}: layer {name!r} has {layer.n_units} units")
                return layer.offset + u
        raise PlayerError(f"no layer named {name!r} among the players")

    def __len__(self) -> int:
        return self.n_players


def _unit_layer(module: nn.Module) -> tuple[str, int, int] | None:
    if isinstance(module, _CONV):
        return type(module).__name__, int(module.out_channels), 1
    if isinstance(module, nn.Linear):
        return "Linear", int(module.out_features), -1
    return None


def discover_players(
    model: nn.Module,
    layers: Sequence[str] | str | None = None,
    include_output_layer: bool = False,
) -> PlayerSet:
    """Find the removable units of ``model``.

    Args:
        model: any module; its conv and linear sub-modules become layers of players.
        layers: module paths or glob patterns (``"features.*"``) to keep; None keeps all.
            A pattern that matches no unit layer is an error.
        include_output_layer: keep the last ``nn.Linear`` (the logit layer). Off by
            default: removing a logit unit only hides a class, it says nothing about features.
    """
    candidates: list[tuple[str, tuple[str, int, int]]] = []
    for name, module in model.named_modules():
        info = _unit_layer(module)
        if info is not None and name:
            candidates.append((name, info))
    if not candidates:
        raise PlayerError(
            f"{type(model).__name__} has no removable units: no Conv1d/2d/3d or Linear sub-module"
        )
    if not include_output_layer:
        linear_names = [n for n, info in candidates if info[0] == "Linear"]
        if linear_names and candidates[-1][0] == linear_names[-1]:
            candidates = candidates[:-1]
    if layers is not None:
        patterns = [layers] if isinstance(layers, str) else list(layers)
        chosen: list[tuple[str, tuple[str, int, int]]] = []
        all_names = [n for n, _ in candidates]
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in all_names):
                raise PlayerError(
                    f"layer pattern {pattern!r} matches no removable layer; "
                    f"choose among: {', '.join(all_names[:20])}"
                    + (" ..." if len(all_names) > 20 else "")
                )
        chosen = [
            (n, info)
            for n, info in candidates
            if any(fnmatch.fnmatchcase(n, p) for p in patterns)
        ]
        candidates = chosen
    if not candidates:
        raise PlayerError(
            f"{type(model).__name__} has no removable units once the logit layer is excluded; "
            "pass include_output_layer=True to use it"
        )
    built: list[Layer] = []
    offset = 0
    for name, (kind, n_units, axis) in candidates:
        built.append(Layer(name, kind, n_units, axis, offset))
        offset += n_units
    return PlayerSet(tuple(built))
