"""Model-agnostic Shapley estimators: they see only a game, a budget and a random generator.

Estimators are classes with declared parameters (:class:`Exact`, :class:`MonteCarlo`,
:class:`Truncated`, :class:`TMAB`, :class:`Auto`), assembled from small policies
(samplers, truncation rules and fills, bounds, stopping rules, control variates) and run by one
driver; :func:`estimate` is the one-line facade. No torch is imported here.
"""

from neuronshapley.estimators.auto import Auto
from neuronshapley.estimators.base import Estimator
from neuronshapley.estimators.bounds import Bernstein, BernsteinLocal, Betting, Bound, Normal
from neuronshapley.estimators.checkpoint import CheckpointError
from neuronshapley.estimators.control import ControlVariate, Surrogate
from neuronshapley.estimators.driver import EstimationInterrupted
from neuronshapley.estimators.estimate import METHODS, estimate
from neuronshapley.estimators.exact import Exact
from neuronshapley.estimators.montecarlo import MonteCarlo, Truncated
from neuronshapley.estimators.registry import (
    REGISTRY,
    accepts,
    make_estimator,
    method_options,
    register,
)
from neuronshapley.estimators.sampling import (
    AutoSampling,
    DirectSampling,
    Sampling,
    SharedSampling,
    WalkSampling,
)
from neuronshapley.estimators.stats import RunningStats
from neuronshapley.estimators.stopping import (
    Converged,
    IntervalsNarrowerThan,
    MaxEvaluations,
    MaxTime,
    MaxWalks,
    StoppingRule,
    TopKSeparated,
)
from neuronshapley.estimators.tmab import TMAB
from neuronshapley.estimators.truncation import (
    DeadNetwork,
    Fill,
    Roulette,
    Share,
    Truncation,
    TruncationRule,
    Zero,
)

__all__ = [
    "METHODS", "REGISTRY", "TMAB", "Auto", "AutoSampling", "Bernstein", "BernsteinLocal",
    "Betting", "Bound",
    "CheckpointError", "ControlVariate", "Converged", "DeadNetwork", "DirectSampling",
    "EstimationInterrupted",
    "Estimator", "Exact", "Fill", "IntervalsNarrowerThan", "MaxEvaluations", "MaxTime",
    "MaxWalks", "MonteCarlo", "Normal", "Roulette", "RunningStats", "Sampling", "Share",
    "SharedSampling", "StoppingRule",
    "Surrogate", "TopKSeparated", "Truncated", "Truncation", "TruncationRule", "WalkSampling",
    "Zero",
    "accepts", "estimate", "make_estimator", "method_options", "register",
]
