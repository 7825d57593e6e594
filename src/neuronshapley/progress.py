"""Progress reporting for long estimations: a rich bar, a user callback, or nothing.

Estimators report a ``state`` dict after each step: ``evaluations`` (game evaluations so
far), ``walks`` and, for the bandit, ``active`` (units still in play).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressFn = Callable[[dict[str, Any]], None]


class RichProgress:
    """A rich bar: evaluations done of ``total`` (the budget; None: unknown), units still in
    play, walks, elapsed time and time left. Draws on ``console`` (default: stdout)."""

    def __init__(self, total: float | None, description: str, console: Any = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.total = None if total is None else int(total)
        self._progress = Progress(
            TextColumn(f"[bold]{description}"), BarColumn(bar_width=16), MofNCompleteColumn(),
            TextColumn("evals · {task.fields[status]}"), TimeElapsedColumn(),
            TextColumn("left ≤"), TimeRemainingColumn(compact=True),
            console=console, transient=False,
        )
        self._task = self._progress.add_task(description, total=self.total, status="")
        self._progress.start()

    def __call__(self, state: dict[str, Any]) -> None:
        status = f"{state.get('walks', 0)} walks"
        if state.get("active") is not None:
            status = f"{state['active']} units in play, " + status
        done = int(state.get("evaluations", 0))
        if self.total is not None:
            done = min(done, self.total)  # the last step may overshoot the budget
        self._progress.update(self._task, completed=done, status=status)

    def close(self) -> None:
        self._progress.stop()


def make_progress(
    progress: bool | ProgressFn | None, total: float | None, description: str,
    console: Any = None,
) -> tuple[ProgressFn, Callable[[], None]]:
    """A ``(report, close)`` pair for ``progress`` (True: rich bar; callable: itself;
    False/None: a report that does nothing)."""
    if progress is True:
        bar = RichProgress(total, description, console)
        return bar, bar.close
    if callable(progress):
        return progress, lambda: None
    return (lambda state: None), lambda: None
