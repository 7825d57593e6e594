"""The ``neuronshapley`` command line (see :mod:`neuronshapley.cli.app`)."""

from neuronshapley.cli.app import app, main

__all__ = ["app", "main"]
