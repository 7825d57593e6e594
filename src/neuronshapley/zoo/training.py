"""What every model of the zoo is trained with: one data container, one training loop.

- :class:`TrainTestData`: a train and a test split, ``x_*`` (N, ...) float32, ``y_*`` (N,)
  int64 labels, and where the data came from.
- :func:`fit_classifier`: Adam on cross-entropy over shuffled minibatches, deterministic for
  a given seed, model initialisation and thread count.
- :func:`accuracy`: top-1 accuracy in evaluation mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["TrainTestData", "accuracy", "fit_classifier"]


@dataclass(frozen=True)
class TrainTestData:
    """Train and test split: ``x_*`` float32 (N, ...), ``y_*`` int64 (N,) labels 0..C-1.

    ``source`` says where the data came from (e.g. ``"sklearn load_digits"``).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    source: str = ""

    @property
    def num_classes(self) -> int:
        """Number of classes: the largest label of either split plus one."""
        return int(max(int(self.y_train.max()), int(self.y_test.max()))) + 1


def fit_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int = 20,
    lr: float = 3e-3,
    batch_size: int = 32,
    seed: int = 0,
    weight_decay: float = 0.0,
    channels_last: bool | None = None,
    seed_global: bool = True,
) -> nn.Module:
    """Train ``model`` on ``x`` (N, ...) and labels ``y`` (N,); returns it in eval mode.

    Adam (``lr``, ``weight_decay``) on cross-entropy; each epoch visits the examples in a
    fresh permutation from a generator seeded with ``seed``, in minibatches of
    ``batch_size``. ``seed_global`` also seeds torch's global generator with ``seed`` before
    training (what dropout draws from); the model's initialisation is the caller's: seed it
    before building the model. With
    ``channels_last`` (default: for 4-D inputs) the model trains in the channels-last memory
    format (about 4x faster convolutions on CPU) and is returned in the default one.
    """
    if seed_global:
        torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    channels_last = x.ndim == 4 if channels_last is None else channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch_size):
            b = perm[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[b]), y[b]).backward()
            opt.step()
    if channels_last:
        model = model.to(memory_format=torch.contiguous_format)
    return model.eval()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` on ``x`` (N, ...) with labels ``y`` (N,), in eval mode
    (the model's mode is restored after)."""
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / max(len(y), 1)
