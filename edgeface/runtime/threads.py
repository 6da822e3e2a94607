"""How many threads a user may ask an interpreter for: light enough for the CLI's start-up (no numpy)."""

from __future__ import annotations

import os

from edgeface.errors import EdgefaceError


def max_threads() -> int:
    """The most CPU threads one interpreter may start: four per core. A number beyond that buys nothing, and an
    unbounded one (``--threads 100000``) exhausts the machine's thread limit for every other process."""
    return 4 * (os.cpu_count() or 1)


def check_threads(threads: int) -> int:
    high = max_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= high:
        raise EdgefaceError(f"--threads must be a whole number from 1 to {high} (4 per core), got {threads!r}")
    return threads


def check_workers(workers: int, option: str = "--workers") -> int:
    """Worker processes or threads a command starts side by side: bounded like ``--threads`` (a pool of 100,000
    would exhaust the machine's process and thread limits before it did any work)."""
    high = max_threads()
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= high:
        raise EdgefaceError(f"{option} must be a whole number from 1 to {high} (4 per core), got {workers!r}")
    return workers
