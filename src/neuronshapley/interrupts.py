"""Ctrl-C (SIGINT) held back while work must not be cut in half.

:func:`deferred_interrupts` holds every Ctrl-C until its block ends (a step applied, a file
set written) and then delivers one. :func:`later_interrupts_deferred` lets the first Ctrl-C
through as usual and holds any further ones until the block ends, so what was computed
before the first can still be saved when an impatient user presses twice. Outside the main
thread (where Python handles no signals) both are no-ops.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["InterruptGuard", "deferred_interrupts", "later_interrupts_deferred"]


class InterruptGuard:
    """The SIGINT handler of a guarded block: raises while ``passes`` is true (once), else
    records the signal for delivery when the block ends."""

    def __init__(self, passes: bool) -> None:
        self.passes = passes
        self.caught: list[Any] = []

    def hold(self) -> None:
        """From now on, every Ctrl-C waits until the block ends."""
        self.passes = False

    def take(self) -> bool:
        """Whether a Ctrl-C was held back; it is then handled by the caller, not delivered."""
        held, self.caught = bool(self.caught), []
        return held

    def __call__(self, _signum: int, frame: Any) -> None:
        if self.passes:
            self.passes = False
            raise KeyboardInterrupt
        self.caught.append(frame)


@contextmanager
def _guarded(guard: InterruptGuard) -> Iterator[InterruptGuard]:
    """Install ``guard`` for SIGINT; on a normal exit deliver one KeyboardInterrupt (or call
    the previous Python handler) if it caught any. On an exception the previous handler comes
    back and the exception goes on unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield guard
        return
    try:
        previous = signal.signal(signal.SIGINT, guard)
    except ValueError:  # pragma: no cover - signals not allowed here (embedded interpreter)
        yield guard
        return
    try:
        yield guard
    except BaseException:
        signal.signal(signal.SIGINT, previous)
        raise
    signal.signal(signal.SIGINT, previous)
    if guard.caught:
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signal.SIGINT, guard.caught[0])
        elif previous is not signal.SIG_IGN:
            raise KeyboardInterrupt


def deferred_interrupts() -> Any:
    """Inside, Ctrl-C is recorded instead of raised; on leaving, one is delivered."""
    return _guarded(InterruptGuard(passes=False))


def later_interrupts_deferred() -> Any:
    """Inside, the first Ctrl-C raises KeyboardInterrupt (until ``guard.hold()``); any later
    one is recorded and delivered when the block ends. Yields the guard. Wrap "compute, and
    on Ctrl-C save what was computed" in it, calling ``hold()`` once the saving starts."""
    return _guarded(InterruptGuard(passes=True))
