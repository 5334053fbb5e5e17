"""CLI commands: target, evaluate, uplift."""

from __future__ import annotations

from typing import Annotated

import typer

from pipelines.cli.common import state


def register(app: typer.Typer) -> None:
    """Add this area's commands to the churn app."""

    @app.command("target")
    def target_cmd(
        ctx: typer.Context,
        as_of: Annotated[
            str | None, typer.Option(help="As-of date (default: latest month end).")
        ] = None,
        budget: Annotated[float | None, typer.Option(help="Budget (default from config).")] = None,
        reveal: Annotated[
            str | None, typer.Option(help="Export real customer ids; give the reason (audited).")
        ] = None,
        learning: Annotated[
            bool,
            typer.Option(
                help="A learning campaign: random offers to as many eligible customers as the "
                "power calculation in retention.campaigns asks for."
            ),
        ] = False,
    ) -> None:
        """Build the retention target list with offers, channels and a control group."""
        from pipelines.cli.ops import parse_date
        from pipelines.run import entry
        from pipelines.store.errors import InputError
        from pipelines.store.warehouse import default_as_of

        if reveal is not None and not reveal.strip():
            raise InputError("--reveal needs a reason")
        settings = state(ctx).settings()
        r = entry.target(
            settings,
            parse_date(as_of) or default_as_of(settings),
            budget,
            reveal,
            learning_share="power" if learning else None,
        )
        typer.echo(
            f"list {r.list_id}: {r.treated:,} to contact + {r.control:,} control; budget used "
            f"{r.budget_used:,.0f}; expected saves {r.expected_saves:,.1f}; expected profit {r.expected_profit:,.0f}"
        )
        for kind, path in r.paths.items():
            typer.echo(f"  {kind:<15} {path}")
        if r.warning:
            typer.echo(f"warning: {r.warning}", err=True)

    @app.command("evaluate")
    def evaluate_cmd(
        ctx: typer.Context,
        list_id: Annotated[str, typer.Option("--list", help="List id to evaluate.")],
    ) -> None:
        """Treated vs control churn at 30 and 100 days: exact or χ² test with the interval it
        implies, saves, ROI with its interval, and realised spend against the budget."""
        from pipelines.run import entry

        r = entry.evaluate(state(ctx).settings(), list_id)
        for row in r.rows:
            if row["breakdown"] != "all" and not row["matured"]:
                continue
            status = "" if row["matured"] else " (not matured yet)"
            roi = (
                "n/a"
                if row["roi"] is None
                else f"{row['roi']:.2f} [{row['roi_low']:.2f}, {row['roi_high']:.2f}]"
            )
            typer.echo(
                f"{row['window_days']:>3}d {row['breakdown']:<5} {row['grp']:<22} treated {row['treated_churn_rate']:.2%}"
                f" ({row['treated']:,}) vs control {row['control_churn_rate']:.2%} ({row['control']:,}):"
                f" diff {row['difference']:+.2%} [{row['ci_low']:+.2%}, {row['ci_high']:+.2%}]"
                f" p={row['p_value']:.3f} ({row['test']}) saves {row['incremental_saves']:.1f}"
                f" cost {row['cost']:.0f} ROI {roi}: {row['verdict']}{status}"
            )
        s = r.spend
        if s.get("budget") is not None:
            typer.echo(
                f"spend: realised {s['realised']:,.2f} against a budget of {s['budget']:,.0f}"
                f" capping {s['budget_basis'].replace('_', '-')} spend (planned {s['planned']:,.2f})"
            )
        else:
            typer.echo(f"spend: realised {s['realised']:,.2f} (no budget recorded for this list)")

    @app.command("uplift")
    def uplift_cmd(
        ctx: typer.Context,
        as_of: Annotated[
            str | None, typer.Option(help="Use campaigns matured by this date (default: all).")
        ] = None,
    ) -> None:
        """Train the uplift model on evaluated campaigns and report its held-out Qini."""
        from pipelines.cli.ops import parse_date
        from pipelines.run import entry

        r = entry.uplift(state(ctx).settings(), parse_date(as_of))
        if not r.trained:
            typer.echo(f"uplift not trained: {r.explanation}")
            raise typer.Exit(1)
        typer.echo(
            f"uplift v{r.version} on lists {', '.join(r.lists)} ({r.rows}); "
            f"Qini by uplift {r.qini if r.qini is None else round(r.qini, 3)}, "
            f"by risk {r.qini_by_risk if r.qini_by_risk is None else round(r.qini_by_risk, 3)}"
        )
        typer.echo(r.explanation)
