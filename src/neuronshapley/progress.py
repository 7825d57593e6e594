"""Progress reporting for long estimations: a rich bar, a user callback, or nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ProgressFn = Callable[[dict[str, Any]], None]


class RichProgress:
    """A rich progress bar over the evaluation budget (or walks when there is none)."""

    def __init__(self, total: float | None, description: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("evals"),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self._task = self._progress.add_task(description, total=total, status="")
        self._progress.start()

    def __call__(self, state: dict[str, Any]) -> None:
        status = f"walks {state.get('walks', 0)}"
        if state.get("active") is not None:
            status += f" | in play {state['active']}"
        self._progress.update(self._task, completed=state["evaluations"], status=status)

    def close(self) -> None:
        self._progress.stop()


def make_progress(
    progress: bool | ProgressFn | None, total: float | None, description: str
) -> tuple[ProgressFn, Callable[[], None]]:
    """A ``(report, close)`` pair for ``progress`` (True: rich bar; callable: itself)."""
    if progress is True:
        bar = RichProgress(total, description)
        return bar, bar.close
    if callable(progress):
        return progress, lambda: None
    return (lambda state: None), lambda: None
