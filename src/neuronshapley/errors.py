"""Every error the library raises on purpose, in one tree.

All derive from :class:`NeuronShapleyError`. Errors about the user's inputs also derive from
``ValueError`` (so ``except ValueError`` keeps working); the command line shows any
:class:`NeuronShapleyError` as a one-line message naming the fix, never a traceback.
"""

from __future__ import annotations


class NeuronShapleyError(Exception):
    """Base class of the library's own errors."""


class InputError(NeuronShapleyError, ValueError):
    """An input, setting or option is invalid; the message names it and what is allowed."""


class OptionError(InputError, TypeError):
    """An option that the chosen method or function does not take, or of the wrong type."""


class GameError(InputError):
    """The game's inputs or outputs are invalid."""


class PlayerError(InputError):
    """A player (removable unit) specification is invalid."""


class MetricError(InputError):
    """A metric's name, targets or outputs are invalid."""


class AblationError(NeuronShapleyError, RuntimeError):
    """A hooked layer's output does not have the shape its players need."""


class DataError(InputError):
    """A data file or folder cannot be used."""


class ModelLoadError(InputError):
    """A model cannot be loaded from what was given."""


class RunError(InputError):
    """A run's settings or output folder cannot be used."""


class CheckpointError(InputError):
    """A checkpoint cannot be written, read or resumed."""


class MergeError(InputError):
    """Results that cannot be merged."""


class BaselineError(InputError):
    """A baseline ranking cannot be computed for these players."""


class ResultFileError(InputError):
    """A saved result folder (``values.csv``, ``metadata.json``) is missing, cut or damaged."""


class ReportError(InputError):
    """A result folder cannot be turned into a report."""
