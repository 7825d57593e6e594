"""Ctrl-C held back while a step is applied or a file set is written, delivered right after."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Inside, SIGINT is recorded instead of raised; on leaving, one KeyboardInterrupt is
    raised (or the previous handler called) if any came. Outside the main thread, a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[Any] = []

    def hold(signum: int, frame: Any) -> None:
        got.append(frame)

    try:
        previous = signal.signal(signal.SIGINT, hold)
    except ValueError:  # not allowed here (e.g. an embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if got:
            if callable(previous) and previous is not signal.default_int_handler:
                previous(signal.SIGINT, got[0])
            elif previous is not signal.SIG_IGN:
                raise KeyboardInterrupt


__all__ = ["deferred_interrupts"]
