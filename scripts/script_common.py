"""What the study scripts share: timestamped log lines and Markdown tables.

The scripts run as ``python scripts/<name>.py`` (this folder is then on ``sys.path``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any


def log(msg: str) -> None:
    """``[HH:MM:SS] msg``, flushed (long runs are followed in a log file)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table: the header, its rule, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
