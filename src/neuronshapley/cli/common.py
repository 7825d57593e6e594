"""What every command shares: exit codes, consoles, and library errors as one-line messages.

Errors the library raises for bad inputs (:class:`~neuronshapley.errors.NeuronShapleyError`,
``ValueError``, ``OSError``) become a one-line red message and exit code 2, never a
traceback; run a command inside :func:`library_errors` to get that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from neuronshapley.errors import NeuronShapleyError

#: Exit code for errors in the user's inputs reported by the library (same as usage errors).
EXIT_INPUT_ERROR = 2
#: Exit code after Ctrl-C.
EXIT_INTERRUPTED = 130
#: Exceptions shown as a one-line message instead of a traceback.
LIBRARY_ERRORS: tuple[type[BaseException], ...] = (NeuronShapleyError, ValueError, OSError)

#: The ``--out`` option of the study commands (each gives its own default folder).
OutFolder = Annotated[Path, typer.Option("--out", help="Folder for the result files.",
                                         file_okay=False)]
#: The ``--threads`` option of the study commands.
Threads = Annotated[int, typer.Option(min=1, help="Torch CPU threads.")]
#: The ``--progress/--no-progress`` option of the study commands.
ShowProgress = Annotated[bool, typer.Option("--progress/--no-progress",
                                            help="Print progress lines.")]


def int_list(text: str | None, what: str) -> list[int] | None:
    """``"1,2, 3"`` -> ``[1, 2, 3]``; None or blank -> None; ``what`` names the option."""
    if text is None or not text.strip():
        return None
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, got {text!r}") from None


def out_console() -> Console:
    """Console for a command's normal output (stdout)."""
    return Console()


@contextmanager
def study_command(threads: int, progress: bool
                  ) -> Iterator[tuple[Console, Callable[[str], None] | None]]:
    """The body of a study command: ``(console, log)`` (log prints progress lines, None
    without ``progress``), the library's errors as one line, ``threads`` torch threads."""
    from neuronshapley.runtime import torch_threads

    console = out_console()
    log = (lambda m: console.print(m, highlight=False)) if progress else None
    with library_errors(), torch_threads(threads):
        yield console, log


def err_console() -> Console:
    """Console for error messages (stderr), without wrapping."""
    return Console(stderr=True, soft_wrap=True, highlight=False)


def fail(message: str, code: int = EXIT_INPUT_ERROR) -> typer.Exit:
    """Print ``message`` as one red line on stderr; return the ``typer.Exit`` to raise."""
    one_line = " ".join(message.split()) or "failed"
    err_console().print(f"[bold red]error:[/] [red]{escape(one_line)}[/]")
    return typer.Exit(code)


@contextmanager
def library_errors() -> Iterator[None]:
    """Turn the library's input errors and Ctrl-C into a short message and an exit code."""
    try:
        yield
    except KeyboardInterrupt:
        raise fail("interrupted", EXIT_INTERRUPTED) from None
    except LIBRARY_ERRORS as exc:
        raise fail(str(exc) or type(exc).__name__) from None
