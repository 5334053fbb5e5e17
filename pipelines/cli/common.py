"""What every CLI command shares: the resolved global options and the settings they load."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from configs.schema import Settings


@dataclass
class State:
    """What the global options resolve to; settings load lazily so --help never reads config."""

    home: Path | None = None
    config_files: list[Path] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    def settings(self, **overrides: Any) -> Settings:
        """The resolved settings; keyword overrides (nested dicts) layer on top for one command."""
        from pipelines.store.config import load_settings

        if overrides:
            merged = merge(self.overrides, overrides)
            return load_settings(self.config_files, home=self.home, overrides=merged)
        if self._settings is None:
            self._settings = load_settings(
                self.config_files, home=self.home, overrides=self.overrides
            )
            check_services(self._settings)
        return self._settings


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def state(ctx: typer.Context) -> State:
    return ctx.ensure_object(State)


class _UserErrorsOnce:
    """Drops Prefect's run-log records about a ChurnError: `churn` reports it in one line itself.

    Without this a wrong date or an empty work directory shows Prefect's traceback and "Finished
    in state Failed(...)" lines before the one line; other failures keep Prefect's full log.
    """

    def filter(self, record) -> bool:
        from pipelines.store.errors import ChurnError

        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ChurnError):
            return False
        text = record.getMessage()
        return not any(f"{name}(" in text or f"{name}:" in text for name in _churn_error_names())


def _churn_error_names() -> set[str]:
    from pipelines.store.errors import ChurnError

    names, todo = set(), [ChurnError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def report_user_errors_once() -> None:
    """Install the filter on the loggers Prefect reports run failures through."""
    import logging

    for name in (
        "prefect.flow_runs",
        "prefect.task_runs",
        "prefect.flow_engine",
        "prefect.task_engine",
        "prefect.engine",
    ):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _UserErrorsOnce) for f in logger.filters):
            logger.addFilter(_UserErrorsOnce())


def check_services(settings: Settings) -> None:
    """Fail fast with one line when a configured remote service is unreachable (never hang)."""
    import os
    import urllib.error
    import urllib.request

    from pipelines.store.errors import ServiceError

    checks = []
    if (uri := settings.tracking.tracking_uri) and uri.startswith(("http://", "https://")):
        checks.append(("MLflow tracking server", uri.rstrip("/") + "/health"))
    if (api := os.environ.get("PREFECT_API_URL")) and api.startswith(("http://", "https://")):
        checks.append(("Prefect API", api.rstrip("/") + "/health"))
    for name, url in checks:
        try:
            with urllib.request.urlopen(url, timeout=5):  # noqa: S310 - URL from config
                pass
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceError(f"{name} at {url} is unreachable: {reason}") from None


@contextlib.contextmanager
def progress_bar(title: str) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar on stderr; yields `tell(step, done, total)`. A failing command leaves
    no bar behind, so its error stays the one line the user sees."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(stderr=True)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[step]}"),
        console=console,
        transient=True,  # the summary line replaces it
        # Piped to a log or a file, a bar is noise (a blank line where it stood): leave it out.
        disable=not console.is_terminal,
    )
    task = bar.add_task(title, total=None, step="")

    def tell(step: str, done: int, total: int) -> None:
        bar.update(task, completed=done, total=total, step=step)

    with bar:
        yield tell


def summary(what: str, where: str | Path) -> None:
    """The one line a long command ends with: what it did, and where its outputs are."""
    typer.secho(f"done: {what} → {where}", bold=True)
