"""Baseline rankings of units, each returned as a :class:`~neuronshapley.ShapleyResult`.

The paper compares Neuron Shapley with simpler ways of scoring units. Each baseline here gives
one score per player (larger = more important) in the same result type as
:func:`neuronshapley.estimate`, so every downstream tool (``ranking()``, ``top(k)``,
``save``) works unchanged. Where a score has no uncertainty, ``ci_low = ci_high = values``;
``samples`` counts marginal contributions drawn per player (1 for leave-one-out, else 0) and
``evaluations`` the coalitions the game evaluated (``n + 1`` for leave-one-out, else 0).

========================  ===============================================================
method                    score of a unit
========================  ===============================================================
``loo``                   leave-one-out: ``V(N) - V(N without the unit)`` (game, n + 1
                          evaluations; (n, d) for a vector game)
``weight_norm``           L2 norm of the unit's weight slice (conv: ``weight[i]``, linear:
                          ``weight[i, :]``; a transformer head: its columns of the output
                          projection; an MLP neuron: its down-projection column; bias left
                          out)
``activation_norm``       mean over the evaluation data of the L2 norm of the unit's output
                          (the tensor the ablation replaces: its whole activation map
                          for a conv filter, ``|a|`` for a linear unit, a head's
                          (positions x head_dim) slice; real tokens only)
``random``                uniform random numbers from ``seed``
``conductance``           neuron conductance (Dhamdhere et al. 2019) with captum's
                          ``LayerConductance``, attributing the model's output for the true
                          class (``target = labels``) from a baseline input (default zeros),
                          summed over the unit's spatial positions and averaged over the data
                          (token inputs: the path runs in embedding space)
``head_importance``       Michel et al. 2019: ``sum over examples |dL/d g|`` for a gate
                          ``g = 1`` on the head's output (L: cross-entropy of the target);
                          the same gate score for other units
========================  ===============================================================

``rank_units(game, method)`` takes the inputs, targets, model and players from a
:class:`~neuronshapley.ModelGame`; the functions below take them explicitly.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from neuronshapley.errors import BaselineError
from neuronshapley.network import inputs as batch
from neuronshapley.network.ablation import unit_hook
from neuronshapley.network.ablation.heads import unit_view
from neuronshapley.network.game import check_masks
from neuronshapley.network.inputs import Inputs
from neuronshapley.network.metrics import token_positions
from neuronshapley.network.players import Layer, PlayerSet
from neuronshapley.result import ShapleyResult

#: The baselines the paper compares with (the default set of comparisons).
PAPER_BASELINES = ("loo", "weight_norm", "activation_norm", "random", "conductance")
#: Every baseline ``rank_units`` computes.
BASELINES = (*PAPER_BASELINES, "head_importance")


def _result(
    values: np.ndarray, players: list[str], method: str, seed: int | None, params: dict[str, Any],
    started: float, samples: int = 0, evaluations: int = 0, info: dict[str, Any] | None = None,
    output_names: list[str] | None = None,
) -> ShapleyResult:
    values = np.asarray(values, dtype=np.float64)
    return ShapleyResult(
        values, values.copy(), values.copy(), np.full(len(players), samples, dtype=np.int64),
        evaluations, players, method, seed, params, time.perf_counter() - started, None,
        output_names, info=dict(info or {}),
    )


def _player_ids(players: PlayerSet) -> list[str]:
    return players.ids


# ------------------------------------------------------------------------- leave-one-out
def leave_one_out(game: Callable[[np.ndarray], np.ndarray],
                  n_players: int | None = None) -> ShapleyResult:
    """``V(N) - V(N without i)`` for every player i, from one batched call of n + 1 masks.

    Works on any game (a plain callable needs ``n_players``). A :class:`ModelGame` with
    ``walk_sample`` is evaluated on all its examples. Values (n,) or (n, d).
    """
    started = time.perf_counter()
    n = int(n_players if n_players is not None else getattr(game, "n_players", 0))
    if n < 1:
        raise BaselineError("leave_one_out needs n_players for a game without n_players")
    masks = np.ones((n + 1, n), dtype=bool)
    masks[np.arange(1, n + 1), np.arange(n)] = False
    with game.all_examples() if hasattr(game, "all_examples") else nullcontext():
        vals = np.asarray(game(check_masks(masks, n)), dtype=np.float64)
    values = vals[0][None] - vals[1:]
    ids = getattr(game, "players", None)
    players = [str(p) for p in ids] if ids is not None and len(ids) == n else [
        f"p{i}" for i in range(n)]
    names = getattr(game, "output_names", None) if values.ndim == 2 else None
    return _result(values, players, "loo", None, {}, started, samples=1, evaluations=n + 1,
                   info={"v_full": np.atleast_1d(vals[0]).tolist()},
                   output_names=list(names) if names is not None else None)


# --------------------------------------------------------------------------- weight norm
def _modules(model: nn.Module, players: PlayerSet) -> dict[str, nn.Module]:
    """Layer name -> the module holding its units (``Layer.hooked``)."""
    mods = dict(model.named_modules())
    missing = [ly.hooked for ly in players.layers if ly.hooked not in mods]
    if missing:
        raise BaselineError(f"layers {missing} are not sub-modules of the model")
    return {ly.name: mods[ly.hooked] for ly in players.layers}


def _unit_weights(layer: Layer, module: nn.Module) -> torch.Tensor:
    """(n_units, k): the weights of each unit, one row per unit.

    Conv / linear units: their incoming weights (``weight[i]``). Units read at a projection's
    input (transformer heads and MLP neurons): the projection's columns they multiply (a head:
    its ``head_dim`` columns of the output projection; a neuron: its down-projection column;
    a ``Conv1D`` stores (in, out), so rows there). ``nn.MultiheadAttention`` heads: their
    columns of ``out_proj``.
    """
    if layer.site == "input" or isinstance(module, nn.MultiheadAttention):
        proj = module.out_proj if isinstance(module, nn.MultiheadAttention) else module
        w = getattr(proj, "weight", None)
        if not isinstance(w, torch.Tensor) or w.ndim != 2:
            raise BaselineError(f"layer {layer.name!r}: {layer.hooked!r} has no 2-D weight")
        cols = w if isinstance(proj, nn.Linear) else w.t()  # (out, in)
        if cols.shape[1] % layer.n_units:
            raise BaselineError(
                f"layer {layer.name!r}: {cols.shape[1]} inputs do not split into "
                f"{layer.n_units} units"
            )
        per = cols.shape[1] // layer.n_units
        return cols.t().reshape(layer.n_units, per * cols.shape[0])
    w = getattr(module, "weight", None)
    if not isinstance(w, torch.Tensor) or w.shape[0] != layer.n_units:
        raise BaselineError(
            f"layer {layer.name!r} has no weight with {layer.n_units} output units first"
        )
    return w.reshape(layer.n_units, -1)


def weight_norm(model: nn.Module, players: PlayerSet) -> ShapleyResult:
    """L2 norm of each unit's weights (bias excluded; see :func:`_unit_weights`: incoming for
    conv / linear units, the output- or down-projection slice for heads and MLP neurons).
    Values (n,)."""
    started = time.perf_counter()
    mods = _modules(model, players)
    values = np.empty(players.n_players)
    for layer in players.layers:
        w = _unit_weights(layer, mods[layer.name])
        values[layer.slice] = w.detach().double().norm(dim=1).cpu()
    return _result(values, _player_ids(players), "weight_norm", None, {}, started)


# ----------------------------------------------------------------------- activation norm
def _unit_axis(layer: Layer, ndim: int) -> int:
    return layer.channel_axis if layer.channel_axis >= 0 else ndim + layer.channel_axis


def _per_unit(layer: Layer, t: torch.Tensor, reduce: str,
              tokens: torch.Tensor | None = None) -> torch.Tensor:
    """(B, ...) layer tensor -> (B, n_units): L2 norm or sum over every non-unit axis (with a
    token mask (B, L) and a (B, L, ...) tensor: over real tokens only)."""
    if tokens is not None and t.ndim >= 3 and tuple(t.shape[:2]) == tuple(tokens.shape):
        t = t * tokens.to(t.device, t.dtype).view(*tokens.shape, *[1] * (t.ndim - 2))
    t = t.movedim(_unit_axis(layer, t.ndim), 1).reshape(t.shape[0], layer.n_units, -1).double()
    return t.norm(dim=2) if reduce == "norm" else t.sum(dim=2)


@contextmanager
def _hooked(model: nn.Module, players: PlayerSet,
            make_hook: Callable[[Layer], Callable[[torch.Tensor], Any]]) -> Iterator[None]:
    """Every layer of ``players`` hooked with ``make_hook(layer)``, removed on every path."""
    handles = []
    try:
        for layer in players.layers:
            handles.append(unit_hook(model, layer, make_hook(layer)))
        yield
    finally:
        for h in handles:
            h.remove()


def _batches(inputs: Inputs, n: int, batch_size: int) -> Iterator[tuple[int, Inputs]]:
    """``(first row, part)`` of ``inputs`` in parts of ``batch_size`` rows."""
    for b0 in range(0, n, batch_size):
        yield b0, batch.take(inputs, slice(b0, b0 + batch_size))


@torch.inference_mode()
def activation_norm(model: nn.Module, players: PlayerSet, inputs: Inputs,
                    batch_size: int = 256) -> ShapleyResult:
    """Mean over ``inputs`` (a tensor (N, ...) or a mapping of tensors) of the L2 norm of each
    unit's output map (a head: its (positions, head_dim) slice; real tokens only where an
    ``attention_mask`` is given). Values (n,)."""
    started = time.perf_counter()
    n = batch.n_rows(inputs)
    if n == 0:
        raise BaselineError("activation_norm needs at least one input")
    sums = {ly.name: torch.zeros(ly.n_units, dtype=torch.float64) for ly in players.layers}
    tokens: torch.Tensor | None = None

    def make_hook(layer: Layer) -> Callable[[torch.Tensor], None]:
        def hook(units: torch.Tensor) -> None:
            sums[layer.name] += _per_unit(layer, units, "norm", tokens).sum(0).cpu()
        return hook

    with _hooked(model, players, make_hook):
        for _, part in _batches(inputs, n, batch_size):
            tokens = batch.token_mask(part)
            batch.call(model, part)
    values = np.concatenate([(sums[ly.name] / n).numpy() for ly in players.layers])
    return _result(values, _player_ids(players), "activation_norm", None,
                   {"batch_size": batch_size}, started,
                   info={"examples": n, "forward_passes": n})


# ---------------------------------------------------------------------------- random
def random_ranking(players: PlayerSet | list[str] | int, seed: int | None = 0) -> ShapleyResult:
    """Uniform random scores in [0, 1) from ``seed``: a random order of the units. Values (n,)."""
    started = time.perf_counter()
    if isinstance(players, PlayerSet):
        ids = players.ids
    elif isinstance(players, int):
        ids = [f"p{i}" for i in range(players)]
    else:
        ids = [str(p) for p in players]
    values = np.random.default_rng(seed).random(len(ids))
    return _result(values, ids, "random", seed, {}, started)


# ------------------------------------------------------------------------ conductance
def _scored_logits(out: Any, tokens: torch.Tensor | None) -> torch.Tensor:
    """(B, C) logits of a model output: a language model's (B, L, V) at the last real token."""
    logits = batch.model_output(out)
    if logits.ndim == 3:
        pos = token_positions(None if tokens is None else {"attention_mask": tokens},
                              logits.shape[0], logits.shape[1]).to(logits.device)
        logits = logits[torch.arange(logits.shape[0], device=logits.device), pos]
    return logits


def _embedding_forward(model: nn.Module, names: list[str]) -> Callable[..., torch.Tensor]:
    """``f(inputs_embeds, *others)`` -> (B, C) logits, the others being ``names``' tensors."""
    def forward(embeds: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
        kwargs = dict(zip(names, others, strict=True))
        if "use_cache" not in kwargs and batch.takes(model, "use_cache"):
            kwargs["use_cache"] = False
        return _scored_logits(model(inputs_embeds=embeds, **kwargs),
                              kwargs.get(batch.ATTENTION_MASK))
    return forward


def _keyword_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The parameters of ``fn`` that have defaults, with them."""
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def layer_conductance(
    model: nn.Module,
    layer: Layer,
    inputs: Inputs,
    targets: torch.Tensor,
    baseline: float | torch.Tensor = 0.0,
    n_steps: int = 50,
    method: str = "gausslegendre",
    batch_size: int | None = None,
) -> torch.Tensor:
    """Conductance of every unit of ``layer`` for every example, (N, n_units).

    Captum's ``LayerConductance`` for the model's output at ``targets`` (N,), from
    ``baseline`` (a scalar or a tensor broadcastable to one input) to each input, summed over
    the unit's positions (a head: over its slice). Completeness: row sums approximate
    ``F(x)[target] - F(baseline)[target]`` (closer for larger ``n_steps``).

    Token inputs (a mapping with ``input_ids``): the path runs in embedding space, from
    ``baseline`` (default zeros) to the input's word embeddings
    (``model.get_input_embeddings()``), the other tensors (attention mask, token types) held
    fixed; only real tokens count. A language model (logits (N, L, V)) is attributed at the
    last real token, ``targets`` being token ids there.
    """
    try:
        from captum.attr import LayerConductance
    except ImportError:  # pragma: no cover - captum is in the studies / dev extras
        raise BaselineError("conductance needs captum: pip install captum") from None
    module = dict(model.named_modules()).get(layer.hooked)
    if module is None:
        raise BaselineError(f"layer {layer.name!r} is not a sub-module of the model")
    if layer.is_heads and layer.site == "output":
        raise BaselineError(
            f"conductance of nn.MultiheadAttention heads ({layer.name!r}) is not supported: "
            "the module does not call out_proj as a module"
        )
    n = batch.n_rows(inputs)
    if n != len(targets):
        raise BaselineError(f"{n} inputs but {len(targets)} targets")
    if n_steps < 2:
        raise BaselineError(f"n_steps must be at least 2, got {n_steps}")
    tokens_in = isinstance(inputs, Mapping)
    if tokens_in:
        assert isinstance(inputs, Mapping)
        if "input_ids" not in inputs or not hasattr(model, "get_input_embeddings"):
            raise BaselineError(
                "conductance on a mapping of inputs needs input_ids and a model with "
                "get_input_embeddings() (a Hugging Face model)"
            )
        names = [k for k in inputs if k != "input_ids"]
        lc = LayerConductance(_embedding_forward(model, names), module)
    else:
        lc = LayerConductance(lambda x: _scored_logits(model(x), None), module)
    # Bound memory: about 4096 (example x step) rows per forward pass.
    step = batch_size or max(1, 4096 // (n_steps + 1))
    rows = []
    targets = torch.as_tensor(targets).long()
    for b0 in range(0, n, step):
        part = batch.take(inputs, slice(b0, b0 + step))
        tokens = batch.token_mask(part)
        if tokens_in:
            assert isinstance(part, Mapping)
            x = model.get_input_embeddings()(part["input_ids"]).detach()
            extra = tuple(part[k] for k in names)
        else:
            assert isinstance(part, torch.Tensor)
            x, extra = part.detach(), ()
        base = baseline if not isinstance(baseline, torch.Tensor) else torch.broadcast_to(
            baseline.to(x.dtype), x.shape).contiguous()
        attr = lc.attribute(x, baselines=base, target=targets[b0 : b0 + len(x)].tolist(),
                            additional_forward_args=extra or None, n_steps=n_steps,
                            method=method, attribute_to_layer_input=layer.site == "input")
        if isinstance(attr, tuple):
            attr = attr[0]
        units = unit_view(layer, attr.detach()) if layer.site == "input" else attr.detach()
        rows.append(_per_unit(layer, units, "sum", tokens).cpu())
    return torch.cat(rows)


def conductance(
    model: nn.Module,
    players: PlayerSet,
    inputs: Inputs,
    targets: torch.Tensor,
    **options: Any,
) -> ShapleyResult:
    """Neuron conductance of every unit, averaged over the examples. Values (n,).

    Runs captum's ``LayerConductance`` once per layer of ``players``; ``options`` are those
    of :func:`layer_conductance` (``baseline``, ``n_steps``, ``method``, ``batch_size``).
    ``info["per_example_std"]`` holds the spread over examples.
    """
    started = time.perf_counter()
    allowed = _keyword_defaults(layer_conductance)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise BaselineError(f"conductance takes no option {', '.join(map(repr, unknown))}; "
                            f"it takes {', '.join(allowed)}")
    n = batch.n_rows(inputs)
    if n == 0:
        raise BaselineError("conductance needs at least one input")
    settings = {**allowed, **options}
    baseline, n_steps, method = settings["baseline"], settings["n_steps"], settings["method"]
    values = np.empty(players.n_players)
    spread = np.empty(players.n_players)
    was_training = model.training
    model.eval()
    try:
        for layer in players.layers:
            per_ex = layer_conductance(model, layer, inputs, targets, **options)
            values[layer.slice] = per_ex.mean(0).numpy()
            spread[layer.slice] = per_ex.std(0).numpy() if len(per_ex) > 1 else 0.0
    finally:
        model.train(was_training)
    params = {"n_steps": n_steps, "method": method,
              "baseline": baseline if not isinstance(baseline, torch.Tensor) else "tensor"}
    info = {"examples": n, "target": "true class (labels)",
            "forward_passes": n * n_steps * len(players.layers),
            "per_example_std": spread.tolist()}
    return _result(values, _player_ids(players), "conductance", None, params, started, info=info)


# ---------------------------------------------------------------- head importance (Michel)
def head_importance(
    model: nn.Module,
    players: PlayerSet,
    inputs: Inputs,
    targets: torch.Tensor,
    batch_size: int = 64,
) -> ShapleyResult:
    """Head-importance score of Michel et al. 2019 ("Are sixteen heads really better than
    one?"): ``I_h = sum over examples |dL(x)/d g_h|``, with a gate ``g_h = 1`` multiplying
    head h's output and L the example's cross-entropy for its target (a language model: the
    target token at the last real token). Values (n,).

    The same gate is put on every other unit of ``players`` (for an MLP neuron or a channel
    it is the first-order Taylor importance ``|a_i * dL/da_i|``, summed over positions).
    Gates are per example, so one backward pass gives every example's own gradient.
    """
    started = time.perf_counter()
    n = batch.n_rows(inputs)
    if n == 0 or n != len(targets):
        raise BaselineError(f"head_importance needs matching inputs and targets ({n} inputs, "
                            f"{len(targets)} targets)")
    targets = torch.as_tensor(targets).long()
    scores = {ly.name: torch.zeros(ly.n_units, dtype=torch.float64) for ly in players.layers}
    gates: dict[str, torch.Tensor] = {}

    def make_hook(layer: Layer) -> Callable[[torch.Tensor], torch.Tensor]:
        def hook(units: torch.Tensor) -> torch.Tensor:
            g = gates[layer.name]
            if units.shape[0] != g.shape[0]:
                raise BaselineError(f"layer {layer.name!r}: batch dimension must come first")
            shape = [g.shape[0]] + [1] * (units.ndim - 1)
            shape[_unit_axis(layer, units.ndim)] = layer.n_units
            return units * g.view(shape).to(units.dtype)
        return hook

    was_training = model.training
    model.eval()
    try:
        with _hooked(model, players, make_hook):
            for b0, part in _batches(inputs, n, batch_size):
                b = batch.n_rows(part)
                for layer in players.layers:
                    gates[layer.name] = torch.ones(b, layer.n_units, requires_grad=True)
                with torch.enable_grad():
                    logits = _scored_logits(batch.call(model, part), batch.token_mask(part))
                    y = targets[b0 : b0 + b].to(logits.device)
                    loss = torch.nn.functional.cross_entropy(logits.float(), y, reduction="sum")
                    grads = torch.autograd.grad(loss, [gates[ly.name] for ly in players.layers],
                                                allow_unused=True)
                for layer, grad in zip(players.layers, grads, strict=True):
                    if grad is not None:
                        scores[layer.name] += grad.detach().double().abs().sum(0).cpu()
    finally:
        model.train(was_training)
    values = np.concatenate([scores[ly.name].numpy() for ly in players.layers])
    return _result(values, _player_ids(players), "head_importance", None,
                   {"batch_size": batch_size}, started,
                   info={"examples": n, "loss": "cross-entropy of the target, summed"})


# ------------------------------------------------------------------------- one entry point
def rank_units(game: Any, method: str = "conductance", seed: int | None = 0,
               **options: Any) -> ShapleyResult:
    """Score every player of ``game`` with a baseline; same result type as ``estimate``.

    Args:
        game: a :class:`~neuronshapley.ModelGame` (``loo`` and ``random`` also take any game
            with ``n_players``).
        method: one of :data:`BASELINES`.
        seed: seed of ``random`` (ignored by the deterministic baselines).
        **options: ``conductance``: ``baseline`` (input baseline, 0.0), ``n_steps`` (50),
            ``method`` (captum's integration rule, "gausslegendre"), ``batch_size``;
            ``activation_norm`` and ``head_importance``: ``batch_size``.
    Returns:
        a :class:`ShapleyResult` with ``method`` set to the baseline's name.
    """
    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; choose one of {BASELINES}")
    allowed = {"conductance": {"baseline", "n_steps", "method", "batch_size"},
               "activation_norm": {"batch_size"},
               "head_importance": {"batch_size"}}.get(method, set())
    unknown = set(options) - allowed
    if unknown:
        raise TypeError(f"baseline {method!r} takes no option(s) {sorted(unknown)}")
    if method == "loo":
        return leave_one_out(game)
    if method == "random":
        ids = getattr(game, "players", None)
        n = int(getattr(game, "n_players", 0))
        return random_ranking(list(ids) if ids is not None else n, seed)
    for attr in ("model", "players_set", "inputs", "targets"):
        if not hasattr(game, attr):
            raise BaselineError(
                f"baseline {method!r} needs a ModelGame (model, players, inputs); "
                f"{type(game).__name__} has no {attr!r}"
            )
    if method == "weight_norm":
        return weight_norm(game.model, game.players_set)
    if method == "activation_norm":
        return activation_norm(game.model, game.players_set, game.inputs, **options)
    if method == "head_importance":
        return head_importance(game.model, game.players_set, game.inputs, game.targets,
                               **options)
    opts = dict(options)
    integration = opts.pop("method", "gausslegendre")
    with torch.enable_grad():
        return conductance(game.model, game.players_set, game.inputs, game.targets,
                           method=integration, **opts)


__all__ = [
    "BASELINES",
    "PAPER_BASELINES",
    "BaselineError",
    "activation_norm",
    "conductance",
    "head_importance",
    "layer_conductance",
    "leave_one_out",
    "random_ranking",
    "rank_units",
    "weight_norm",
]
