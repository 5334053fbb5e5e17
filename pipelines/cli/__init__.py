"""The `churn` command line: one command per stage of the system.

Heavy libraries (mlflow, prefect, lightgbm) are imported inside the commands so that
`churn --help` stays instant.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli import dashboard, features, ingest, models, monitor, ops, retention, simulate
from pipelines.cli.common import State, state
from pipelines.store.errors import ChurnError, storage_failure

app = typer.Typer(
    help="Telecom churn prediction and retention: simulate, ingest, features, train, score, target.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the resolved configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

log = logging.getLogger("churn")


@app.callback()
def main(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home", help="Work directory for all state (default .churn/ or CHURN_HOME)."
        ),
    ] = None,
    config: Annotated[
        list[Path] | None,
        typer.Option("--config", "-c", help="Extra YAML config file(s) layered over the defaults."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Telecom churn prediction and retention pipeline."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for chatty in ("httpx", "httpcore", "alembic", "prefect.server"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    ctx.obj = State(home=home, config_files=list(config or []))


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the resolved configuration as YAML."""
    import yaml

    from pipelines.store.config import config_hash

    settings = state(ctx).settings()
    typer.echo(f"# config hash {config_hash(settings)}")
    typer.echo(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))


# Each area registers its own commands; the order here is the order of `churn --help`.
for _module in (simulate, ingest, features, models, retention, monitor, dashboard, ops):
    _module.register(app)


def run() -> None:
    """Entry point that turns user-fixable errors into one line and an exit code."""
    try:
        app()  # standalone: usage errors and typer.Exit are handled by click itself
    except ChurnError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:
        # A full disk or read-only home is the user's to fix; anything else is a bug: re-raise.
        storage = storage_failure(exc)
        if storage is None:
            raise
        typer.secho(f"error: {storage}", fg=typer.colors.RED, err=True)
        sys.exit(storage.exit_code)
    except KeyboardInterrupt:
        typer.secho("aborted", err=True)
        sys.exit(130)
