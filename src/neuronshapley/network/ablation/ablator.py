"""The :class:`Ablator`: hooks that replace removed units, many masks in one pass."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neuronshapley.errors import AblationError, GameError
from neuronshapley.network import inputs as batch
from neuronshapley.network.ablation.fold import (
    activate_,
    foldable,
    followers,
    is_norm,
    norm_terms,
    usable,
)
from neuronshapley.network.ablation.heads import (
    attention_head_outputs,
    flat_view,
    unit_view,
)
from neuronshapley.network.ablation.layout import (
    check_output,
    fresh,
    inverse,
    permutation,
    rows,
)
from neuronshapley.network.ablation.plan import FALLBACK, Plan, segments_of
from neuronshapley.network.ablation.taps import hooked_module
from neuronshapley.network.inputs import Inputs
from neuronshapley.network.players import SITES, Layer, PlayerSet

REPLACEMENTS = ("mean", "channel", "zero")
#: How ``Ablator.forward`` expands the batch for M masks (see the module docstring).
EXPANSIONS = ("auto", "tree", "lazy", "input")
#: A model with this attribute set to True is always run with its input expanded up front
#: (e.g. graphs from ``torch.export`` whose shapes follow the input's batch size).
EXPAND_INPUT_ATTR = "neuronshapley_expand_input"
#: Above this many parent groups, a split copies rows with one ``index_select`` (on CPU,
#: only when the groups are smaller than ``_RUN_BYTES`` on average).
_MAX_RUNS = 64
_RUN_BYTES = 1 << 18


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
        self._modules: dict[str, nn.Module] = {}
        for layer in players.layers:
            if layer.site not in SITES:
                raise AblationError(f"layer {layer.name!r}: site must be one of {SITES}")
            self._modules[layer.name] = hooked_module(model, layer)
        self._blocks: dict[str, nn.Module] = {}
        for layer in players.layers:
            if layer.block and layer.block not in self._blocks:
                try:
                    self._blocks[layer.block] = model.get_submodule(layer.block)
                except AttributeError:
                    raise AblationError(
                        f"layer {layer.name!r}: block {layer.block!r} is not a sub-module"
                    ) from None

    # -------------------------------------------------------------- reference
    @torch.inference_mode()
    def fit_reference(self, inputs: Inputs, batch_size: int = 256) -> Ablator:
        """Record each layer's mean output over ``inputs`` (a tensor (N, ...) or a mapping of
        tensors (N, ...)).

        With an ``attention_mask`` (N, L) among the inputs, a layer whose output is
        (N, L, ...) is averaged over real tokens only: per position ("mean"; a position no
        example fills gets the mean over all real tokens) or over all positions ("channel").
        """
        inputs = batch.as_inputs(inputs)
        n = batch.n_rows(inputs)
        if n == 0:
            raise ValueError("reference data is empty")
        sums: dict[str, torch.Tensor] = {}
        counts: dict[str, torch.Tensor | int] = {}
        count = 0
        tokens: torch.Tensor | None = None  # the current batch's token mask (b, L)
        fired: list[Layer] = []  # hook calls of the first batch, in order

        def add(layer: Layer, out: torch.Tensor) -> None:
            if count == 0:
                fired.append(layer)
            check_output(layer, out)
            t = out.detach().double()
            w = tokens
            if w is not None and t.ndim >= 3 and tuple(t.shape[:2]) == tuple(w.shape):
                t = t * w.to(t.device).view(*w.shape, *[1] * (t.ndim - 2))
                c: torch.Tensor | int = w.sum(0)
            else:
                c = len(t)
            s = t.sum(dim=0)
            if layer.name in sums and sums[layer.name].shape != s.shape:
                raise AblationError(
                    f"layer {layer.name!r} output changed shape between batches "
                    f"({tuple(sums[layer.name].shape)} then {tuple(s.shape)}): "
                    "the mean replacement needs inputs of one shape"
                )
            sums[layer.name] = sums[layer.name] + s if layer.name in sums else s
            counts[layer.name] = counts[layer.name] + c if layer.name in counts else c

        def make_hook(layer: Layer) -> Callable[..., Any]:
            if layer.site == "input":
                def pre_hook(_module: nn.Module, args: tuple) -> None:
                    add(layer, unit_view(layer, args[0]))

                return pre_hook
            if layer.is_heads:
                def head_hook(module: nn.Module, args: tuple, kwargs: dict, _out: Any) -> None:
                    add(layer, attention_head_outputs(module, args, kwargs))

                return head_hook

            def hook(_module: nn.Module, _inp: object, out: torch.Tensor) -> None:
                add(layer, out)

            return hook

        with self._hooks(make_hook):
            for start in range(0, n, batch_size):
                part = batch.take(inputs, slice(start, start + batch_size))
                tokens = batch.token_mask(part)
                batch.call(self.model, part)
                count += batch.n_rows(part)
        dtype = torch.float32
        first = batch.tensors(inputs)[0]
        if first.is_floating_point():
            dtype = first.dtype
        for layer in self.players.layers:
            if layer.name not in sums:
                raise AblationError(
                    f"layer {layer.name!r} never ran in a forward pass: it cannot be a player"
                )
            mean = self._mean(layer, sums[layer.name], counts[layer.name])
            self.reference[layer.name] = mean.to(dtype)
        self._ref_cache = {}
        self._order = list(dict.fromkeys(fired))
        if self.expand == "auto":  # a layer called twice per pass: no prefix sharing
            self.strategy = "tree" if len(fired) == len(self._order) else "lazy"
        return self

    def _mean(self, layer: Layer, total: torch.Tensor, count: torch.Tensor | int) -> torch.Tensor:
        """The reference of ``layer`` from the sum of its outputs (one example's shape) and
        the number of examples (or of real tokens per position, (L,))."""
        if isinstance(count, torch.Tensor):  # token-weighted: positions first
            c = count.to(total.device).view(-1, *[1] * (total.ndim - 1))
            overall = total.sum(0, keepdim=True) / c.sum().clamp_min(1)
            if self.replacement == "channel":
                mean = overall
            else:
                mean = torch.where(c > 0, total / c.clamp_min(1), overall)
        else:
            mean = total / count
            if self.replacement == "channel" and layer.is_heads:
                mean = mean.mean(dim=0, keepdim=True)  # (L, H, Dh) -> (1, H, Dh)
            elif self.replacement == "channel":
                axis = layer.channel_axis
                if axis < 0:
                    axis += mean.ndim + 1
                dims = [d for d in range(mean.ndim) if d != axis - 1]
                mean = mean.mean(dim=dims, keepdim=True) if dims else mean
        if self.replacement == "zero":
            mean = torch.zeros_like(mean)
        return mean

    # ---------------------------------------------------------------- forward
    @torch.inference_mode()
    def forward(self, x: Inputs, masks: torch.Tensor) -> torch.Tensor:
        """Outputs of the network under each mask.

        Args:
            x: inputs, a tensor (B, ...) or a mapping of tensors (B, ...).
            masks: bool, shape (M, n_players); True keeps a unit, False removes it.
        Returns:
            outputs of shape (M, B, ...) (a model's ``.logits`` or first output).
        """
        if not self.reference:
            raise AblationError("call fit_reference(...) before evaluating masks")
        n = self.players.n_players
        if masks.ndim != 2 or masks.shape[1] != n:
            raise ValueError(f"masks must have shape (M, {n}), got {tuple(masks.shape)}")
        masks = masks.detach().to(device="cpu", dtype=torch.bool)
        b = batch.n_rows(x)
        device = batch.tensors(x)[0].device
        strategy = self.strategy
        segments = segments_of(self._order)
        while True:
            plan = Plan(masks, segments, b, strategy, device)
            try:
                out = self._run(x, plan)
            except RuntimeError:
                fallback = FALLBACK.get(strategy) if self.expand == "auto" else None
                if fallback is None or not plan.split:
                    raise
                strategy = fallback  # this model cannot share activations that way
                continue
            if self.expand == "auto":
                self.strategy = strategy  # remembered: the next pass skips what failed
            return out

    def _run(self, x: Inputs, plan: Plan) -> torch.Tensor:
        """One forward pass with the units replaced; outputs (M, B, ...)."""
        if plan.sizes[0] > 1:
            x = batch.expand(x, plan.sizes[0])
        params = {
            t.untyped_storage().data_ptr()
            for t in (*self.model.parameters(), *self.model.buffers())
        }
        folds = self._active_followers(x)
        done: dict[int, torch.Tensor] = {}  # id(module) -> the output it passes on as is

        def make_hook(layer: Layer) -> Callable[..., Any]:
            k = plan.stage[layer.name]
            if layer.site == "input":
                return self._input_hook(layer, plan, k)
            if layer.is_heads:
                return self._head_hook(layer, plan, k)
            chain = folds.get(layer.name, [])
            norm = chain[0] if chain and is_norm(chain[0]) else None
            acts = chain[1:] if norm is not None else chain
            touch = plan.keep[layer.name] is not None or bool(chain)

            def hook(_module: nn.Module, inputs: tuple, out: torch.Tensor) -> torch.Tensor:
                check_output(layer, out)
                owned = touch and fresh(out, inputs, params)
                fold = norm if norm is not None and foldable(layer, out, norm) else None
                res = self._to_stage(layer, out, plan, k, layer.channel_axis, owned, norm=fold)
                if fold is None and norm is not None:
                    return res  # the norm runs as usual, and the activation after it
                if fold is not None:
                    done[id(fold)] = res
                if acts and (res is not out or owned):  # ours: the activation in place
                    for act in acts:
                        activate_(act, res)
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

        patches = {id(m): (m, passthrough(m)) for ms in folds.values() for m in ms}
        with self._hooks(make_hook, patches, plan):
            raw = batch.call(self.model, x)
        try:
            out = batch.model_output(raw)
        except GameError as exc:
            raise AblationError(str(exc)) from None
        j = plan.source(int(out.shape[0]), plan.last, "the model's output")
        if plan.sizes[j] < plan.sizes[plan.reached]:
            raise AblationError(  # rows were dropped (e.g. indexed by the input's batch size)
                f"the model's output has {out.shape[0]} rows, fewer than the "
                f"{plan.sizes[plan.reached] * plan.b} its hooked layers produced"
            )
        out = out.reshape(plan.sizes[j], plan.b, *out.shape[1:])
        return out if plan.identity(j) else out.index_select(0, plan.groups_on(j, out.device))

    def _active_followers(self, x: Inputs) -> dict[str, list[nn.Module]]:
        """Modules to fold into the hook of the layer they follow, per layer: an eval-mode
        batch norm and/or a ReLU (ReLU6), each the only reader of the one before."""
        device = batch.tensors(x)[0].device
        if not self.fold or torch.is_autocast_enabled(device.type):
            return {}
        if self._followers is None:
            names = [ly.name for ly in self._order if ly.site == "output"]
            self._followers = followers(self.model, names)
        modules = dict(self.model.named_modules())
        out: dict[str, list[nn.Module]] = {}
        for layer, names in self._followers.items():
            chain = []
            for name in names:
                mod = modules.get(name)
                if mod is None or "forward" in vars(mod) or (is_norm(mod) and not usable(mod)):
                    break
                chain.append(mod)
            if chain:
                out[layer] = chain
        return out

    def _to_stage(
        self,
        layer: Layer,
        t: torch.Tensor,
        plan: Plan,
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
        keep = plan.keep[layer.name] if replace else None
        axis = axis if axis >= 0 else t.ndim + axis
        split = plan.sizes[j] != plan.sizes[k] and (keep is not None or plan.strategy != "tree")
        if keep is None and norm is None and not split:
            plan.reached = max(plan.reached, j)
            return t  # nothing removed here: rows stay shared (sizes tell the groups apart)
        plan.reached = max(plan.reached, k)
        plan.split = plan.split or split
        perm = permutation(t)
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
            scale, shift = (v.view(shape) for v in norm_terms(norm))
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
            res = res.permute(inverse(perm))
        runs, index = plan.parents(j, k, t.device)
        per_run = dst.numel() * dst.element_size() // len(runs)
        if len(runs) <= _MAX_RUNS or (t.device.type == "cpu" and per_run >= _RUN_BYTES):
            for parent, lo, hi in runs:  # one write per run: the parent's rows broadcast
                piece = src[parent : parent + 1].expand(hi - lo, *src.shape[1:])
                if scale is None or shift is None:
                    dst[lo:hi].copy_(piece)
                else:
                    torch.addcmul(rows(shift, lo, hi), piece, rows(scale, lo, hi),
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
            per_example = like.shape[1:]
            if ref.ndim == len(per_example) and any(
                r not in (1, s) for r, s in zip(ref.shape, per_example, strict=True)
            ):
                raise GameError(
                    f"layer {name!r}: the reference has shape {tuple(ref.shape)} per example, "
                    f"the evaluated batch {tuple(per_example)}: give the reference and the "
                    "evaluation inputs one shape (e.g. pad texts to one length) or use "
                    "replacement='channel'"
                )
            cached = ref.to(device=like.device, dtype=like.dtype)
            if perm is not None and cached.ndim == like.ndim - 1:
                cached = cached.permute([p - 1 for p in perm[1:]]).contiguous()
            self._ref_cache = {k: v for k, v in self._ref_cache.items() if k[0] != name}
            self._ref_cache[key] = cached
        return cached

    def _head_hook(self, layer: Layer, plan: Plan, k: int) -> Callable[..., Any]:
        """Forward hook (with kwargs) on a ``nn.MultiheadAttention`` removing heads."""

        def hook(module: nn.Module, args: tuple, kwargs: dict, out: Any) -> Any:
            assert isinstance(module, nn.MultiheadAttention)
            attn, weights = out
            if weights is not None:
                weights = self._to_stage(layer, weights, plan, k, -1, False, replace=False)
            if plan.keep[layer.name] is None:
                if module.batch_first:
                    return self._to_stage(layer, attn, plan, k, -1, False, False), weights
                attn = self._to_stage(layer, attn.transpose(0, 1), plan, k, -1, False, False)
                return attn.transpose(0, 1), weights
            z = attention_head_outputs(module, args, kwargs)  # (batch, L, H, Dh)
            check_output(layer, z)
            z = self._to_stage(layer, z, plan, k, layer.channel_axis, True)
            mixed = z.reshape(z.shape[0], z.shape[1], -1)
            new = F.linear(mixed, module.out_proj.weight, module.out_proj.bias)
            return (new if module.batch_first else new.transpose(0, 1)), weights

        return hook

    def _input_hook(self, layer: Layer, plan: Plan, k: int) -> Callable[..., Any]:
        """Forward pre-hook replacing removed units in the (first) input of a projection
        (transformer heads: slices of width head_dim; MLP neurons: features)."""

        def pre_hook(_module: nn.Module, args: tuple) -> tuple | None:
            z = unit_view(layer, args[0])
            check_output(layer, z)
            res = self._to_stage(layer, z, plan, k, layer.channel_axis, False)
            return None if res is z else (flat_view(layer, res), *args[1:])

        return pre_hook

    def _block_hook(self, plan: Plan, k: int) -> Callable[..., Any]:
        """Forward pre-hook (with kwargs) on a transformer block: its batch-first tensor
        arguments (hidden states, attention mask, position embeddings) are copied to the
        groups of the block's stage ``k``, so that everything inside the block (residual
        sums included) is at one stage."""

        def align(value: Any) -> Any:
            if isinstance(value, torch.Tensor):
                return plan.regroup(value, k) if value.ndim >= 2 else value
            if isinstance(value, tuple):
                return tuple(align(v) for v in value)
            if isinstance(value, list):
                return [align(v) for v in value]
            return value

        def pre_hook(_module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            return align(args), {key: align(v) for key, v in kwargs.items()}

        return pre_hook

    @contextmanager
    def _hooks(
        self,
        make_hook: Callable[[Layer], Callable[..., object]],
        patches: dict[int, tuple[nn.Module, Callable[..., Any]]] | None = None,
        plan: Plan | None = None,
    ) -> Iterator[None]:
        """Hooks on the player layers (with a ``plan``: also on their transformer blocks) and
        ``forward`` replaced on the ``patches`` modules; all removed on every exit (errors
        and KeyboardInterrupt included)."""
        handles = []
        patched: list[nn.Module] = []
        try:
            if plan is not None:
                for block, stage in self._block_stages(plan).items():
                    handles.append(self._blocks[block].register_forward_pre_hook(
                        self._block_hook(plan, stage), with_kwargs=True))
            for layer in self.players.layers:
                module = self._modules[layer.name]
                if layer.site == "input":
                    handles.append(module.register_forward_pre_hook(make_hook(layer)))
                elif layer.is_heads:
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

    def _block_stages(self, plan: Plan) -> dict[str, int]:
        """Transformer block -> the stage of its layers (blocks whose layers share one)."""
        stages: dict[str, set[int]] = {}
        for layer in self._order:
            if layer.block:
                stages.setdefault(layer.block, set()).add(plan.stage[layer.name])
        return {b: next(iter(s)) for b, s in stages.items() if len(s) == 1}


