"""Repair a network: remove chosen units for good, as an ordinary PyTorch module.

:func:`repair` returns a copy of the model in which the chosen units always output their
reference value, the same value :class:`~neuronshapley.Ablator` substitutes while the game is
played, so the repaired model reproduces the game's numbers for that coalition. Two ways:

- **weight edit** (used whenever the replacement is one constant per unit: every hidden unit
  of a ``Linear`` layer on 2-D activations, and ``replacement="channel"`` / ``"zero"``): the
  unit's incoming weights are zeroed and its bias set to the reference value. The result has
  exactly the original architecture: ``torch.save(model.state_dict())`` and
  ``Original().load_state_dict(...)`` are all a user needs.
- **wrapper** (per-position means of convolution channels, ``replacement="mean"``): the layer
  is wrapped in :class:`UnitReplacement`, a plain ``nn.Module`` holding the kept-unit mask and
  the replacement values as buffers. Its state dict is ordinary; :func:`load_repaired` puts the
  wrappers back into a fresh instance of the original architecture before loading it.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuronshapley.network.ablation import Ablator
from neuronshapley.network.players import Layer, PlayerError, PlayerSet

MODES = ("auto", "weights", "wrap")
#: Buffer names of :class:`UnitReplacement`; :func:`load_repaired` finds wrappers by them.
KEEP_BUFFER = "unit_keep"
VALUE_BUFFER = "unit_value"

__all__ = [
    "MODES",
    "UnitReplacement",
    "keep_mask",
    "load_repaired",
    "removed_units",
    "repair",
    "save_repaired",
]


class UnitReplacement(nn.Module):
    """``layer`` whose removed units output fixed values.

    Buffers: ``unit_keep`` (bool, broadcastable against one example's output, True = kept)
    and ``unit_value`` (the replacement, shaped like one example's output or broadcastable to
    it). ``forward`` returns ``where(unit_keep, layer(x), unit_value)``, batch first.
    """

    def __init__(self, layer: nn.Module, keep: torch.Tensor, value: torch.Tensor) -> None:
        super().__init__()
        self.layer = layer
        self.register_buffer(KEEP_BUFFER, keep.to(torch.bool))
        self.register_buffer(VALUE_BUFFER, value)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = self.layer(*args, **kwargs)
        keep = getattr(self, KEEP_BUFFER)
        value = getattr(self, VALUE_BUFFER)
        return torch.where(keep, out, value.to(out.dtype))

    def extra_repr(self) -> str:
        keep = getattr(self, KEEP_BUFFER)
        return f"removed={int((~keep).sum())} of {keep.numel()} units"


# ------------------------------------------------------------------------------- units
def keep_mask(players: PlayerSet, remove: Iterable[str | int]) -> np.ndarray:
    """Bool mask (n_players,), False for the units in ``remove`` (ids or flat indices)."""
    mask = np.ones(players.n_players, dtype=bool)
    for unit in remove:
        if isinstance(unit, str):
            idx = players.index(unit)
        else:
            idx = int(unit)
            if not 0 <= idx < players.n_players:
                raise PlayerError(f"unit index {idx} out of range 0..{players.n_players - 1}")
        mask[idx] = False
    return mask


def removed_units(players: PlayerSet, mask: np.ndarray) -> list[str]:
    """Ids of the units a keep-mask (n_players,) removes."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (players.n_players,):
        raise ValueError(f"mask must have shape ({players.n_players},), got {mask.shape}")
    ids = players.ids
    return [ids[i] for i in np.flatnonzero(~mask)]


def _ref_axis(layer: Layer) -> int:
    """Unit axis of the reference tensor (one example's output, no batch dimension)."""
    return layer.channel_axis - 1 if layer.channel_axis >= 0 else layer.channel_axis


def _per_unit_constant(ref: torch.Tensor, layer: Layer, units: np.ndarray) -> torch.Tensor | None:
    """The reference value of each of ``units`` if it is one constant per unit, else None."""
    per_unit = ref.movedim(_ref_axis(layer), 0).reshape(layer.n_units, -1)[units]
    if per_unit.shape[1] == 0:
        return None
    first = per_unit[:, :1]
    return per_unit[:, 0].clone() if bool((per_unit == first).all()) else None


# ------------------------------------------------------------------------------ repair
def repair(
    model: nn.Module,
    players: PlayerSet | Any,
    remove: Iterable[str | int],
    reference: Mapping[str, torch.Tensor] | torch.Tensor | None = None,
    replacement: str = "mean",
    mode: str = "auto",
) -> nn.Module:
    """A copy of ``model`` with the units ``remove`` replaced by their reference values.

    Args:
        model: the trained network (left unchanged).
        players: a :class:`~neuronshapley.ModelGame` or :class:`~neuronshapley.Ablator`
            (players and reference values are taken from it), or a :class:`PlayerSet`.
        remove: unit ids (``"layer:index"``) or flat player indices to remove.
        reference: with a ``PlayerSet``: per-layer reference outputs (``Ablator.reference``,
            one example's output shape each) or a tensor of inputs to compute them from
            with ``replacement``. Ignored for a game or ablator.
        replacement: how the reference is computed from inputs (``"mean"``, ``"channel"``,
            ``"zero"``).
        mode: ``"auto"`` (edit weights where the replacement is one constant per unit and
            the layer has a bias, wrap otherwise), ``"weights"`` (weight edits only; an error
            where they cannot be exact) or ``"wrap"`` (always :class:`UnitReplacement`).
    Returns:
        the repaired copy, in eval mode. Its output equals the game's for the coalition
        that keeps every unit but ``remove``.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    player_set, refs = _players_and_reference(model, players, reference, replacement)
    mask = keep_mask(player_set, remove)
    repaired = copy.deepcopy(model).eval()
    for layer in player_set.layers:
        units = np.flatnonzero(~mask[layer.slice])
        if units.size == 0:
            continue
        if layer.name not in refs:
            raise ValueError(f"no reference values for layer {layer.name!r}")
        ref = refs[layer.name].detach()
        if layer.site == "input":
            _edit_projection(repaired, layer, units, ref, mode)
            continue
        module = repaired.get_submodule(layer.name)
        constant = _per_unit_constant(ref, layer, units)
        bias = getattr(module, "bias", None)
        weight = getattr(module, "weight", None)
        editable = (
            constant is not None and isinstance(bias, torch.Tensor)
            and isinstance(weight, torch.Tensor) and weight.shape[0] == layer.n_units
        )
        if mode == "weights" and not editable:
            raise ValueError(
                f"layer {layer.name!r}: removed units cannot be folded into the weights "
                "(the replacement varies over positions or the layer has no bias); "
                "use mode='auto' or 'wrap'"
            )
        if editable and mode != "wrap":
            assert weight is not None and bias is not None and constant is not None
            idx = torch.as_tensor(units, device=weight.device)
            with torch.no_grad():
                weight.index_fill_(0, idx, 0.0)
                bias[idx] = constant.to(device=bias.device, dtype=bias.dtype)
            continue
        _wrap(repaired, layer, units, ref)
    return repaired


def _edit_projection(model: nn.Module, layer: Layer, units: np.ndarray, ref: torch.Tensor,
                     mode: str) -> None:
    """Remove units read at a projection's input (transformer heads, MLP neurons): zero the
    columns they multiply and add ``W[:, cols] @ reference`` to the projection's bias."""
    proj = model.get_submodule(layer.hooked)
    w = proj.weight if isinstance(proj, nn.Linear) else proj.weight.t()  # (out, in), a view
    flat = ref.reshape(ref.shape[0], -1) if ref.ndim >= 2 else ref.reshape(1, -1)
    if mode == "wrap" or not bool((flat == flat[:1]).all()):
        raise ValueError(
            f"layer {layer.name!r}: its units are removed by editing the projection "
            f"{layer.hooked!r}, which needs one reference value per unit; use "
            "replacement='channel' or 'zero' (and mode='auto' or 'weights')"
        )
    per = w.shape[1] // layer.n_units
    cols = torch.cat([torch.arange(int(u) * per, (int(u) + 1) * per) for u in units])
    value = flat[0].to(torch.float64)
    shift = w[:, cols].double() @ value[cols]
    bias = getattr(proj, "bias", None)
    if bool(shift.abs().max() > 0) and not isinstance(bias, torch.Tensor):
        raise ValueError(
            f"layer {layer.name!r}: {layer.hooked!r} has no bias to hold the removed units' "
            "mean; use replacement='zero'"
        )
    with torch.no_grad():
        w[:, cols] = 0.0
        if isinstance(bias, torch.Tensor):
            bias += shift.to(bias.dtype)


def _players_and_reference(
    model: nn.Module,
    players: PlayerSet | Any,
    reference: Mapping[str, torch.Tensor] | torch.Tensor | None,
    replacement: str,
) -> tuple[PlayerSet, Mapping[str, torch.Tensor]]:
    ablator = getattr(players, "ablator", players)
    if isinstance(ablator, Ablator):
        if not ablator.reference:
            raise ValueError("the ablator has no reference values: call fit_reference first")
        return ablator.players, ablator.reference
    if not isinstance(players, PlayerSet):
        raise TypeError(
            f"players must be a ModelGame, Ablator or PlayerSet, got {type(players).__name__}"
        )
    if reference is None:
        raise ValueError("with a PlayerSet, pass reference (per-layer values or inputs)")
    if isinstance(reference, torch.Tensor):
        was_training = model.training
        model.eval()
        try:
            fitted = Ablator(model, players, replacement).fit_reference(reference)
        finally:
            model.train(was_training)
        return players, fitted.reference
    return players, dict(reference)


def _wrap(model: nn.Module, layer: Layer, units: np.ndarray, ref: torch.Tensor) -> None:
    module = model.get_submodule(layer.name)
    axis = _ref_axis(layer)
    if isinstance(module, UnitReplacement):  # already repaired once: widen its removal
        keep = getattr(module, KEEP_BUFFER).clone()
        value = getattr(module, VALUE_BUFFER).clone()
        inner = module.layer
    else:
        shape = [1] * ref.ndim
        shape[axis] = layer.n_units
        keep = torch.ones(shape, dtype=torch.bool, device=ref.device)
        value = torch.zeros_like(ref)
        inner = module
    idx = torch.as_tensor(units, device=ref.device)
    keep.index_fill_(axis % ref.ndim, idx, False)
    value = torch.where(keep, value, ref)
    parent_name, _, child = layer.name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, UnitReplacement(inner, keep, value))


# ------------------------------------------------------------------------------- files
def save_repaired(
    model: nn.Module,
    path: str | os.PathLike[str],
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model.state_dict()`` to ``path`` (``torch.save``) and ``metadata`` beside it.

    The metadata (e.g. the removed units and how they were chosen) goes to ``path`` with the
    suffix ``.json``. Load with :func:`load_repaired` into a fresh instance of the original
    architecture (or with ``load_state_dict`` directly when only weights were edited).
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, out)
    if metadata is not None:
        out.with_suffix(".json").write_text(json.dumps(dict(metadata), indent=2) + "\n")
    return out


def load_repaired(
    model: nn.Module, source: str | os.PathLike[str] | Mapping[str, torch.Tensor]
) -> nn.Module:
    """Load a repaired state dict into ``model``, a fresh instance of the original architecture.

    Layers saved as :class:`UnitReplacement` are wrapped first (found by their buffer names),
    then the state dict is loaded strictly with ``weights_only=True``. Returns ``model`` in
    eval mode.
    """
    if isinstance(source, Mapping):
        state = dict(source)
    else:
        state = torch.load(Path(source), map_location="cpu", weights_only=True)
    suffix = "." + KEEP_BUFFER
    wrapped = sorted(
        (k[: -len(suffix)] for k in state if k.endswith(suffix)), key=lambda n: n.count(".")
    )
    for name in wrapped:
        keep, value = state[f"{name}.{KEEP_BUFFER}"], state[f"{name}.{VALUE_BUFFER}"]
        inner = model.get_submodule(name)
        if isinstance(inner, UnitReplacement):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, UnitReplacement(inner, torch.empty_like(keep),
                                               torch.empty_like(value)))
    model.load_state_dict(state, strict=True)
    return model.eval()
