"""Progress bars on stderr (so ``--json`` on stdout stays clean), silenced by EDGEFACE_QUIET=1."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")
stderr = Console(stderr=True)


def progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=stderr, transient=False,
                    disable=os.environ.get("EDGEFACE_QUIET") == "1")


def track(items: Iterable[T], total: int | None = None, description: str = "working") -> Iterator[T]:
    with progress_bar() as bar:
        yield from bar.track(items, total=total, description=description)
