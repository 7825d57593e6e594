"""Estimator state on disk: written atomically at a fixed interval and at exit, resumable.

A state is a flat dict of numpy arrays plus JSON-able facts (method, parameters, the game's
fingerprint, the random generator's state, counters). Both live in ONE file,
``<folder>/state.npz`` (the facts as a JSON string under ``__facts__``), replaced
atomically, so a run killed at any moment leaves the previous complete checkpoint;
``state.json`` beside it is a readable copy of the facts, never read back. Nothing is
pickled.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from neuronshapley.errors import CheckpointError
from neuronshapley.files import atomic_write, atomic_write_text

STATE_VERSION = 1
_FACTS = "__facts__"


def save_state(folder: str | os.PathLike[str], arrays: dict[str, np.ndarray],
               facts: dict[str, Any]) -> None:
    """Write a state (arrays + facts) into ``folder`` atomically."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".state.*.tmp"):  # left by a writer that was killed mid-write
        stale.unlink(missing_ok=True)
    text = json.dumps({"state_version": STATE_VERSION, **facts}, indent=1, default=_json)
    payload = {**arrays, _FACTS: np.array(text)}
    atomic_write(out / "state.npz", lambda fh: np.savez(fh, **payload))
    atomic_write_text(out / "state.json", text)


def load_state(folder: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a state written by :func:`save_state`."""
    src = Path(folder)
    if not (src / "state.npz").is_file():
        raise CheckpointError(f"no checkpoint in {src} (state.npz expected)")
    with np.load(src / "state.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != _FACTS}
        if _FACTS not in data.files:
            raise CheckpointError(f"{src / 'state.npz'} is not a neuronshapley checkpoint")
        facts = json.loads(str(data[_FACTS]))
    return arrays, facts


def has_state(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / "state.npz").is_file()


def _json(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


class Checkpointer:
    """Saves the state returned by ``snapshot()`` every ``every`` seconds and on ``final()``."""

    def __init__(self, folder: str | os.PathLike[str], every: float = 30.0) -> None:
        if every <= 0:
            raise CheckpointError(f"checkpoint interval must be positive, got {every}")
        self.folder = Path(folder)
        self.every = every
        self._last = time.monotonic()
        self.saves = 0

    def due(self) -> bool:
        """Whether ``every`` seconds have passed since the last save."""
        return time.monotonic() - self._last >= self.every

    def maybe(self, snapshot: Any) -> None:
        if self.due():
            self.final(snapshot)

    def final(self, snapshot: Any) -> None:
        arrays, facts = snapshot()
        save_state(self.folder, arrays, facts)
        self._last = time.monotonic()
        self.saves += 1
