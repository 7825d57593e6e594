"""Command line: ``neuronshapley <command>`` (or ``python -m neuronshapley <command>``).

Commands are thin: parse options, call the library, print (see :mod:`.common` for how errors
become one-line messages). Adding commands: write a module with a
``register(app: typer.Typer) -> None`` function that defines them (``@app.command()``), and
call it in :func:`build_app`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from neuronshapley.cli import repair, run, studies
from neuronshapley.cli.common import library_errors, out_console


# --------------------------------------------------------------------------- commands
def _register_core(app: typer.Typer) -> None:
    from neuronshapley.pipeline.demo import DEFAULT_K, DEFAULT_MAX_EVALUATIONS

    @app.command()
    def demo(
        out: Annotated[
            Path, typer.Option("--out", help="Folder for the result files.", file_okay=False)
        ] = Path("neuronshapley-out"),
        seed: Annotated[
            int, typer.Option(help="Seed of the data split, training, walks and ablation.")
        ] = 0,
        k: Annotated[
            int, typer.Option("--k", min=1, help="Size of the top set TMAB certifies.")
        ] = DEFAULT_K,
        max_evaluations: Annotated[
            int, typer.Option(min=1, help="TMAB budget of game evaluations.")
        ] = DEFAULT_MAX_EVALUATIONS,
        threads: Annotated[
            int, typer.Option(min=1, help="Torch CPU threads (the machine may be shared).")
        ] = 1,
        progress: Annotated[
            bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
        ] = True,
        overwrite: Annotated[
            bool, typer.Option("--overwrite/--no-overwrite",
                               help="Replace the files of an earlier result in --out.")
        ] = False,
    ) -> None:
        """Certify the top filters of a small digits CNN's last conv layer; check by ablation."""
        from neuronshapley.pipeline.demo import run_demo

        with library_errors():
            run_demo(out_dir=out, seed=seed, k=k, max_evaluations=max_evaluations,
                     num_threads=threads, progress=progress, console=out_console(),
                     overwrite=overwrite)

    @app.command()
    def version() -> None:
        """Print the version of neuronshapley and of the libraries it uses."""
        from neuronshapley._version import __version__
        from neuronshapley.result import library_versions

        others = ", ".join(f"{name} {v}" for name, v in library_versions().items()
                           if name != "neuronshapley")
        out_console().print(f"neuronshapley {__version__} ({others})", highlight=False)


def build_app() -> typer.Typer:
    """The typer app with every command."""
    app = typer.Typer(
        name="neuronshapley",
        help="Find the neurons responsible for what a trained PyTorch network does "
        "(Neuron Shapley, Ghorbani & Zou 2020).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_show_locals=False,
    )
    _register_core(app)
    for module in (run, studies, repair):
        module.register(app)
    return app


app = build_app()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``neuronshapley`` script.

    From the shell (``argv`` None) the process restarts once with faster malloc settings
    (see :mod:`neuronshapley.runtime`); set ``NEURONSHAPLEY_NO_REEXEC=1`` to prevent it.
    """
    if argv is None:
        from neuronshapley.runtime import reexec_with_fast_malloc

        reexec_with_fast_malloc(["-m", "neuronshapley", *sys.argv[1:]])
    app(args=list(argv) if argv is not None else None, prog_name="neuronshapley")
