"""Shapley values with their uncertainty, and how they were produced; saved as plain files.

Files written by :meth:`ShapleyResult.save` into a folder:

- ``values.csv``: one row per player (per player and output for vector games) with columns
  ``player, [output,] value, ci_low, ci_high, samples, rank`` (rank 1 = largest value,
  ranked within each output).
- ``metadata.json``: method, parameters, seed, evaluations, wall time, confidence,
  library versions, output names and free-form ``info``.

No pickles: both files are readable by any tool.
"""

from __future__ import annotations

import csv
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuronshapley._version import __version__
from neuronshapley.files import atomic_write_text, csv_text, json_safe

FORMAT_VERSION = 1


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the numbers."""
    versions = {
        "neuronshapley": __version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
    try:
        import torch

        versions["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return versions


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based descending ranks along axis 0 (ties broken by player order)."""
    order = np.argsort(-values, axis=0, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, values.shape[0] + 1)[:, None], axis=0)
    return ranks


@dataclass
class ShapleyResult:
    """Estimated Shapley values of ``n`` players for ``d`` outputs.

    ``values``, ``ci_low`` and ``ci_high`` have shape (n,) for a scalar game and (n, d)
    for a vector game; ``samples`` (n,) counts the marginal contributions drawn per player
    and ``evaluations`` the coalitions the game evaluated in total.
    """

    values: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    samples: np.ndarray
    evaluations: int
    players: list[str]
    method: str
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    wall_time: float = 0.0
    confidence: float | None = None
    output_names: list[str] | None = None
    versions: dict[str, str] = field(default_factory=library_versions)
    info: dict[str, Any] = field(default_factory=dict)
    #: the estimator's final state (arrays, facts), saved beside the values for merging
    state: tuple[dict[str, np.ndarray], dict[str, Any]] | None = field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float64)
        self.ci_low = np.asarray(self.ci_low, dtype=np.float64)
        self.ci_high = np.asarray(self.ci_high, dtype=np.float64)
        self.samples = np.asarray(self.samples, dtype=np.int64)
        n = self.values.shape[0]
        if len(self.players) != n:
            raise ValueError(f"{len(self.players)} player ids for {n} values")
        if self.ci_low.shape != self.values.shape or self.ci_high.shape != self.values.shape:
            raise ValueError("ci_low and ci_high must have the shape of values")
        if self.values.ndim == 2 and self.output_names is None:
            self.output_names = [f"output{j}" for j in range(self.values.shape[1])]

    # ----------------------------------------------------------------- views
    @property
    def n_players(self) -> int:
        return int(self.values.shape[0])

    def output(self, which: int | str) -> ShapleyResult:
        """The scalar result of one output of a vector game (by index or name)."""
        if self.values.ndim == 1:
            raise ValueError("this result has a single output")
        assert self.output_names is not None
        j = self.output_names.index(which) if isinstance(which, str) else int(which)
        return ShapleyResult(
            self.values[:, j], self.ci_low[:, j], self.ci_high[:, j], self.samples,
            self.evaluations, list(self.players), self.method, self.seed, dict(self.params),
            self.wall_time, self.confidence, None, dict(self.versions),
            {**self.info, "output": self.output_names[j]},
        )

    def ranking(self) -> np.ndarray:
        """Player indices from the largest value to the smallest (scalar results)."""
        self._require_scalar()
        return np.argsort(-self.values, kind="stable")

    def top(self, k: int) -> list[str]:
        """Ids of the ``k`` players with the largest values."""
        return [self.players[i] for i in self.ranking()[:k]]

    def table(self, k: int | None = None) -> list[dict[str, Any]]:
        """Rows ``{rank, player, value, ci_low, ci_high, samples}``, best first."""
        self._require_scalar()
        order = self.ranking()[: k if k is not None else self.n_players]
        return [
            {
                "rank": r + 1,
                "player": self.players[i],
                "value": float(self.values[i]),
                "ci_low": float(self.ci_low[i]),
                "ci_high": float(self.ci_high[i]),
                "samples": int(self.samples[i]),
            }
            for r, i in enumerate(order)
        ]

    def _require_scalar(self) -> None:
        if self.values.ndim != 1:
            raise ValueError("vector result: pick one output first with result.output(name)")

    # ------------------------------------------------------------------ files
    def metadata(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "seed": self.seed,
            "params": json_safe(self.params, strict=False),
            "evaluations": int(self.evaluations),
            "wall_time_s": float(self.wall_time),
            "confidence": self.confidence,
            "n_players": self.n_players,
            "output_names": self.output_names,
            "versions": self.versions,
            "info": json_safe(self.info, strict=False),
        }

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``values.csv`` and ``metadata.json`` into ``folder`` (created if needed)."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        rows: list[dict[str, Any]] = []
        header = ["player", "value", "ci_low", "ci_high", "samples", "rank"]
        if self.values.ndim == 1:
            ranks = _ranks(self.values[:, None])[:, 0]
            for i, pid in enumerate(self.players):
                rows.append({"player": pid, "value": float(self.values[i]),
                             "ci_low": float(self.ci_low[i]), "ci_high": float(self.ci_high[i]),
                             "samples": int(self.samples[i]), "rank": int(ranks[i])})
        else:
            assert self.output_names is not None
            header.insert(1, "output")
            ranks = _ranks(self.values)
            for i, pid in enumerate(self.players):
                for j, name in enumerate(self.output_names):
                    rows.append({"player": pid, "output": name,
                                 "value": float(self.values[i, j]),
                                 "ci_low": float(self.ci_low[i, j]),
                                 "ci_high": float(self.ci_high[i, j]),
                                 "samples": int(self.samples[i]), "rank": int(ranks[i, j])})
        atomic_write_text(out / "values.csv", csv_text(rows, header))
        atomic_write_text(out / "metadata.json", json.dumps(self.metadata(), indent=2) + "\n")
        if self.state is not None:
            from neuronshapley.estimators.checkpoint import save_state

            save_state(out, *self.state)
        return out

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> ShapleyResult:
        """Read a result written by :meth:`save`."""
        src = Path(folder)
        csv_path, meta_path = src / "values.csv", src / "metadata.json"
        for p in (csv_path, meta_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p} not found: is {src} a neuronshapley result folder?")
        meta = json.loads(meta_path.read_text())
        with csv_path.open(newline="") as fh:
            records = list(csv.DictReader(fh))
        names = meta.get("output_names")
        if names:
            players = list(dict.fromkeys(r["player"] for r in records))
            d = len(names)
            shape: tuple[int, ...] = (len(players), d)
            col = {name: j for j, name in enumerate(names)}
            arrays = {k: np.zeros(shape) for k in ("value", "ci_low", "ci_high")}
            samples = np.zeros(len(players), dtype=np.int64)
            pos = {p: i for i, p in enumerate(players)}
            for r in records:
                i, j = pos[r["player"]], col[r["output"]]
                for k in arrays:
                    arrays[k][i, j] = float(r[k])
                samples[i] = int(r["samples"])
        else:
            players = [r["player"] for r in records]
            arrays = {k: np.array([float(r[k]) for r in records]) for k in
                      ("value", "ci_low", "ci_high")}
            samples = np.array([int(r["samples"]) for r in records], dtype=np.int64)
        return cls(
            values=arrays["value"], ci_low=arrays["ci_low"], ci_high=arrays["ci_high"],
            samples=samples, evaluations=int(meta["evaluations"]), players=players,
            method=meta["method"], seed=meta.get("seed"), params=meta.get("params", {}),
            wall_time=float(meta.get("wall_time_s", 0.0)), confidence=meta.get("confidence"),
            output_names=names, versions=meta.get("versions", {}), info=meta.get("info", {}),
        )
