"""Folding: an eval-mode batch norm and/or a ReLU that alone read a player layer's output
are applied inside that layer's hook (see :mod:`neuronshapley.network.ablation`)."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from neuronshapley.network.players import Layer

ACTIVATIONS = (nn.ReLU, nn.ReLU6)


def foldable(layer: Layer, out: torch.Tensor, norm: nn.Module) -> bool:
    """Whether ``norm`` (a batch norm over axis 1) can be folded into ``layer``'s hook."""
    axis = layer.channel_axis if layer.channel_axis >= 0 else out.ndim + layer.channel_axis
    mean = getattr(norm, "running_mean", None)
    return (
        axis == 1 and mean is not None and out.dtype == mean.dtype and out.is_floating_point()
        and out.ndim >= 2
    )


def norm_terms(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, c) with ``norm(x) = x * a + c`` per channel, for an eval-mode batch norm."""
    assert isinstance(norm, nn.modules.batchnorm._BatchNorm)
    assert norm.running_mean is not None and norm.running_var is not None
    a = 1 / torch.sqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        a = a * norm.weight
    c = -norm.running_mean * a
    return a, c if norm.bias is None else c + norm.bias


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def usable(norm: nn.Module) -> bool:
    """An eval-mode batch norm with running statistics: an affine map per channel."""
    return (
        not norm.training
        and getattr(norm, "running_mean", None) is not None
        and getattr(norm, "running_var", None) is not None
    )


def activate_(act: nn.Module, t: torch.Tensor) -> None:
    """``act`` (a ReLU or ReLU6 module) applied to ``t`` in place."""
    if type(act) is nn.ReLU6:
        F.hardtanh_(t, 0.0, 6.0)
    else:
        F.relu_(t)


def followers(model: nn.Module, names: Sequence[str]) -> dict[str, list[str]]:
    """Layer name -> the modules after it that can be folded into its hook: a batch norm,
    then a ReLU / ReLU6 module, each the only reader of the previous output and taking
    nothing else, each called once per pass (from a ``torch.fx`` trace with the player
    layers as leaves). Empty when the model cannot be traced."""
    wanted = set(names)
    if not wanted:
        return {}

    class _Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return qualname in wanted or super().is_leaf_module(m, qualname)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = _Tracer().trace(model)
    except Exception:  # noqa: BLE001 - any model fx cannot trace: nothing folded
        return {}
    modules = dict(model.named_modules())
    calls = Counter(nd.target for nd in graph.nodes if nd.op == "call_module")
    out: dict[str, list[str]] = {}
    for node in graph.nodes:
        if node.op != "call_module" or node.target not in wanted or calls[node.target] != 1:
            continue
        chain: list[str] = []
        cur = node
        while len(cur.users) == 1:
            user = next(iter(cur.users))
            mod = modules.get(str(user.target)) if user.op == "call_module" else None
            if mod is None or calls[user.target] != 1 or user.args != (cur,) or user.kwargs:
                break
            if is_norm(mod) and not chain:
                chain.append(str(user.target))
            elif type(mod) in ACTIVATIONS:
                chain.append(str(user.target))
                break
            else:
                break
            cur = user
        if chain:
            out[str(node.target)] = chain
    return out
