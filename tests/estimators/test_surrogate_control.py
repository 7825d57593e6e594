"""The fitted collapse surrogate as a control variate: unbiased, and it removes variance."""

import numpy as np
import pytest

import neuronshapley as ns
from neuronshapley.estimators.surrogate import CollapseSurrogate
from neuronshapley.games import UnanimityGame, WeightedThresholdGame


def _collapse(n=30, seed=0):
    w = np.random.default_rng(seed).integers(1, 20, size=n)
    return WeightedThresholdGame.collapse(w, midpoint=0.5 * w.sum(), steepness=0.15)


def test_surrogate_shapley_is_the_game_shapley_when_the_shapes_match():
    game = _collapse(12, seed=1)
    s = CollapseSurrogate(12, game.floor, game.ceiling)
    s.w = game.steepness * game.weights.astype(float)
    s.c = -game.steepness * game.midpoint
    phi = s.shapley(np.random.default_rng(0), 40_000)
    np.testing.assert_allclose(phi, game.shapley_values(), atol=2e-3)
    perm = np.random.default_rng(3).permutation(12)
    v = s.along(perm[None, :])[0]
    pos = np.empty(12, int)
    pos[perm] = np.arange(12)
    steps = pos[None, :] >= np.arange(13)[:, None]
    np.testing.assert_allclose(v, game(steps), atol=1e-12)


@pytest.mark.parametrize("make", [_collapse, lambda: UnanimityGame.random(
    30, n_terms=40, max_size=4, rng=np.random.default_rng(5))])
def test_control_variate_stays_unbiased(make):
    game = make()
    exact = game.shapley_values()
    runs = [ns.estimate(game, method="permutation", seed=s, n_permutations=150,
                        control="surrogate").values for s in range(12)]
    mean = np.mean(runs, axis=0)
    se = np.std(runs, axis=0, ddof=1) / np.sqrt(len(runs))
    z = (mean - exact) / np.maximum(se, 1e-12)
    assert np.abs(z).max() < 4.5, np.abs(z).max()


def test_estimated_coefficient_stays_unbiased_and_is_restored_exactly(tmp_path):
    from neuronshapley.estimators import Surrogate

    game = _collapse(30, seed=4)
    exact = game.shapley_values()
    runs = [ns.estimate(game, method="permutation", seed=s, n_permutations=120,
                        control=Surrogate("estimated")) for s in range(8)]
    values = np.array([r.values for r in runs])
    z = (values.mean(0) - exact) / np.maximum(values.std(0, ddof=1) / np.sqrt(8), 1e-12)
    assert np.abs(z).max() < 4.5
    assert runs[0].params["control_beta"] == "estimated"
    # the coefficient and its sums travel with the checkpoint: resume == uninterrupted
    ckpt = tmp_path / "ck"
    ns.estimate(game, method="permutation", seed=0, n_permutations=60,
                control=Surrogate("estimated"), checkpoint=ckpt)
    resumed = ns.estimate(game, method="permutation", seed=0, n_permutations=120,
                          control=Surrogate("estimated"), checkpoint=ckpt, resume=True,
                          trust_unfingerprinted=True)
    np.testing.assert_array_equal(resumed.values, runs[0].values)


def test_control_variate_cuts_the_error_on_a_collapse_game():
    game = _collapse(40, seed=2)
    exact = game.shapley_values()

    def mse(control):
        errs = [ns.estimate(game, method="permutation", seed=s, n_permutations=120,
                            control=control).values - exact for s in range(6)]
        return float(np.mean(np.square(errs)))

    assert mse("surrogate") < 0.5 * mse(None)


def test_control_variate_resumes_exactly(tmp_path):
    game = _collapse(30, seed=3)
    opts = dict(method="truncated", seed=4, control="surrogate", truncation_fill="roulette")
    full = ns.estimate(game, max_evaluations=3000, **opts)
    ns.estimate(game, max_evaluations=900, checkpoint=tmp_path, **opts)
    resumed = ns.estimate(game, max_evaluations=3000, checkpoint=tmp_path, resume=True,
                          trust_unfingerprinted=True, **opts)
    np.testing.assert_array_equal(resumed.values, full.values)
    assert resumed.evaluations == full.evaluations


def test_control_variate_refuses_vector_games():
    from neuronshapley.games import AdditiveGame
    game = AdditiveGame(np.ones((5, 2)))
    with pytest.raises(ValueError, match="one output"):
        ns.estimate(game, method="permutation", control="surrogate")
    with pytest.raises(ValueError, match="control takes a ControlVariate or None"):
        ns.estimate(_collapse(), method="permutation", control="loo")
