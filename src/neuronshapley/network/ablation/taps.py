"""Read (or replace) the units of one player layer during a forward pass.

:func:`unit_hook` registers the right hook for any layer kind: a forward hook on the module
for conv / linear units, a forward pre-hook on the projection for transformer heads and MLP
neurons (``Layer.site == "input"``), and for ``nn.MultiheadAttention`` heads a forward hook
that recomputes the per-head outputs. The callback always sees the units in the layer's
layout (batch first; heads as (B, L, heads, head_dim)).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from neuronshapley.errors import AblationError
from neuronshapley.network.ablation.heads import (
    attention_head_outputs,
    flat_view,
    mha_output,
    unit_view,
)
from neuronshapley.network.players import Layer

#: ``fn(units) -> replacement or None``.
UnitFn = Callable[[torch.Tensor], "torch.Tensor | None"]


def hooked_module(model: nn.Module, layer: Layer) -> nn.Module:
    """The module ``layer``'s hook goes on (checked against the layer's kind)."""
    try:
        module = model.get_submodule(layer.hooked)
    except AttributeError:
        raise AblationError(f"layer {layer.name!r}: {layer.hooked!r} is not a sub-module of "
                            "the model") from None
    if layer.is_heads and layer.site == "output" and not isinstance(
            module, nn.MultiheadAttention):
        raise AblationError(
            f"layer {layer.name!r} holds attention heads but is a "
            f"{type(module).__name__}, not an nn.MultiheadAttention"
        )
    return module


def unit_hook(model: nn.Module, layer: Layer, fn: UnitFn) -> RemovableHandle:
    """Call ``fn`` on ``layer``'s units at every call of its module; a tensor ``fn`` returns
    (same shape) replaces them. Remove the returned handle in a ``finally``."""
    module = hooked_module(model, layer)
    if layer.site == "input":
        def pre_hook(_m: nn.Module, args: tuple) -> tuple | None:
            new = fn(unit_view(layer, args[0]))
            return None if new is None else (flat_view(layer, new), *args[1:])

        return module.register_forward_pre_hook(pre_hook)
    if layer.is_heads:
        def head_hook(mod: nn.Module, args: tuple, kwargs: dict, out: Any) -> Any:
            assert isinstance(mod, nn.MultiheadAttention)
            new = fn(attention_head_outputs(mod, args, kwargs))
            return None if new is None else (mha_output(mod, new), out[1])

        return module.register_forward_hook(head_hook, with_kwargs=True)

    def hook(_m: nn.Module, _inp: object, out: torch.Tensor) -> torch.Tensor | None:
        return fn(out)

    return module.register_forward_hook(hook)
