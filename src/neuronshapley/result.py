"""Shapley values with their uncertainty, and how they were produced; saved as plain files.

Files written by :meth:`ShapleyResult.save` into a folder:

- ``values.csv``: one row per player (per player and output for vector games) with columns
  ``player, [output,] value, ci_low, ci_high, samples, rank`` (rank 1 = largest value,
  ranked within each output); results with joint intervals add ``unit_low, unit_high``
  (per-unit intervals) and, for a top-k, ``top_k`` (``in``, ``out`` or ``undecided``).
- ``metadata.json``: method, parameters, seed, evaluations, wall time, confidence, what
  the intervals are (``intervals``), library versions, output names and free-form ``info``.

What ``ci_low``/``ci_high`` are is :attr:`ShapleyResult.intervals`: ``"joint"`` (confidence
sequences that hold for all units at once, at every round: what a top-k certificate needs),
``"per-unit"`` (each unit's interval on its own) or ``"exact"`` (no sampling error).

No pickles: both files are readable by any tool.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuronshapley._version import __version__
from neuronshapley.errors import ResultFileError
from neuronshapley.files import atomic_write_text, csv_text, json_safe
from neuronshapley.interrupts import deferred_interrupts

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
    #: what ci_low / ci_high are: "joint", "per-unit" or "exact" (see the module docstring)
    intervals: str = "per-unit"
    #: per-unit intervals beside joint ones (shape of values), else None
    unit_low: np.ndarray | None = None
    unit_high: np.ndarray | None = None

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
        if self.intervals not in INTERVAL_KINDS:
            raise ValueError(f"intervals must be one of {INTERVAL_KINDS}, got "
                             f"{self.intervals!r}")
        if (self.unit_low is None) != (self.unit_high is None):
            raise ValueError("give both unit_low and unit_high, or neither")
        if self.unit_low is not None:
            self.unit_low = np.asarray(self.unit_low, dtype=np.float64)
            self.unit_high = np.asarray(self.unit_high, dtype=np.float64)
            if self.unit_low.shape != self.values.shape or \
                    self.unit_high.shape != self.values.shape:
                raise ValueError("unit_low and unit_high must have the shape of values")

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
            {**self.info, "output": self.output_names[j]}, intervals=self.intervals,
            unit_low=None if self.unit_low is None else self.unit_low[:, j],
            unit_high=None if self.unit_high is None else self.unit_high[:, j],
        )

    def ranking(self) -> np.ndarray:
        """Player indices from the largest value to the smallest (scalar results)."""
        self._require_scalar()
        return np.argsort(-self.values, kind="stable")

    def top(self, k: int) -> list[str]:
        """Ids of the ``k`` players with the largest values."""
        return [self.players[i] for i in self.ranking()[:k]]

    def top_k_status(self, k: int | None = None) -> list[str] | None:
        """Per player: ``"in"`` (certainly in the top-k), ``"out"`` (certainly not) or
        ``"undecided"``, from joint intervals; ``k`` defaults to the estimate's own. None
        where the intervals are not joint (per-unit intervals certify nothing about a
        top-k) or no k is known. Exact results: in or out by their values."""
        self._require_scalar()
        k = k if k is not None else self.params.get("k")
        if not isinstance(k, int) or not 1 <= k <= self.n_players:
            return None
        if self.intervals == "exact":
            inside = np.zeros(self.n_players, dtype=bool)
            inside[self.ranking()[:k]] = True
            return ["in" if x else "out" for x in inside]
        if self.intervals != "joint":
            return None
        from neuronshapley.estimators.topk import membership

        sure_in, sure_out = membership(self.ci_low, self.ci_high, k)
        return ["in" if a else "out" if b else "undecided"
                for a, b in zip(sure_in, sure_out, strict=True)]

    def interval_label(self) -> str:
        """What ``ci_low``/``ci_high`` are, in a few words (for tables and reports)."""
        level = f"{100 * self.confidence:.0f}% " if self.confidence else ""
        return {"joint": f"joint {level}interval",
                "per-unit": f"per-unit {level}interval",
                "exact": "exact (no sampling error)"}[self.intervals]

    def table(self, k: int | None = None) -> list[dict[str, Any]]:
        """Rows ``{rank, player, value, ci_low, ci_high, samples}``, best first; with
        ``unit_low``, ``unit_high`` and ``top_k`` where the result has them."""
        self._require_scalar()
        order = self.ranking()[: k if k is not None else self.n_players]
        status = self.top_k_status()
        rows = []
        for r, i in enumerate(order):
            row: dict[str, Any] = {
                "rank": r + 1,
                "player": self.players[i],
                "value": float(self.values[i]),
                "ci_low": float(self.ci_low[i]),
                "ci_high": float(self.ci_high[i]),
                "samples": int(self.samples[i]),
            }
            if self.unit_low is not None and self.unit_high is not None:
                row.update(unit_low=float(self.unit_low[i]), unit_high=float(self.unit_high[i]))
            if status is not None:
                row["top_k"] = status[i]
            rows.append(row)
        return rows

    def display_table(self, k: int) -> tuple[list[str], list[list[str]]]:
        """Column names and formatted cells of the best ``k`` rows, as the command line and
        the report show them: rank, unit, value, [per-unit interval,] the labelled interval,
        [top-k status,] samples."""
        rows = self.table(min(k, self.n_players))
        per_unit = bool(rows) and "unit_low" in rows[0]
        status = bool(rows) and "top_k" in rows[0]
        level = f"{100 * self.confidence:.0f}% " if self.confidence else ""
        heads = ["rank", "unit", "value", *([f"per-unit {level}interval"] if per_unit else []),
                 self.interval_label(), *([f"top-{self.params.get('k')}"] if status else []),
                 "samples"]
        cells = []
        for r in rows:
            row = [str(r["rank"]), r["player"], f"{r['value']:+.4f}"]
            if per_unit:
                row.append(f"[{r['unit_low']:.4f}, {r['unit_high']:.4f}]")
            row.append(f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]")
            if status:
                row.append(r["top_k"])
            cells.append([*row, str(r["samples"])])
        return heads, cells

    def top_k_summary(self) -> str | None:
        """E.g. ``"top-10 (joint 95%): 7 certainly in, 60 certainly out, 13 undecided"``;
        None where the intervals certify no top-k."""
        status = self.top_k_status() if self.values.ndim == 1 else None
        if status is None or self.intervals != "joint":
            return None
        k = self.params.get("k")
        level = f"{100 * self.confidence:.0f}%" if self.confidence else ""
        return (f"top-{k} (joint {level}): {status.count('in')} certainly in, "
                f"{status.count('out')} certainly out, {status.count('undecided')} undecided")

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
            "intervals": self.intervals,
            "n_players": self.n_players,
            "output_names": self.output_names,
            "versions": self.versions,
            "info": json_safe(self.info, strict=False),
        }

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``values.csv`` and ``metadata.json`` into ``folder`` (created if needed).

        The files form one set: each is written atomically, ``metadata.json`` last and with
        the SHA-256 of ``values.csv`` in it, and Ctrl-C is held until both are written; so
        :meth:`load` detects a values file that does not belong to its metadata."""
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        header, rows = self._rows()
        values_text = csv_text([dict(zip(header, r, strict=True)) for r in rows], header)
        meta = self.metadata()
        meta["files"] = {VALUES_FILE: {"sha256": _sha256(values_text.encode("utf-8")),
                                       "rows": len(rows)}}
        with deferred_interrupts():
            atomic_write_text(out / VALUES_FILE, values_text)
            if self.state is not None:
                from neuronshapley.estimators.checkpoint import save_state

                save_state(out, *self.state)
            atomic_write_text(out / METADATA_FILE, json.dumps(meta, indent=2) + "\n")
        return out

    def _rows(self) -> tuple[list[str], list[list[Any]]]:
        scalar = self.values.ndim == 1
        header = list(_SCALAR_COLUMNS if scalar else _VECTOR_COLUMNS)
        values = self.values if not scalar else self.values[:, None]
        low, high = (a if not scalar else a[:, None] for a in (self.ci_low, self.ci_high))
        extra: list[np.ndarray] = []
        if self.unit_low is not None and self.unit_high is not None:
            header[-2:-2] = list(_UNIT_COLUMNS)
            extra = [a if not scalar else a[:, None] for a in (self.unit_low, self.unit_high)]
        status = self.top_k_status() if scalar else None
        if status is not None:
            header.insert(-2, "top_k")
        ranks = _ranks(values)
        names = self.output_names if not scalar else [None]
        assert names is not None
        rows: list[list[Any]] = []
        for i, pid in enumerate(self.players):
            for j, name in enumerate(names):
                row: list[Any] = [pid] + ([name] if not scalar else [])
                row += [repr(float(a[i, j])) for a in (values, low, high, *extra)]
                if status is not None:
                    row.append(status[i])
                rows.append(row + [int(self.samples[i]), int(ranks[i, j])])
        return header, rows

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> ShapleyResult:
        """Read a result written by :meth:`save`, checking that the files are whole.

        Raises :class:`~neuronshapley.errors.ResultFileError` naming the file and the
        problem (missing, not JSON, a missing column or field, a row cut short, a player
        listed twice, fewer or more players than ``metadata.json`` says, or a
        ``values.csv`` that is not the one its ``metadata.json`` was written with)."""
        src = Path(folder)
        csv_path, meta_path = src / VALUES_FILE, src / METADATA_FILE
        for p in (csv_path, meta_path):
            if not p.is_file():
                raise ResultFileError(
                    f"{p} not found: is {src} a neuronshapley result folder? (a run writes "
                    f"{VALUES_FILE} and {METADATA_FILE}; rerun it if one is missing)"
                )
        meta = _read_metadata(meta_path)
        names = meta["output_names"]
        raw = csv_path.read_bytes()
        table = _read_values(csv_path, raw, names)
        expected = meta.get("n_players")
        if expected is not None and len(table.players) != expected:
            raise ResultFileError(
                f"{csv_path} lists {len(table.players)} players but {meta_path.name} says "
                f"{expected}: the file is incomplete or was edited; rerun the command that "
                "wrote this folder"
            )
        entry = meta["files"].get(VALUES_FILE)
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if digest is not None and digest != _sha256(raw):
            raise ResultFileError(
                f"{csv_path} is not the file {meta_path.name} was written with (changed "
                "afterwards, or a save was interrupted): rerun the command that wrote this "
                "folder"
            )
        return cls(
            values=table.values, ci_low=table.ci_low, ci_high=table.ci_high,
            samples=table.samples, evaluations=meta["evaluations"], players=table.players,
            method=meta["method"], seed=meta["seed"], params=meta["params"],
            wall_time=float(meta["wall_time_s"]), confidence=meta["confidence"],
            output_names=names, versions=meta["versions"], info=meta["info"],
            intervals=meta["intervals"], unit_low=table.unit_low, unit_high=table.unit_high,
        )


VALUES_FILE = "values.csv"
METADATA_FILE = "metadata.json"
_SCALAR_COLUMNS = ("player", "value", "ci_low", "ci_high", "samples", "rank")
_VECTOR_COLUMNS = ("player", "output", "value", "ci_low", "ci_high", "samples", "rank")
_UNIT_COLUMNS = ("unit_low", "unit_high")
#: what ci_low / ci_high can be
INTERVAL_KINDS = ("joint", "per-unit", "exact")
#: metadata.json fields: (check, what it must be, default when absent; None: required)
_META_FIELDS: dict[str, tuple[Any, str, Any]] = {
    "method": (lambda v: isinstance(v, str) and v, "a method name", None),
    "evaluations": (lambda v: _is_int(v) and v >= 0, "an integer >= 0", None),
    "seed": (lambda v: v is None or _is_int(v), "an integer or null", ...),
    "params": (lambda v: isinstance(v, dict), "an object", ...),
    "wall_time_s": (lambda v: _is_number(v) and v >= 0, "a number >= 0", 0.0),
    "confidence": (lambda v: v is None or (_is_number(v) and 0 < v <= 1),
                   "a number in (0, 1] or null", ...),
    "intervals": (lambda v: v in INTERVAL_KINDS, f"one of {INTERVAL_KINDS}", "per-unit"),
    "n_players": (lambda v: v is None or (_is_int(v) and v >= 0), "an integer >= 0", ...),
    "output_names": (lambda v: v is None or (isinstance(v, list) and v and all(
        isinstance(n, str) for n in v) and len(set(v)) == len(v)),
        "a list of distinct names or null", ...),
    "versions": (lambda v: isinstance(v, dict), "an object", ...),
    "info": (lambda v: isinstance(v, dict), "an object", ...),
    "files": (lambda v: isinstance(v, dict), "an object", ...),
    "format_version": (lambda v: _is_int(v), "an integer", ...),
}
_EMPTY = {"seed": None, "params": {}, "confidence": None, "n_players": None,
          "output_names": None, "versions": {}, "info": {}, "files": {},
          "format_version": FORMAT_VERSION}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _read_metadata(path: Path) -> dict[str, Any]:
    """``metadata.json`` parsed and checked field by field (defaults filled in)."""
    fix = "rerun the command that wrote this folder, or restore the file"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultFileError(f"{path} is not valid JSON ({exc}): {fix}") from None
    if not isinstance(meta, dict):
        raise ResultFileError(f"{path} must hold a JSON object, not {type(meta).__name__}: "
                              f"{fix}")
    version = meta.get("format_version", FORMAT_VERSION)
    if _is_int(version) and version > FORMAT_VERSION:
        raise ResultFileError(f"{path} has format_version {version}, newer than this "
                              f"version reads ({FORMAT_VERSION}): upgrade neuronshapley")
    for key, (ok, what, default) in _META_FIELDS.items():
        if key not in meta:
            if default is None:
                raise ResultFileError(f"{path} has no {key!r}: {fix}")
            meta[key] = _EMPTY[key] if default is ... else default
        elif not ok(meta[key]):
            raise ResultFileError(f"{path}: {key} = {meta[key]!r} is not {what}: {fix}")
    return meta


@dataclass
class _Table:
    players: list[str]
    values: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    samples: np.ndarray
    unit_low: np.ndarray | None = None
    unit_high: np.ndarray | None = None


def _read_values(path: Path, raw: bytes, names: list[str] | None) -> _Table:
    """``values.csv`` parsed and checked row by row (columns, fields, duplicates)."""
    fix = "rerun the command that wrote this folder, or restore the file"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultFileError(f"{path} is not UTF-8 text ({exc}): {fix}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        raise ResultFileError(f"{path} is empty: {fix}")
    needed = _VECTOR_COLUMNS if names else _SCALAR_COLUMNS
    missing = [c for c in needed if c not in header]
    if missing:
        raise ResultFileError(f"{path} has no column {', '.join(map(repr, missing))} (its "
                              f"header: {','.join(header)}): {fix}")
    units = all(c in header for c in _UNIT_COLUMNS)
    fields = ("value", "ci_low", "ci_high", *(_UNIT_COLUMNS if units else ()))
    col = {c: header.index(c) for c in (*needed, *fields)}
    d = len(names) if names else 1
    where = {n: j for j, n in enumerate(names or [])}
    order: dict[str, int] = {}
    cells: dict[tuple[int, int], tuple[float, ...]] = {}
    samples: dict[int, int] = {}
    for line, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ResultFileError(f"{path} line {line} has {len(row)} fields, not "
                                  f"{len(header)} (the file was cut): {fix}")
        player = row[col["player"]]
        i = order.setdefault(player, len(order))
        j = 0
        if names:
            out = row[col["output"]]
            if out not in where:
                raise ResultFileError(f"{path} line {line}: output {out!r} is not one of "
                                      f"metadata.json's output_names: {fix}")
            j = where[out]
        if (i, j) in cells:
            twice = f"{player!r}" + (f" (output {row[col['output']]!r})" if names else "")
            raise ResultFileError(f"{path} line {line} lists {twice} a second time: {fix}")
        try:
            cells[i, j] = tuple(float(row[col[c]]) for c in fields)
            count = int(row[col["samples"]])
            int(row[col["rank"]])
        except ValueError:
            raise ResultFileError(f"{path} line {line} holds a field that is not a number: "
                                  f"{','.join(row)!r}: {fix}") from None
        samples[i] = count
    n = len(order)
    if n == 0:
        raise ResultFileError(f"{path} lists no players: {fix}")
    if len(cells) != n * d:
        raise ResultFileError(f"{path} lists {len(cells)} rows for {n} players and {d} "
                              f"outputs ({n * d} expected): the file is incomplete: {fix}")
    arrays = np.zeros((len(fields), n, d))
    for (i, j), cell in cells.items():
        arrays[:, i, j] = cell
    if not names:
        arrays = arrays[:, :, 0]
    return _Table(list(order), arrays[0], arrays[1], arrays[2],
                  np.array([samples[i] for i in range(n)], dtype=np.int64),
                  *(arrays[3], arrays[4]) if units else (None, None))
