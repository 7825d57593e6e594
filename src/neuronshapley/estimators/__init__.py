"""Model-agnostic Shapley estimators: they see only a game, a budget and a random generator."""

from .api import METHODS, EstimationInterrupted, estimate, method_options
from .checkpoint import CheckpointError
from .stats import RunningStats
from .walks import Truncation

__all__ = [
    "METHODS",
    "CheckpointError",
    "EstimationInterrupted",
    "RunningStats",
    "Truncation",
    "estimate",
    "method_options",
]
