"""Memory layout and shape checks of the tensors the ablation hooks see."""

from __future__ import annotations

import torch

from neuronshapley.errors import AblationError
from neuronshapley.network.players import Layer


def permutation(t: torch.Tensor) -> tuple[int, ...] | None:
    """Dimension order in which ``t`` is contiguous, batch first (None: as it is)."""
    if t.is_contiguous():
        return None
    if t.ndim == 4 and t.is_contiguous(memory_format=torch.channels_last):
        return (0, 2, 3, 1)
    if t.ndim == 5 and t.is_contiguous(memory_format=torch.channels_last_3d):
        return (0, 2, 3, 4, 1)
    return None


def inverse(perm: tuple[int, ...]) -> list[int]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


def fresh(out: torch.Tensor, inputs: tuple, params: set[int]) -> bool:
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


def rows(t: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Groups ``lo:hi`` of a per-group tensor (a tensor of one group is shared)."""
    return t if t.shape[0] == 1 else t[lo:hi]


def check_output(layer: Layer, out: object) -> None:
    """``out`` is a tensor with ``layer.n_units`` units on its channel axis."""
    if not isinstance(out, torch.Tensor):
        raise AblationError(f"layer {layer.name!r} returned {type(out).__name__}, not a tensor")
    axis = layer.channel_axis if layer.channel_axis >= 0 else out.ndim + layer.channel_axis
    if out.ndim < 2 or out.shape[axis] != layer.n_units:
        raise AblationError(
            f"layer {layer.name!r} output has shape {tuple(out.shape)}; expected "
            f"{layer.n_units} units on axis {layer.channel_axis}"
        )
