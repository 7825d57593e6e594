"""neuronshapley: find the neurons responsible for what a trained PyTorch network does.

Neuron Shapley (Ghorbani & Zou, NeurIPS 2020) values every unit (conv filter, hidden unit,
attention head) by its Shapley value towards a performance metric of the whole network.

The names below load on first use, so ``import neuronshapley.estimators`` (numpy only) does
not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from neuronshapley._version import __version__

#: public name -> the module that holds it
_HOMES = {
    "AblationError": "neuronshapley.errors",
    "GameError": "neuronshapley.errors",
    "InputError": "neuronshapley.errors",
    "NeuronShapleyError": "neuronshapley.errors",
    "PlayerError": "neuronshapley.errors",
    "Game": "neuronshapley.protocol",
    "check_masks": "neuronshapley.protocol",
    "METHODS": "neuronshapley.estimators",
    "estimate": "neuronshapley.estimators",
    "merge_results": "neuronshapley.estimators.merge",
    "ShapleyResult": "neuronshapley.result",
    "estimate_distributed": "neuronshapley.distributed",
    "Ablator": "neuronshapley.network.ablation",
    "ModelGame": "neuronshapley.network.game",
    "Layer": "neuronshapley.network.players",
    "PlayerSet": "neuronshapley.network.players",
    "discover_players": "neuronshapley.network.players",
}

__all__ = ["__version__", *sorted(_HOMES)]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'neuronshapley' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
