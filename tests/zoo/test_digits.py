"""Tests for the digits CNN zoo model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from neuronshapley.zoo import (
    DigitsCNN,
    DigitsData,
    accuracy,
    load_digits_split,
    pretrained_digits_cnn,
)
from neuronshapley.zoo import digits as zd


@pytest.fixture(scope="module")
def trained(digits_cache: Path) -> tuple[DigitsCNN, DigitsData, Path]:
    """The session's digits CNN (trained once into its cache folder)."""
    cache = digits_cache
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, data = pretrained_digits_cnn(cache_dir=cache, seed=0)
    finally:
        torch.set_num_threads(old)
    return model, data, cache


SPLITS = ("train", "valuation", "selection", "test")


def test_split_shapes_and_dtypes() -> None:
    d = load_digits_split(seed=0)
    assert d.sizes() == {"train": 899, "valuation": 359, "selection": 180, "test": 359}
    for name in SPLITS:
        x, y = getattr(d, f"x_{name}"), getattr(d, f"y_{name}")
        assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32
        assert y.dtype == torch.int64 and len(x) == len(y)
        assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert float(d.x_train.max()) == 1.0


def test_splits_are_disjoint_and_cover_the_set() -> None:
    from sklearn.datasets import load_digits

    d = load_digits_split(seed=0)
    # Rows of the 64 pixel values, as bytes: which source image each split holds.
    source = load_digits().images.reshape(-1, 64) / 16.0
    index = {row.astype("float32").tobytes(): i for i, row in enumerate(source)}
    seen: list[set[int]] = []
    for name in SPLITS:
        rows = getattr(d, f"x_{name}").reshape(-1, 64).numpy()
        seen.append({index[r.tobytes()] for r in rows})
    # A few digits are pixel-identical duplicates; allow them, nothing else may repeat.
    assert sum(len(s) for s in seen) >= 1797 - 5
    for i in range(4):
        for j in range(i + 1, 4):
            assert len(seen[i] & seen[j]) <= 2, (SPLITS[i], SPLITS[j])


def test_bad_fractions_are_refused() -> None:
    from neuronshapley.errors import DataError

    with pytest.raises(DataError, match="summing to 1"):
        load_digits_split(fractions=(0.5, 0.2, 0.2, 0.2))
    with pytest.raises(DataError, match="four positive"):
        load_digits_split(fractions=(0.8, 0.0, 0.0, 0.2))


def test_split_deterministic_and_seed_dependent() -> None:
    a, b = load_digits_split(seed=3), load_digits_split(seed=3)
    for name in SPLITS:
        for part in ("x", "y"):
            assert torch.equal(getattr(a, f"{part}_{name}"), getattr(b, f"{part}_{name}"))
    c = load_digits_split(seed=4)
    assert not torch.equal(a.y_test, c.y_test)


def test_split_stratified() -> None:
    d = load_digits_split(seed=0)
    full = torch.bincount(torch.cat([d.y_train, d.y_test]), minlength=10).double()
    full = full / full.sum()
    for name in SPLITS:
        y = getattr(d, f"y_{name}")
        counts = torch.bincount(y, minlength=10).double()
        assert torch.all((counts - full * len(y)).abs() <= 1.5), name


def test_architecture_has_80_conv_filters() -> None:
    m = DigitsCNN()
    convs = {n: mod for n, mod in m.named_modules() if isinstance(mod, nn.Conv2d)}
    assert list(convs) == list(DigitsCNN.conv_layer_names)
    assert [c.out_channels for c in convs.values()] == [16, 32, 32]
    assert m.num_conv_filters() == 80
    assert m(torch.zeros(5, 1, 8, 8)).shape == (5, 10)


def test_training_reaches_95_percent(trained: tuple[DigitsCNN, DigitsData, Path]) -> None:
    model, data, cache = trained
    assert not model.training
    acc = accuracy(model, data.x_test, data.y_test)
    assert 0.95 <= acc < 1.0  # the test images are held out from training
    (meta_file,) = cache.glob("*.json")
    meta = json.loads(meta_file.read_text())
    assert meta["seed"] == 0 and meta["test_accuracy"] == pytest.approx(acc)
    assert meta["split_sizes"]["train"] == 899 and meta["train_accuracy"] == 1.0
    assert meta["cache_version"] == 3 and "_v3" in meta_file.name


def test_cache_reloads_identical_weights(
    trained: tuple[DigitsCNN, DigitsData, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    model, _, cache = trained

    def boom(*args: object, **kwargs: object) -> DigitsCNN:
        raise AssertionError("retrained despite cache")

    monkeypatch.setattr(zd, "train_digits_cnn", boom)
    again, data = pretrained_digits_cnn(cache_dir=cache, seed=0)
    assert not again.training
    ref = model.state_dict()
    got = again.state_dict()
    assert ref.keys() == got.keys()
    for k in ref:
        assert torch.equal(ref[k], got[k]), k
    x = data.x_test[:32]
    with torch.no_grad():
        assert torch.equal(model(x), again(x))
    # No stray temp files left behind by the atomic writes.
    assert sorted(p.suffix for p in cache.iterdir()) == [".json", ".pt"]


def test_cache_dir_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURONSHAPLEY_CACHE", str(tmp_path))
    assert zd.default_cache_dir() == tmp_path
    monkeypatch.delenv("NEURONSHAPLEY_CACHE")
    assert zd.default_cache_dir() == Path.home() / ".cache" / "neuronshapley"


def test_training_deterministic_given_seed() -> None:
    data = load_digits_split(seed=0)
    a = zd.train_digits_cnn(data, epochs=1, seed=5, num_threads=1)
    b = zd.train_digits_cnn(data, epochs=1, seed=5, num_threads=1)
    c = zd.train_digits_cnn(data, epochs=1, seed=6, num_threads=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert not a.training
    assert a.features[0].weight.is_contiguous()
