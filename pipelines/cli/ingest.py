"""CLI commands: ingest, status."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.common import state


def register(app: typer.Typer) -> None:
    """Add this area's commands to the churn app."""

    @app.command("ingest")
    def ingest_cmd(
        ctx: typer.Context,
        source: Annotated[
            Path | None,
            typer.Option(help="Landing folder (default: ingest.source, else <home>/landing)."),
        ] = None,
    ) -> None:
        """Load new landing files into DuckDB raw tables; bad rows go to quarantine."""
        from pipelines.run import entry

        report = entry.ingest(state(ctx).settings(), source)
        typer.echo(
            f"files: {report.files_seen} seen, {report.files_loaded} loaded, "
            f"{report.files_skipped} unchanged or duplicate, {report.files_rejected} rejected "
            f"({report.seconds:.1f} s)"
        )
        for table, rows in sorted(report.rows_loaded.items()):
            q = report.rows_quarantined.get(table, 0)
            typer.echo(
                f"  {table:<12} {rows:>12,} rows loaded" + (f", {q:,} quarantined" if q else "")
            )
        for path, reason in report.rejected.items():
            typer.secho(f"  rejected {path}: {reason}", fg=typer.colors.YELLOW)
        if report.rows_quarantined or report.rejected:
            typer.echo("see `churn status` for quarantined rows by reason")

    @app.command("status")
    def status_cmd(ctx: typer.Context) -> None:
        """Row counts, date ranges, last loads and quarantined rows per raw table."""
        from rich.console import Console
        from rich.table import Table

        from pipelines.stages.ingest import status

        info = status(state(ctx).settings())
        console = Console()
        t = Table(title="raw tables")
        for col in ("table", "rows", "from", "to", "last load"):
            t.add_column(col, justify="right" if col == "rows" else "left")
        for r in info["tables"]:
            t.add_row(
                r["table"],
                f"{r['rows']:,}",
                str(r["from"] or ""),
                str(r["to"] or ""),
                str(r["last_load"] or ""),
            )
        console.print(t)
        if info["quarantine"]:
            q = Table(title="quarantined rows by reason")
            for col in ("table", "reason", "rows"):
                q.add_column(col)
            for r in info["quarantine"]:
                q.add_row(r["table"], r["reason"], f"{r['rows']:,}")
            console.print(q)
        else:
            console.print("no quarantined rows")
        if info["rejected"]:
            f = Table(title="files not loaded")
            for col in ("file", "status", "reason"):
                f.add_column(col)
            for r in info["rejected"]:
                f.add_row(r["file"], r["status"], r["reason"] or "")
            console.print(f)
