"""Progress bars for long jobs (validation, search): one bar per phase, erased when the phase is done.

    with phase_bars(enabled=True) as task:
        advance = task("supernet steps", total=300)
        advance(1)
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Task = Callable[[str, int], Callable[[int], None]]  # task(description, total) -> advance(n)


@contextmanager
def phase_bars(enabled: bool, console=None) -> Iterator[Task]:
    if not enabled:
        yield lambda description, total: (lambda n: None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        def task(description: str, total: int) -> Callable[[int], None]:
            tid = bar.add_task(description, total=total)
            return lambda n: bar.advance(tid, n)

        yield task


__all__ = ["Task", "phase_bars"]
