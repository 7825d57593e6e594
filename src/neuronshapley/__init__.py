"""neuronshapley: find the neurons responsible for what a trained PyTorch network does.

Neuron Shapley (Ghorbani & Zou, NeurIPS 2020) values every unit (conv filter, hidden unit,
attention head) by its Shapley value towards a performance metric of the whole network.
"""

from neuronshapley._version import __version__
from neuronshapley.distributed import estimate_distributed
from neuronshapley.errors import (
    AblationError,
    GameError,
    InputError,
    NeuronShapleyError,
    PlayerError,
)
from neuronshapley.estimators import METHODS, estimate
from neuronshapley.estimators.merge import merge_results
from neuronshapley.network.ablation import Ablator
from neuronshapley.network.game import ModelGame
from neuronshapley.network.players import Layer, PlayerSet, discover_players
from neuronshapley.protocol import Game, check_masks
from neuronshapley.result import ShapleyResult

__all__ = [
    "METHODS",
    "AblationError",
    "Ablator",
    "Game",
    "GameError",
    "InputError",
    "Layer",
    "ModelGame",
    "NeuronShapleyError",
    "PlayerError",
    "PlayerSet",
    "ShapleyResult",
    "__version__",
    "check_masks",
    "discover_players",
    "estimate",
    "estimate_distributed",
    "merge_results",
]
