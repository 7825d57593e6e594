"""Model-agnostic Shapley estimators: they see only a game, a budget and a random generator."""

from neuronshapley.estimators.api import METHODS, EstimationInterrupted, estimate, method_options
from neuronshapley.estimators.checkpoint import CheckpointError
from neuronshapley.estimators.stats import RunningStats
from neuronshapley.estimators.walks import Truncation

__all__ = [
    "METHODS",
    "CheckpointError",
    "EstimationInterrupted",
    "RunningStats",
    "Truncation",
    "estimate",
    "method_options",
]
