"""How many threads a user may ask an interpreter for: light enough for the CLI's start-up (no numpy)."""

from __future__ import annotations

import os

from edgeface.errors import EdgefaceError


def max_threads() -> int:
    """The most CPU threads one interpreter may start: four per core. A number beyond that buys nothing, and an
    unbounded one (``--threads 100000``) exhausts the machine's thread limit for every other process."""
    return 4 * (os.cpu_count() or 1)


def check_count(count: int, option: str) -> int:
    """A count of threads or processes a user asked for, refused outside 1 to ``max_threads()`` with one line."""
    high = max_threads()
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= high:
        raise EdgefaceError(f"{option} must be a whole number from 1 to {high} (4 per core), got {count!r}")
    return count


def check_threads(threads: int) -> int:
    return check_count(threads, "--threads")


def check_workers(workers: int, option: str = "--workers") -> int:
    """Worker processes or threads a command starts side by side: bounded like ``--threads`` (a pool of 100,000
    would exhaust the machine's process and thread limits before it did any work)."""
    return check_count(workers, option)
