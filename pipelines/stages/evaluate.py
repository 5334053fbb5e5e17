"""Evaluate played-out campaigns against their control groups at 30 and 100 days."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import duckdb
import polars as pl

from configs.schema import Settings
from pipelines.store.errors import InputError
from pipelines.store.warehouse import RESULTS_DDL, connect
from pipelines.store.workdir import Workdir
from retention.export_safety import safe_name
from retention.outcomes import campaign_outcomes, realised_spend

log = logging.getLogger(__name__)


@dataclass
class EvaluationReport:
    list_id: str
    rows: list[dict] = field(default_factory=list)
    spend: dict = field(default_factory=dict)  # realised spend against the list's budget

    def overall(self, window: int) -> dict | None:
        return next(
            (r for r in self.rows if r["window_days"] == window and r["breakdown"] == "all"), None
        )


def evaluate_list(settings: Settings, list_id: str) -> EvaluationReport:
    """Outcomes of a list: churned within 30 / 100 days of contact, treated vs control."""
    try:
        safe_name(list_id, "list id")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    con = connect(Workdir.from_settings(settings))
    try:
        con.execute(RESULTS_DDL)
        frame = con.sql(
            """
            SELECT l.customer_id, l.as_of, l.offer, l.value_tier, l.value, l.contact_cost,
                   l.offer_cost, l.control_flag, d.disconnect_date, c.response,
                   (SELECT max(usage_date) FROM raw.usage_daily) AS data_end
            FROM retention.retention_lists l
            LEFT JOIN raw.disconnects d USING (customer_id)
            LEFT JOIN raw.contacts c ON c.list_id = l.list_id AND c.customer_id = l.customer_id
            WHERE l.list_id = ?
            """,
            params=[list_id],
        ).pl()
        if frame.is_empty():
            raise InputError(f"no retention list {list_id!r}")
        as_of, data_end = frame["as_of"][0], frame["data_end"][0]
        camp = settings.retention.campaigns
        rows = campaign_outcomes(
            frame,
            list_id,
            as_of,
            data_end,
            settings.retention.evaluation_windows_days,
            camp.alpha,
            camp.min_control,
        )
        report = EvaluationReport(list_id, rows, spend_against_budget(con, list_id, frame))
        results = pl.DataFrame(report.rows) if report.rows else None
        con.execute("BEGIN")
        con.execute("DELETE FROM eval.campaign_results WHERE list_id = ?", [list_id])
        if results is not None:
            con.register("_res", results)
            con.execute(
                "INSERT INTO eval.campaign_results BY NAME SELECT *, now()::TIMESTAMP AS evaluated_at FROM _res"
            )
        con.execute("COMMIT")
    finally:
        con.close()
    _log_mlflow(settings, report)
    return report


def spend_against_budget(con, list_id: str, frame: pl.DataFrame) -> dict:
    """Realised spend (contacts + accepted offers) beside the budget and what it capped."""
    try:
        row = con.execute(
            "SELECT manifest_json FROM retention.list_manifest WHERE list_id = ?", [list_id]
        ).fetchone()
    except duckdb.CatalogException:  # a list stored without its manifest
        row = None
    manifest = json.loads(row[0]) if row else {}
    return {
        "realised": realised_spend(frame),
        "budget": manifest.get("budget"),
        "budget_basis": manifest.get("budget_basis", "expected"),
        "planned": manifest.get("budget_used"),
    }


def _log_mlflow(settings: Settings, report: EvaluationReport) -> None:
    import mlflow

    from pipelines.store.tracking import experiment_client

    _, experiment_id = experiment_client(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"evaluate-{report.list_id}"):
        mlflow.set_tags({"stage": "evaluate", "list_id": report.list_id})
        for window in settings.retention.evaluation_windows_days:
            row = report.overall(window)
            if row and row["matured"]:
                mlflow.log_metrics(
                    {
                        f"uplift_{window}d": row["difference"],
                        f"p_value_{window}d": row["p_value"],
                        f"incremental_saves_{window}d": row["incremental_saves"],
                        f"cost_{window}d": row["cost"],
                    }
                )
        mlflow.log_metric("spend_realised", report.spend["realised"])
