"""Seeded crop sets of the bundled photos: reproducible, disjoint on request, valid inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuronshapley.errors import InputError
from neuronshapley.zoo.photos import Crop, crop_inputs, random_crops

PHOTOS = {"a": np.arange(60 * 80 * 3, dtype=np.uint8).reshape(60, 80, 3),
          "b": np.full((50, 40, 3), 200, dtype=np.uint8)}


def test_crops_are_seeded_inside_the_photo_and_cycle_through_photos() -> None:
    crops = random_crops(10, seed=3, photos=PHOTOS)
    assert crops == random_crops(10, seed=3, photos=PHOTOS)
    assert crops != random_crops(10, seed=4, photos=PHOTOS)
    assert [c.photo for c in crops] == ["a", "b"] * 5
    for c in crops:
        h, w = PHOTOS[c.photo].shape[:2]
        assert 0.5 * min(h, w) - 1 <= c.size <= min(h, w)
        assert 0 <= c.y <= h - c.size and 0 <= c.x <= w - c.size
    assert any(c.flip for c in crops) and not all(c.flip for c in crops)
    first = random_crops(4, seed=0, photos=PHOTOS, full_first=True)
    assert [(c.size, c.flip) for c in first[:2]] == [(60, False), (40, False)]


def test_excluded_crops_are_never_drawn() -> None:
    value = random_crops(30, seed=0, photos=PHOTOS, min_fraction=0.95)
    test = random_crops(30, seed=0, photos=PHOTOS, min_fraction=0.95, exclude=value)
    assert not set(value) & set(test) and len(set(test)) == 30
    with pytest.raises(InputError, match="distinct"):
        random_crops(5, seed=0, photos={"a": PHOTOS["a"][:10, :10]}, min_fraction=1.0)


def test_crop_inputs_are_resized_flipped_and_in_the_network_range() -> None:
    crop = Crop("a", 5, 7, 40, False)
    x = crop_inputs([crop, Crop("a", 5, 7, 40, True)], PHOTOS, size=40)
    assert x.shape == (2, 3, 40, 40) and x.min() >= -1 and x.max() <= 1
    raw = torch.tensor(PHOTOS["a"][5:45, 7:47]).permute(2, 0, 1).float() / 255 * 2 - 1
    assert torch.allclose(x[0], raw, atol=1e-5)
    assert torch.equal(x[1], x[0].flip(-1))
