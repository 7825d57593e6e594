"""Remove sets of units from a network with forward hooks, many masks in one pass.

A removed unit's output is replaced by a reference value:

- ``"mean"``: its mean activation over reference data, per channel and position
  (the paper's choice: the network sees an "average" input for that unit);
- ``"channel"``: one scalar per channel (mean over reference data and positions);
- ``"zero"``: zero.

``Ablator.forward(x, masks)`` evaluates ``M`` masks on a batch of ``B`` inputs in one
forward pass, and computes what masks share only once. With ``expand="tree"`` (tried first by
the default ``"auto"``), masks that agree on every hooked layer up to layer ``k`` share one
copy of the activations up to ``k``: the rows are copied into more groups only at the layers
where the masks differ (for the consecutive steps of a permutation walk, most layers). With
``"lazy"``, the batch is expanded to one copy per distinct mask at the first hooked layer, so
layers before it run once; with ``"input"``, up front. Each tensor's stage is told by its
number of rows, so a model that mixes tensors of different stages (a skip connection or a
second branch around a layer where the masks split) fails with a shape error rather than a
wrong value; ``"auto"`` then redoes the pass with the next strategy (tree, lazy, input) and
remembers it for the next passes.

A removed unit's value is written into the layer's output in place when that output is a
new tensor of its own (not a view of an input or a parameter): one read and one write, in
the tensor's own memory format (channels-last stays channels-last). The blend is
``x * keep + reference * (1 - keep)`` with ``keep`` 0 or 1 (one multiply-add, about twice as
fast as ``torch.where`` on CPU): exact for finite activations; a removed unit whose output is
infinite or NaN gives NaN.

Folding (``fold=True``): where a ``torch.fx`` trace of the model (player layers as leaves)
shows that a layer's output is read only by an eval-mode batch norm, and/or then by a
``nn.ReLU`` / ``nn.ReLU6`` module, the hook applies them too and those modules pass the
result on untouched. The norm's per-channel affine map joins the replacement in the same
multiply-add (``y = x * keep * a + (c where kept, r * a + c where removed)``), so a conv-BN
layer costs no extra pass over its output; its results differ from running the norm module
by float rounding (~1e-7 relative), and they are the same whatever other masks share the
pass. The activation runs in place. Models that cannot be traced are run as they are.

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
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from neuronshapley.errors import AblationError
from neuronshapley.network.players import Layer, PlayerSet

REPLACEMENTS = ("mean", "channel", "zero")
#: How ``Ablator.forward`` expands the batch for M masks (see the module docstring).
EXPANSIONS = ("auto", "tree", "lazy", "input")
#: A model with this attribute set to True is always run with its input expanded up front
#: (e.g. graphs from ``torch.export`` whose shapes follow the input's batch size).
EXPAND_INPUT_ATTR = "neuronshapley_expand_input"


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
        expand: ``"auto"`` (prefix sharing, falling back to lazy expansion, then to expanding
            the input, when a pass fails), ``"tree"``, ``"lazy"`` or ``"input"``.
        fold: apply an eval-mode batch norm and/or a ``nn.ReLU`` / ``nn.ReLU6`` module that
            alone read a player layer's output (per a ``torch.fx`` trace) inside the
            layer's hook, in the same pass as the replacement (see the module doc).
    """

    def __init__(
        self,
        model: nn.Module,
        players: PlayerSet,
        replacement: str = "mean",
        expand: str = "auto",
        fold: bool = True,
    ) -> None:
        if replacement not in REPLACEMENTS:
            raise ValueError(f"replacement must be one of {REPLACEMENTS}, got {replacement!r}")
        if expand not in EXPANSIONS:
            raise ValueError(f"expand must be one of {EXPANSIONS}, got {expand!r}")
        self.model = model
        self.players = players
        self.replacement = replacement
        self.expand = "input" if getattr(model, EXPAND_INPUT_ATTR, False) is True else expand
        #: The strategy the next pass uses ("tree", "lazy" or "input"; see the module doc).
        self.strategy = "tree" if self.expand == "auto" else self.expand
        self.reference: dict[str, torch.Tensor] = {}
        self._ref_cache: dict[tuple, torch.Tensor] = {}
        self._order: list[Layer] = list(players.layers)  # hooked layers in execution order
        self.fold = fold
        self._followers: dict[str, list[str]] | None = None  # layer -> modules folded in
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
        fired: list[Layer] = []  # hook calls of the first batch, in order

        def add(layer: Layer, out: torch.Tensor) -> None:
            if count == 0:
                fired.append(layer)
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
        self._ref_cache = {}
        self._order = list(dict.fromkeys(fired))
        if self.expand == "auto":  # a layer called twice per pass: no prefix sharing
            self.strategy = "tree" if len(fired) == len(self._order) else "lazy"
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
        masks = masks.detach().to(device="cpu", dtype=torch.bool)
        b = int(x.shape[0])
        strategy = self.strategy
        while True:
            plan = _Plan(masks, self._order, b, strategy, x.device)
            try:
                out = self._run(x, plan)
            except RuntimeError:
                fallback = _FALLBACK.get(strategy) if self.expand == "auto" else None
                if fallback is None or not plan.split:
                    raise
                strategy = fallback  # this model cannot share activations that way
                continue
            if self.expand == "auto":
                self.strategy = strategy  # remembered: the next pass skips what failed
            return out

    def _run(self, x: torch.Tensor, plan: _Plan) -> torch.Tensor:
        """One forward pass with the units replaced; outputs (M, B, ...)."""
        if plan.sizes[0] > 1:
            x = _expand(x, plan.sizes[0])
        params = {
            t.untyped_storage().data_ptr()
            for t in (*self.model.parameters(), *self.model.buffers())
        }
        followers = self._active_followers(x)
        done: dict[int, torch.Tensor] = {}  # id(module) -> the output it passes on as is

        def make_hook(layer: Layer) -> Callable[..., Any]:
            k = plan.stage[layer.name]
            if layer.is_heads:
                return self._head_hook(layer, plan, k)
            chain = followers.get(layer.name, [])
            norm = chain[0] if chain and _is_norm(chain[0]) else None
            acts = chain[1:] if norm is not None else chain
            touch = plan.keep[k] is not None or bool(chain)

            def hook(_module: nn.Module, inputs: tuple, out: torch.Tensor) -> torch.Tensor:
                _check_output(layer, out)
                owned = touch and _fresh(out, inputs, params)
                fold = norm if norm is not None and _foldable(layer, out, norm) else None
                res = self._to_stage(layer, out, plan, k, layer.channel_axis, owned, norm=fold)
                if fold is None and norm is not None:
                    return res  # the norm runs as usual, and the activation after it
                if fold is not None:
                    done[id(fold)] = res
                if acts and (res is not out or owned):  # ours: the activation in place
                    for act in acts:
                        _activate_(act, res)
                        done[id(act)] = res
                return res

            return hook

        def passthrough(module: nn.Module) -> Callable[..., torch.Tensor]:
            original = module.forward

            def forward(inp: torch.Tensor) -> torch.Tensor:
                if done.get(id(module)) is inp:
                    del done[id(module)]
                    return inp  # computed by the layer's hook already
                return original(inp)

            return forward

        patches = {id(m): (m, passthrough(m)) for ms in followers.values() for m in ms}
        with self._hooks(make_hook, patches):
            out = self.model(x)
        if not isinstance(out, torch.Tensor):
            raise AblationError(f"the model must return a tensor, got {type(out).__name__}")
        j = plan.source(int(out.shape[0]), len(plan.sizes) - 1, "the model's output")
        out = out.reshape(plan.sizes[j], plan.b, *out.shape[1:])
        return out if plan.identity(j) else out.index_select(0, plan.groups_on(j, out.device))

    def _active_followers(self, x: torch.Tensor) -> dict[str, list[nn.Module]]:
        """Modules to fold into the hook of the layer they follow, per layer: an eval-mode
        batch norm and/or a ReLU (ReLU6), each the only reader of the one before."""
        if not self.fold or torch.is_autocast_enabled(x.device.type):
            return {}
        if self._followers is None:
            self._followers = _followers(self.model, [ly.name for ly in self._order])
        modules = dict(self.model.named_modules())
        out: dict[str, list[nn.Module]] = {}
        for layer, names in self._followers.items():
            chain = []
            for name in names:
                mod = modules.get(name)
                if mod is None or "forward" in vars(mod) or (_is_norm(mod) and not _usable(mod)):
                    break
                chain.append(mod)
            if chain:
                out[layer] = chain
        return out

    def _to_stage(
        self,
        layer: Layer,
        t: torch.Tensor,
        plan: _Plan,
        k: int,
        axis: int,
        owned: bool,
        replace: bool = True,
        norm: nn.Module | None = None,
    ) -> torch.Tensor:
        """``t`` (a layer's output, batch first) at stage ``k``: its rows copied to the groups
        of stage ``k`` where they split, (``replace``) the removed units replaced and
        (``norm``, an eval-mode batch norm that alone reads ``t``) normalized.

        ``owned``: ``t`` may be overwritten."""
        j = plan.source(int(t.shape[0]), k, f"layer {layer.name!r}")
        keep = plan.keep[k] if replace else None
        axis = axis if axis >= 0 else t.ndim + axis
        split = plan.sizes[j] != plan.sizes[k] and (keep is not None or plan.strategy != "tree")
        if keep is None and norm is None and not split:
            return t  # nothing removed here: rows stay shared (sizes tell the groups apart)
        plan.split = plan.split or split
        perm = _permutation(t)
        if perm is None and not t.is_contiguous():
            t, owned = t.contiguous(), True
        view = t if perm is None else t.permute(perm)
        src = view.reshape(plan.sizes[j], plan.b, *view.shape[1:])
        cax = axis if perm is None else perm.index(axis)
        # out = x * scale + shift: with keep (0/1) and the reference r,
        # scale = keep, shift = r * (1 - keep); folding a batch norm y = x * a + c in,
        # scale = keep * a, shift = c where kept, r * a + c where not.
        scale = shift = None
        if norm is not None:
            shape = [1] * (view.ndim + 1)
            shape[1 + cax] = layer.n_units
            scale, shift = (v.view(shape) for v in _norm_terms(norm))
        if keep is not None:
            shape = [plan.sizes[k]] + [1] * view.ndim
            shape[1 + cax] = layer.n_units
            keep_v = keep.view(shape)
            ref = self._ref(layer.name, t, perm)
            if scale is None or shift is None:
                scale, shift = keep_v.to(t.dtype), ref * ~keep_v
            else:
                scale, shift = keep_v * scale, torch.where(keep_v, shift, ref * scale + shift)
        if not split:  # no new groups: in place when the tensor is ours, else one new copy
            assert scale is not None and shift is not None
            res = t if owned else torch.empty_like(t)
            dst = src if owned else (res if perm is None else res.permute(perm)).view(src.shape)
            torch.addcmul(shift, src, scale, out=dst)
            return res
        dst = torch.empty((plan.sizes[k], *src.shape[1:]), dtype=t.dtype, device=t.device)
        res = dst.view(-1, *view.shape[1:])
        if perm is not None:
            res = res.permute(_inverse(perm))
        runs, index = plan.parents(j, k, t.device)
        per_run = dst.numel() * dst.element_size() // len(runs)
        if len(runs) <= _MAX_RUNS or (t.device.type == "cpu" and per_run >= _RUN_BYTES):
            for parent, lo, hi in runs:  # one write per run: the parent's rows broadcast
                piece = src[parent : parent + 1].expand(hi - lo, *src.shape[1:])
                if scale is None or shift is None:
                    dst[lo:hi].copy_(piece)
                else:
                    torch.addcmul(_rows(shift, lo, hi), piece, _rows(scale, lo, hi),
                                  out=dst[lo:hi])
        else:
            torch.index_select(src, 0, index, out=dst)
            if scale is not None and shift is not None:
                torch.addcmul(shift, dst, scale, out=dst)
        return res

    def _ref(self, name: str, like: torch.Tensor, perm: tuple[int, ...] | None) -> torch.Tensor:
        """The reference of layer ``name`` in ``like``'s dtype, device and dimension order."""
        ref = self.reference[name]
        key = (name, like.dtype, like.device, perm, id(ref), ref.data_ptr())
        cached = self._ref_cache.get(key)
        if cached is None:
            cached = ref.to(device=like.device, dtype=like.dtype)
            if perm is not None and cached.ndim == like.ndim - 1:
                cached = cached.permute([p - 1 for p in perm[1:]]).contiguous()
            self._ref_cache = {k: v for k, v in self._ref_cache.items() if k[0] != name}
            self._ref_cache[key] = cached
        return cached

    def _head_hook(self, layer: Layer, plan: _Plan, k: int) -> Callable[..., Any]:
        """Forward hook (with kwargs) on a ``nn.MultiheadAttention`` removing heads."""

        def hook(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> Any:
            assert isinstance(module, nn.MultiheadAttention)
            attn, weights = out
            if weights is not None:
                weights = self._to_stage(layer, weights, plan, k, -1, False, replace=False)
            if plan.keep[k] is None:
                if module.batch_first:
                    return self._to_stage(layer, attn, plan, k, -1, False, False), weights
                attn = self._to_stage(layer, attn.transpose(0, 1), plan, k, -1, False, False)
                return attn.transpose(0, 1), weights
            z = attention_head_outputs(module, args, kwargs)  # (batch, L, H, Dh)
            _check_output(layer, z)
            z = self._to_stage(layer, z, plan, k, layer.channel_axis, True)
            mixed = z.reshape(z.shape[0], z.shape[1], -1)
            new = F.linear(mixed, module.out_proj.weight, module.out_proj.bias)
            return (new if module.batch_first else new.transpose(0, 1)), weights

        return hook

    @contextmanager
    def _hooks(
        self,
        make_hook: Callable[[Layer], Callable[..., object]],
        patches: dict[int, tuple[nn.Module, Callable[..., Any]]] | None = None,
    ) -> Iterator[None]:
        """Hooks on the player layers (and ``forward`` replaced on the ``patches`` modules)."""
        handles = []
        patched: list[nn.Module] = []
        try:
            for layer in self.players.layers:
                module = self._modules[layer.name]
                if layer.is_heads:
                    handles.append(
                        module.register_forward_hook(make_hook(layer), with_kwargs=True)
                    )
                else:
                    handles.append(module.register_forward_hook(make_hook(layer)))
            for module, forward in (patches or {}).values():
                module.forward = forward  # type: ignore[method-assign]
                patched.append(module)
            yield
        finally:
            for h in handles:
                h.remove()
            for module in patched:
                del module.forward


#: Strategy tried next when a pass fails with ``expand="auto"``.
_FALLBACK = {"tree": "lazy", "lazy": "input"}
#: Above this many parent groups, a split copies rows with one ``index_select`` (on CPU,
#: only when the groups are smaller than ``_RUN_BYTES`` on average).
_MAX_RUNS = 64
_RUN_BYTES = 1 << 18


class _Plan:
    """How the M masks of one pass share activations, stage by stage.

    Stage 0 is the input, stage k the output of the k-th hooked layer in execution order.
    Masks in one group of stage k agree on every layer up to k, so they share one copy of the
    activations there (B rows per group). A tensor's row count tells its stage apart: the
    groups of a later stage refine those of an earlier one, so equal counts mean equal groups
    (numbered alike), and tensors of different stages cannot be mixed without a shape error.

    - ``"tree"``: groups split at each layer where the masks differ (prefix sharing);
    - ``"lazy"``: one group before the first hooked layer, then one per distinct mask;
    - ``"input"``: one group per distinct mask from the input on.
    """

    def __init__(
        self,
        masks: torch.Tensor,
        layers: Sequence[Layer],
        b: int,
        strategy: str,
        device: torch.device,
    ) -> None:
        self.b, self.m, self.strategy, self.device = b, int(masks.shape[0]), strategy, device
        self.split = False  # set when a pass copied rows into more groups
        full, n_full = _row_groups(masks)
        self.stage: dict[str, int] = {}
        self.sizes: list[int] = [n_full if strategy == "input" else 1]
        self.groups: list[torch.Tensor] = [
            full if strategy == "input" else torch.zeros(self.m, dtype=torch.long)
        ]
        self.keep: list[torch.Tensor | None] = [None]
        for k, layer in enumerate(layers, start=1):
            self.stage[layer.name] = k
            lm = masks[:, layer.slice]
            g, size = self.groups[-1], self.sizes[-1]
            if strategy != "tree":
                g, size = full, n_full
            elif not bool(lm.all()):
                rows, n_rows = _row_groups(lm)
                if n_rows > 1:
                    g, size = _row_groups(torch.stack([g, rows], dim=1))
            self.groups.append(g)
            self.sizes.append(size)
            keep = None if bool(lm.all()) else lm[_first_index(g, size)]
            self.keep.append(None if keep is None else keep.to(device, non_blocking=True))
        self._parents: dict[tuple[int, int], tuple[list[tuple[int, int, int]], torch.Tensor]] = {}

    def source(self, rows: int, k: int, what: str) -> int:
        """The latest stage <= k whose group count times B is ``rows``."""
        for j in range(k, -1, -1):
            if self.sizes[j] * self.b == rows:
                return j
        expected = sorted({s * self.b for s in self.sizes[: k + 1]})
        raise AblationError(
            f"{what} produced a batch of {rows}, expected one of {expected}: "
            "the batch dimension must come first"
        )

    def parents(
        self, j: int, k: int, device: torch.device
    ) -> tuple[list[tuple[int, int, int]], torch.Tensor]:
        """For each group of stage k, its group at stage j: as runs (parent, lo, hi) of
        consecutive groups with one parent, and as an index tensor on ``device``."""
        if (j, k) not in self._parents:
            index = self.groups[j][_first_index(self.groups[k], self.sizes[k])]
            values, counts = torch.unique_consecutive(index, return_counts=True)
            ends = torch.cumsum(counts, 0).tolist()
            starts = [0, *ends[:-1]]
            runs = list(zip(values.tolist(), starts, ends, strict=True))
            self._parents[(j, k)] = (runs, index.to(device))
        return self._parents[(j, k)]

    def identity(self, j: int) -> bool:
        """Whether mask i's rows are group i at stage j."""
        return self.sizes[j] == self.m and bool(
            torch.equal(self.groups[j], torch.arange(self.m))
        )

    def groups_on(self, j: int, device: torch.device) -> torch.Tensor:
        return self.groups[j].to(device)


def _row_groups(rows: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Group index of each row (equal rows, equal index; indices follow the rows' sorted
    order), and the number of groups."""
    if rows.shape[0] == 1:
        return torch.zeros(1, dtype=torch.long), 1
    uniq, inverse = torch.unique(rows.to(torch.uint8 if rows.dtype == torch.bool else rows.dtype),
                                 dim=0, return_inverse=True)
    return inverse, int(uniq.shape[0])


def _first_index(groups: torch.Tensor, n: int) -> torch.Tensor:
    """The first row of each of the ``n`` groups."""
    first = torch.full((n,), len(groups), dtype=torch.long)
    return first.scatter_reduce_(0, groups, torch.arange(len(groups)), "amin")


def _rows(t: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Groups ``lo:hi`` of a per-group tensor (a tensor of one group is shared)."""
    return t if t.shape[0] == 1 else t[lo:hi]


def _foldable(layer: Layer, out: torch.Tensor, norm: nn.Module) -> bool:
    """Whether ``norm`` (a batch norm over axis 1) can be folded into ``layer``'s hook."""
    axis = layer.channel_axis if layer.channel_axis >= 0 else out.ndim + layer.channel_axis
    mean = getattr(norm, "running_mean", None)
    return (
        axis == 1 and mean is not None and out.dtype == mean.dtype and out.is_floating_point()
        and out.ndim >= 2
    )


def _norm_terms(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(a, c) with ``norm(x) = x * a + c`` per channel, for an eval-mode batch norm."""
    assert isinstance(norm, nn.modules.batchnorm._BatchNorm)
    assert norm.running_mean is not None and norm.running_var is not None
    a = 1 / torch.sqrt(norm.running_var + norm.eps)
    if norm.weight is not None:
        a = a * norm.weight
    c = -norm.running_mean * a
    return a, c if norm.bias is None else c + norm.bias


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


def _usable(norm: nn.Module) -> bool:
    """An eval-mode batch norm with running statistics: an affine map per channel."""
    return (
        not norm.training
        and getattr(norm, "running_mean", None) is not None
        and getattr(norm, "running_var", None) is not None
    )


_ACTIVATIONS = (nn.ReLU, nn.ReLU6)


def _activate_(act: nn.Module, t: torch.Tensor) -> None:
    """``act`` (a ReLU or ReLU6 module) applied to ``t`` in place."""
    if type(act) is nn.ReLU6:
        F.hardtanh_(t, 0.0, 6.0)
    else:
        F.relu_(t)


def _followers(model: nn.Module, names: Sequence[str]) -> dict[str, list[str]]:
    """Layer name -> the modules after it that can be folded into its hook: a batch norm,
    then a ReLU / ReLU6 module, each the only reader of the previous output and taking
    nothing else, each called once per pass (from a ``torch.fx`` trace with the player
    layers as leaves). Empty when the model cannot be traced."""
    wanted = set(names)

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
            if _is_norm(mod) and not chain:
                chain.append(str(user.target))
            elif type(mod) in _ACTIVATIONS:
                chain.append(str(user.target))
                break
            else:
                break
            cur = user
        if chain:
            out[str(node.target)] = chain
    return out


def _permutation(t: torch.Tensor) -> tuple[int, ...] | None:
    """Dimension order in which ``t`` is contiguous, batch first (None: as it is)."""
    if t.is_contiguous():
        return None
    if t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return (0, 2, 3, 1)
    if t.ndim == 5 and t.is_contiguous(memory_format=torch.channels_last_3d):
        return (0, 2, 3, 4, 1)
    return None


def _inverse(perm: tuple[int, ...]) -> list[int]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


def _fresh(out: torch.Tensor, inputs: tuple, params: set[int]) -> bool:
    """Whether ``out`` is a new tensor of its own (not a view, an input or a parameter), so
    it can be changed in place."""
    if out._is_view():
        return False
    ptr = out.untyped_storage().data_ptr()
    if ptr in params:
        return False
    return not any(
        isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() == ptr for t in inputs
    )


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


def _check_output(layer: Layer, out: object) -> None:
    if not isinstance(out, torch.Tensor):
        raise AblationError(f"layer {layer.name!r} returned {type(out).__name__}, not a tensor")
    axis = layer.channel_axis if layer.channel_axis >= 0 else out.ndim + layer.channel_axis
    if out.ndim < 2 or out.shape[axis] != layer.n_units:
        raise AblationError(
            f"layer {layer.name!r} output has shape {tuple(out.shape)}; expected "
            f"{layer.n_units} units on axis {layer.channel_axis}"
        )
