"""Small networks of the shapes people bring, with local data, for testing ``run`` end to end.

Each class is a factory for ``neuronshapley run --model
neuronshapley.zoo.architectures:<Class>``; each trains in about a second on one CPU thread.

==================  ==========================================  ============================
class               shape                                       data (:func:`make_data`)
==================  ==========================================  ============================
``ResidualCNN``     stem conv, 2 residual blocks (conv-BN-ReLU,  ``digits``: 8x8 images
                    identity skip), pool, linear
``InceptionCNN``    stem, a block of 4 branches (1x1, 3x3,       ``digits``
                    5x5, pool-1x1) concatenated, conv, linear
``Conv1dNet``       three Conv1d, pool, linear                   ``mnist1d``: 40-sample
                                                                 1-D signals, 10 classes
``TabularMLP``      Linear-ReLU-Dropout x2, linear               ``wine``: 13 features,
                                                                 3 classes
``TinyTransformer`` linear embedding + positions, a              ``digit_rows``: an 8x8
                    ``nn.TransformerEncoder`` (batch_first),     digit as 8 tokens of 8
                    mean pool, linear                            features
==================  ==========================================  ============================

``mnist1d`` comes from the ``mnist1d`` package's ``make_dataset`` with its default
arguments (generated locally; its download loader is never used). Without the package a
synthetic stand-in of the same shape is generated (bumps at class-specific positions) and
:attr:`Data.source` says so.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neuronshapley.zoo.tabular import TabularMLP as _TabularMLP
from neuronshapley.zoo.training import TrainTestData, fit_classifier

__all__ = [
    "ARCHITECTURES",
    "Conv1dNet",
    "Data",
    "InceptionCNN",
    "ResidualCNN",
    "TabularMLP",
    "TinyTransformer",
    "fit",
    "make_data",
]


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the identity, then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(h)))


class ResidualCNN(nn.Module):
    """Stem conv, two residual blocks, global average pool, linear. Input (N, C, H, W)."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1)
        self.block1 = ResidualBlock(width)
        self.block2 = ResidualBlock(width)
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block2(self.block1(F.relu(self.stem(x))))
        return self.head(h.mean(dim=(2, 3)))


class InceptionBlock(nn.Module):
    """Four branches on the same input, concatenated on channels."""

    def __init__(self, in_channels: int, branch: int) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(in_channels, branch, 1)
        self.b3 = nn.Sequential(nn.Conv2d(in_channels, branch, 1), nn.ReLU(),
                                nn.Conv2d(branch, branch, 3, padding=1))
        self.b5 = nn.Sequential(nn.Conv2d(in_channels, branch, 1), nn.ReLU(),
                                nn.Conv2d(branch, branch, 5, padding=2))
        self.pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                  nn.Conv2d(in_channels, branch, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], dim=1))


class InceptionCNN(nn.Module):
    """Stem, one Inception-style block (branches merged by concatenation), conv, linear."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, branch: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.mixed = InceptionBlock(8, branch)
        self.reduce = nn.Conv2d(4 * branch, 12, 3, stride=2, padding=1)
        self.head = nn.Linear(12, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.reduce(self.mixed(F.relu(self.stem(x)))))
        return self.head(h.amax(dim=(2, 3)))


class Conv1dNet(nn.Module):
    """Three Conv1d layers (stride 2), global average pool, linear. Input (N, C, L)."""

    def __init__(self, in_channels: int = 1, n_classes: int = 10, width: int = 12) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(in_channels, width, 5, padding=2), nn.ReLU(),
            nn.Conv1d(width, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv1d(width, width, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 2:
            x = x[:, None]
        return self.classifier(self.features(x).mean(dim=2))


class TabularMLP(_TabularMLP):
    """:class:`neuronshapley.zoo.tabular.TabularMLP` shaped for ``wine``: Linear-ReLU-Dropout
    twice, then the logit layer. Input (N, n_features); players ``net.0``, ``net.3``."""

    def __init__(self, n_features: int = 13, n_classes: int = 3,
                 hidden: tuple[int, int] = (16, 12), dropout: float = 0.1) -> None:
        super().__init__(n_features, hidden, n_classes, dropout)


class TinyTransformer(nn.Module):
    """Token embedding + learned positions, ``nn.TransformerEncoder`` (batch_first), mean
    pool, linear. Input (N, L, n_features); players: attention heads and MLP neurons."""

    def __init__(self, n_features: int = 8, seq_len: int = 8, n_classes: int = 10,
                 d_model: int = 16, heads: int = 4, layers: int = 2, mlp: int = 24) -> None:
        super().__init__()
        self.embed = nn.Linear(n_features, d_model)
        self.pos = nn.Parameter(torch.zeros(1, seq_len, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, mlp, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(x) + self.pos[:, : x.shape[1]])
        return self.head(h.mean(dim=1))


# --------------------------------------------------------------------------------- data
#: Train and test split of one data set; ``source`` says where it came from.
Data = TrainTestData


def _split(x: np.ndarray, y: np.ndarray, seed: int, test: float, source: str) -> Data:
    idx = np.random.default_rng(seed).permutation(len(y))
    cut = int(len(y) * (1 - test))
    tr, te = idx[:cut], idx[cut:]
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    return Data(xt[tr], yt[tr], xt[te], yt[te], source)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target


def _mnist1d(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        return (*_synthetic_1d(n, seed), "synthetic 1-D signals (mnist1d not installed)")
    args = get_dataset_args()
    args.num_samples = n
    args.seed = seed
    state = np.random.get_state()  # make_dataset seeds numpy's global generator
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(state)
    x = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)
    y = np.concatenate([d["y"], d["y_test"]])
    return x[:, None, :], y, "mnist1d.make_dataset (default args, generated locally)"


def _synthetic_1d(n: int, seed: int, length: int = 40) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    t = np.arange(length)
    centre = 3 + 3.4 * y + rng.normal(0, 0.7, n)
    x = np.exp(-0.5 * ((t[None] - centre[:, None]) / 1.5) ** 2)
    x += 0.5 * np.sin(t[None] / (2 + y[:, None] * 0.4)) + rng.normal(0, 0.1, (n, length))
    return x[:, None, :].astype(np.float32), y


def make_data(name: str, n: int | None = None, seed: int = 0, test: float = 0.3) -> Data:
    """Local data: ``"digits"`` (N, 1, 8, 8), ``"digit_rows"`` (N, 8, 8), ``"mnist1d"``
    (N, 1, 40), ``"wine"`` (N, 13) standardised. ``n`` caps the number of examples."""
    if name in ("digits", "digit_rows"):
        x, y = _digits()
        x = x[:, None] if name == "digits" else x
        source = "sklearn load_digits"
    elif name == "mnist1d":
        x, y, source = _mnist1d(n or 2000, seed)
    elif name == "wine":
        from sklearn.datasets import load_wine

        w = load_wine()
        x = ((w.data - w.data.mean(0)) / w.data.std(0)).astype(np.float32)
        y, source = w.target, "sklearn load_wine"
    else:
        raise ValueError(f"unknown data {name!r}; choose digits, digit_rows, mnist1d or wine")
    if n is not None and len(y) > n:
        keep = np.random.default_rng(seed + 1).choice(len(y), n, replace=False)
        x, y = x[keep], y[keep]
    return _split(x, y, seed, test, source)


def fit(model: nn.Module, data: Data, epochs: int = 30, lr: float = 3e-3,
        batch_size: int = 64, seed: int = 0) -> float:
    """Train ``model`` with Adam on ``data``'s training split; returns test accuracy.

    :func:`~neuronshapley.zoo.training.fit_classifier`; torch's global generator (dropout)
    is left as the caller seeded it. Leaves the model in eval mode.
    """
    fit_classifier(model, data.x_train, data.y_train, epochs=epochs, lr=lr,
                   batch_size=batch_size, seed=seed, channels_last=False, seed_global=False)
    with torch.no_grad():
        return float((model(data.x_test).argmax(1) == data.y_test).float().mean())


#: name -> (factory, data set name, epochs) for the tests and examples.
ARCHITECTURES: dict[str, tuple[Callable[[], nn.Module], str, int]] = {
    "residual": (ResidualCNN, "digits", 15),
    "inception": (InceptionCNN, "digits", 20),
    "conv1d": (Conv1dNet, "mnist1d", 40),
    "mlp": (TabularMLP, "wine", 40),
    "transformer": (TinyTransformer, "digit_rows", 10),
}
