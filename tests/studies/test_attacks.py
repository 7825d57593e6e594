"""Targeted PGD (cross-checked against captum.robust.PGD) and the adversarial game."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neuronshapley.studies.attacks import (
    ADVERSARIAL_OUTPUTS,
    adversarial_game,
    adversarial_metric,
    attack_success,
    paired_batch,
    pgd_targeted,
    random_targets,
)
from neuronshapley.zoo.digits import DigitsData, load_digits_split, train_digits_cnn

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings(
    "ignore:Input Tensor 0 did not already require gradients"
)
EPS, STEP, STEPS = 0.2, 0.05, 10


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A small digits CNN (8-8-8 filters, trained for a few epochs) and 150 test images."""
    data = load_digits_split(seed=0)
    small = DigitsData(data.x_train[:600], data.y_train[:600], data.x_test, data.y_test)
    model = train_digits_cnn(small, epochs=6, seed=0, channels=(8, 8, 8), hidden=16)
    return model, data.x_test[:150], data.y_test[:150]


def test_random_targets_are_wrong_classes() -> None:
    y = torch.arange(10).repeat(50)
    t = random_targets(y, 10, torch.Generator().manual_seed(0))
    assert (t != y).all() and set(t.tolist()) == set(range(10))
    with pytest.raises(ValueError):
        random_targets(y, 1)


def test_pgd_stays_in_the_ball_and_bounds(trained) -> None:
    model, x, y = trained
    t = random_targets(y, 10, torch.Generator().manual_seed(1))
    adv = pgd_targeted(model, x, t, EPS, STEP, STEPS, generator=torch.Generator().manual_seed(2))
    assert adv.shape == x.shape and not adv.requires_grad
    assert (adv - x).abs().max() <= EPS + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert attack_success(model, adv, t) > attack_success(model, x, t) + 0.2
    assert not model.training
    same = pgd_targeted(model, x, t, EPS, STEP, STEPS, generator=torch.Generator().manual_seed(2))
    assert torch.equal(adv, same)  # seeded random start: reproducible
    assert torch.equal(pgd_targeted(model, x, t, EPS, STEP, 0, random_start=False), x)


def test_pgd_matches_captum_without_random_start(trained) -> None:
    from captum.robust import PGD

    model, x, y = trained
    t = random_targets(y, 10, torch.Generator().manual_seed(3))
    ours = pgd_targeted(model, x, t, EPS, STEP, STEPS, random_start=False)
    ref = PGD(model, loss_func=nn.CrossEntropyLoss(reduction="none"), lower_bound=0.0,
              upper_bound=1.0)
    ref.fgsm.zero_thresh = 0.0  # captum skips |grad| <= 1e-6 by default; we move by sign 0
    theirs = ref.perturb(x, radius=EPS, step_size=STEP, step_num=STEPS, target=t,
                         targeted=True, random_start=False)
    assert torch.allclose(ours, theirs, atol=1e-6)
    assert attack_success(model, ours, t) == attack_success(model, theirs, t)
    # captum's default threshold changes at most a few pixels, not the success rate
    default = PGD(model, loss_func=nn.CrossEntropyLoss(reduction="none"), lower_bound=0.0,
                  upper_bound=1.0).perturb(x, radius=EPS, step_size=STEP, step_num=STEPS,
                                           target=t, targeted=True)
    assert abs(attack_success(model, default, t) - attack_success(model, ours, t)) <= 0.02


def test_pgd_with_random_start_is_statistically_equivalent_to_captum(trained) -> None:
    from captum.robust import PGD

    model, x, y = trained
    t = random_targets(y, 10, torch.Generator().manual_seed(4))
    ours = pgd_targeted(model, x, t, EPS, STEP, STEPS, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(6)  # captum draws its start from the global generator
    theirs = PGD(model, loss_func=nn.CrossEntropyLoss(reduction="none"), lower_bound=0.0,
                 upper_bound=1.0).perturb(x, radius=EPS, step_size=STEP, step_num=STEPS,
                                          target=t, targeted=True, random_start=True)
    a, b = attack_success(model, ours, t), attack_success(model, theirs, t)
    # two proportions of 150: 3 standard errors of the difference at p = 0.5 is ~0.17
    assert abs(a - b) < 0.17, (a, b)
    assert (theirs - x).abs().max() <= EPS + 1e-6


def test_adversarial_metric_by_hand() -> None:
    # 2 masks, 4 examples (2 clean then 2 adversarial), 3 classes
    logits = torch.tensor([
        [[5, 0, 0], [0, 5, 0], [0, 0, 5], [0, 5, 0]],  # clean: both right; adv: 1 of 2 hit
        [[0, 5, 0], [0, 5, 0], [0, 0, 5], [0, 0, 5]],  # clean: 1 of 2; adv: 2 of 2 hit
    ], dtype=torch.float32)
    labels = torch.tensor([0, 1, 0, 0])
    extra = {"adversarial": torch.tensor([False, False, True, True]),
             "target": torch.tensor([0, 1, 2, 2])}
    v = adversarial_metric(logits, labels, extra)
    assert v.shape == (2, 3)
    assert torch.allclose(v, torch.tensor([[0.5 - 1.0, 0.5, 1.0], [1.0 - 0.5, 1.0, 0.5]],
                                          dtype=v.dtype))
    assert adversarial_metric.output_names(3) == list(ADVERSARIAL_OUTPUTS)
    with pytest.raises(ValueError, match="extra"):
        adversarial_metric(logits, labels, None)
    with pytest.raises(ValueError, match="both"):
        adversarial_metric(logits, labels, {"adversarial": torch.ones(4, dtype=torch.bool),
                                            "target": labels})


def test_adversarial_game_full_coalition_matches_direct_rates(trained) -> None:
    model, x, y = trained
    t = random_targets(y, 10, torch.Generator().manual_seed(7))
    adv = pgd_targeted(model, x, t, EPS, STEP, STEPS, generator=torch.Generator().manual_seed(8))
    game = adversarial_game(model, x, y, adv, t, players="features.*")
    v = game(np.ones((1, game.n_players), dtype=bool))[0]
    with torch.no_grad():
        clean = float((model(x).argmax(-1) == y).double().mean())
    success = attack_success(model, adv, t)
    assert v[1] == pytest.approx(success) and v[2] == pytest.approx(clean)
    assert v[0] == pytest.approx(success - clean)
    assert game.output_names == list(ADVERSARIAL_OUTPUTS)
    dead = game(np.zeros((1, game.n_players), dtype=bool))[0]
    assert abs(dead[0]) < 0.2  # a constant network: success and accuracy both near 1/10
    inputs, labels, extra = paired_batch(x[:3], y[:3], adv[:3], t[:3])
    assert inputs.shape[0] == 6 and extra["adversarial"].tolist() == [False] * 3 + [True] * 3
    with pytest.raises(ValueError, match="match"):
        paired_batch(x[:3], y[:2], adv[:3], t[:3])
