"""CLI commands: dashboard."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.cli.common import state


def register(app: typer.Typer) -> None:
    """Add this area's commands to the churn app."""

    @app.command("dashboard")
    def dashboard_cmd(
        ctx: typer.Context,
        port: Annotated[int, typer.Option(help="Port to serve the cockpit on.")] = 8501,
        host: Annotated[
            str, typer.Option(help="Address to bind (0.0.0.0 to expose it on the network).")
        ] = "127.0.0.1",
    ) -> None:
        """Serve the Streamlit retention cockpit over the work directory (read-only)."""
        import subprocess
        import sys
        from pathlib import Path

        import dashboards
        from pipelines.store.workdir import Workdir

        st = state(ctx)
        home = Workdir.from_settings(st.settings()).home
        app_path = Path(dashboards.__file__).resolve().parent / "app.py"
        cmd = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(app_path),
            "--server.port",
            str(port),
            "--server.address",
            host,
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--",
            "--home",
            str(home),
        ]
        # The app re-reads the same config files so it resolves MLflow exactly like the CLI.
        for path in st.config_files:
            cmd += ["--config", str(Path(path).resolve())]
        if not (home / "warehouse.duckdb").exists():
            typer.echo(f"no warehouse in {home} yet: the cockpit will show its empty state")
        typer.echo(f"retention cockpit on http://{host}:{port} (Ctrl+C to stop)")
        try:
            rc = subprocess.run(cmd, check=False).returncode
        except KeyboardInterrupt:
            rc = 0
        raise typer.Exit(rc)
