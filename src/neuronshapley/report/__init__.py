"""The report: one self-contained HTML page and PNG figures built from a saved result.

``write_report(result_dir, model=None, game=None, ...)`` (see :mod:`.html`) is called by
``neuronshapley run``, ``neuronshapley report RESULT_DIR`` and the demo. Figures are in
:mod:`.figures`; top examples and feature visualisation in :mod:`.visualize`.
"""

from neuronshapley.report.html import ReportError, render_html, write_report

__all__ = ["ReportError", "render_html", "write_report"]
