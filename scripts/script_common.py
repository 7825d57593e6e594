"""What the study scripts share: timestamped log lines and Markdown tables.

The scripts run as ``python scripts/<name>.py`` (this folder is then on ``sys.path``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from neuronshapley.files import atomic_write_text


def log(msg: str) -> None:
    """``[HH:MM:SS] msg``, flushed (long runs are followed in a log file)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table: the header, its rule, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def finish(out: Path, markdown: str, claims: Sequence[str], wall: float) -> int:
    """Write ``out/RESULTS.md``, say where and how long it took, print the claims; exit 0."""
    atomic_write_text(out / "RESULTS.md", markdown)
    log(f"done in {wall / 60:.1f} min: {out / 'RESULTS.md'}")
    for line in claims:
        print(" -", line)
    return 0
