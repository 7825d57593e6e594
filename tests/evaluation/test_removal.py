"""Removal masks: prefixes of a ranking and random sets, checked entry by entry."""

from __future__ import annotations

import numpy as np
import pytest

from neuronshapley.evaluation.removal import (
    prefix_masks,
    random_masks,
    removal_curve,
    removal_masks,
)


def test_prefix_masks_remove_the_first_k_of_the_order() -> None:
    masks = prefix_masks([2, 0, 3, 1], 4, [0, 1, 3, 4])
    assert masks.tolist() == [[True, True, True, True], [True, True, False, True],
                              [False, True, False, False], [False, False, False, False]]
    with pytest.raises(ValueError, match="cannot remove 5 of 4"):
        prefix_masks([0, 1, 2, 3], 4, [5])


def test_random_masks_remove_j_units_drawn_by_permutation() -> None:
    masks = random_masks(6, [0, 2, 5], 3, np.random.default_rng(1))
    assert masks.shape == (3, 3, 6)
    assert ((~masks).sum(-1) == np.array([0, 2, 5])[:, None]).all()
    rng = np.random.default_rng(1)
    for s, j in enumerate([0, 2, 5]):  # the same draws, size by size
        for d in range(3):
            expect = np.ones(6, dtype=bool)
            expect[rng.permutation(6)[:j]] = False
            assert (masks[s, d] == expect).all()


def test_removal_masks_pair_and_curve_of_an_additive_game() -> None:
    weights = np.array([1.0, 2.0, 4.0, 8.0])
    top, rand = removal_masks([3, 2, 1, 0], 4, [0, 1, 2], 4, np.random.default_rng(0))
    top_v, rand_v = removal_curve(lambda m: m @ weights, top, rand)
    assert top_v.tolist() == [15.0, 7.0, 3.0]  # removing 8, then 4
    assert rand_v.shape == (3, 4) and (rand_v[0] == 15.0).all()
    assert (rand_v[2] >= 3.0).all() and (rand_v[2] <= 12.0).all()
