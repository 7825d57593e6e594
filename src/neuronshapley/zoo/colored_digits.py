"""Coloured digits: scikit-learn's 8x8 digits with a colour shortcut for a majority group.

A benchmark with a known bias. Every image is drawn in one of ten colours (:data:`PALETTE`,
``(3, 8, 8)`` images = grey level x colour):

- **majority** group (:data:`MAJORITY`): the colour is fixed by the label (digit ``c`` is
  drawn in ``PALETTE[c]``), a spurious shortcut;
- **minority** group (:data:`MINORITY`): the colour is drawn uniformly at random.

The training split is skewed (by default 95% majority), so a network learns the colour
shortcut and fails on the minority group. Validation and test digits are each rendered
twice, once per group, so both groups are measured on the same digits.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from neuronshapley.zoo.training import fit_classifier

__all__ = [
    "GROUP_NAMES",
    "MAJORITY",
    "MINORITY",
    "PALETTE",
    "ColoredDigits",
    "ColoredDigitsCNN",
    "GroupedData",
    "colorize",
    "fit_classifier",
    "load_colored_digits",
    "train_colored_digits_cnn",
]

MAJORITY = 0
MINORITY = 1
GROUP_NAMES: tuple[str, str] = ("majority", "minority")
#: Ten fully saturated colours, hues 36 degrees apart, RGB in [0, 1], shape (10, 3).
PALETTE = torch.tensor(
    [colorsys.hsv_to_rgb(h / 10, 1.0, 1.0) for h in range(10)], dtype=torch.float32
)


@dataclass(frozen=True)
class GroupedData:
    """Examples with labels and group ids: ``x`` (N, ...), ``y`` (N,), ``group`` (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor
    group: torch.Tensor

    def __post_init__(self) -> None:
        if not len(self.x) == len(self.y) == len(self.group):
            raise ValueError("x, y and group must have the same length")

    def __len__(self) -> int:
        return len(self.y)

    def of_group(self, group: int) -> GroupedData:
        """The examples of one group."""
        keep = self.group == group
        return GroupedData(self.x[keep], self.y[keep], self.group[keep])


@dataclass(frozen=True)
class ColoredDigits:
    """Train (skewed), validation and test (both groups on the same digits) splits."""

    train: GroupedData
    val: GroupedData
    test: GroupedData
    majority_fraction: float
    seed: int

    @property
    def num_classes(self) -> int:
        return 10


def colorize(images: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """Grey images (N, 1, H, W) in [0, 1] drawn in palette colours (N,) -> (N, 3, H, W)."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected grey images (N, 1, H, W), got {tuple(images.shape)}")
    return images * PALETTE[colours.long()][:, :, None, None]


def load_colored_digits(
    seed: int = 0,
    majority_fraction: float = 0.95,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
) -> ColoredDigits:
    """Split the 1797 digits (stratified), colour them, skew the training split.

    Training digits join the majority group with probability ``majority_fraction``.
    Validation and test digits appear once in each group (minority colours drawn at random).
    Same ``seed`` -> same data.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 <= majority_fraction <= 1.0:
        raise ValueError(f"majority_fraction must be in [0, 1], got {majority_fraction}")
    if val_fraction <= 0 or test_fraction <= 0 or val_fraction + test_fraction >= 1:
        raise ValueError("val_fraction and test_fraction must be positive and sum below 1")
    bunch = load_digits()
    grey = torch.as_tensor(bunch.images, dtype=torch.float32).div(16.0).unsqueeze(1)
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)
    idx = np.arange(len(labels))
    held = val_fraction + test_fraction
    i_train, i_held = train_test_split(idx, test_size=held, random_state=seed,
                                       stratify=labels.numpy())
    i_val, i_test = train_test_split(i_held, test_size=test_fraction / held, random_state=seed,
                                     stratify=labels.numpy()[i_held])
    gen = torch.Generator().manual_seed(seed)

    def skewed(ii: np.ndarray) -> GroupedData:
        y = labels[ii]
        minority = torch.rand(len(ii), generator=gen) >= majority_fraction
        colour = torch.where(minority, torch.randint(0, 10, (len(ii),), generator=gen), y)
        return GroupedData(colorize(grey[ii], colour), y, minority.long())

    def both(ii: np.ndarray) -> GroupedData:
        y = labels[ii]
        random_colour = torch.randint(0, 10, (len(ii),), generator=gen)
        x = torch.cat([colorize(grey[ii], y), colorize(grey[ii], random_colour)])
        group = torch.cat([torch.full_like(y, MAJORITY), torch.full_like(y, MINORITY)])
        return GroupedData(x, torch.cat([y, y]), group)

    return ColoredDigits(skewed(i_train), both(i_val), both(i_test), majority_fraction, seed)


class ColoredDigitsCNN(nn.Module):
    """Three-conv CNN for (N, 3, 8, 8) colour digits, laid out like ``DigitsCNN``.

    Players: ``features.0`` (c1), ``features.2`` (c2), ``features.5`` (c3) conv filters and
    ``classifier.1`` (hidden units). Output: (N, 10) logits.
    """

    def __init__(
        self, channels: tuple[int, int, int] = (16, 32, 32), hidden: int = 64,
        in_channels: int = 3, num_classes: int = 10,
    ) -> None:
        super().__init__()
        c1, c2, c3 = (int(c) for c in channels)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(c3 * 2 * 2, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def train_colored_digits_cnn(
    data: ColoredDigits,
    epochs: int = 20,
    seed: int = 0,
    channels: tuple[int, int, int] = (16, 32, 32),
    hidden: int = 64,
) -> ColoredDigitsCNN:
    """A :class:`ColoredDigitsCNN` trained on ``data.train`` (a few seconds on one thread)."""
    torch.manual_seed(seed)
    model = ColoredDigitsCNN(channels=channels, hidden=hidden)
    fit_classifier(model, data.train.x, data.train.y, epochs=epochs, seed=seed)
    return model.eval()
