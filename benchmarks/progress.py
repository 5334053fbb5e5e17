"""Progress for the benchmarks: a rich bar on stderr over a run's steps, results on stdout."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def steps(items: Iterable[T], title: str, describe=str) -> Iterator[T]:
    """Yield `items` under a progress bar that names the step being run and the time so far.

    The bar goes to stderr and is transient, so stdout keeps only the benchmark's result lines.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    items = list(items)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[step]}"),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task(title, total=len(items), step="")
        for item in items:
            bar.update(task, step=describe(item))
            yield item
            bar.advance(task)
