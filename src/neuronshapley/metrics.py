"""Performance metrics: pure functions of the network's outputs under many masks.

A metric takes ``outputs`` of shape (M, B, C) (M masks, B examples, C logits), the
``targets`` (B,) and optional per-example ``extra`` data, and returns a tensor (M,) or,
for a vector of metrics computed from the same forward passes, (M, d). A metric may carry
an ``output_names(d)`` attribute naming the d outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch


class Metric(Protocol):
    def __call__(
        self, outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None
    ) -> torch.Tensor: ...


def _check(outputs: torch.Tensor, targets: torch.Tensor) -> None:
    if outputs.ndim != 3:
        raise ValueError(f"metric expects outputs of shape (M, B, C), got {tuple(outputs.shape)}")
    if targets.shape[0] != outputs.shape[1]:
        raise ValueError(f"{targets.shape[0]} targets for {outputs.shape[1]} examples")


def accuracy(outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None) -> torch.Tensor:
    """Top-1 accuracy per mask, (M,)."""
    _check(outputs, targets)
    return (outputs.argmax(-1) == targets).double().mean(-1)


def log_prob(outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None) -> torch.Tensor:
    """Mean log-probability of the true class per mask, (M,); has headroom when accuracy
    saturates."""
    _check(outputs, targets)
    lp = torch.log_softmax(outputs.double(), dim=-1)
    idx = targets.view(1, -1, 1).expand(outputs.shape[0], -1, 1)
    return lp.gather(-1, idx).squeeze(-1).mean(-1)


def neg_cross_entropy(
    outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None
) -> torch.Tensor:
    """Minus the mean cross-entropy per mask, (M,) (larger is better, like every metric here)."""
    return log_prob(outputs, targets, extra)


def class_recall(outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None) -> torch.Tensor:
    """Recall of every class per mask, (M, C): one run gives class-specific values for all classes.

    A class with no example gets NaN, which the game reports as an error.
    """
    _check(outputs, targets)
    n_classes = outputs.shape[-1]
    correct = (outputs.argmax(-1) == targets).double()  # (M, B)
    onehot = torch.nn.functional.one_hot(targets, n_classes).double()  # (B, C)
    counts = onehot.sum(0)
    return (correct @ onehot) / counts


class_recall.output_names = lambda d: [f"class{c}" for c in range(d)]  # type: ignore[attr-defined]

METRICS: dict[str, Callable[..., torch.Tensor]] = {
    "accuracy": accuracy,
    "log_prob": log_prob,
    "neg_cross_entropy": neg_cross_entropy,
    "class_recall": class_recall,
}


def get_metric(metric: str | Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """A metric by name, or the callable itself."""
    if callable(metric):
        return metric
    if metric not in METRICS:
        raise ValueError(
            f"unknown metric {metric!r}; choose one of {sorted(METRICS)} or pass a callable"
        )
    return METRICS[metric]
