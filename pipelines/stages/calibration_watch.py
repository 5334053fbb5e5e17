"""Read the yardsticks of calibration in the large (trailing realised rate, the champion's
validation-month mean score) and run the check before a list is built."""

from __future__ import annotations

import logging
from datetime import date

import duckdb
import mlflow
import polars as pl

from configs.schema import Settings
from features.history import is_complete, lookback_days
from models.calibration_watch import CalibrationCheck, check_calibration
from pipelines.stages.features import data_span
from pipelines.store.tracking import experiment_client

log = logging.getLogger(__name__)


def trailing_rate(settings: Settings, con: duckdb.DuckDBPyConnection, as_of: date) -> float | None:
    """Realised churn over the horizon on the latest complete snapshots whose labels matured."""
    label = f"churn_{int(settings.models.horizon_days)}d"
    try:
        rows = con.execute(
            f"SELECT as_of, sum({label}), count({label}) FROM feat.customer_snapshot"  # noqa: S608 - label from validated config
            f" WHERE {label} IS NOT NULL AND as_of < ? GROUP BY 1 ORDER BY 1 DESC",
            [as_of],
        ).fetchall()
    except (duckdb.CatalogException, duckdb.BinderException):
        return None
    start, _ = data_span(con)
    lookback = lookback_days(settings.features)
    usable = [r for r in rows if is_complete(r[0], start, lookback)]
    usable = usable[: settings.monitoring.calibration.trailing_snapshots]
    total = sum(r[2] for r in usable)
    return float(sum(r[1] for r in usable) / total) if total else None


def validation_score(settings: Settings, version: str) -> float | None:
    """The champion's mean churn score in its out-of-time validation month (logged at training)."""
    client, _ = experiment_client(settings)
    try:
        run_id = client.get_model_version("churn", str(version)).run_id
    except mlflow.exceptions.MlflowException:
        return None
    return client.get_run(run_id).data.metrics.get("mean_score")


def watch(
    settings: Settings, con: duckdb.DuckDBPyConnection, candidates: pl.DataFrame, as_of: date
) -> CalibrationCheck:
    version = candidates["churn_model_version"][0]
    check = check_calibration(
        candidates["churn_probability"].to_numpy(),
        trailing_rate(settings, con, as_of),
        validation_score(settings, version),
        settings.monitoring.calibration,
    )
    if check.action != "publish":
        log.warning(check.reason)
    return check
