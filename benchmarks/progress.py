"""Progress for the benchmarks: the CLI's rich bar on stderr over a run's steps."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from pipelines.cli.common import progress_bar

T = TypeVar("T")


def steps(items: Iterable[T], title: str, describe: Callable[[T], str] = str) -> Iterator[T]:
    """Yield `items` under a bar naming the step being run; stdout keeps only result lines."""
    items = list(items)
    with progress_bar(title) as tell:
        for done, item in enumerate(items):
            tell(describe(item), done, len(items))
            yield item
        tell("", len(items), len(items))
