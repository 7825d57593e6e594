"""Split a network where its first player layer begins, so the part before runs once.

Removing units changes nothing upstream of the player layers, so the activations that enter
them (the *cut*) depend only on the example. :func:`split_at_players` traces the model with
``torch.fx`` (player layers kept as leaves) and returns two graph modules:

- ``prefix(x) -> cut``: every node that depends on the input and on no player layer, ending
  in the tensors that later nodes read (several for skip connections and branches);
- ``suffix(*cut) -> output``: the rest, holding the player layers under their original
  module paths (the same module objects, so hooks on them see every call).

``suffix(*prefix(x))`` computes what ``model(x)`` computes, node for node. Models that cannot
be traced, whose cut holds something other than batch-first tensors (e.g. sizes read from the
input), or whose player layers all read the input directly return ``None``: they are run
whole, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.fx as fx
from torch import nn

from neuronshapley.network.ablation.plan import residual_blocks
from neuronshapley.network.players import PlayerSet


@dataclass
class PrefixSplit:
    """The two halves of a model (see the module doc); ``cut`` names the prefix's outputs."""

    prefix: fx.GraphModule
    suffix: fx.GraphModule
    cut: list[str]

    @property
    def inputs(self) -> list[str]:
        """The suffix's argument names, one per cut tensor (``suffix(**{name: tensor})``)."""
        return [n.target for n in self.suffix.graph.nodes if n.op == "placeholder"]

    def run_prefix(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The cut tensors for inputs ``x`` (each batch-first, ``len(x)`` rows)."""
        out = self.prefix(x)
        return tuple(out)


#: Always leaves, subclasses too (e.g. a conv with its own padding rule that reads x.shape).
_LEAVES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear, nn.MultiheadAttention)


class _LeafTracer(fx.Tracer):
    def __init__(self, leaves: set[str]) -> None:
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return (qualname in self.leaves or isinstance(m, _LEAVES)
                or super().is_leaf_module(m, qualname))


def split_at_players(model: nn.Module, layer_names: Sequence[str],
                     example: torch.Tensor | None = None) -> PrefixSplit | None:
    """Split ``model`` before its player layers ``layer_names`` (module paths); None if the
    model cannot be split (see the module doc). ``example`` (a batch of inputs) checks that
    the cut is batch-first and that the halves compute the model's output."""
    names = set(layer_names)
    try:
        graph = _LeafTracer(names).trace(model)
    except Exception:  # noqa: BLE001 - untraceable models are run whole
        return None
    nodes = list(graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        return None
    after = set()  # nodes that depend on a player layer (the player calls included)
    needs_input = set()  # nodes that depend on the input
    for n in nodes:
        deps = n.all_input_nodes
        if n.op == "placeholder" or any(d in needs_input for d in deps):
            needs_input.add(n)
        if (n.op == "call_module" and n.target in names) or any(d in after for d in deps):
            after.add(n)
    if {n.target for n in nodes if n.op == "call_module"} & names != names:
        return None  # a player module was traced through (or never called): run whole
    cut = [n for n in nodes if n in needs_input and n not in after and n.op != "output"
           and any(u in after or u.op == "output" for u in n.users)]
    if not cut or cut == placeholders:
        return None  # nothing to skip: the first player layer reads the input
    prefix_graph = fx.Graph()
    env: dict[fx.Node, fx.Node] = {}
    for n in nodes:
        if n.op == "output" or n in after:
            continue
        if n not in needs_input and not _feeds(n, needs_input - after):
            continue
        env[n] = prefix_graph.node_copy(n, lambda a: env[a])
    prefix_graph.output(tuple(env[c] for c in cut))
    suffix_graph = fx.Graph()
    senv: dict[fx.Node, fx.Node] = {}
    for c in cut:
        senv[c] = suffix_graph.placeholder(f"cut_{c.name}")
    for n in nodes:
        if n in senv or n.op == "placeholder":
            continue
        if n in after or n.op == "output" or (n not in needs_input and _feeds(n, after)):
            senv[n] = suffix_graph.node_copy(n, lambda a: senv[a])
    try:
        prefix = fx.GraphModule(model, prefix_graph, class_name="Prefix")
        suffix = fx.GraphModule(model, suffix_graph, class_name="Suffix")
    except Exception:  # noqa: BLE001
        return None
    split = PrefixSplit(prefix, suffix, [c.name for c in cut])
    if example is not None and not _checked(model, split, example):
        return None
    return split


def split_for_players(model: nn.Module, players: PlayerSet,
                      example: torch.Tensor) -> PrefixSplit | None:
    """:func:`split_at_players` before the modules ``players`` are hooked on; a player layer
    inside a residual block (see :func:`~.ablation.plan.residual_blocks`) counts as its block,
    so the block's hook still sees every call; so does any player layer inside that block."""
    blocks = residual_blocks(model, players.layers)
    names = list(dict.fromkeys(ly.block or blocks.get(ly.name) or ly.hooked
                               for ly in players.layers))
    # a player layer inside another one's block runs (and is hooked) inside that block
    names = [a for a in names if not any(a.startswith(f"{b}.") for b in names)]
    return split_at_players(model, names, example)


def _feeds(node: fx.Node, targets: set[fx.Node]) -> bool:
    """Whether ``node``'s value reaches one of ``targets`` (through its users)."""
    todo, seen = [node], set()
    while todo:
        n = todo.pop()
        for u in n.users:
            if u in targets:
                return True
            if u not in seen:
                seen.add(u)
                todo.append(u)
    return False


@torch.inference_mode()
def _checked(model: nn.Module, split: PrefixSplit, example: torch.Tensor) -> bool:
    """The cut is batch-first tensors and the halves give the model's output on ``example``."""
    try:
        cut = split.run_prefix(example)
        if not all(isinstance(t, torch.Tensor) and t.ndim >= 1 and t.shape[0] == len(example)
                   for t in cut):
            return False
        whole, halves = model(example), split.suffix(*cut)
    except Exception:  # noqa: BLE001
        return False
    return isinstance(whole, torch.Tensor) and isinstance(halves, torch.Tensor) and bool(
        whole.shape == halves.shape and torch.equal(whole, halves))
