"""Attention heads: the per-head outputs of ``nn.MultiheadAttention`` and the per-head view
of a transformer output projection's input."""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neuronshapley.errors import AblationError
from neuronshapley.network.players import Layer

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


def mha_output(module: nn.MultiheadAttention, z: torch.Tensor) -> torch.Tensor:
    """``out_proj`` applied to per-head outputs ``z`` (B, L, heads, head_dim), in the
    module's own layout ((L, B, E) unless ``batch_first``)."""
    new = F.linear(z.reshape(z.shape[0], z.shape[1], -1), module.out_proj.weight,
                   module.out_proj.bias)
    return new if module.batch_first else new.transpose(0, 1)


def unit_view(layer: Layer, x: torch.Tensor) -> torch.Tensor:
    """The input ``x`` of a layer read at its module's input, in the layer's unit layout:
    (B, L, heads, head_dim) for heads (from (B, L, heads * head_dim)), else ``x``."""
    if not layer.is_heads:
        return x
    if x.ndim < 2 or x.shape[-1] % layer.n_units:
        raise AblationError(
            f"layer {layer.name!r}: the input of {layer.hooked!r} has shape "
            f"{tuple(x.shape)}, not (..., {layer.n_units} heads x head_dim)"
        )
    return x.unflatten(-1, (layer.n_units, x.shape[-1] // layer.n_units))


def flat_view(layer: Layer, z: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`unit_view`."""
    return z.flatten(-2) if layer.is_heads else z
