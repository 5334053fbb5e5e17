"""CLI commands: simulate (synthetic operator)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.common import state


def register(app: typer.Typer) -> None:
    """Add this area's commands to the churn app."""

    @app.command("simulate")
    def simulate_cmd(
        ctx: typer.Context,
        customers: Annotated[
            int | None, typer.Option(help="Customers in the initial base.")
        ] = None,
        months: Annotated[int | None, typer.Option(help="Months to simulate.")] = None,
        seed: Annotated[
            int | None, typer.Option(help="Random seed (same seed, same files).")
        ] = None,
        defects: Annotated[
            float | None, typer.Option(help="Share of files with injected defects (0-0.5).")
        ] = None,
        file_format: Annotated[
            str | None, typer.Option("--format", help="parquet or csv landing files.")
        ] = None,
        out: Annotated[Path | None, typer.Option(help="Output folder (default: work dir).")] = None,
        advance_months: Annotated[
            int | None,
            typer.Option("--advance", help="Continue the existing world by this many months."),
        ] = None,
        fresh: Annotated[bool, typer.Option(help="Replace an existing simulated world.")] = False,
    ) -> None:
        """Simulate a synthetic operator and write its nightly exports as landing files."""
        from pipelines.store.errors import InputError
        from pipelines.store.workdir import Workdir
        from simulator import advance, simulate

        overrides = {
            k: v
            for k, v in {
                "customers": customers,
                "months": months,
                "defect_rate": defects,
                "file_format": file_format,
            }.items()
            if v is not None
        }
        settings = state(ctx).settings(simulator=overrides) if overrides else state(ctx).settings()
        target = out or Workdir.from_settings(settings).ensure().home
        say = lambda msg: typer.secho(msg, fg=typer.colors.CYAN, err=True)  # noqa: E731
        try:
            if advance_months:
                summary = advance(target, months=advance_months, progress=say)
            else:
                summary = simulate(
                    settings.simulator,
                    target,
                    seed=settings.seed if seed is None else seed,
                    fresh=fresh,
                    progress=say,
                )
        except ValueError as exc:
            raise InputError(str(exc)) from None
        typer.echo(
            f"landing files under {Path(target) / 'landing'}; ground truth under {Path(target) / 'truth'}"
        )
        typer.echo(
            f"customers {summary.customers:,}; months {summary.first_date} .. {summary.last_date}"
        )
        for table, rows in sorted(summary.rows.items()):
            typer.echo(f"  {table:<12} {rows:>12,} rows")
        rates = list(summary.churn_rate.values())
        if rates:
            typer.echo(
                f"monthly churn {min(rates):.2%} .. {max(rates):.2%}; files {summary.files_written}"
            )
