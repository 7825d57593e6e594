"""Remove sets of units from a network with forward hooks, many masks in one pass.

A removed unit's output is replaced by a reference value:

- ``"mean"``: its mean activation over reference data, per channel and position
  (the paper's choice: the network sees an "average" input for that unit);
- ``"channel"``: one scalar per channel (mean over reference data and positions);
- ``"zero"``: zero.

``Ablator.forward(x, masks)`` evaluates ``M`` masks on a batch of ``B`` inputs in one
forward pass: the batch is expanded to ``M * B`` lazily, at the first hooked layer, so
layers before it run once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from .players import Layer, PlayerSet

REPLACEMENTS = ("mean", "channel", "zero")


class AblationError(RuntimeError):
    """The model cannot be instrumented as requested."""


def _mask_shape(layer: Layer, out_ndim: int, m: int) -> list[int]:
    """Shape of a (M, C) layer mask broadcast against the (M, B, ...) view of an output."""
    shape = [m] + [1] * out_ndim  # M, then B and the rest of the output dims
    axis = layer.channel_axis if layer.channel_axis >= 0 else out_ndim + layer.channel_axis
    shape[1 + axis] = layer.n_units
    return shape


class Ablator:
    """Hooks that replace removed units of ``model`` by reference values.

    Args:
        model: the network (batch dimension first in every player layer's output).
        players: the units that can be removed.
        replacement: one of ``"mean"``, ``"channel"``, ``"zero"``.
    """

    def __init__(self, model: nn.Module, players: PlayerSet, replacement: str = "mean") -> None:
        if replacement not in REPLACEMENTS:
            raise ValueError(f"replacement must be one of {REPLACEMENTS}, got {replacement!r}")
        self.model = model
        self.players = players
        self.replacement = replacement
        self.reference: dict[str, torch.Tensor] = {}
        modules = dict(model.named_modules())
        self._modules: dict[str, nn.Module] = {}
        for layer in players.layers:
            if layer.name not in modules:
                raise AblationError(f"layer {layer.name!r} is not a sub-module of the model")
            self._modules[layer.name] = modules[layer.name]

    # -------------------------------------------------------------- reference
    @torch.inference_mode()
    def fit_reference(self, inputs: torch.Tensor, batch_size: int = 256) -> Ablator:
        """Record each layer's mean output over ``inputs`` (shape (N, ...))."""
        if len(inputs) == 0:
            raise ValueError("reference data is empty")
        sums: dict[str, torch.Tensor] = {}
        count = 0

        def make_hook(layer: Layer) -> Callable[..., None]:
            def hook(_module: nn.Module, _inp: object, out: torch.Tensor) -> None:
                _check_output(layer, out)
                s = out.detach().double().sum(dim=0)
                sums[layer.name] = sums[layer.name] + s if layer.name in sums else s

            return hook

        with self._hooks(make_hook):
            for start in range(0, len(inputs), batch_size):
                batch = inputs[start : start + batch_size]
                self.model(batch)
                count += len(batch)
        for layer in self.players.layers:
            if layer.name not in sums:
                raise AblationError(
                    f"layer {layer.name!r} never ran in a forward pass: it cannot be a player"
                )
            mean = sums[layer.name] / count
            if self.replacement == "channel":
                axis = layer.channel_axis
                if axis < 0:
                    axis += mean.ndim + 1
                dims = [d for d in range(mean.ndim) if d != axis - 1]
                mean = mean.mean(dim=dims, keepdim=True) if dims else mean
            elif self.replacement == "zero":
                mean = torch.zeros_like(mean)
            dtype = inputs.dtype if inputs.is_floating_point() else torch.float32
            self.reference[layer.name] = mean.to(dtype)
        return self

    # ---------------------------------------------------------------- forward
    @torch.inference_mode()
    def forward(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Outputs of the network under each mask.

        Args:
            x: inputs, shape (B, ...).
            masks: bool, shape (M, n_players); True keeps a unit, False removes it.
        Returns:
            outputs of shape (M, B, ...).
        """
        if not self.reference:
            raise AblationError("call fit_reference(...) before evaluating masks")
        n = self.players.n_players
        if masks.ndim != 2 or masks.shape[1] != n:
            raise ValueError(f"masks must have shape (M, {n}), got {tuple(masks.shape)}")
        m, b = int(masks.shape[0]), int(x.shape[0])
        masks = masks.to(device=x.device, dtype=torch.bool)
        layer_masks: dict[str, torch.Tensor | None] = {}
        for layer in self.players.layers:
            lm = masks[:, layer.slice]
            layer_masks[layer.name] = None if bool(lm.all()) else lm

        def make_hook(layer: Layer) -> Callable[..., torch.Tensor]:
            ref = self.reference[layer.name]
            lm = layer_masks[layer.name]

            def hook(_module: nn.Module, _inp: object, out: torch.Tensor) -> torch.Tensor:
                _check_output(layer, out)
                if m > 1 and out.shape[0] == b:
                    out = _expand(out, m)
                elif out.shape[0] != m * b:
                    raise AblationError(
                        f"layer {layer.name!r} produced a batch of {out.shape[0]}, expected "
                        f"{b} or {m * b}: the batch dimension must come first"
                    )
                if lm is None:
                    return out
                channels_last = out.ndim == 4 and out.is_contiguous(
                    memory_format=torch.channels_last
                ) and not out.is_contiguous()
                view = out.reshape(m, b, *out.shape[1:])
                keep = lm.reshape(_mask_shape(layer, out.ndim, m))
                mixed = torch.where(keep, view, ref.to(out.dtype))
                mixed = mixed.reshape(out.shape)
                if channels_last:
                    mixed = mixed.contiguous(memory_format=torch.channels_last)
                return mixed

            return hook

        with self._hooks(make_hook):
            out = self.model(x)
        if not isinstance(out, torch.Tensor):
            raise AblationError(f"the model must return a tensor, got {type(out).__name__}")
        if m > 1 and out.shape[0] == b:
            out = _expand(out, m)
        return out.reshape(m, b, *out.shape[1:])

    @contextmanager
    def _hooks(self, make_hook: Callable[[Layer], Callable[..., object]]) -> Iterator[None]:
        handles = []
        try:
            for layer in self.players.layers:
                handles.append(self._modules[layer.name].register_forward_hook(make_hook(layer)))
            yield
        finally:
            for h in handles:
                h.remove()


def _expand(out: torch.Tensor, m: int) -> torch.Tensor:
    """(B, ...) -> (M*B, ...) by repeating the batch, keeping the memory format."""
    rep = out.unsqueeze(0).expand(m, *out.shape).reshape(m * out.shape[0], *out.shape[1:])
    if out.ndim == 4 and out.is_contiguous(memory_format=torch.channels_last):
        rep = rep.contiguous(memory_format=torch.channels_last)
    return rep


def _check_output(layer: Layer, out: object) -> None:
    if not isinstance(out, torch.Tensor):
        raise AblationError(f"layer {layer.name!r} returned {type(out).__name__}, not a tensor")
    axis = layer.channel_axis if layer.channel_axis >= 0 else out.ndim + layer.channel_axis
    if out.ndim < 2 or out.shape[axis] != layer.n_units:
        raise AblationError(
            f"layer {layer.name!r} output has shape {tuple(out.shape)}; expected "
            f"{layer.n_units} units on axis {layer.channel_axis}"
        )
