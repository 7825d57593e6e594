"""Games (``V(masks) -> values``) with exactly known Shapley values, for testing and benchmarks."""

from neuronshapley.games.closed_form import (
    AdditiveGame,
    NoisyGame,
    UnanimityGame,
    WeightedThresholdGame,
    heavy_tailed_weights,
)

__all__ = [
    "AdditiveGame",
    "NoisyGame",
    "UnanimityGame",
    "WeightedThresholdGame",
    "heavy_tailed_weights",
]
