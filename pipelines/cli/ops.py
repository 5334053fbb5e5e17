"""CLI commands: cycle, serve, demo, doctor."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from pipelines.cli.common import state
from pipelines.store.workdir import prepare_prefect_env


def parse_date(value: str | None):
    from pipelines.store.errors import InputError

    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise InputError(f"--as-of must be a date like 2025-06-30, got {value!r}") from None


def register(app: typer.Typer) -> None:
    """Add this area's commands to the churn app."""

    @app.command("cycle")
    def cycle(
        ctx: typer.Context,
        as_of: Annotated[
            str | None, typer.Option(help="As-of date (default: latest month end in the data).")
        ] = None,
        trials: Annotated[int | None, typer.Option(help="Optuna trials per model.")] = None,
        budget: Annotated[float | None, typer.Option(help="Retention budget override.")] = None,
    ) -> None:
        """Run one monthly retention cycle (resumes where a failed run stopped)."""
        st = state(ctx)
        settings = st.settings()
        prepare_prefect_env(settings)
        from pipelines.run.flows import cycle_markdown, retention_cycle

        summary = retention_cycle(
            home=str(settings.home),
            config=[str(p) for p in st.config_files],
            as_of=parse_date(as_of),
            trials=trials,
            budget=budget,
        )
        typer.echo(cycle_markdown(summary))

    @app.command("serve")
    def serve(
        ctx: typer.Context,
        once: Annotated[
            bool, typer.Option("--once", help="Trigger each deployment once, run it, and exit.")
        ] = False,
    ) -> None:
        """Serve the scheduled deployments (daily ingest, monthly cycle, monthly evaluation)."""
        st = state(ctx)
        settings = st.settings()
        prepare_prefect_env(settings)
        from pipelines.run.deployments import serve as serve_forever
        from pipelines.run.deployments import serve_once

        files = [str(p) for p in st.config_files]
        if not once:
            serve_forever(settings, files)
            return
        states = serve_once(settings, files)
        for name, final in states.items():
            typer.echo(f"{name}: {final}")
        if any(s != "Completed" for s in states.values()):
            raise typer.Exit(1)

    @app.command("demo")
    def demo(
        ctx: typer.Context,
        fresh: Annotated[
            bool, typer.Option(help="Start from a new synthetic operator (wipes an earlier demo).")
        ] = True,
    ) -> None:
        """Run the whole loop end to end on a synthetic operator and print where everything is."""
        st = state(ctx)
        settings = st.settings()
        prepare_prefect_env(settings)
        from pipelines.run.demo import run_demo
        from pipelines.store.workdir import Workdir

        summary = run_demo(
            settings,
            [str(p) for p in st.config_files],
            fresh=fresh,
            say=lambda msg: typer.secho(msg, fg=typer.colors.CYAN),
        )
        wd = Workdir.from_settings(settings)
        home = summary.home
        typer.echo("")
        typer.secho("Demo finished", bold=True)
        typer.echo(
            f"  wall time        {summary.seconds:.0f} s, peak memory {summary.peak_rss_mb:.0f} MB"
        )
        typer.echo(f"  work directory   {home}")
        typer.echo(f"  warehouse        {wd.db_path}")
        typer.echo(f"  retention lists  {wd.lists}")
        typer.echo(f"  drift reports    {wd.reports}")
        typer.echo(f"  MLflow store     {wd.tracking_uri(settings)}")
        lists = (summary.evaluations or {}).get("lists", {})
        if lists:
            typer.echo("")
            typer.echo("Campaigns (churn, control − treated):")
        for list_id, windows in lists.items():
            for window, row in windows.items():
                if row and row.get("matured"):
                    typer.echo(
                        f"  {list_id} {window:>4}: {row['difference']:+.2%} "
                        f"[{row['ci_low']:+.2%}, {row['ci_high']:+.2%}], "
                        f"{row['incremental_saves']:.1f} saved, cost {row['cost']:,.0f}"
                    )
        typer.echo("")
        typer.echo("Next:")
        typer.echo(f"  uv run churn --home {home} dashboard   # retention cockpit (browser)")
        typer.echo(f"  churn --home {home} status          # tables, loads, quarantine")
        typer.echo(
            f"  uv run mlflow ui --backend-store-uri {wd.tracking_uri(settings)}   # MLflow UI"
        )

    @app.command("doctor")
    def doctor(ctx: typer.Context) -> None:
        """Check the work directory's integrity and say how to fix what is wrong."""
        from pipelines.store.doctor import describe, healthy, run_checks

        findings = run_checks(state(ctx).settings())
        for line in describe(findings):
            typer.echo(line)
        if not healthy(findings):
            raise typer.Exit(1)
