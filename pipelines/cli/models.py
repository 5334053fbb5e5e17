"""CLI commands: train, promote, models, score, snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipelines.cli.common import state


def register(app: typer.Typer) -> None:
    """Add this area's commands to the churn app."""

    @app.command("train")
    def train_cmd(
        ctx: typer.Context,
        model: Annotated[str, typer.Option(help="churn or credit")] = "churn",
        trials: Annotated[
            int | None, typer.Option(help="Optuna trials (default from config).")
        ] = None,
        as_of: Annotated[str | None, typer.Option(help="Use snapshots up to this date.")] = None,
    ) -> None:
        """Tune and train a model out of time, log it to MLflow and register it as challenger."""
        from pipelines.cli.ops import parse_date
        from pipelines.run import entry

        r = entry.train(state(ctx).settings(), model, trials=trials, as_of=parse_date(as_of))
        typer.echo(
            f"{model}: version {r.version} registered as challenger (run {r.run_id}); validated on "
            f"{r.validation_as_of}: ROC-AUC {r.metrics['roc_auc']:.3f}, PR-AUC {r.metrics['pr_auc']:.3f}, "
            f"lift@10% {r.metrics['top_decile_lift']:.2f}, Brier {r.metrics['brier']:.4f} ({r.seconds:.0f} s)"
        )

    @app.command("promote")
    def promote_cmd(
        ctx: typer.Context,
        model: Annotated[str, typer.Option(help="churn or credit")] = "churn",
        force: Annotated[
            bool, typer.Option(help="Override the gate (needs --reason; audited).")
        ] = False,
        reason: Annotated[str | None, typer.Option(help="Why the gate is overridden.")] = None,
    ) -> None:
        """Promote the challenger to champion if it beats the champion on the same data."""
        from pipelines.run import entry

        r = entry.promote(state(ctx).settings(), model, force=force, reason=reason)
        verb = "promoted" if r.promoted else "kept champion"
        typer.echo(f"{model}: {verb} (champion v{r.champion_version}): {r.explanation}")

    @app.command("models")
    def models_cmd(ctx: typer.Context) -> None:
        """List registered model versions, aliases and key validation metrics."""
        from rich.console import Console
        from rich.table import Table

        from pipelines.stages.train import list_models

        t = Table(title="registered models")
        cols = (
            "model",
            "version",
            "aliases",
            "validation_as_of",
            "roc_auc",
            "pr_auc",
            "brier",
            "lift",
            "run_id",
        )
        for c in cols:
            t.add_column(c)
        for row in list_models(state(ctx).settings()):
            t.add_row(
                *[f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c] or "") for c in cols]
            )
        Console(width=180).print(t)

    @app.command("score")
    def score_cmd(
        ctx: typer.Context,
        as_of: Annotated[
            str | None, typer.Option(help="As-of date (default: latest month end).")
        ] = None,
    ) -> None:
        """Score every active customer with the champion churn and credit models."""
        from pipelines.cli.ops import parse_date
        from pipelines.run import entry
        from pipelines.store.warehouse import default_as_of

        settings = state(ctx).settings()
        r = entry.score(settings, parse_date(as_of) or default_as_of(settings))
        typer.echo(
            f"scored {r.rows:,} customers for {r.as_of} in {r.seconds:.1f} s with "
            f"{r.model_versions} on {r.executor}"
        )

    @app.command("snapshot")
    def snapshot_cmd(
        ctx: typer.Context,
        data: Annotated[Path, typer.Option(help="Customer-level CSV.")],
        target: Annotated[str, typer.Option(help="Target column.")],
        positive: Annotated[
            str, typer.Option(help="Value of the target that means churn/default.")
        ],
        id_col: Annotated[
            str | None, typer.Option("--id", help="Customer id column (dropped).")
        ] = None,
        drop: Annotated[
            list[str] | None, typer.Option(help="Columns to drop (repeatable).")
        ] = None,
        test: Annotated[
            Path | None, typer.Option(help="Separate test CSV (else 5-fold CV).")
        ] = None,
        task: Annotated[str, typer.Option(help="churn or credit")] = "churn",
        trials: Annotated[int, typer.Option(help="Optuna trials (1 = defaults).")] = 1,
        metrics_out: Annotated[Path | None, typer.Option(help="Write metrics JSON here.")] = None,
    ) -> None:
        """Train and evaluate the churn/credit model on a customer-level table you already have."""
        from pipelines.stages.snapshot import run_snapshot
        from pipelines.store.errors import InputError

        if task not in ("churn", "credit"):
            raise InputError("--task must be churn or credit")
        r = run_snapshot(
            state(ctx).settings(),
            data,
            target,
            positive,
            id_col,
            drop or [],
            test,
            task,
            trials,
            metrics_out,
        )
        for k, v in r.metrics.items():
            typer.echo(f"{k:<16} {v:.4f}")
        typer.echo(f"MLflow run {r.run_id} ({r.seconds:.1f} s)")
