"""Progress of building the demo warehouse (``syncer demo``): rows filled so far, never silent.

Kept apart from :mod:`syncer.sources.demo` (the data's shape) so that module stays about the data.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DemoProgress", "run_with_progress"]

#: build_demo's progress hook: (table being filled, rows of the demo filled so far, rows in all)
DemoProgress = Callable[[str, int, int], None]


def run_with_progress(con: Any, statements: list[str], weights: list[tuple[str, int]], progress: DemoProgress) -> None:
    """Execute ``statements``, reporting rows filled; during a long INSERT, DuckDB's own query
    progress is polled twice a second so a 20M-row build is never silent."""
    total = sum(w for _, w in weights) or 1
    done = 0
    for sql, (table, weight) in zip(statements, weights, strict=True):
        if not weight:
            con.execute(sql)
            continue
        progress(table, done, total)
        stop = threading.Event()

        def poll(start: int = done, weight: int = weight, table: str = table, stop: threading.Event = stop) -> None:
            while not stop.wait(0.5):
                pct = con.query_progress()
                if pct is not None and pct > 0:
                    progress(table, start + int(weight * min(pct, 100) / 100), total)

        watcher = threading.Thread(target=poll, name="demo-progress", daemon=True)
        watcher.start()
        try:
            con.execute(sql)
        finally:
            stop.set()
            watcher.join()
        done += weight
        progress(table, done, total)
