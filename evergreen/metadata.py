"""What a person reads in the Dagster UI, one way each: markdown tables, and plots (inline PNG,
the file's path, and its address on the report server).

Dagster is imported only where metadata values are made, so the tables serve any layer.
Every asset's tables and plots come from here, so they look and behave alike: a cell's ``|``
never breaks a table, a plot always has the same three entries (``<name>_plot`` shows it inline,
``<name>_png`` is the file, ``<name>_url`` opens it in a browser while ``evergreen ui`` runs).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evergreen.settings import EvergreenSettings

if TYPE_CHECKING:
    from dagster import MetadataValue


def markdown_table(
    columns: Sequence[str], rows: Iterable[Sequence[object]], align: str = ""
) -> str:
    """A markdown table; ``align`` has one letter per column, ``l`` or ``r`` (numbers), left
    by default. Cells are shown with ``str`` after their ``|`` and line breaks are escaped."""
    align = align.ljust(len(columns), "l")
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align[: len(columns)]) + "|"
    lines = [_row(columns), rule]
    lines += [_row(row) for row in rows]
    return "\n".join(lines)


def _row(cells: Sequence[object]) -> str:
    shown = (str(c).replace("|", "\\|").replace("\n", " ") for c in cells)
    return "| " + " | ".join(shown) + " |"


def inline_png(path: Path, alt: str) -> str:
    """Markdown that shows a PNG inline (Dagster's UI renders data URIs)."""
    encoded = base64.b64encode(Path(path).read_bytes()).decode()
    return f"![{alt}](data:image/png;base64,{encoded})"


def plot_metadata(
    settings: EvergreenSettings, name: str, path: Path, alt: str
) -> dict[str, MetadataValue]:
    """A plot's three metadata entries: inline, the file, and its report-server address."""
    from dagster import MetadataValue

    from evergreen.report_server import report_url

    return {
        f"{name}_plot": MetadataValue.md(inline_png(path, alt)),
        f"{name}_png": MetadataValue.path(str(path)),
        f"{name}_url": MetadataValue.url(report_url(settings, path)),
    }
