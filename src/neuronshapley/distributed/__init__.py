"""Estimation with walks computed by worker pools (Ray actors)."""

from neuronshapley.distributed.backend import estimate_distributed

__all__ = ["estimate_distributed"]
