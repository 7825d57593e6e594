"""Targeted L-infinity PGD and the game that finds the units an adversary exploits.

:func:`pgd_targeted` crafts adversarial examples (projected gradient descent on the
cross-entropy towards a target class, Madry et al. 2018). :func:`adversarial_game` values
units on a fixed batch holding clean examples and adversarial examples crafted once on the
full model, with :func:`adversarial_metric`::

    V(S) = attack success on the adversarial examples - accuracy on the clean examples

so the units with the largest values are those that carry the attack without carrying
clean accuracy: removing them repairs the model against that attack (Neuron Shapley, §4.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neuronshapley.network.game import ModelGame
from neuronshapley.network.players import PlayerSet

#: Names of the outputs of :func:`adversarial_metric`, in order.
ADVERSARIAL_OUTPUTS: tuple[str, str, str] = (
    "success_minus_clean", "attack_success", "clean_accuracy"
)

__all__ = [
    "ADVERSARIAL_OUTPUTS",
    "adversarial_game",
    "adversarial_metric",
    "attack_success",
    "paired_batch",
    "pgd_targeted",
    "random_targets",
]


def random_targets(
    labels: torch.Tensor, num_classes: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A target class per example, uniform over the classes other than its label, (N,)."""
    if num_classes < 2:
        raise ValueError("a targeted attack needs at least 2 classes")
    shift = torch.randint(1, num_classes, labels.shape, generator=generator)
    return (labels.cpu() + shift).remainder(num_classes).to(labels.device)


def pgd_targeted(
    model: nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor,
    eps: float,
    step_size: float,
    steps: int,
    random_start: bool = True,
    bounds: tuple[float, float] | None = (0.0, 1.0),
    generator: torch.Generator | None = None,
    batch_size: int = 1024,
) -> torch.Tensor:
    """Targeted L-infinity PGD: points within ``eps`` of ``inputs`` labelled ``target``.

    Each step moves ``step_size`` against the sign of the gradient of the cross-entropy to
    ``target``, then projects onto the ``eps`` ball and the input ``bounds``. With
    ``random_start`` the walk starts at a uniform point of the ball (drawn from ``generator``).

    Args:
        inputs: (N, ...) clean examples; target: (N,) target classes.
    Returns:
        adversarial examples, detached, shaped like ``inputs``.
    """
    if eps < 0 or step_size <= 0 or steps < 0:
        raise ValueError("need eps >= 0, step_size > 0 and steps >= 0")
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(inputs), batch_size):
            x = inputs[start : start + batch_size].detach()
            t = target[start : start + batch_size]
            x_adv = x.clone()
            if random_start:
                noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
                x_adv = x_adv + (2 * noise - 1) * eps
                x_adv = _clamp(x_adv, bounds)
            for _ in range(steps):
                x_adv.requires_grad_(True)
                with torch.enable_grad():
                    loss = F.cross_entropy(model(x_adv), t, reduction="sum")
                    (grad,) = torch.autograd.grad(loss, x_adv)
                x_adv = x_adv.detach() - step_size * grad.sign()
                x_adv = _clamp(torch.maximum(torch.minimum(x_adv, x + eps), x - eps), bounds)
            out.append(x_adv.detach())
    finally:
        model.train(was_training)
    return torch.cat(out) if out else inputs.detach().clone()


def _clamp(x: torch.Tensor, bounds: tuple[float, float] | None) -> torch.Tensor:
    return x if bounds is None else x.clamp(bounds[0], bounds[1])


@torch.no_grad()
def attack_success(
    model: nn.Module, x_adv: torch.Tensor, target: torch.Tensor, batch_size: int = 1024
) -> float:
    """Fraction of ``x_adv`` that ``model`` labels with its ``target`` class."""
    hits = 0
    for start in range(0, len(x_adv), batch_size):
        pred = model(x_adv[start : start + batch_size]).argmax(-1)
        hits += int((pred == target[start : start + batch_size]).sum())
    return hits / max(len(x_adv), 1)


def adversarial_metric(
    outputs: torch.Tensor, targets: torch.Tensor, extra: Any = None
) -> torch.Tensor:
    """``[success - clean accuracy, success, clean accuracy]`` per mask, (M, 3).

    ``extra`` is a dict with ``"adversarial"`` (bool (B,), True for an adversarial example)
    and ``"target"`` (int (B,), the attack's target class; ignored for clean examples).
    ``targets`` are the true labels. Success is the fraction of adversarial examples
    labelled with their target; clean accuracy is the accuracy on the clean examples.
    """
    if outputs.ndim != 3:
        raise ValueError(f"expected outputs (M, B, C), got {tuple(outputs.shape)}")
    if not isinstance(extra, dict) or "adversarial" not in extra or "target" not in extra:
        raise ValueError("extra must be a dict with 'adversarial' flags and 'target' classes")
    adv = torch.as_tensor(extra["adversarial"], device=outputs.device).bool()
    tgt = torch.as_tensor(extra["target"], device=outputs.device)
    if not bool(adv.any()) or bool(adv.all()):
        raise ValueError("the batch needs both clean and adversarial examples")
    pred = outputs.argmax(-1)  # (M, B)
    success = (pred[:, adv] == tgt[adv]).double().mean(-1)
    clean = (pred[:, ~adv] == targets.to(outputs.device)[~adv]).double().mean(-1)
    return torch.stack([success - clean, success, clean], dim=-1)


adversarial_metric.output_names = lambda d: list(ADVERSARIAL_OUTPUTS)[:d]  # type: ignore[attr-defined]


def paired_batch(
    x_clean: torch.Tensor,
    y: torch.Tensor,
    x_adv: torch.Tensor,
    target: torch.Tensor,
    y_adv: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """One batch of clean then adversarial examples: ``(inputs, labels, extra)``.

    ``y_adv`` are the true labels of the adversarial examples (default ``y``: they were
    crafted from ``x_clean``).
    """
    y_adv = y if y_adv is None else y_adv
    if len(x_clean) != len(y) or len(x_adv) != len(target) or len(x_adv) != len(y_adv):
        raise ValueError("clean inputs/labels and adversarial inputs/targets/labels must match")
    flags = torch.cat([torch.zeros(len(x_clean), dtype=torch.bool),
                       torch.ones(len(x_adv), dtype=torch.bool)]).to(y.device)
    return (
        torch.cat([x_clean, x_adv.to(x_clean.device)]),
        torch.cat([y, y_adv.to(y.device)]),
        {"adversarial": flags, "target": torch.cat([y, target.to(y.device)])},
    )


def adversarial_game(
    model: nn.Module,
    x_clean: torch.Tensor,
    y: torch.Tensor,
    x_adv: torch.Tensor,
    target: torch.Tensor,
    players: PlayerSet | Sequence[str] | str | None = None,
    reference: torch.Tensor | None = None,
    y_adv: torch.Tensor | None = None,
    **game_options: Any,
) -> ModelGame:
    """The game ``V(S) = success - clean accuracy`` on a fixed clean + adversarial batch.

    Outputs (see :data:`ADVERSARIAL_OUTPUTS`): output 0 is the paper's metric, outputs 1 and
    2 its parts, so one run also values every unit for success and for clean accuracy (and,
    by linearity, for any ``success - lambda * clean``). Removed units are replaced using
    ``reference`` inputs (default: the clean examples).
    """
    inputs, labels, extra = paired_batch(x_clean, y, x_adv, target, y_adv)
    return ModelGame(
        model, inputs, labels, metric=adversarial_metric, players=players,
        reference=x_clean if reference is None else reference, extra=extra, **game_options,
    )
