"""Small ready-to-use models for demos and tests, with one data container
(:class:`TrainTestData`) and one training loop (:func:`fit_classifier`)."""

from neuronshapley.zoo.digits import (
    DigitsCNN,
    DigitsData,
    default_cache_dir,
    load_digits_split,
    pretrained_digits_cnn,
    train_digits_cnn,
)
from neuronshapley.zoo.training import TrainTestData, accuracy, fit_classifier

__all__ = [
    "DigitsCNN",
    "DigitsData",
    "TrainTestData",
    "accuracy",
    "default_cache_dir",
    "fit_classifier",
    "load_digits_split",
    "pretrained_digits_cnn",
    "train_digits_cnn",
]
