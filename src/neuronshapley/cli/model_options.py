"""The model and data options of ``run``, shared by the study commands.

:func:`with_model_options` adds them to a command (in a help panel of their own) and hands the
command one :class:`ModelOptions` instead of a dozen parameters.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from neuronshapley.cli.parsing import parse_normalize, parse_size

PANEL = "Your model and data"
MODEL_HELP = (
    "A built-in setup (digits, onet), or your model: package.module:factory or file.py:factory "
    "(with --weights), a torch.export program (.pt2), or a pickled module (--trust-pickle)."
)


@dataclass
class ModelOptions:
    """What the user gave of the model and data options (None: not given)."""

    model: str | None = None
    data: str | None = None
    heldout: str | None = None
    heldout_fraction: float | None = None
    weights: str | None = None
    trust_pickle: bool = False
    eval_mode: bool = False
    x_key: str = "x"
    y_key: str = "y"
    image_size: str | None = None
    color: str = "auto"
    normalize: str | None = None
    players: list[str] | None = None
    include_output_layer: bool = False

    def is_user_model(self, built_in: tuple[str, ...]) -> bool:
        """Whether these options name the user's own model (not a built-in setup)."""
        if self.model is None or (self.model in built_in and self.data is None):
            given = [f"--{name.replace('_', '-')}" for name in
                     ("data", "heldout", "heldout_fraction", "weights", "players")
                     if getattr(self, name) is not None]
            if given:
                raise typer.BadParameter(
                    f"{', '.join(given)} go(es) with your own --model (module:factory, "
                    "file.py:factory, .pt2 or a pickled module); the built-in setups bring "
                    "their own data and units", param_hint="--model")
            return False
        if self.data is None and ":" not in self.model and "." not in self.model:
            raise typer.BadParameter(
                f"unknown study model {self.model!r}: choose a built-in setup "
                f"({', '.join(built_in) or 'none here'}) or give your own model "
                "(module:factory, file.py:factory, .pt2) with --data", param_hint="--model")
        return True

    def run_settings(self, seed: int) -> dict[str, Any]:
        """The :class:`~neuronshapley.pipeline.runner.RunConfig` fields they set."""
        return {
            "model": self.model, "data": self.data, "weights": self.weights,
            "trust_pickle": self.trust_pickle, "eval_mode": self.eval_mode,
            "x_key": self.x_key, "y_key": self.y_key,
            "image_size": parse_size(self.image_size), "color": self.color,
            "normalize": parse_normalize(self.normalize), "players": self.players or None,
            "include_output_layer": self.include_output_layer, "seed": seed,
        }


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)


_PARAMS = [
    _option("model", Annotated[str | None, typer.Option(help=MODEL_HELP, rich_help_panel=PANEL)],
            None),
    _option("data", Annotated[str | None, typer.Option(
        help="Valuation split (values are estimated on it): .npz (x, y), .pt or an image "
             "folder.", rich_help_panel=PANEL)], None),
    _option("heldout", Annotated[str | None, typer.Option(
        help="Held-out split the curves and repaired scores are measured on (never used for "
             "the values).", rich_help_panel=PANEL)], None),
    _option("heldout_fraction", Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="Without --heldout: share of --data set aside as the held-out "
                               "split (seeded, stratified).", rich_help_panel=PANEL)], None),
    _option("weights", Annotated[str | None, typer.Option(
        help="State dict for a factory model (torch.load(weights_only=True)).",
        rich_help_panel=PANEL)], None),
    _option("trust_pickle", Annotated[bool, typer.Option(
        "--trust-pickle/--no-trust-pickle", help="Allow loading a pickled model (runs code "
        "from the file).", rich_help_panel=PANEL)], False),
    _option("eval_mode", Annotated[bool, typer.Option(
        "--eval/--no-eval", help="Call model.eval() on a model saved in training mode.",
        rich_help_panel=PANEL)], False),
    _option("x_key", Annotated[str, typer.Option(help="Name of the inputs array.",
                                                 rich_help_panel=PANEL)], "x"),
    _option("y_key", Annotated[str, typer.Option(help="Name of the labels array.",
                                                 rich_help_panel=PANEL)], "y"),
    _option("image_size", Annotated[str | None, typer.Option(
        help="Resize images to N or HxW.", rich_help_panel=PANEL)], None),
    _option("color", Annotated[str, typer.Option(help="Image folders: auto, rgb or gray.",
                                                 rich_help_panel=PANEL)], "auto"),
    _option("normalize", Annotated[str | None, typer.Option(
        help="'dataset' or per-channel 'MEANS/STDS'.", rich_help_panel=PANEL)], None),
    _option("players", Annotated[list[str] | None, typer.Option(
        "--players", "--layers", help="Layer name or glob pattern (repeatable); default: "
        "every conv, hidden linear and attention layer.", rich_help_panel=PANEL)], None),
    _option("include_output_layer", Annotated[bool, typer.Option(
        "--include-output-layer/--no-include-output-layer",
        help="Also value the logit layer's units.", rich_help_panel=PANEL)], False),
]


def with_model_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the model and data options; it receives them as ``spec``."""
    sig = inspect.signature(command, eval_str=True)
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in sig.parameters.values()
           if p.name != "spec"]
    names = [p.name for p in _PARAMS]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        spec = ModelOptions(**{name: kwargs.pop(name) for name in names})
        command(spec=spec, **kwargs)

    wrapper.__signature__ = sig.replace(parameters=[*own, *_PARAMS])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *_PARAMS]}
    return wrapper
