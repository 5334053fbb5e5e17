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
        from pipelines.cli.common import progress_bar, summary
        from pipelines.cli.ops import parse_date
        from pipelines.run import entry
        from pipelines.store.workdir import Workdir

        settings = state(ctx).settings()
        with progress_bar(f"train {model}") as tell:
            r = entry.train(settings, model, trials=trials, as_of=parse_date(as_of), progress=tell)
        typer.echo(
            f"validated on {r.validation_as_of}: ROC-AUC {r.metrics['roc_auc']:.3f}, "
            f"PR-AUC {r.metrics['pr_auc']:.3f}, lift@10% {r.metrics['top_decile_lift']:.2f}, "
            f"Brier {r.metrics['brier']:.4f}"
        )
        summary(
            f"{model} v{r.version} registered as challenger (run {r.run_id}) in {r.seconds:.0f} s",
            Workdir.from_settings(settings).tracking_uri(settings),
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
        from pipelines.store.workdir import Workdir

        settings = state(ctx).settings()
        # Listing must not create an empty MLflow store as a side effect.
        rows = [] if Workdir.from_settings(settings).no_mlflow_store(settings) else None
        rows = list_models(settings) if rows is None else rows
        if not rows:
            typer.echo("no registered models yet: run `churn train` (or `churn demo`)")
            return
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
        for row in rows:
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
        from pipelines.cli.common import summary
        from pipelines.cli.ops import parse_date
        from pipelines.run import entry
        from pipelines.store.warehouse import default_as_of
        from pipelines.store.workdir import Workdir

        settings = state(ctx).settings()
        r = entry.score(settings, parse_date(as_of) or default_as_of(settings))
        summary(
            f"scored {r.rows:,} customers for {r.as_of} in {r.seconds:.1f} s with "
            f"{r.model_versions} on {r.executor}",
            f"scores.customer_scores in {Workdir.from_settings(settings).db_path}",
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
        repeats: Annotated[
            int | None,
            typer.Option(help="Repeats of the stratified CV (default from config)."),
        ] = None,
        metrics_out: Annotated[Path | None, typer.Option(help="Write metrics JSON here.")] = None,
        treatment: Annotated[
            str | None,
            typer.Option(help="Campaign arm column: learn uplift instead of the target itself."),
        ] = None,
        treated: Annotated[str | None, typer.Option(help="Treatment value of the arm.")] = None,
        control: Annotated[str | None, typer.Option(help="Control value of the arm.")] = None,
        learner: Annotated[
            str, typer.Option(help="Uplift learner: auto (inner CV) or one by name.")
        ] = "auto",
        seeds: Annotated[int, typer.Option(help="Uplift: stratified 70/30 splits.")] = 5,
        goal: Annotated[
            str, typer.Option(help="Uplift: the treatment should increase or decrease the target.")
        ] = "increase",
    ) -> None:
        """Train and evaluate the churn/credit model (or uplift, with --treatment) on your table."""
        from pipelines.stages.snapshot import run_snapshot
        from pipelines.store.errors import InputError

        if treatment is not None:
            _uplift_snapshot(
                ctx, data, target, positive, treatment, treated, control, id_col,
                drop or [], learner, seeds, goal, metrics_out,
            )  # fmt: skip
            return
        if task not in ("churn", "credit"):
            raise InputError("--task must be churn or credit")
        from pipelines.cli.common import progress_bar, summary

        if repeats is not None and repeats < 1:
            raise InputError("--repeats must be at least 1")
        with progress_bar(f"snapshot {data.name}") as tell:
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
                repeats=repeats,
                progress=tell,
            )
        for k, v in r.metrics.items():
            typer.echo(f"{k:<16} {v:.4f}")
        folds = int(r.metrics["folds"])
        summary(
            f"{folds} fold{'s' if folds != 1 else ''} in {r.seconds:.0f} s, ROC-AUC "
            f"{r.metrics['roc_auc']:.4f} ± {r.metrics['roc_auc_sd']:.4f} (tree alone "
            f"{r.metrics['tree_roc_auc']:.4f}); MLflow run {r.run_id}",
            metrics_out or "MLflow",
        )


def _uplift_snapshot(
    ctx, data, target, positive, treatment, treated, control, id_col, drop, learner, seeds, goal,
    metrics_out,
) -> None:  # fmt: skip
    """`churn snapshot --treatment`: uplift learners on a campaign table, mean ± sd over splits."""
    from pipelines.stages.snapshot_uplift import run_uplift_snapshot
    from pipelines.store.errors import InputError

    if treated is None or control is None:
        raise InputError("--treatment needs --treated VALUE and --control VALUE")
    r = run_uplift_snapshot(
        state(ctx).settings(), data, target, positive, treatment, treated, control, id_col,
        drop, learner, seeds, goal, metrics_out,
    )  # fmt: skip
    m = r.metrics
    for k in ("qini", "uplift_at_30", "random_qini", "random_uplift_at_30"):
        typer.echo(f"{k:<22} {m[k]:.4f} ± {m[k + '_sd']:.4f}")
    typer.echo(f"{'ate':<22} {m['ate']:.4f}")
    typer.echo(f"learner {m['learner']} (by seed: {', '.join(m['learner_by_seed'])})")
    typer.echo(r.verdict)
    typer.echo(f"charts: {', '.join(map(str, r.charts))} ({r.seconds:.0f} s)")
