"""CLI commands: features."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.cli.common import state


def register(app: typer.Typer) -> None:
    """Add this area's commands to the churn app."""

    @app.command("features")
    def features_cmd(
        ctx: typer.Context,
        as_of: Annotated[
            str | None, typer.Option(help="As-of date YYYY-MM-DD (default: latest month end).")
        ] = None,
        history: Annotated[
            int, typer.Option(help="Monthly as-of dates to build, ending at as-of.")
        ] = 1,
        describe: Annotated[
            bool, typer.Option(help="Print the feature dictionary and exit.")
        ] = False,
    ) -> None:
        """Build point-in-time customer snapshots (feat.customer_snapshot + Parquet)."""
        from pipelines.cli.ops import parse_date

        settings = state(ctx).settings()
        if describe:
            from rich.console import Console
            from rich.table import Table

            from features.describe import dictionary_rows

            table = Table(title="feature dictionary")
            for col in ("name", "description", "window_days", "dtype", "sources", "reason_group"):
                table.add_column(col)
            for row in dictionary_rows(settings):
                table.add_row(*row.values())
            Console(width=200).print(table)
            return
        from pipelines.run import entry
        from pipelines.store.warehouse import default_as_of

        date = parse_date(as_of) or default_as_of(settings)
        report = entry.features(settings, date, history)
        typer.echo(
            f"built {len(report.as_of_dates)} snapshot(s) {report.as_of_dates[0]} .. {report.as_of_dates[-1]}: "
            f"{report.rows:,} rows, {report.features} features in {report.seconds:.1f} s (data through {report.data_end})"
        )
