"""Command line: ``neuronshapley <command>`` (or ``python -m neuronshapley <command>``).

Commands are thin: parse options, call the library, print. Errors the library raises for bad
inputs (``ValueError`` and its subclasses ``GameError`` / ``PlayerError``, ``AblationError``,
``OSError``) become a one-line red message and exit code 2, never a traceback; run a command
inside :func:`library_errors` to get that.

Adding commands: write a module with a ``register(app: typer.Typer) -> None`` function that
defines them (``@app.command()``), using :func:`library_errors`, :func:`out_console` and
:func:`err_console` from here, and list the module in :data:`COMMAND_MODULES`.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from .ablation import AblationError

#: Exit code for errors in the user's inputs reported by the library (same as usage errors).
EXIT_INPUT_ERROR = 2
#: Exit code after Ctrl-C.
EXIT_INTERRUPTED = 130
#: Exceptions shown as a one-line message instead of a traceback.
LIBRARY_ERRORS: tuple[type[BaseException], ...] = (ValueError, AblationError, OSError)
#: Modules defining more commands, each with ``register(app)``; imported by :func:`build_app`.
COMMAND_MODULES: tuple[str, ...] = (
    "neuronshapley.cli_run", "neuronshapley.cli_studies", "neuronshapley.cli_repair",
)


def out_console() -> Console:
    """Console for a command's normal output (stdout)."""
    return Console()


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


# --------------------------------------------------------------------------- commands
def _register_core(app: typer.Typer) -> None:
    from .demo import DEFAULT_MAX_EVALUATIONS

    @app.command()
    def demo(
        out: Annotated[
            Path, typer.Option("--out", help="Folder for the result files.", file_okay=False)
        ] = Path("neuronshapley-out"),
        seed: Annotated[
            int, typer.Option(help="Seed of the data split, training, walks and ablation.")
        ] = 0,
        k: Annotated[
            int, typer.Option("--k", min=1, help="Size of the top set TMAB separates.")
        ] = 10,
        max_evaluations: Annotated[
            int, typer.Option(min=1, help="TMAB budget of game evaluations.")
        ] = DEFAULT_MAX_EVALUATIONS,
        threads: Annotated[
            int, typer.Option(min=1, help="Torch CPU threads (the machine may be shared).")
        ] = 1,
        progress: Annotated[
            bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
        ] = True,
    ) -> None:
        """Value the 80 conv filters of a small digits CNN and check the values by ablation."""
        from .demo import run_demo

        with library_errors():
            run_demo(out_dir=out, seed=seed, k=k, max_evaluations=max_evaluations,
                     num_threads=threads, progress=progress, console=out_console())

    @app.command()
    def version() -> None:
        """Print the version of neuronshapley and of the libraries it uses."""
        from . import __version__
        from .result import library_versions

        others = ", ".join(f"{name} {v}" for name, v in library_versions().items()
                           if name != "neuronshapley")
        out_console().print(f"neuronshapley {__version__} ({others})", highlight=False)


def build_app(modules: Sequence[str] = COMMAND_MODULES) -> typer.Typer:
    """The typer app with the core commands and those of ``modules``."""
    app = typer.Typer(
        name="neuronshapley",
        help="Find the neurons responsible for what a trained PyTorch network does "
        "(Neuron Shapley, Ghorbani & Zou 2020).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
    )
    _register_core(app)
    for name in modules:
        importlib.import_module(name).register(app)
    return app


app = build_app()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``neuronshapley`` script.

    From the shell (``argv`` None) the process restarts once with faster malloc settings
    (see :mod:`neuronshapley.runtime`); set ``NEURONSHAPLEY_NO_REEXEC=1`` to prevent it.
    """
    if argv is None:
        from .runtime import reexec_with_fast_malloc

        reexec_with_fast_malloc(["-m", "neuronshapley", *sys.argv[1:]])
    app(args=list(argv) if argv is not None else None, prog_name="neuronshapley")
