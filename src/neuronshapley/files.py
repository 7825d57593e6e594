"""Writing result files: atomically (a crash never leaves half a file) and as plain text."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through ``write(fileobj)`` into a temporary file, then rename it.

    The file is flushed to disk before the rename and gets mode 0644 (``mkstemp`` would
    leave 0600), so readers see either the old file or the complete new one.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`atomic_write` for text (UTF-8)."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def csv_text(rows: Sequence[Mapping[str, Any]], fieldnames: Sequence[str] | None = None) -> str:
    """CSV text of dict rows: floats as ``repr`` (exact), None empty.

    The header is ``fieldnames`` (default: the first row's keys; no rows and no
    ``fieldnames``: empty text).
    """
    if fieldnames is None:
        if not rows:
            return ""
        fieldnames = list(rows[0])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fieldnames), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else repr(float(v))
                             if isinstance(v, (float, np.floating)) else v)
                         for k, v in row.items()})
    return buf.getvalue()


def json_safe(obj: Any, strict: bool = True) -> Any:
    """``obj`` in plain JSON types, for :func:`json.dumps`.

    Mappings keep JSON keys (str, int, float, bool, None; others become ``str``), tuples
    and numpy arrays become lists, numpy scalars Python numbers, anything else its ``repr``.
    ``strict``: NaN becomes None (strict JSON); ``strict=False`` keeps NaN (written ``NaN``).
    """
    if isinstance(obj, Mapping):
        return {(k if k is None or isinstance(k, (str, int, float)) else str(k)):
                json_safe(v, strict) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v, strict) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist(), strict)
    if isinstance(obj, np.generic):
        return json_safe(obj.item(), strict)
    if isinstance(obj, float):
        return None if strict and obj != obj else obj
    if obj is None or isinstance(obj, (str, int)):
        return obj
    return repr(obj)
