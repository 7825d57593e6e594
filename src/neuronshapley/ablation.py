"""Remove sets of units from a network with forward hooks, many masks in one pass.

A removed unit's output is replaced by a reference value:

- ``"mean"``: its mean activation over reference data, per channel and position
  (the paper's choice: the network sees an "average" input for that unit);
- ``"channel"``: one scalar per channel (mean over reference data and positions);
- ``"zero"``: zero.

``Ablator.forward(x, masks)`` evaluates ``M`` masks on a batch of ``B`` inputs in one
forward pass: the batch is expanded to ``M * B`` lazily, at the first hooked layer, so
layers before it run once. When that fails (a skip connection or a second branch joins the
expanded batch with the unexpanded one, e.g. a residual block around the first hooked
layer), the pass is redone with the input expanded up front, and the ablator remembers to
do so from then on (``expand="auto"``, the default).

Attention heads (players of kind ``"MultiheadAttention"``): ``nn.MultiheadAttention`` does
not call its ``out_proj`` module (it passes the weights to ``F.linear``), so no pre-hook on
``out_proj`` can see the heads. Instead a forward hook on the attention module recomputes,
from the same inputs, masks and flags, the concatenated head outputs before ``out_proj``
(``F.multi_head_attention_forward`` with an identity output projection), replaces the
removed heads' slices by their reference (mean over the reference data per position; for
``"channel"``, also over positions), and applies ``out_proj``. The attention weights it
returns are the original ones (removing a head happens after attention). Cost: the
attention of a hooked module runs twice per pass; with every head kept the original output
is returned as is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .players import Layer, PlayerSet

REPLACEMENTS = ("mean", "channel", "zero")
#: How ``Ablator.forward`` expands the batch for M masks (see the module docstring).
EXPANSIONS = ("auto", "lazy", "input")
#: A model with this attribute set to True is always run with its input expanded up front
#: (e.g. graphs from ``torch.export`` whose shapes follow the input's batch size).
EXPAND_INPUT_ATTR = "neuronshapley_expand_input"


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
        expand: ``"auto"`` (lazy expansion at the first hooked layer, falling back to
            expanding the input when that pass fails), ``"lazy"`` or ``"input"``.
    """

    def __init__(
        self,
        model: nn.Module,
        players: PlayerSet,
        replacement: str = "mean",
        expand: str = "auto",
    ) -> None:
        if replacement not in REPLACEMENTS:
            raise ValueError(f"replacement must be one of {REPLACEMENTS}, got {replacement!r}")
        if expand not in EXPANSIONS:
            raise ValueError(f"expand must be one of {EXPANSIONS}, got {expand!r}")
        self.model = model
        self.players = players
        self.replacement = replacement
        self.expand = "input" if getattr(model, EXPAND_INPUT_ATTR, False) is True else expand
        self.reference: dict[str, torch.Tensor] = {}
        modules = dict(model.named_modules())
        self._modules: dict[str, nn.Module] = {}
        for layer in players.layers:
            if layer.name not in modules:
                raise AblationError(f"layer {layer.name!r} is not a sub-module of the model")
            module = modules[layer.name]
            if layer.is_heads and not isinstance(module, nn.MultiheadAttention):
                raise AblationError(
                    f"layer {layer.name!r} holds attention heads but is a "
                    f"{type(module).__name__}, not an nn.MultiheadAttention"
                )
            self._modules[layer.name] = module

    # -------------------------------------------------------------- reference
    @torch.inference_mode()
    def fit_reference(self, inputs: torch.Tensor, batch_size: int = 256) -> Ablator:
        """Record each layer's mean output over ``inputs`` (shape (N, ...))."""
        if len(inputs) == 0:
            raise ValueError("reference data is empty")
        sums: dict[str, torch.Tensor] = {}
        count = 0

        def add(layer: Layer, out: torch.Tensor) -> None:
            _check_output(layer, out)
            s = out.detach().double().sum(dim=0)
            if layer.name in sums and sums[layer.name].shape != s.shape:
                raise AblationError(
                    f"layer {layer.name!r} output changed shape between batches "
                    f"({tuple(sums[layer.name].shape)} then {tuple(s.shape)}): "
                    "the mean replacement needs inputs of one shape"
                )
            sums[layer.name] = sums[layer.name] + s if layer.name in sums else s

        def make_hook(layer: Layer) -> Callable[..., None]:
            if layer.is_heads:
                def head_hook(module: nn.Module, args: tuple, kwargs: dict, _out: Any) -> None:
                    add(layer, attention_head_outputs(module, args, kwargs))

                return head_hook

            def hook(_module: nn.Module, _inp: object, out: torch.Tensor) -> None:
                add(layer, out)

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
            if self.replacement == "channel" and layer.is_heads:
                mean = mean.mean(dim=0, keepdim=True)  # (L, H, Dh) -> (1, H, Dh)
            elif self.replacement == "channel":
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
        if m == 1 or self.expand == "input":
            return self._run(x if m == 1 else _expand(x, m), layer_masks, m, b)
        expanded: list[bool] = []
        try:
            return self._run(x, layer_masks, m, b, expanded)
        except RuntimeError:
            if self.expand == "lazy" or not expanded:
                raise
        out = self._run(_expand(x, m), layer_masks, m, b)
        self.expand = "input"  # the lazy expansion cannot work on this model: skip it next time
        return out

    def _run(
        self,
        x: torch.Tensor,
        layer_masks: dict[str, torch.Tensor | None],
        m: int,
        b: int,
        expanded: list[bool] | None = None,
    ) -> torch.Tensor:
        """One forward pass of ``x`` ((B, ...) or (M*B, ...)) with the units replaced."""

        def expand_batch(layer: Layer, out: torch.Tensor, axis: int = 0) -> torch.Tensor:
            batch = int(out.shape[axis])
            if m > 1 and batch == b:
                if expanded is not None:
                    expanded.append(True)
                return _expand(out, m) if axis == 0 else _expand_dim1(out, m)
            if batch != m * b:
                raise AblationError(
                    f"layer {layer.name!r} produced a batch of {batch}, expected "
                    f"{b} or {m * b}: the batch dimension must come first"
                )
            return out

        def make_hook(layer: Layer) -> Callable[..., Any]:
            ref = self.reference[layer.name]
            lm = layer_masks[layer.name]
            if layer.is_heads:
                return self._head_hook(layer, ref, lm, m, b, expand_batch)

            def hook(_module: nn.Module, _inp: object, out: torch.Tensor) -> torch.Tensor:
                _check_output(layer, out)
                out = expand_batch(layer, out)
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

    @staticmethod
    def _head_hook(
        layer: Layer,
        ref: torch.Tensor,
        lm: torch.Tensor | None,
        m: int,
        b: int,
        expand_batch: Callable[..., torch.Tensor],
    ) -> Callable[..., Any]:
        """Forward hook (with kwargs) on a ``nn.MultiheadAttention`` removing heads."""

        def hook(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> Any:
            assert isinstance(module, nn.MultiheadAttention)
            attn, weights = out
            if weights is not None:
                weights = expand_batch(layer, weights)
            if lm is None:
                return expand_batch(layer, attn, 0 if module.batch_first else 1), weights
            z = attention_head_outputs(module, args, kwargs)  # (batch, L, H, Dh)
            _check_output(layer, z)
            z = expand_batch(layer, z)
            view = z.reshape(m, b, *z.shape[1:])
            keep = lm.reshape(_mask_shape(layer, z.ndim, m))
            mixed = torch.where(keep, view, ref.to(z.dtype)).reshape(z.shape[0], z.shape[1], -1)
            new = F.linear(mixed, module.out_proj.weight, module.out_proj.bias)
            return (new if module.batch_first else new.transpose(0, 1)), weights

        return hook

    @contextmanager
    def _hooks(self, make_hook: Callable[[Layer], Callable[..., object]]) -> Iterator[None]:
        handles = []
        try:
            for layer in self.players.layers:
                module = self._modules[layer.name]
                if layer.is_heads:
                    handles.append(
                        module.register_forward_hook(make_hook(layer), with_kwargs=True)
                    )
                else:
                    handles.append(module.register_forward_hook(make_hook(layer)))
            yield
        finally:
            for h in handles:
                h.remove()


_MHA_PARAMS = list(inspect.signature(nn.MultiheadAttention.forward).parameters)[1:]


def attention_head_outputs(
    module: nn.MultiheadAttention, args: tuple, kwargs: dict[str, Any]
) -> torch.Tensor:
    """Per-head outputs of ``module`` for the call ``module(*args, **kwargs)``.

    Returns the concatenated head outputs before ``out_proj``, shape (B, L, heads, head_dim),
    batch first whatever ``module.batch_first`` is. Batched inputs only.
    """
    call = dict(zip(_MHA_PARAMS, args, strict=False))
    call.update(kwargs)
    query, key, value = call["query"], call["key"], call["value"]
    if query.dim() != 3:
        raise AblationError(
            "attention heads need batched inputs (3-D query), got a query of shape "
            f"{tuple(query.shape)}"
        )
    if module.batch_first:
        query, key, value = (t.transpose(0, 1) for t in (query, key, value))
    e, h = module.embed_dim, module.num_heads
    eye = torch.eye(e, dtype=query.dtype, device=query.device)
    z, _ = F.multi_head_attention_forward(
        query, key, value, e, h, module.in_proj_weight, module.in_proj_bias,
        module.bias_k, module.bias_v, module.add_zero_attn, 0.0, eye, None,
        training=False, key_padding_mask=call.get("key_padding_mask"), need_weights=False,
        attn_mask=call.get("attn_mask"), use_separate_proj_weight=not module._qkv_same_embed_dim,
        q_proj_weight=module.q_proj_weight, k_proj_weight=module.k_proj_weight,
        v_proj_weight=module.v_proj_weight, is_causal=bool(call.get("is_causal", False)),
    )
    z = z.transpose(0, 1)  # (B, L, E)
    return z.reshape(z.shape[0], z.shape[1], h, e // h)


def _expand(out: torch.Tensor, m: int) -> torch.Tensor:
    """(B, ...) -> (M*B, ...) by repeating the batch, keeping the memory format."""
    rep = out.unsqueeze(0).expand(m, *out.shape).reshape(m * out.shape[0], *out.shape[1:])
    if out.ndim == 4 and out.is_contiguous(memory_format=torch.channels_last):
        rep = rep.contiguous(memory_format=torch.channels_last)
    return rep


def _expand_dim1(out: torch.Tensor, m: int) -> torch.Tensor:
    """(L, B, ...) -> (L, M*B, ...) by repeating the batch on axis 1."""
    return _expand(out.transpose(0, 1), m).transpose(0, 1)


def _check_output(layer: Layer, out: object) -> None:
    if not isinstance(out, torch.Tensor):
        raise AblationError(f"layer {layer.name!r} returned {type(out).__name__}, not a tensor")
    axis = layer.channel_axis if layer.channel_axis >= 0 else out.ndim + layer.channel_axis
    if out.ndim < 2 or out.shape[axis] != layer.n_units:
        raise AblationError(
            f"layer {layer.name!r} output has shape {tuple(out.shape)}; expected "
            f"{layer.n_units} units on axis {layer.channel_axis}"
        )
