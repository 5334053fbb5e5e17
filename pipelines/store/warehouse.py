"""The warehouse: every table's DDL in one place, and connections handed out to the stages.

Raw tables are created from their contracts (`configs.contracts.raw_table_ddl`); the snapshot
table takes its columns from the feature build. Everything else is declared here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date

import duckdb

from configs.schema import Settings
from features.rollup import QUEUE, TABLE, rollup_columns
from pipelines.store.errors import InputError, WorkdirError
from pipelines.store.workdir import Workdir


def connect(workdir: Workdir, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; read-only connections never block the pipeline's writer for long."""
    if read_only and not workdir.db_path.exists():
        raise WorkdirError(f"no warehouse at {workdir.db_path}: run `churn demo` or `churn ingest`")
    try:
        con = duckdb.connect(str(workdir.db_path), read_only=read_only)
    except duckdb.IOException as exc:
        raise WorkdirError(f"cannot open warehouse {workdir.db_path}: {exc}") from exc
    if workdir.memory_limit_mb:
        con.execute(f"SET memory_limit = '{int(workdir.memory_limit_mb)}MB'")
    return con


@contextlib.contextmanager
def connection(
    where: Settings | Workdir, read_only: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A warehouse connection that is closed however the block ends."""
    wd = where if isinstance(where, Workdir) else Workdir.from_settings(where)
    con = connect(wd, read_only=read_only)
    try:
        yield con
    finally:
        con.close()


# drift runs (written by monitor)
MONITOR_DDL = """
CREATE SCHEMA IF NOT EXISTS monitor;
CREATE TABLE IF NOT EXISTS monitor.drift_runs (
    run_at TIMESTAMP, as_of DATE, reference VARCHAR, drifted_share DOUBLE, n_drifted INTEGER,
    prediction_drift DOUBLE, realised_auc DOUBLE, realised_lift DOUBLE, reference_auc DOUBLE,
    decision VARCHAR, reasons VARCHAR, report_path VARCHAR
);
CREATE TABLE IF NOT EXISTS monitor.feature_drift (
    run_at TIMESTAMP, as_of DATE, feature VARCHAR, method VARCHAR, drift_score DOUBLE, drifted BOOLEAN
);
"""


# customer scores (written by score)
SCORES_DDL = """
CREATE SCHEMA IF NOT EXISTS scores;
CREATE TABLE IF NOT EXISTS scores.customer_scores (
    customer_id VARCHAR, as_of DATE, churn_probability DOUBLE, risk_decile INTEGER,
    credit_pd DOUBLE, credit_grade VARCHAR, credit_limit DOUBLE,
    churn_model_version VARCHAR, credit_model_version VARCHAR,
    reason_1 VARCHAR, reason_2 VARCHAR, reason_3 VARCHAR,
    reason_group_1 VARCHAR, reason_group_2 VARCHAR, reason_group_3 VARCHAR,
    scored_at TIMESTAMP
);
-- Why a credit grade was set by rule rather than by the model (NULL: the model's grade).
ALTER TABLE scores.customer_scores ADD COLUMN IF NOT EXISTS credit_rule VARCHAR;
"""


def default_as_of(settings: Settings) -> date:
    """The latest month end covered by loaded usage data: the natural as-of for a monthly cycle."""
    wd = Workdir.from_settings(settings)
    if not wd.db_path.exists():
        raise InputError("no data loaded yet: run `churn simulate` and `churn ingest` first")
    con = connect(wd, read_only=True)
    try:
        row = con.execute(
            "SELECT max(usage_date) FROM raw.usage_daily WHERE usage_date = last_day(usage_date)"
        ).fetchone()
    except duckdb.CatalogException as exc:  # no raw.usage_daily yet
        raise InputError("no usage data loaded yet: run `churn ingest` first") from exc
    finally:
        con.close()
    if not row or row[0] is None:
        raise InputError("loaded usage data does not yet cover a whole month")
    return row[0]


# ingestion bookkeeping: loads and quarantined rows (written by ingest)
META_DDL = """
CREATE SCHEMA IF NOT EXISTS raw;
CREATE SCHEMA IF NOT EXISTS meta;
CREATE TABLE IF NOT EXISTS meta.load_manifest (
    path VARCHAR PRIMARY KEY, table_name VARCHAR, checksum VARCHAR, file_date DATE,
    rows_loaded BIGINT, rows_quarantined BIGINT, rows_superseded BIGINT,
    status VARCHAR, reason VARCHAR, loaded_at TIMESTAMP
);
CREATE TABLE IF NOT EXISTS meta.quarantine (
    table_name VARCHAR, source_file VARCHAR, row_number BIGINT, reason VARCHAR,
    raw_row VARCHAR, quarantined_at TIMESTAMP
);
"""


# retention lists and their manifests (written by target)
LIST_DDL = """
CREATE SCHEMA IF NOT EXISTS retention;
CREATE TABLE IF NOT EXISTS retention.retention_lists (
    list_id VARCHAR, as_of DATE, customer_key VARCHAR, customer_id VARCHAR, segment VARCHAR,
    value_tier VARCHAR, lifecycle_stage VARCHAR, churn_probability DOUBLE, risk_decile INTEGER,
    credit_grade VARCHAR, value DOUBLE, offer VARCHAR, channel VARCHAR, accept_probability DOUBLE,
    save_probability DOUBLE, expected_value DOUBLE, offer_cost DOUBLE, contact_cost DOUBLE, reasons VARCHAR,
    control_flag BOOLEAN, contact_by DATE
);
CREATE TABLE IF NOT EXISTS retention.list_manifest (
    list_id VARCHAR, as_of DATE, created_at TIMESTAMP, manifest_json VARCHAR
);
CREATE TABLE IF NOT EXISTS retention.collections_flags (list_id VARCHAR, customer_id VARCHAR, reason VARCHAR);
-- Lists written before uplift ranking existed lack the column.
ALTER TABLE retention.retention_lists ADD COLUMN IF NOT EXISTS save_probability DOUBLE;
"""


# campaign outcomes (written by evaluate)
RESULTS_DDL = """
CREATE SCHEMA IF NOT EXISTS eval;
CREATE TABLE IF NOT EXISTS eval.campaign_results (
    list_id VARCHAR, window_days INTEGER, breakdown VARCHAR, grp VARCHAR, matured BOOLEAN,
    treated INTEGER, control INTEGER, treated_churn_rate DOUBLE, control_churn_rate DOUBLE,
    difference DOUBLE, ci_low DOUBLE, ci_high DOUBLE, p_value DOUBLE, incremental_saves DOUBLE,
    cost DOUBLE, roi DOUBLE, evaluated_at TIMESTAMP
);
-- Results written before the exact test and the ROI interval lack these columns.
ALTER TABLE eval.campaign_results ADD COLUMN IF NOT EXISTS test VARCHAR;
ALTER TABLE eval.campaign_results ADD COLUMN IF NOT EXISTS verdict VARCHAR;
ALTER TABLE eval.campaign_results ADD COLUMN IF NOT EXISTS roi_low DOUBLE;
ALTER TABLE eval.campaign_results ADD COLUMN IF NOT EXISTS roi_high DOUBLE;
"""


# what each feature snapshot was built from (written by features)
BUILD_LOG_DDL = """
CREATE SCHEMA IF NOT EXISTS feat;
CREATE TABLE IF NOT EXISTS feat.build_log (
    as_of DATE, config_hash VARCHAR, built_at TIMESTAMP, rows BIGINT, stale BOOLEAN
);
-- complete: the feature windows lie inside the loaded data (features.history); logs written
-- before the flag existed leave it NULL.
ALTER TABLE feat.build_log ADD COLUMN IF NOT EXISTS complete BOOLEAN;
"""


# finished cycle stages (written by flows)
LEDGER_DDL = """
CREATE SCHEMA IF NOT EXISTS meta;
CREATE TABLE IF NOT EXISTS meta.cycle_ledger (
    as_of DATE, config_hash VARCHAR, stage VARCHAR, completed_at TIMESTAMP, detail VARCHAR
)
"""


# weekly usage rollups (written by ingest, read by features): one row per customer and week,
# and the weeks whose daily rows changed since the rollup was last brought up to date
def rollup_ddl() -> str:
    cols = ", ".join(f"{name} {kind}" for name, kind in rollup_columns())
    return f"""
CREATE SCHEMA IF NOT EXISTS rollup;
CREATE TABLE {TABLE} ({cols});
CREATE TABLE IF NOT EXISTS {QUEUE} (week_start DATE);
"""
