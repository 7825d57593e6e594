"""Performance metrics: pure functions of the network's outputs under many masks.

A metric takes ``outputs`` of shape (M, B, C) (M masks, B examples, C logits), the
``targets`` (B,) (integer class labels) and optional per-example ``extra`` data, and returns a
tensor (M,) or, for a vector of metrics computed from the same forward passes, (M, d). A
metric may carry an ``output_names(d)`` attribute naming the d outputs. Larger is better for
every metric here (losses are negated), so a unit's Shapley value is positive when it helps.

Metrics by name (:data:`METRICS`):

========================  =======  ==========================================================
name                      shape    what
========================  =======  ==========================================================
``accuracy``              (M,)     top-1 accuracy
``balanced_accuracy``     (M,)     mean recall over the classes present in ``targets``
``class_recall``          (M, C)   recall of every class (names ``class<c>``)
``log_prob``              (M,)     mean log-probability of the true class (headroom when
                                   accuracy saturates)
``neg_cross_entropy``     (M,)     minus the mean cross-entropy (equal to ``log_prob``)
``group_accuracy``        (M, G)   accuracy within each group (names ``group<g>``)
``worst_group_accuracy``  (M,)     the lowest group accuracy
``group_gap``             (M,)     ``min - max`` group accuracy: minus the gap, <= 0, so that
                                   larger is better (0: every group equally accurate)
``next_token_log_prob``   (M,)     mean log-probability of the target token at one position
                                   per example (language models: outputs (M, B, L, V))
``next_token_accuracy``   (M,)     how often the target token is the top prediction there
========================  =======  ==========================================================

Sequence classifiers (outputs (M, B, C)) use the classification metrics as they are. The
next-token metrics take outputs (M, B, L, V) (a language model's logits), ``targets`` (B,)
the target token id of each example, and read the position from ``extra``: a dict with
``"positions"`` (B,) (the position whose prediction is scored), else with
``"attention_mask"`` (B, L) (the last real token; :class:`~neuronshapley.ModelGame` passes it
for inputs with an attention mask), else the last position.

Group metrics read per-example group ids from ``extra``: an integer tensor / array (B,), or a
dict ``{"groups": ids, "n_groups": G, "group_names": [...]}`` (``n_groups`` and
``group_names`` optional; without ``n_groups``, G is ``max(ids) + 1``). Pass tensors or
arrays, not lists, so that a game's ``walk_sample`` can subset them. A group with no example
in the evaluated data is an error (its accuracy is undefined).

:func:`as_metric` wraps any user callable with the same shape checks and error messages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from neuronshapley.errors import MetricError


class Metric(Protocol):
    def __call__(
        self, outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None
    ) -> torch.Tensor: ...


def _check(outputs: torch.Tensor, targets: torch.Tensor) -> None:
    if not isinstance(outputs, torch.Tensor) or outputs.ndim != 3:
        shape = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs)
        raise MetricError(f"metric expects outputs of shape (M, B, C), got {shape}")
    if targets.ndim != 1:
        raise MetricError(f"metric expects targets of shape (B,), got {tuple(targets.shape)}")
    if targets.shape[0] != outputs.shape[1]:
        raise MetricError(f"{targets.shape[0]} targets for {outputs.shape[1]} examples")


def _check_labels(outputs: torch.Tensor, targets: torch.Tensor) -> None:
    if targets.is_floating_point() or targets.dtype == torch.bool:
        raise MetricError(f"targets must be integer class labels, got dtype {targets.dtype}")
    n_classes = outputs.shape[-1]
    if len(targets) and (int(targets.min()) < 0 or int(targets.max()) >= n_classes):
        raise MetricError(
            f"targets must be class indices in 0..{n_classes - 1} (the outputs have "
            f"{n_classes} columns), got values in {int(targets.min())}..{int(targets.max())}"
        )


def accuracy(outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None) -> torch.Tensor:
    """Top-1 accuracy per mask, (M,)."""
    _check(outputs, targets)
    return (outputs.argmax(-1) == targets).double().mean(-1)


def log_prob(outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None) -> torch.Tensor:
    """Mean log-probability of the true class per mask, (M,); has headroom when accuracy
    saturates."""
    _check(outputs, targets)
    _check_labels(outputs, targets)
    lp = torch.log_softmax(outputs.double(), dim=-1)
    idx = targets.long().view(1, -1, 1).expand(outputs.shape[0], -1, 1)
    return lp.gather(-1, idx).squeeze(-1).mean(-1)


def neg_cross_entropy(
    outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None
) -> torch.Tensor:
    """Minus the mean cross-entropy per mask, (M,) (larger is better, like every metric here)."""
    return log_prob(outputs, targets, extra)


def _recalls(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class recall (M, C) (NaN where a class has no example) and counts (C,)."""
    _check_labels(outputs, targets)
    n_classes = outputs.shape[-1]
    correct = (outputs.argmax(-1) == targets).double()  # (M, B)
    onehot = torch.nn.functional.one_hot(targets.long(), n_classes).double()  # (B, C)
    counts = onehot.sum(0)
    return (correct @ onehot) / counts, counts


def class_recall(outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None) -> torch.Tensor:
    """Recall of every class per mask, (M, C): one run gives class-specific values for all classes.

    A class with no example gets NaN, which the game reports as an error.
    """
    _check(outputs, targets)
    return _recalls(outputs, targets)[0]


class_recall.output_names = lambda d: [f"class{c}" for c in range(d)]  # type: ignore[attr-defined]


def balanced_accuracy(
    outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None
) -> torch.Tensor:
    """Mean recall over the classes that have examples in ``targets``, (M,)."""
    _check(outputs, targets)
    recall, counts = _recalls(outputs, targets)
    present = counts > 0
    if not bool(present.any()):
        raise MetricError("balanced_accuracy needs at least one example")
    return recall[:, present].mean(-1)


def group_ids(extra: Any, n_examples: int) -> tuple[torch.Tensor, int]:
    """Per-example group ids (B,) int64 and the number of groups G from a metric's ``extra``."""
    n_groups: int | None = None
    ids = extra
    if isinstance(extra, dict):
        if "groups" not in extra:
            raise MetricError(
                "group metrics need extra['groups']: per-example group ids; got keys "
                f"{sorted(map(str, extra))}"
            )
        ids = extra["groups"]
        if extra.get("n_groups") is not None:
            n_groups = int(extra["n_groups"])
        elif extra.get("group_names") is not None:
            n_groups = len(extra["group_names"])
    if ids is None:
        raise MetricError(
            "group metrics need per-example group ids: pass extra=<int tensor (B,)> "
            "(or extra={'groups': ids}) to the game"
        )
    t = torch.as_tensor(np.asarray(ids) if not isinstance(ids, torch.Tensor) else ids)
    if t.ndim != 1 or t.shape[0] != n_examples:
        raise MetricError(
            f"group ids must have shape ({n_examples},) (one per example), got {tuple(t.shape)}"
        )
    if t.is_floating_point() or t.dtype == torch.bool:
        if t.is_floating_point() and bool((t == t.round()).all()):
            t = t.long()
        else:
            raise MetricError(f"group ids must be integers, got dtype {t.dtype}")
    t = t.long()
    if n_examples and int(t.min()) < 0:
        raise MetricError("group ids must be non-negative integers")
    top = int(t.max()) + 1 if n_examples else 0
    if n_groups is None:
        n_groups = top
    elif top > n_groups:
        raise MetricError(f"group id {top - 1} is out of range for n_groups={n_groups}")
    if n_groups < 1:
        raise MetricError("group metrics need at least one group")
    return t, n_groups


def group_accuracy(outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None) -> torch.Tensor:
    """Accuracy within each group, (M, G); ``extra`` holds the group ids (see module doc)."""
    _check(outputs, targets)
    ids, n_groups = group_ids(extra, outputs.shape[1])
    ids = ids.to(outputs.device)
    correct = (outputs.argmax(-1) == targets).double()  # (M, B)
    onehot = torch.nn.functional.one_hot(ids, n_groups).double()  # (B, G)
    counts = onehot.sum(0)
    if bool((counts == 0).any()):
        empty = [int(g) for g in torch.nonzero(counts == 0).flatten()]
        raise MetricError(
            f"group(s) {empty} have no example in the evaluated data: their accuracy is "
            "undefined (with walk_sample, draw larger batches)"
        )
    return (correct @ onehot) / counts


def _group_names(d: int) -> list[str]:
    return [f"group{g}" for g in range(d)]


group_accuracy.output_names = _group_names  # type: ignore[attr-defined]


def worst_group_accuracy(
    outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None
) -> torch.Tensor:
    """The lowest accuracy over groups, (M,)."""
    return group_accuracy(outputs, targets, extra).min(-1).values


def group_gap(outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None) -> torch.Tensor:
    """Minus the accuracy gap between the best and the worst group, ``min - max``, (M,).

    Negated so that larger is better like every other metric: 0 means all groups are
    equally accurate, and a unit with a positive Shapley value narrows the gap.
    """
    acc = group_accuracy(outputs, targets, extra)
    return acc.min(-1).values - acc.max(-1).values


def token_positions(extra: Any, n_examples: int, length: int) -> torch.Tensor:
    """Position (B,) whose prediction each example's target is scored at (see module doc)."""
    positions = extra.get("positions") if isinstance(extra, dict) else None
    if positions is not None:
        pos = torch.as_tensor(np.asarray(positions) if not isinstance(positions, torch.Tensor)
                              else positions).long().reshape(-1)
    elif isinstance(extra, dict) and extra.get("attention_mask") is not None:
        mask = torch.as_tensor(extra["attention_mask"])
        if mask.shape != (n_examples, length):
            raise MetricError(
                f"attention_mask has shape {tuple(mask.shape)}; expected ({n_examples}, "
                f"{length})"
            )
        order = torch.arange(length, device=mask.device).expand(n_examples, -1)
        pos = torch.where(mask.bool(), order, -1).amax(-1)
        if bool((pos < 0).any()):
            raise MetricError("an example has no real token (its attention_mask is all 0)")
    else:
        pos = torch.full((n_examples,), length - 1, dtype=torch.long)
    if pos.shape != (n_examples,) or bool(((pos < 0) | (pos >= length)).any()):
        raise MetricError(
            f"positions must be {n_examples} indices in 0..{length - 1}, got {pos.tolist()}"
        )
    return pos


def _token_logits(outputs: torch.Tensor, targets: torch.Tensor, extra: Any) -> torch.Tensor:
    """(M, B, V) logits at each example's scored position, targets checked."""
    if not isinstance(outputs, torch.Tensor) or outputs.ndim != 4:
        shape = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs)
        raise MetricError(
            f"next-token metrics expect outputs of shape (M, B, L, V) (a language model's "
            f"logits), got {shape}"
        )
    m, b, length, vocab = outputs.shape
    if targets.ndim != 1 or targets.shape[0] != b:
        raise MetricError(f"next-token metrics expect targets of shape ({b},): one token id "
                          f"per example, got {tuple(targets.shape)}")
    pos = token_positions(extra, b, length).to(outputs.device)
    picked = outputs[:, torch.arange(b, device=outputs.device), pos]  # (M, B, V)
    _check_labels(picked, targets)
    return picked


def next_token_log_prob(
    outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None
) -> torch.Tensor:
    """Mean log-probability of each example's target token at its position, (M,)."""
    return log_prob(_token_logits(outputs, targets, extra), targets)


def next_token_accuracy(
    outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None
) -> torch.Tensor:
    """Share of examples whose target token is the top prediction at its position, (M,)."""
    return accuracy(_token_logits(outputs, targets, extra), targets)


METRICS: dict[str, Callable[..., torch.Tensor]] = {
    "accuracy": accuracy,
    "balanced_accuracy": balanced_accuracy,
    "log_prob": log_prob,
    "neg_cross_entropy": neg_cross_entropy,
    "class_recall": class_recall,
    "group_accuracy": group_accuracy,
    "worst_group_accuracy": worst_group_accuracy,
    "group_gap": group_gap,
    "next_token_log_prob": next_token_log_prob,
    "next_token_accuracy": next_token_accuracy,
}

#: Metrics whose value for a classifier that ignores its input is ``1 / C`` (balanced data).
_RATE_METRICS = {"accuracy", "balanced_accuracy", "class_recall", "group_accuracy",
                 "worst_group_accuracy", "next_token_accuracy"}


def chance_level(metric: str, n_classes: int) -> float | None:
    """The metric's value for uniform guessing among ``n_classes``, or None if not defined.

    Accuracy-like metrics: ``1 / C``; ``log_prob`` / ``neg_cross_entropy``: ``-log C``;
    ``group_gap``: 0 (a constant classifier has no gap)."""
    if n_classes < 1:
        raise ValueError(f"n_classes must be positive, got {n_classes}")
    if metric in _RATE_METRICS:
        return 1.0 / n_classes
    if metric in ("log_prob", "neg_cross_entropy", "next_token_log_prob"):
        return -math.log(n_classes)
    if metric == "group_gap":
        return 0.0
    return None


def get_metric(metric: str | Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """A metric by name, or the callable itself."""
    if callable(metric):
        return metric
    if metric not in METRICS:
        raise ValueError(
            f"unknown metric {metric!r}; choose one of {sorted(METRICS)} or pass a callable"
        )
    return METRICS[metric]


def as_metric(
    fn: Callable[..., Any],
    name: str | None = None,
    output_names: Sequence[str] | Callable[[int], Sequence[str]] | None = None,
) -> Callable[..., torch.Tensor]:
    """Wrap a user callable ``fn(outputs, targets, extra)`` as a validated metric.

    The wrapper checks that ``outputs`` is (M, B, C) and ``targets`` (B,), calls ``fn``,
    turns its result (tensor, array or list) into a float64 tensor and checks that it is
    (M,) or (M, d) and finite, raising :class:`MetricError` with ``name`` in the message
    otherwise. ``output_names`` (a list, or a function of d) names a vector metric's
    outputs; by default ``fn.output_names`` is kept.
    """
    if not callable(fn):
        raise TypeError(f"metric must be callable, got {type(fn).__name__}")
    label = name or getattr(fn, "__name__", type(fn).__name__)

    def metric(outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None) -> torch.Tensor:
        _check(outputs, targets)
        raw = fn(outputs, targets, extra)
        try:
            vals = torch.as_tensor(
                raw.detach() if isinstance(raw, torch.Tensor) else np.asarray(raw)
            ).double()
        except (TypeError, ValueError) as exc:
            raise MetricError(f"metric {label!r} returned {type(raw).__name__}: {exc}") from None
        m = outputs.shape[0]
        if vals.ndim not in (1, 2) or vals.shape[0] != m:
            raise MetricError(
                f"metric {label!r} returned shape {tuple(vals.shape)}; expected ({m},) or "
                f"({m}, d): one value (or one row) per mask"
            )
        if not bool(torch.isfinite(vals).all()):
            raise MetricError(f"metric {label!r} returned NaN or infinite values")
        return vals

    metric.__name__ = label
    metric.__doc__ = getattr(fn, "__doc__", None)
    names = output_names if output_names is not None else getattr(fn, "output_names", None)
    if names is not None:
        if callable(names):
            metric.output_names = names  # type: ignore[attr-defined]
        else:
            fixed = [str(s) for s in names]

            def _names(d: int) -> list[str]:
                if d != len(fixed):
                    raise MetricError(
                        f"metric {label!r} has {d} outputs but {len(fixed)} output names"
                    )
                return fixed

            metric.output_names = _names  # type: ignore[attr-defined]
    return metric


def with_output_names(
    metric: str | Callable[..., torch.Tensor], names: Sequence[str]
) -> Callable[..., torch.Tensor]:
    """A vector metric (by name or callable) whose d outputs are called ``names``
    (e.g. ``with_output_names("group_accuracy", ["female", "male"])``)."""
    fn = get_metric(metric)
    return as_metric(fn, name=getattr(fn, "__name__", None), output_names=names)


__all__ = [
    "METRICS",
    "Metric",
    "MetricError",
    "accuracy",
    "as_metric",
    "balanced_accuracy",
    "chance_level",
    "class_recall",
    "get_metric",
    "group_accuracy",
    "group_gap",
    "group_ids",
    "log_prob",
    "neg_cross_entropy",
    "next_token_accuracy",
    "next_token_log_prob",
    "token_positions",
    "with_output_names",
    "worst_group_accuracy",
]
