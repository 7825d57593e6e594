"""neuronshapley: find the neurons responsible for what a trained PyTorch network does.

Neuron Shapley (Ghorbani & Zou, NeurIPS 2020) values every unit (conv filter, hidden unit)
by its Shapley value towards a performance metric of the whole network.
"""

__version__ = "0.1.0"

from .ablation import AblationError, Ablator  # noqa: E402
from .distributed import estimate_distributed  # noqa: E402
from .estimators import METHODS, estimate  # noqa: E402
from .game import Game, GameError, ModelGame, check_masks  # noqa: E402
from .merge import merge_results  # noqa: E402
from .players import Layer, PlayerError, PlayerSet, discover_players  # noqa: E402
from .result import ShapleyResult  # noqa: E402

__all__ = [
    "METHODS",
    "AblationError",
    "Ablator",
    "Game",
    "GameError",
    "Layer",
    "ModelGame",
    "PlayerError",
    "PlayerSet",
    "ShapleyResult",
    "check_masks",
    "discover_players",
    "estimate",
    "estimate_distributed",
    "merge_results",
]
