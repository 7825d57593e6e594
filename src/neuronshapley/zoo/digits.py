"""A small CNN on scikit-learn's bundled ``load_digits`` (8x8 grayscale, 10 classes).

Used by the demo, the studies and the tests: it trains in a few seconds on one CPU thread,
has 80 conv filters with readable ids (``features.0``, ``features.2``, ``features.5``), and
needs no download.

The 1,797 images are cut into four disjoint stratified splits (:data:`SPLIT_FRACTIONS`):
*train* (the model is trained on it only), *valuation* (Shapley values and baselines are
computed on it), *selection* (choices such as the number of units to remove are made on it)
and *test* (every reported curve; nothing else sees it).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from neuronshapley.files import atomic_write
from neuronshapley.runtime import torch_threads
from neuronshapley.zoo.training import TrainTestData, accuracy, fit_classifier

__all__ = [
    "DigitsCNN",
    "DigitsData",
    "SPLIT_FRACTIONS",
    "accuracy",
    "default_cache_dir",
    "load_digits_split",
    "pretrained_digits_cnn",
    "train_digits_cnn",
]

#: Default number of training epochs for :func:`train_digits_cnn`.
DEFAULT_EPOCHS = 20
#: Default Adam learning rate for :func:`train_digits_cnn`.
DEFAULT_LR = 3e-3
#: Default minibatch size for :func:`train_digits_cnn`.
DEFAULT_BATCH_SIZE = 32
#: Shares of the 1,797 images in the train, valuation, selection and test splits.
SPLIT_FRACTIONS: tuple[float, float, float, float] = (0.5, 0.2, 0.1, 0.2)
# Bump when the training recipe changes so stale caches are not reused.
# v2: trained on the train split only (50%), no longer on 80% of the images.
TRAIN_THREADS = 1  # thread count changes float sums, hence the weights
_CACHE_VERSION = 3  # 3: always trained on one thread (the same weights whoever calls)


class DigitsCNN(nn.Module):
    """Three-conv CNN for 8x8 digits.

    Layout (module ids in brackets)::

        features   [features]   Conv(1->c1) [0], ReLU, Conv(c1->c2) [2], ReLU, MaxPool2 [4],
                                Conv(c2->c3) [5], ReLU, MaxPool2 [7]
        classifier [classifier] Flatten, Linear(c3*2*2 -> hidden) [1], ReLU, Linear(hidden -> 10)

    With the defaults ``channels=(16, 32, 32)`` there are 80 conv filters.
    Input ``(N, 1, 8, 8)`` float in ``[0, 1]``; output logits ``(N, 10)``.
    """

    #: Qualified names of the conv layers, in forward order.
    conv_layer_names: tuple[str, str, str] = ("features.0", "features.2", "features.5")

    def __init__(
        self,
        channels: tuple[int, int, int] = (16, 32, 32),
        hidden: int = 64,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        if len(channels) != 3 or min(channels) < 1 or hidden < 1:
            raise ValueError(f"bad widths: channels={channels!r}, hidden={hidden!r}")
        c1, c2, c3 = (int(c) for c in channels)
        self.channels: tuple[int, int, int] = (c1, c2, c3)
        self.hidden = int(hidden)
        self.num_classes = int(num_classes)
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c3 * 2 * 2, self.hidden),
            nn.ReLU(),
            nn.Linear(self.hidden, self.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 8, 8)`` images -> ``(N, num_classes)`` logits."""
        return self.classifier(self.features(x))

    @property
    def arch_id(self) -> str:
        """Short string naming the architecture, e.g. ``"c16-32-32_h64_k10"``."""
        c1, c2, c3 = self.channels
        return f"c{c1}-{c2}-{c3}_h{self.hidden}_k{self.num_classes}"

    def num_conv_filters(self) -> int:
        """Total number of output channels over all conv layers."""
        return sum(m.out_channels for m in self.modules() if isinstance(m, nn.Conv2d))


@dataclass(frozen=True)
class DigitsData(TrainTestData):
    """The digits' splits: ``x_*`` float32 ``(N, 1, 8, 8)`` in ``[0, 1]``, ``y_*`` int64 ``(N,)``
    labels 0..9.

    ``x_train`` trains the model, ``x_valuation`` values the units, ``x_selection`` is for
    choices made from the values, ``x_test`` for what is reported. Built with only a train
    and a test part (positionally, as :class:`~neuronshapley.zoo.training.TrainTestData`),
    valuation and selection are None.
    """

    x_valuation: torch.Tensor | None = None
    y_valuation: torch.Tensor | None = None
    x_selection: torch.Tensor | None = None
    y_selection: torch.Tensor | None = None

    def sizes(self) -> dict[str, int]:
        """Number of images per split (0 for a missing one)."""
        return {name: 0 if y is None else len(y) for name, y in (
            ("train", self.y_train), ("valuation", self.y_valuation),
            ("selection", self.y_selection), ("test", self.y_test))}


def load_digits_split(
    seed: int = 0, fractions: tuple[float, float, float, float] = SPLIT_FRACTIONS
) -> DigitsData:
    """Deterministic stratified train / valuation / selection / test split of scikit-learn's
    digits (1797 images), in the shares ``fractions`` (default :data:`SPLIT_FRACTIONS`:
    50 / 20 / 10 / 20%).

    Pixel values (0..16) are divided by 16. Same ``seed`` -> same split.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from neuronshapley.errors import DataError

    parts = tuple(float(f) for f in fractions)
    if len(parts) != 4 or min(parts) <= 0 or abs(sum(parts) - 1.0) > 1e-9:
        raise DataError(f"fractions must be four positive shares (train, valuation, selection, "
                        f"test) summing to 1, got {fractions!r}")
    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
    y = torch.as_tensor(bunch.target, dtype=torch.int64)
    labels = y.numpy()
    rest = torch.arange(len(y)).numpy()
    cut: list[torch.Tensor] = []
    for share in parts[:0:-1]:  # test, selection, valuation: sizes of the whole set
        rest, part = train_test_split(rest, test_size=round(share * len(y)), random_state=seed,
                                      stratify=labels[rest])
        cut.append(torch.as_tensor(part))
    te, sel, val = cut
    tr = torch.as_tensor(rest)
    return DigitsData(
        x_train=x[tr].contiguous(), y_train=y[tr].contiguous(),
        x_test=x[te].contiguous(), y_test=y[te].contiguous(),
        source="sklearn load_digits",
        x_valuation=x[val].contiguous(), y_valuation=y[val].contiguous(),
        x_selection=x[sel].contiguous(), y_selection=y[sel].contiguous(),
    )


def train_digits_cnn(
    data: DigitsData,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    lr: float = DEFAULT_LR,
    num_threads: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    channels_last: bool = True,
    channels: tuple[int, int, int] = (16, 32, 32),
    hidden: int = 64,
) -> DigitsCNN:
    """Train a :class:`DigitsCNN` with Adam on ``data.x_train`` / ``data.y_train``.

    Deterministic for a given ``seed`` (and thread count). ``channels_last`` speeds
    up CPU training; the returned model is converted back to the default memory
    format and put in eval mode. ``channels`` / ``hidden`` set the widths.
    """
    with torch_threads(num_threads):
        torch.manual_seed(seed)
        model = DigitsCNN(channels=channels, hidden=hidden)
        fit_classifier(model, data.x_train, data.y_train, epochs=epochs, lr=lr,
                       batch_size=batch_size, seed=seed, channels_last=channels_last,
                       seed_global=False)
    return model.eval()


def default_cache_dir() -> Path:
    """``$NEURONSHAPLEY_CACHE`` if set, else ``~/.cache/neuronshapley``."""
    env = os.environ.get("NEURONSHAPLEY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "neuronshapley"


def pretrained_digits_cnn(
    cache_dir: str | os.PathLike[str] | None = None, seed: int = 0
) -> tuple[DigitsCNN, DigitsData]:
    """Default :class:`DigitsCNN` trained on the train split of ``load_digits_split(seed)``
    only, cached on disk.

    The first call trains (a few seconds) and writes ``<key>.pt`` (state dict) and
    ``<key>.json`` (accuracy per split, settings) into ``cache_dir`` (default
    :func:`default_cache_dir`); later calls load the weights. ``seed`` sets both the
    split and the training. Training runs on one torch thread whatever the caller set, so
    every machine of the same CPU kind gets the same weights. Returns ``(model in eval
    mode, data)``.
    """
    data = load_digits_split(seed=seed)
    model = DigitsCNN()
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    key = f"digits_cnn_{model.arch_id}_seed{seed}_v{_CACHE_VERSION}"
    weights_path = root / f"{key}.pt"
    meta_path = root / f"{key}.json"

    if weights_path.is_file():
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
            return model.eval(), data
        except Exception:  # corrupt / incompatible cache entry: retrain below
            pass

    t0 = time.perf_counter()
    model = train_digits_cnn(data, seed=seed, num_threads=TRAIN_THREADS)
    train_seconds = time.perf_counter() - t0
    meta = {
        "arch": model.arch_id,
        "seed": seed,
        "split_fractions": dict(zip(("train", "valuation", "selection", "test"),
                                    SPLIT_FRACTIONS, strict=True)),
        "split_sizes": data.sizes(),
        "epochs": DEFAULT_EPOCHS,
        "lr": DEFAULT_LR,
        "batch_size": DEFAULT_BATCH_SIZE,
        "optimizer": "Adam",
        "test_accuracy": accuracy(model, data.x_test, data.y_test),
        "train_accuracy": accuracy(model, data.x_train, data.y_train),
        "valuation_accuracy": accuracy(model, data.x_valuation, data.y_valuation),
        "selection_accuracy": accuracy(model, data.x_selection, data.y_selection),
        "train_seconds": round(train_seconds, 3),
        "torch_version": torch.__version__,
        "cache_version": _CACHE_VERSION,
    }
    root.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # Metadata first: a present weights file then always has its JSON beside it.
    atomic_write(meta_path, lambda f: f.write(json.dumps(meta, indent=2).encode()))
    atomic_write(weights_path, lambda f: torch.save(state, f))
    return model.eval(), data
