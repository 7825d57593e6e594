"""Batches of model inputs: one tensor, or a mapping of tensors that share the batch axis.

A Hugging Face model takes ``model(input_ids=..., attention_mask=..., token_type_ids=...)``;
any other model ``model(x)``. :data:`Inputs` is either form; the helpers here slice, expand,
move and call them alike, so the ablation engine and the game need not tell them apart.
A model's output may be a tensor, a tuple / list (its first element is used) or an object
with ``.logits`` (a ``transformers`` ``ModelOutput``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Union

import torch
from torch import nn

from neuronshapley.errors import GameError

#: A tensor (N, ...) or a mapping name -> tensor (N, ...) with one batch axis N.
Inputs = Union[torch.Tensor, Mapping[str, torch.Tensor]]  # noqa: UP007 - a runtime alias

#: Name of the mapping entry that marks real tokens (1) and padding (0), shape (N, L).
ATTENTION_MASK = "attention_mask"


def as_inputs(inputs: Any) -> Inputs:
    """``inputs`` as a tensor or a dict of tensors sharing their first axis (checked)."""
    if isinstance(inputs, Mapping):
        if not inputs:
            raise GameError("the input mapping is empty: pass at least one tensor (input_ids)")
        out = {str(k): torch.as_tensor(v) for k, v in inputs.items()}
        sizes = {k: (int(v.shape[0]) if v.ndim else None) for k, v in out.items()}
        if len(set(sizes.values())) != 1 or None in sizes.values():
            raise GameError(
                f"the input tensors must share their first (batch) axis, got sizes {sizes}"
            )
        return out
    return torch.as_tensor(inputs)


def n_rows(inputs: Inputs) -> int:
    """Number of examples N."""
    if isinstance(inputs, Mapping):
        return int(next(iter(inputs.values())).shape[0])
    return int(inputs.shape[0])


def take(inputs: Inputs, index: slice | torch.Tensor) -> Inputs:
    """Rows ``index`` (a slice or an index tensor) of every tensor."""
    if isinstance(inputs, Mapping):
        return {k: v[_on(index, v)] for k, v in inputs.items()}
    return inputs[_on(index, inputs)]


def _on(index: slice | torch.Tensor, like: torch.Tensor) -> slice | torch.Tensor:
    return index.to(like.device) if isinstance(index, torch.Tensor) else index


def to_device(inputs: Inputs, device: torch.device) -> Inputs:
    if isinstance(inputs, Mapping):
        return {k: v.to(device) for k, v in inputs.items()}
    return inputs.to(device)


def tensors(inputs: Inputs) -> list[torch.Tensor]:
    """The tensors of ``inputs`` in a fixed order (for hashing)."""
    if isinstance(inputs, Mapping):
        return [inputs[k] for k in sorted(inputs)]
    return [inputs]


def token_mask(inputs: Inputs) -> torch.Tensor | None:
    """The attention mask (N, L) as float (1 real token, 0 padding), or None."""
    if isinstance(inputs, Mapping) and ATTENTION_MASK in inputs:
        mask = inputs[ATTENTION_MASK]
        if mask.ndim == 2:
            return mask.to(torch.float64)
    return None


def expand(inputs: Inputs, m: int) -> Inputs:
    """(B, ...) -> (M*B, ...): the batch repeated ``m`` times, copy after copy."""
    if isinstance(inputs, Mapping):
        return {k: _repeat(v, m) for k, v in inputs.items()}
    return _repeat(inputs, m)


def _repeat(t: torch.Tensor, m: int) -> torch.Tensor:
    rep = t.unsqueeze(0).expand(m, *t.shape).reshape(m * t.shape[0], *t.shape[1:])
    if t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last):
        rep = rep.contiguous(memory_format=torch.channels_last)
    return rep


def call(model: nn.Module, inputs: Inputs) -> Any:
    """``model(inputs)`` or ``model(**inputs)``; a mapping also gets ``use_cache=False`` when
    the model's forward takes it (no key/value cache is kept during evaluation)."""
    if isinstance(inputs, Mapping):
        kwargs = dict(inputs)
        if "use_cache" not in kwargs and takes(model, "use_cache"):
            kwargs["use_cache"] = False
        return model(**kwargs)
    return model(inputs)


def takes(model: nn.Module, name: str) -> bool:
    """Whether ``model.forward`` has a parameter ``name``."""
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def model_output(out: Any) -> torch.Tensor:
    """The tensor of a model's output: itself, ``out.logits``, or the first element of a
    tuple / list."""
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(out, Mapping) and isinstance(out.get("logits"), torch.Tensor):
        return out["logits"]
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise GameError(
        f"the model returned {type(out).__name__}; expected a tensor, a tuple whose first "
        "element is a tensor, or an object with .logits"
    )
