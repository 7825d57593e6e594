"""Results in the terminal: the top units as a rich table (the command line and the demo)."""

from __future__ import annotations

from typing import Any

from neuronshapley.result import ShapleyResult


def top_units_table(result: ShapleyResult, k: int, title: str) -> Any:
    """A :class:`rich.table.Table` of the best ``k`` units (``result.display_table``)."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    heads, cells = result.display_table(k)
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for col in heads:
        label = col == "unit" or col.startswith("top-")
        table.add_column(col, justify="left" if label else "right", no_wrap=label,
                         min_width=9 if col.startswith("top-") else None)
    for row in cells:
        table.add_row(*(escape(c) for c in row))
    return table


__all__ = ["top_units_table"]
