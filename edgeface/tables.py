"""Printing results: one rich table for people, one JSON document for machines."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

stdout = Console()
if not stdout.is_terminal:  # logs and pipes: do not squeeze tables into 80 columns
    stdout = Console(width=160)


def json_safe(obj: Any) -> Any:
    """NaN and infinities as null: ``--json`` output is always valid JSON (json.dumps would write bare NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col == columns[0] else "right")
    for row in rows:
        table.add_row(*(fmt(v) for v in row))
    stdout.print(table)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"
