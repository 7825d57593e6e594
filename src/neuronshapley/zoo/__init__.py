"""Small ready-to-use models for demos and tests."""

from neuronshapley.zoo.digits import (
    DigitsCNN,
    DigitsData,
    accuracy,
    default_cache_dir,
    load_digits_split,
    pretrained_digits_cnn,
    train_digits_cnn,
)

__all__ = [
    "DigitsCNN",
    "DigitsData",
    "accuracy",
    "default_cache_dir",
    "load_digits_split",
    "pretrained_digits_cnn",
    "train_digits_cnn",
]
