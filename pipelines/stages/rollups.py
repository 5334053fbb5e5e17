"""Weekly usage rollups kept current: weeks whose daily rows change are queued in the same
transaction as the change, and rebuilt from the daily rows before any snapshot reads them."""

# SQL here uses the fixed rollup names of features.rollup; values are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import logging
import time

import duckdb

from features.rollup import QUEUE, SOURCE, TABLE, WEEK_START, rollup_columns, weekly_rollup_sql
from pipelines.store.errors import InputError
from pipelines.store.warehouse import rollup_ddl

log = logging.getLogger(__name__)

ROLLED_UP = "usage_daily"  # the raw table the rollups summarise


def _exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?"
            " AND table_catalog = current_database()",
            [schema, table],
        ).fetchone()[0]
    )


def _layout(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    schema, table = TABLE.split(".")
    return [
        (r[0], r[1])
        for r in con.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = ? AND table_name = ? AND table_catalog = current_database()"
            " ORDER BY ordinal_position",
            [schema, table],
        ).fetchall()
    ]


def ensure_rollups(con: duckdb.DuckDBPyConnection) -> None:
    """Create the rollup tables; a warehouse loaded before they existed (or with another layout)
    queues every loaded week, in the same transaction, so no week is ever silently missing."""
    if _layout(con) == rollup_columns():
        return
    con.execute("BEGIN")
    try:
        con.execute(f"DROP TABLE IF EXISTS {TABLE}")
        con.execute(rollup_ddl())
        con.execute(f"DELETE FROM {QUEUE}")
        if _exists(con, "raw", ROLLED_UP):
            con.execute(f"INSERT INTO {QUEUE} SELECT DISTINCT {WEEK_START} FROM {SOURCE}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def queue_weeks(con: duckdb.DuckDBPyConnection, dates_sql: str, params: list | None = None) -> None:
    """Queue the weeks of the usage dates `dates_sql` selects (column usage_date); inside the
    caller's transaction, so a change and its queue entry commit together."""
    con.execute(
        f"INSERT INTO {QUEUE} SELECT DISTINCT {WEEK_START} FROM ({dates_sql})"
        f" EXCEPT SELECT week_start FROM {QUEUE}",
        params or [],
    )


def refresh_rollups(con: duckdb.DuckDBPyConnection) -> int:
    """Rebuild every queued week from the daily rows, one week at a time (bounded memory, rows
    stored in week order so a snapshot's scan skips other weeks); returns the weeks rebuilt."""
    ensure_rollups(con)
    weeks = [r[0] for r in con.execute(f"SELECT week_start FROM {QUEUE} ORDER BY 1").fetchall()]
    if not weeks:
        return 0
    started = time.perf_counter()
    con.execute("BEGIN")
    try:
        for week in weeks:
            con.execute(f"DELETE FROM {TABLE} WHERE week_start = ?", [week])
            con.execute(
                f"INSERT INTO {TABLE} "
                + weekly_rollup_sql("usage_date BETWEEN $week AND $week + 6"),
                {"week": week},
            )
        con.execute(f"DELETE FROM {QUEUE}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    log.info(
        "usage rollups: %d week(s) rebuilt in %.1f s", len(weeks), time.perf_counter() - started
    )
    return len(weeks)


def rebuild_rollups(con: duckdb.DuckDBPyConnection) -> int:
    """Queue and rebuild every week (after daily rows were changed other than by ingestion)."""
    ensure_rollups(con)
    con.execute("BEGIN")
    try:
        con.execute(f"DELETE FROM {QUEUE}")
        con.execute(f"INSERT INTO {QUEUE} SELECT DISTINCT {WEEK_START} FROM {SOURCE}")
        con.execute(f"DELETE FROM {TABLE}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return refresh_rollups(con)


def check_current(con: duckdb.DuckDBPyConnection) -> None:
    """A snapshot must not read rollups that lag the daily rows: refuse in one line."""
    schema, table = QUEUE.split(".")
    if not _exists(con, schema, table) or _layout(con) != rollup_columns():
        raise InputError("usage rollups are missing: run `churn ingest` to build them")
    if con.execute(f"SELECT count(*) FROM {QUEUE}").fetchone()[0]:
        raise InputError("usage rollups lag the loaded usage: run `churn ingest` to update them")
