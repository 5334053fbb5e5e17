"""CLI commands: monitor."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.cli.common import state


def register(app: typer.Typer) -> None:
    """Add this area's commands to the churn app."""

    @app.command("monitor")
    def monitor_cmd(
        ctx: typer.Context,
        as_of: Annotated[
            str | None, typer.Option(help="As-of date (default: latest month end).")
        ] = None,
        reference: Annotated[
            list[str] | None,
            typer.Option(help="Reference as-of date(s) (default: champion's training dates)."),
        ] = None,
    ) -> None:
        """Evidently drift and quality reports vs the champion's training data, and the drift gate."""
        from pipelines.cli.ops import parse_date
        from pipelines.run import entry
        from pipelines.store.warehouse import default_as_of

        settings = state(ctx).settings()
        refs = [parse_date(r) for r in reference] if reference else None
        r = entry.monitor(settings, parse_date(as_of) or default_as_of(settings), refs)
        typer.echo(
            f"{r.as_of}: {r.drifted_share:.0%} of features drifted, prediction drift {r.prediction_drift:.3f}, "
            f"realised AUC {'n/a' if r.realised_auc is None else f'{r.realised_auc:.3f}'} → {r.decision.upper()}"
        )
        for reason in r.reasons:
            typer.echo(f"  - {reason}")
        for path in r.report_paths:
            typer.echo(f"  report: {path}")
