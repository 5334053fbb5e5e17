"""The `churn` command line: one command per stage of the system.

Heavy libraries (mlflow, prefect, lightgbm) are imported inside the commands so that
`churn --help` stays instant.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from configs.schema import Settings
from pipelines.errors import ChurnError

app = typer.Typer(
    help="Telecom churn prediction and retention: simulate, ingest, features, train, score, target.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Inspect the resolved configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

log = logging.getLogger("churn")


@dataclass
class State:
    """What the global options resolve to; settings load lazily so --help never reads config."""

    home: Path | None = None
    config_files: list[Path] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    def settings(self, **overrides: Any) -> Settings:
        from pipelines.config import load_settings

        if self._settings is None or overrides:
            merged = _merge(self.overrides, overrides)
            settings = load_settings(self.config_files, home=self.home, overrides=merged)
            if overrides:
                return settings
            self._settings = settings
        return self._settings


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def state(ctx: typer.Context) -> State:
    return ctx.ensure_object(State)


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
    ctx.obj = State(home=home, config_files=list(config or []))


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the resolved configuration as YAML."""
    import yaml

    from pipelines.config import config_hash

    settings = state(ctx).settings()
    typer.echo(f"# config hash {config_hash(settings)}")
    typer.echo(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False))


def run() -> None:
    """Entry point that turns user-fixable errors into one line and an exit code."""
    try:
        app(standalone_mode=False)
    except ChurnError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.secho("aborted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors carry their own exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
