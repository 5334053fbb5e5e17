"""Score every active customer with the champion models: churn risk, credit grade, limit, reasons."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from configs.contracts import CHURN_MODEL, CREDIT_MODEL
from configs.schema import Settings
from models.scoring import score_frame
from pipelines.stages.features import build_snapshots, load_snapshots, needs_build
from pipelines.store.warehouse import SCORES_DDL, connect
from pipelines.store.workdir import Workdir

log = logging.getLogger(__name__)


@dataclass
class ScoreReport:
    as_of: date
    rows: int
    seconds: float
    model_versions: dict[str, str] = field(default_factory=dict)
    executor: str = "local"


def score_customers(settings: Settings, as_of: date, run_parts=None) -> ScoreReport:
    """Score the snapshot at as_of (built first if missing or stale); replaces that date's scores."""
    started = time.perf_counter()
    if needs_build(settings, as_of):
        build_snapshots(settings, as_of)
    # DuckDB reads the snapshot (without the GIL) while LightGBM and MLflow are imported (3-4 s,
    # hence not at the top of this module) and MLflow opens its store and the models.
    with ThreadPoolExecutor(1) as pool:
        reading = pool.submit(load_snapshots, settings, [as_of])
        from pipelines.store.registry import load_bundle

        churn_model, churn_v = load_bundle(settings, CHURN_MODEL, "champion")
        credit_model, credit_v = load_bundle(settings, CREDIT_MODEL, "champion")
        snap = reading.result()
    scored = score_frame(snap, churn_model, credit_model, settings, run_parts).with_columns(
        pl.lit(churn_v).alias("churn_model_version"),
        pl.lit(credit_v).alias("credit_model_version"),
    )
    con = connect(Workdir.from_settings(settings))
    try:
        con.execute(SCORES_DDL)
        con.register("_scored", scored)
        con.execute("BEGIN")
        con.execute("DELETE FROM scores.customer_scores WHERE as_of = ?", [as_of])
        con.execute(
            "INSERT INTO scores.customer_scores BY NAME SELECT *, now()::TIMESTAMP AS scored_at FROM _scored"
        )
        con.execute("COMMIT")
    finally:
        con.close()
    seconds = round(time.perf_counter() - started, 2)
    log.info("scored %d customers for %s in %.1f s", scored.height, as_of, seconds)
    return ScoreReport(
        as_of, scored.height, seconds, {CHURN_MODEL: churn_v, CREDIT_MODEL: credit_v}
    )
