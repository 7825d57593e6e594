"""Model-agnostic Shapley estimators: they see only a game, a budget and a random generator."""

from .api import METHODS, estimate, method_options
from .stats import RunningStats
from .walks import Truncation

__all__ = ["METHODS", "RunningStats", "Truncation", "estimate", "method_options"]
