"""Printing: JSON for machines, aligned tables and sizes for people."""

from __future__ import annotations

import sys

import click


def emit_json(data) -> None:
    import json  # only commands asked for --json pay for it

    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def table(rows: list[dict], columns: list[tuple[str, str]], *, max_width: int = 60) -> None:
    """Print `rows` under headings; `columns` is [(key, heading)]. Long cells are cut to `max_width`."""

    def cell(value) -> str:
        text = "" if value is None else str(value)
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    grid = [[heading for _, heading in columns]] + [[cell(r.get(k)) for k, _ in columns] for r in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    for line in grid:
        click.echo("  ".join(text.ljust(w) for text, w in zip(line, widths, strict=True)).rstrip())


def progress_enabled(quiet: bool) -> bool:
    return not quiet and sys.stderr.isatty()
