"""Build, store and load feat.customer_snapshot (DuckDB + Parquet) and its feature dictionary."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from configs.schema import Settings
from features.columns import feature_columns
from features.describe import dictionary_csv
from features.history import is_complete, lookback_days
from features.relative import add_relative_features, relative_specs
from features.snapshot import META_COLUMNS, PLANS_NOW_SQL, feature_specs, labels_sql, snapshot_sql
from features.split import monthly_as_of_dates
from pipelines.stages.rollups import check_current, refresh_rollups
from pipelines.store.config import features_hash
from pipelines.store.errors import InputError
from pipelines.store.warehouse import BUILD_LOG_DDL, connect
from pipelines.store.workdir import Workdir, atomic_path, atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class FeatureBuildReport:
    as_of_dates: list[date] = field(default_factory=list)
    rows: int = 0
    features: int = 0
    seconds: float = 0.0
    data_end: date | None = None
    parquet: list[str] = field(default_factory=list)
    # Snapshots whose feature windows reach before the data starts: never train or validate.
    incomplete: list[date] = field(default_factory=list)
    # Built earlier with the same config and inputs: features kept, labels refreshed.
    reused: list[date] = field(default_factory=list)


def data_end(con: duckdb.DuckDBPyConnection) -> date | None:
    """The last day the loaded data covers (usage is delivered every day)."""
    return con.execute("SELECT max(usage_date) FROM raw.usage_daily").fetchall()[0][0]


def data_span(con: duckdb.DuckDBPyConnection) -> tuple[date | None, date | None]:
    """The first and last day of loaded usage; (None, None) when none is loaded."""
    try:
        row = con.execute("SELECT min(usage_date), max(usage_date) FROM raw.usage_daily").fetchall()
        return row[0]
    except duckdb.CatalogException:
        return None, None


def build_frame(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    as_of: date,
    end: date,
    relative: bool = True,
    rollups: bool = True,
) -> pl.DataFrame:
    """Snapshot + labels for one as-of date, as a polars frame (pure SQL over raw tables).

    `relative=False` leaves out the segment-relative companions: a partition of the customers
    cannot compute its segments' trends (with_relative adds them to the whole snapshot).
    `rollups=False` sums usage from every daily row instead of the weekly rollups (the
    reference they are tested against; same features).
    """
    con.execute(PLANS_NOW_SQL)
    con.execute("DROP TABLE IF EXISTS _snap")
    if rollups:
        check_current(con)
    sql = snapshot_sql(settings.features, as_of if rollups else None)
    con.execute(f"CREATE TEMP TABLE _snap AS {sql}", {"as_of": as_of})
    f = settings.features
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _labels AS {labels_sql(f.horizons_days, f.serious_arrears_days)}",
        {"data_end": end},
    )
    frame = con.sql(
        "SELECT s.*, l.* EXCLUDE (customer_id, as_of) FROM _snap s JOIN _labels l USING (customer_id, as_of)"
    ).pl()
    # Fixed-point results of SQL arithmetic become plain floats for the models, and floats are
    # rounded: parallel aggregation sums in varying order, and the last bits must not change a
    # model (or a resumed cycle's list).
    frame = frame.with_columns(pl.col(pl.Decimal).cast(pl.Float64))
    frame = frame.with_columns(pl.col(pl.Float64, pl.Float32).round(6))
    return with_relative(frame) if relative else frame


def with_relative(frame: pl.DataFrame) -> pl.DataFrame:
    """Segment-relative companions of a whole snapshot, rounded like every float."""
    out = add_relative_features(frame)
    return out.with_columns(pl.col(s.name).round(6) for s in relative_specs())


def check_as_of(as_of: date, end: date | None) -> None:
    """An as-of the loaded usage data cannot cover is the user's to fix, in one line."""
    if end is None:
        raise InputError("no usage rows loaded yet: run `churn simulate` and `churn ingest` first")
    if as_of > end:
        raise InputError(f"as-of {as_of} is after the loaded data (which ends {end})")


def build_snapshots(
    settings: Settings, as_of: date, history: int = 1, con=None
) -> FeatureBuildReport:
    """Build `history` monthly snapshots ending at as_of; replaces those dates atomically."""
    started = time.perf_counter()
    wd = Workdir.from_settings(settings).ensure()
    own = con is None
    con = con or connect(wd)
    report = FeatureBuildReport()
    try:
        try:
            end = data_end(con)
        except duckdb.CatalogException:
            raise InputError("no usage data loaded: run `churn ingest` first") from None
        check_as_of(as_of, end)
        report.data_end = end
        refresh_rollups(con)
        parts = -(-_customers(con) // settings.warehouse.partition_customers)
        if own and parts > 1:
            # Large bases: partitions one after another, each attaching the warehouse read-only.
            con.close()
            own = False
            return build_snapshots_partitioned(settings, as_of, history, _sequential, parts)

        todo = reuse_snapshots(settings, con, monthly_as_of_dates(as_of, history), end, report)

        def frames() -> Iterator[pl.DataFrame]:
            # One date at a time: memory holds one snapshot, not the whole history.
            for d in todo:
                frame = build_frame(con, settings, d, end)
                log.info("snapshot %s: %d customers", d, frame.height)
                yield frame

        store_snapshots(settings, con, frames(), as_of, history, report, only=todo)
    finally:
        if own:
            con.close()
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def _customers(con: duckdb.DuckDBPyConnection) -> int:
    try:
        return int(con.execute("SELECT count(*) FROM raw.customers").fetchone()[0])
    except duckdb.CatalogException:
        return 0


def _sequential(fn, args: list[tuple]) -> list:
    return [fn(*a) for a in args]


def store_snapshots(
    settings: Settings,
    con: duckdb.DuckDBPyConnection,
    frames: Iterable[pl.DataFrame],
    as_of: date,
    history: int,
    report: FeatureBuildReport,
    only: list[date] | None = None,
) -> None:
    """Replace the built dates in feat.customer_snapshot and Parquet, in one transaction.

    `frames` is consumed one snapshot at a time inside the transaction, so a failure part-way
    leaves the previous snapshots in place. `only`: the dates being built (default: all
    `history` dates up to as_of; reused dates are left alone).
    """
    wd = Workdir.from_settings(settings)
    con.execute(BUILD_LOG_DDL)
    dates = set(monthly_as_of_dates(as_of, history) if only is None else only)
    heights: dict[date, int] = {}
    con.execute("BEGIN")
    try:
        cleared: set[date] = set()
        for frame in frames:
            con.register("_new_snap", frame)
            try:
                if not cleared:
                    _prepare_table(con)
                built = set(frame["as_of"].unique().to_list())
                # Every date this build owns is emptied once, before its first rows go in.
                fresh = (built | dates) - cleared
                con.execute(
                    "DELETE FROM feat.customer_snapshot WHERE list_contains(?, as_of)",
                    [sorted(fresh)],
                )
                cleared |= fresh
                dates |= built
                con.execute("INSERT INTO feat.customer_snapshot SELECT * FROM _new_snap")
            finally:
                con.unregister("_new_snap")
            for d in built:
                heights[d] = heights.get(d, 0) + frame.filter(pl.col("as_of") == d).height
            report.rows += frame.height
            report.features = len(feature_columns(frame.columns))
        ordered = sorted(dates)
        con.execute("DELETE FROM feat.build_log WHERE list_contains(?, as_of)", [ordered])
        h = features_hash(settings)
        start, _ = data_span(con)
        lookback = lookback_days(settings.features)
        for d in ordered:
            con.execute(
                "INSERT INTO feat.build_log (as_of, config_hash, built_at, rows, stale, complete)"
                " VALUES (?, ?, now()::TIMESTAMP, ?, false, ?)",
                [d, h, heights.get(d, 0), is_complete(d, start, lookback)],
            )
        report.incomplete = [d for d in ordered if not is_complete(d, start, lookback)]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    report.as_of_dates = sorted(set(ordered) | set(report.reused))
    for d in ordered:
        report.parquet.append(write_parquet(wd, con, d))
    atomic_write_text(wd.features / "feature_dictionary.csv", dictionary_csv(settings))


def parquet_path(wd: Workdir, d: date) -> Path:
    return wd.features / f"customer_snapshot_{d.isoformat()}.parquet"


def write_parquet(wd: Workdir, con: duckdb.DuckDBPyConnection, d: date) -> str:
    target = parquet_path(wd, d)
    with atomic_path(target) as tmp:
        # Written by DuckDB straight from the table: no second copy of the snapshot in memory.
        sql = "COPY (SELECT * FROM feat.customer_snapshot WHERE as_of = ? ORDER BY customer_id)"
        con.execute(f"{sql} TO '{_sql_path(tmp)}' (FORMAT parquet)", [d])
    return str(target)


def expected_columns(settings: Settings) -> set[str]:
    """The snapshot columns this code and config build (meta, features, labels)."""
    f = settings.features
    labels = {f"{k}_{int(h)}d" for h in f.horizons_days for k in ("churn", "default")}
    return set(META_COLUMNS) | {s.name for s in feature_specs(f)} | labels


def reusable(settings: Settings, con: duckdb.DuckDBPyConnection, dates: list[date]) -> set[date]:
    """Dates already built with this features config and feature set, not marked stale by late
    data (`feat.build_log.config_hash` holds `features_hash`: other config cannot change them)."""
    con.execute(BUILD_LOG_DDL)
    columns = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = 'feat' AND table_name = 'customer_snapshot'"
        ).fetchall()
    }
    if columns != expected_columns(settings):
        return set()  # the feature set changed (code or config): rebuild everything
    rows = con.execute(
        "SELECT as_of FROM feat.build_log"
        " WHERE list_contains(?, as_of) AND config_hash = ? AND NOT coalesce(stale, false)",
        [dates, features_hash(settings)],
    ).fetchall()
    return {r[0] for r in rows}


def reuse_snapshots(
    settings: Settings,
    con: duckdb.DuckDBPyConnection,
    dates: list[date],
    end: date,
    report: FeatureBuildReport,
) -> list[date]:
    """Keep the features of reusable dates and recompute only their labels (outcomes keep
    maturing as data arrives); returns the dates that still need a build."""
    keep = sorted(reusable(settings, con, dates))
    if keep:
        f = settings.features
        labels = [f"{k}_{int(h)}d" for h in f.horizons_days for k in ("churn", "default")]
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _snap AS SELECT customer_id, as_of, payment_type"
            " FROM feat.customer_snapshot WHERE list_contains(?, as_of)",
            [keep],
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE _labels AS {labels_sql(f.horizons_days, f.serious_arrears_days)}",
            {"data_end": end},
        )
        assign = ", ".join(f'"{c}" = l."{c}"' for c in labels)
        moved = " OR ".join(f's."{c}" IS DISTINCT FROM l."{c}"' for c in labels)
        match = "s.customer_id = l.customer_id AND s.as_of = l.as_of"
        con.execute("BEGIN")
        try:
            # Only rows whose outcome moved are rewritten, and only their dates' Parquet files:
            # most past snapshots' labels matured months ago (8 files of 1M rows a cycle).
            changed = {
                r[0]
                for r in con.execute(
                    f"SELECT DISTINCT s.as_of FROM feat.customer_snapshot s JOIN _labels l ON {match}"  # noqa: S608 - config-validated label names
                    f" WHERE {moved}"
                ).fetchall()
            }
            con.execute(
                f"UPDATE feat.customer_snapshot AS s SET {assign} FROM _labels l"  # noqa: S608 - config-validated label names
                f" WHERE {match} AND ({moved})"
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        wd = Workdir.from_settings(settings)
        for d in keep:
            path = parquet_path(wd, d)
            if d in changed or not path.exists():
                write_parquet(wd, con, d)
            report.parquet.append(str(path))
        log.info(
            "%d snapshot(s) %s .. %s reused: features unchanged, labels refreshed",
            len(keep),
            min(keep),
            max(keep),
        )
    report.reused = keep
    return [d for d in dates if d not in keep]


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _prepare_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create feat.customer_snapshot like _new_snap; drop it first if the feature set changed."""
    existing = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'feat' AND table_name = 'customer_snapshot' ORDER BY ordinal_position"
    ).fetchall()
    incoming = [tuple(r[:2]) for r in con.execute("DESCRIBE _new_snap").fetchall()]
    if existing and [tuple(c) for c in existing] != incoming:
        # The feature set changed (config or code): older snapshots must be rebuilt.
        con.execute("DROP TABLE feat.customer_snapshot")
        con.execute("DELETE FROM feat.build_log")
        existing = []
    if not existing:
        con.execute("CREATE TABLE feat.customer_snapshot AS SELECT * FROM _new_snap LIMIT 0")


def build_partition(
    db_path: str, settings: Settings, as_of: date, end: date, part: int, parts: int
) -> pl.DataFrame:
    """One customer-hash partition of a snapshot: the same SQL over raw tables seen through views.

    Every feature is a per-customer aggregate, so partitions concatenate to the full snapshot.
    The warehouse is attached read-only: any number of workers can read it at once.
    """
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{int(settings.warehouse.memory_limit_mb)}MB'")
        quoted = db_path.replace("'", "''")
        con.execute(f"ATTACH '{quoted}' AS wh (READ_ONLY)")
        tables = con.execute(
            "SELECT table_schema, table_name, bool_or(column_name = 'customer_id')"
            " FROM information_schema.columns WHERE table_catalog = 'wh'"
            " AND table_schema IN ('raw', 'rollup') GROUP BY 1, 2"
        ).fetchall()
        for schema in sorted({"raw"} | {t[0] for t in tables}):
            con.execute(f"CREATE SCHEMA {schema}")
        for schema, table, keyed in tables:
            where = f" WHERE hash(customer_id) % {int(parts)} = {int(part)}" if keyed else ""
            name = table.replace('"', '""')
            # names come from the warehouse's own catalogue (contract and rollup tables), quoted
            con.execute(
                f'CREATE VIEW {schema}."{name}" AS SELECT * FROM wh.{schema}."{name}"{where}'  # noqa: S608
            )
        return build_frame(con, settings, as_of, end, relative=False)
    finally:
        con.close()


def build_snapshots_partitioned(
    settings: Settings, as_of: date, history: int, run_parts, parts: int | None = None
) -> FeatureBuildReport:
    """build_snapshots with each date computed as customer-hash partitions by `run_parts`.

    `run_parts(fn, [args, ...])` runs fn over the argument tuples (e.g. as Dask tasks) and returns
    their results; the warehouse is closed meanwhile so workers can attach it.
    """
    started = time.perf_counter()
    wd = Workdir.from_settings(settings).ensure()
    report = FeatureBuildReport()
    con = connect(wd, read_only=True)
    try:
        end = data_end(con)
    except duckdb.CatalogException:
        raise InputError("no usage data loaded: run `churn ingest` first") from None
    finally:
        con.close()
    check_as_of(as_of, end)
    report.data_end = end
    parts = parts or settings.executor.partitions
    con = connect(wd)
    try:
        refresh_rollups(con)  # before the workers attach the warehouse read-only
        todo = reuse_snapshots(settings, con, monthly_as_of_dates(as_of, history), end, report)
    finally:
        con.close()
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=wd.features))
    try:
        staged = []
        for d in todo:
            pieces = run_parts(
                build_partition,
                [(str(wd.db_path), settings, d, end, k, parts) for k in range(parts)],
            )
            frame = with_relative(pl.concat(pieces, how="vertical_relaxed").sort("customer_id"))
            log.info("snapshot %s: %d customers in %d partitions", d, frame.height, parts)
            # Staged on disk: the writer holds one snapshot in memory at a time.
            staged.append(staging / f"{d.isoformat()}.parquet")
            frame.write_parquet(staged[-1])
            del frame, pieces
        con = connect(wd)
        try:
            store_snapshots(
                settings,
                con,
                (pl.read_parquet(f) for f in staged),
                as_of,
                history,
                report,
                only=todo,
            )
        finally:
            con.close()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def needs_build(settings: Settings, as_of: date, con=None) -> bool:
    own = con is None
    wd = Workdir.from_settings(settings)
    if own and not wd.db_path.exists():
        return True
    con = con or connect(wd)
    try:
        con.execute(BUILD_LOG_DDL)
        row = con.execute(
            "SELECT config_hash, stale FROM feat.build_log WHERE as_of = ?", [as_of]
        ).fetchone()
    finally:
        if own:
            con.close()
    return row is None or row[1] or row[0] != features_hash(settings)


def load_snapshots(
    settings: Settings,
    as_of_dates: list[date] | None = None,
    con=None,
    where: str = "true",
    sample: float = 1.0,
) -> pl.DataFrame:
    """Snapshots (all dates, or those given) in a fixed order; `sample` < 1 keeps a stable
    share of customers (by hash, so a customer's months stay together)."""
    own = con is None
    con = con or connect(Workdir.from_settings(settings), read_only=True)
    dates = "list_contains($dates, as_of)" if as_of_dates else "true"
    keep = f"hash(customer_id) % 1000000 < {int(sample * 1_000_000)}" if sample < 1 else "true"
    params = {"dates": as_of_dates} if as_of_dates else {}
    try:
        return con.sql(
            # A fixed row order: training must not depend on how DuckDB scheduled the scan.
            f"SELECT * FROM feat.customer_snapshot WHERE {dates} AND {keep} AND ({where})"  # noqa: S608 - callers pass fixed SQL
            " ORDER BY as_of, customer_id",
            params=params,
        ).pl()
    except duckdb.CatalogException:
        raise InputError("no feature snapshots yet: run `churn features --as-of DATE`") from None
    finally:
        if own:
            con.close()
