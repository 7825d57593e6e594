"""Discover the removable units ("players") of any ``nn.Module``.

A player is one output channel of a convolution (1d/2d/3d), one hidden unit of a
``nn.Linear`` layer, one attention head (of a ``nn.MultiheadAttention`` or of a transformer
block) or one MLP neuron of a transformer block. Its id is ``"<module path>:<index>"``, e.g.
``"features.3:17"`` or ``"encoder.layers.0.self_attn:2"``.

Layer kinds (``Layer.kind``): ``"Conv1d"`` / ``"Conv2d"`` / ``"Conv3d"``, ``"Linear"``,
``"attention_heads"`` (``Layer.is_heads``; one unit per head) and ``"mlp_neurons"``.

Transformer blocks (Hugging Face BERT/RoBERTa, GPT-2, Llama/Mistral/Qwen and models built
alike; detected from module types and shapes, see
:mod:`neuronshapley.network.transformer_units`): a heads layer is named after the attention
module (``bert.encoder.layer.0.attention``, ``transformer.h.0.attn``,
``model.layers.0.self_attn``) and its units are the per-head slices of the input of the
output projection (``Layer.module``: ``...attention.output.dense``, ``...attn.c_proj``,
``...self_attn.o_proj``). An MLP-neuron layer is named after the MLP module
(``transformer.h.0.mlp``, ``model.layers.0.mlp``; BERT: ``bert.encoder.layer.0.intermediate``)
and its units are the inputs of the down projection (``Layer.module``: ``...output.dense``,
``...mlp.c_proj``, ``...mlp.down_proj``). The projections' own outputs (queries, keys,
values, up/gate projections, ``Conv1D`` outputs) are never players by default; name one
exactly in ``layers`` to use it.

Transformer layers: in ``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer`` the
players are the heads of the attention modules and the MLP neurons (``linear1``'s outputs).
``linear2`` writes into the residual stream (its outputs are not neurons) and
``MultiheadAttention.out_proj`` is never called as a module (attention calls ``F.linear`` with
its weights), so both are left out; name ``linear2`` exactly in ``layers`` to keep it.

:class:`UnitTap` is an identity module that marks a unit layer where there is no conv or
linear module to hook, e.g. in a graph from ``torch.export``
(see :mod:`neuronshapley.pipeline.loading`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from neuronshapley.errors import PlayerError
from neuronshapley.network.transformer_units import (
    ATTENTION_HEADS,
    MLP_NEURONS,  # noqa: F401 - re-exported: a layer kind
    find_transformer_layers,
)

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: ``Layer.kind`` of a layer of attention heads.
HEADS = ATTENTION_HEADS
#: Where a layer's units are read: the hooked module's output, or its (first) input.
SITES = ("output", "input")
_TRANSFORMER_LAYERS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


class UnitTap(nn.Module):
    """Identity module marking a layer of ``n_units`` units on ``channel_axis`` of its input.

    Hooks on a tap see the unit layer's output. It may also hold the parameters of the
    operation it follows (as the module that held them in the original model did).
    """

    def __init__(self, kind: str, n_units: int, channel_axis: int) -> None:
        super().__init__()
        self.kind = kind
        self.n_units = int(n_units)
        self.channel_axis = int(channel_axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def extra_repr(self) -> str:
        return f"kind={self.kind}, n_units={self.n_units}, channel_axis={self.channel_axis}"


@dataclass(frozen=True)
class Layer:
    """A module whose output units are players.

    ``channel_axis`` is the axis of the module's output that indexes units (1 for
    convolutions, -1 for linear layers); ``offset`` is the index of its first unit
    in the flat player vector.

    ``module`` (default: ``name``) is the path of the module the ablation hooks and ``site``
    says whether the units are its ``"output"`` or its (first) ``"input"``. Transformer head
    and neuron layers read the input of a projection: (B, L, heads * head_dim), viewed as
    (B, L, heads, head_dim) for heads (``channel_axis`` -2), or (B, L, neurons). ``block`` is
    the path of the transformer block the layer belongs to ("" for none): layers of one block
    share activations in the ablation engine.
    """

    name: str
    kind: str
    n_units: int
    channel_axis: int
    offset: int
    module: str = ""
    site: str = "output"
    block: str = ""

    @property
    def hooked(self) -> str:
        """Path of the module whose output (or input, per ``site``) holds the units."""
        return self.module or self.name

    @property
    def ids(self) -> list[str]:
        return [f"{self.name}:{i}" for i in range(self.n_units)]

    @property
    def is_heads(self) -> bool:
        """True for a layer of attention heads (one unit per head).

        Their "output" is the concatenated head outputs before the output projection, viewed
        as (B, L, heads, head_dim) (batch first, also for a ``nn.MultiheadAttention`` with
        ``batch_first=False``), so ``channel_axis`` is -2.
        """
        return self.kind == HEADS

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


def _unit_layer(module: nn.Module, attention_heads: bool = True) -> tuple[str, int, int] | None:
    if isinstance(module, UnitTap):
        return module.kind, module.n_units, module.channel_axis
    if isinstance(module, _CONV):
        return type(module).__name__, int(module.out_channels), 1
    if isinstance(module, nn.Linear):
        return "Linear", int(module.out_features), -1
    if attention_heads and isinstance(module, nn.MultiheadAttention):
        return HEADS, int(module.num_heads), -2
    return None


def _transformer_linears(model: nn.Module) -> tuple[set[str], set[str], set[str]]:
    """Linear modules of attention and transformer layers: (never called as modules,
    residual-stream writers, MLP hidden layers)."""
    never: set[str] = set()
    residual: set[str] = set()
    hidden: set[str] = set()
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
        if isinstance(module, nn.MultiheadAttention):
            never.add(prefix + "out_proj")
        elif isinstance(module, _TRANSFORMER_LAYERS):
            residual.add(prefix + "linear2")
            hidden.add(prefix + "linear1")
    return never, residual, hidden


def discover_players(
    model: nn.Module,
    layers: Sequence[str] | str | None = None,
    include_output_layer: bool = False,
    attention_heads: bool = True,
    kinds: Sequence[str] | str | None = None,
) -> PlayerSet:
    """Find the removable units of ``model``.

    Args:
        model: any module; its conv and linear sub-modules, attention modules and the heads
            and MLP neurons of its transformer blocks become layers of players (see the
            module docstring).
        layers: layer names or glob patterns (``"features.*"``) to keep; None keeps all.
            A pattern that matches no unit layer is an error.
        include_output_layer: keep the last ``nn.Linear`` (the logit layer). Off by
            default: removing a logit unit only hides a class, it says nothing about features.
        attention_heads: make every attention head a player (of a ``nn.MultiheadAttention``:
            one layer of ``num_heads`` players named after the module; of a transformer
            block: see the module docstring). Without attention this changes nothing.
        kinds: keep only layers of these kinds (e.g. ``("attention_heads", "mlp_neurons")``);
            None keeps all.
    """
    never, residual, mlp_hidden = _transformer_linears(model)
    blocks, claimed = find_transformer_layers(model)
    by_name = {t.name: t for t in blocks}
    candidates: list[Layer] = []
    for name, module in model.named_modules():
        if not name:
            continue
        t = by_name.get(name)
        if t is not None and (attention_heads or t.kind != ATTENTION_HEADS):
            axis = -2 if t.kind == ATTENTION_HEADS else -1
            candidates.append(Layer(t.name, t.kind, t.n_units, axis, 0, t.module, "input",
                                    t.block))
        if name in claimed and not _named_exactly(name, layers):
            continue
        info = _unit_layer(module, attention_heads)
        if info is not None and name not in never:
            if name in residual and not _named_exactly(name, layers):
                continue
            candidates.append(Layer(name, *info, 0))
    if not candidates:
        raise PlayerError(
            f"{type(model).__name__} has no removable units: no Conv1d/2d/3d, Linear, "
            "MultiheadAttention or transformer block (attention heads, MLP neurons)"
        )
    if not include_output_layer:
        linear_names = [ly.name for ly in candidates if ly.kind == "Linear"]
        last = candidates[-1].name
        if linear_names and last == linear_names[-1] and last not in mlp_hidden:
            candidates = candidates[:-1]
    if kinds is not None:
        wanted = [kinds] if isinstance(kinds, str) else list(kinds)
        present = sorted({ly.kind for ly in candidates})
        unknown = [k for k in wanted if k not in present]
        if unknown:
            raise PlayerError(
                f"no layer of kind(s) {unknown} in {type(model).__name__}; its kinds: "
                f"{', '.join(present)}"
            )
        candidates = [ly for ly in candidates if ly.kind in wanted]
    if layers is not None:
        patterns = [layers] if isinstance(layers, str) else list(layers)
        all_names = [ly.name for ly in candidates]
        for pattern in patterns:
            if not any(fnmatch.fnmatchcase(n, pattern) for n in all_names):
                raise PlayerError(
                    f"layer pattern {pattern!r} matches no removable layer; "
                    f"choose among: {', '.join(all_names[:20])}"
                    + (" ..." if len(all_names) > 20 else "")
                )
        candidates = [
            ly for ly in candidates if any(fnmatch.fnmatchcase(ly.name, p) for p in patterns)
        ]
    if not candidates:
        raise PlayerError(
            f"{type(model).__name__} has no removable units once the logit layer is excluded; "
            "pass include_output_layer=True to use it"
        )
    built: list[Layer] = []
    offset = 0
    for ly in candidates:
        built.append(replace(ly, offset=offset))
        offset += ly.n_units
    return PlayerSet(tuple(built))


def _named_exactly(name: str, layers: Sequence[str] | str | None) -> bool:
    if layers is None:
        return False
    return name in ([layers] if isinstance(layers, str) else list(layers))
