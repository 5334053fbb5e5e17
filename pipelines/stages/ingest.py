"""Validated, idempotent ingestion of landing files into DuckDB raw tables, one transaction per file."""

# SQL identifiers and literals here come only from pipelines/contracts.py; every value that comes
# from outside (file paths, dates) is a bound parameter.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from configs.contracts import LINEAGE_COLUMNS, TABLES, Table, raw_table_ddl, validation_sql
from configs.schema import Settings
from pipelines.stages.rollups import ROLLED_UP, ensure_rollups, queue_weeks, refresh_rollups
from pipelines.store.errors import InputError
from pipelines.store.warehouse import META_DDL, connect
from pipelines.store.workdir import Workdir

log = logging.getLogger(__name__)

SUFFIXES = {".parquet", ".csv"}
_DATE_IN_NAME = re.compile(r"_(\d{4}-\d{2}(?:-\d{2})?)$")


@dataclass
class IngestReport:
    """What one ingestion run did."""

    files_seen: int = 0
    files_loaded: int = 0
    files_skipped: int = 0
    files_rejected: int = 0
    rows_loaded: dict[str, int] = field(default_factory=dict)
    rows_quarantined: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(META_DDL)
    for table in TABLES.values():
        con.execute(raw_table_ddl(table))


def file_date(path: Path) -> date | None:
    """The delivery date in the file name (`_YYYY-MM-DD` or `_YYYY-MM`, the month's first day)."""
    m = _DATE_IN_NAME.search(path.stem)
    if not m:
        return None
    text = m.group(1)
    try:
        return date.fromisoformat(text if len(text) == 10 else text + "-01")
    except ValueError:
        return None


def checksum(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def discover(source: Path) -> list[Path]:
    """Landing files in delivery order: by file date, then path (so later deliveries win)."""
    files = [
        p
        for p in source.rglob("*")
        if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: (file_date(p) or date.min, str(p)))


def _reader(path: Path) -> str:
    if path.suffix.lower() == ".csv":
        # Every column as text: bad values become quarantined rows, not a failed load.
        return "read_csv(?, all_varchar = true, header = true, delim = ',', quote = '\"', strict_mode = true)"
    return "read_parquet(?)"


class _Rejected(Exception):
    """The whole file is refused; the message is the reason."""


def _stage(con: duckdb.DuckDBPyConnection, table: Table, path: Path) -> tuple[int, list[str]]:
    """Load the file into a temp table `_stage` with a row number; returns (rows, extra columns)."""
    con.execute("DROP TABLE IF EXISTS _stage")
    try:
        con.execute(
            f"CREATE TEMP TABLE _stage AS SELECT *, row_number() OVER () AS _row FROM {_reader(path)}",
            [str(path)],
        )
    except duckdb.Error as exc:
        text = str(exc).splitlines()[0]
        if "unicode" in text.lower() or "utf" in text.lower():
            raise _Rejected("file is not UTF-8 encoded") from None
        raise _Rejected(f"unreadable file: {text[:200]}") from None
    cols = [r[0] for r in con.execute("DESCRIBE _stage").fetchall() if r[0] != "_row"]
    missing = [c for c in table.column_names if c not in cols]
    if missing:
        raise _Rejected(f"missing required column(s): {', '.join(missing)}")
    rows = con.execute("SELECT count(*) FROM _stage").fetchone()[0]
    if rows == 0:
        raise _Rejected("empty file")
    extra = [c for c in cols if c not in table.column_names]
    return rows, extra


def _load_file(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    path: Path,
    digest: str,
    fdate: date | None,
    max_bad_share: float,
) -> tuple[int, int, int]:
    """Validate and load one staged file inside the caller's transaction: (loaded, bad, superseded)."""
    key = ", ".join(f'"{k}"' for k in table.key)
    reasons = validation_sql(table)
    key_present = " AND ".join(f'"{k}" IS NOT NULL' for k in table.key)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _checked AS SELECT *,"
        f" concat_ws('; ', {', '.join(reasons)},"
        f" CASE WHEN {key_present} AND row_number() OVER (PARTITION BY {key} ORDER BY _row) > 1"
        "  THEN 'duplicate key within file' END) AS _reason FROM _stage"
    )
    rows, bad = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE _reason <> '') FROM _checked"
    ).fetchone()
    if rows and bad / rows > max_bad_share:
        sample = con.execute(
            "SELECT _reason, count(*) FROM _checked WHERE _reason <> '' GROUP BY 1 ORDER BY 2 DESC LIMIT 3"
        ).fetchall()
        detail = "; ".join(f"{r} ({n})" for r, n in sample)
        raise _Rejected(f"{bad} of {rows} rows break the contract (e.g. {detail})")
    sfile = str(path)
    con.execute("DELETE FROM meta.quarantine WHERE source_file = ?", [sfile])
    con.execute(
        "INSERT INTO meta.quarantine SELECT ?, ?, _row, _reason,"
        " to_json(_checked)::VARCHAR, now()::TIMESTAMP FROM _checked WHERE _reason <> ''",
        [table.name, sfile],
    )
    rolled_up = table.name == ROLLED_UP
    if rolled_up and _loaded_before(con, sfile):
        # The rows this path loaded before go: their weeks' rollups must be rebuilt.
        queue_weeks(con, "SELECT usage_date FROM raw.usage_daily WHERE _source_file = ?", [sfile])
    # A corrected re-delivery replaces everything this path loaded before.
    con.execute(f'DELETE FROM raw."{table.name}" WHERE _source_file = ?', [sfile])
    casts = ", ".join(f'TRY_CAST("{c.name}" AS {c.dtype}) AS "{c.name}"' for c in table.columns)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _good AS SELECT {casts} FROM _checked WHERE _reason = ''"
    )
    # Latest delivery wins: keys already loaded from a later file keep their row.
    key_match = " AND ".join(f'r."{k}" = g."{k}"' for k in table.key) + _date_window(con, table)
    later = (
        "(m.file_date > ? OR (m.file_date = ? AND m.path > ?))"
        if fdate is not None
        else "(m.path > ?)"
    )
    later_params = [fdate, fdate, sfile] if fdate is not None else [sfile]
    superseded = con.execute(
        f'SELECT count(*) FROM _good g JOIN raw."{table.name}" r ON {key_match}'
        f" JOIN meta.load_manifest m ON m.path = r._source_file WHERE {later}",
        later_params,
    ).fetchone()[0]
    if superseded:
        con.execute(
            f'DELETE FROM _good g USING raw."{table.name}" r, meta.load_manifest m'
            f" WHERE {key_match} AND m.path = r._source_file AND {later}",
            later_params,
        )
    _note_first_change(con, table, key_match, fdate)
    if rolled_up:
        queue_weeks(con, "SELECT usage_date FROM _good")
    con.execute(f'DELETE FROM raw."{table.name}" r USING _good g WHERE {key_match}')
    lineage = ", ".join(f'"{c.name}"' for c in LINEAGE_COLUMNS)
    cols = ", ".join(f'"{c}"' for c in table.column_names)
    con.execute(
        f'INSERT INTO raw."{table.name}" ({cols}, {lineage})'
        f" SELECT {cols}, ?, now()::TIMESTAMP FROM _good",
        [sfile],
    )
    loaded = con.execute("SELECT count(*) FROM _good").fetchone()[0]
    return loaded, bad, superseded


def _loaded_before(con: duckdb.DuckDBPyConnection, sfile: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM meta.load_manifest WHERE path = ? AND status = 'loaded'", [sfile]
        ).fetchone()[0]
    )


def _date_window(con: duckdb.DuckDBPyConnection, table: Table) -> str:
    """Extra join conditions bounding r's date keys to this file's range.

    Exact (the keys must be equal anyway), and it lets DuckDB skip the row groups of other days
    by their min/max: without it every daily file scans the whole history of the table.
    """
    out = []
    for k in table.key:
        if table.column(k).dtype.upper() != "DATE":
            continue
        low, high = con.execute(f'SELECT min("{k}"), max("{k}") FROM _good').fetchone()
        if low is None:
            return " AND false"
        out.append(f" AND r.\"{k}\" BETWEEN DATE '{low.isoformat()}' AND DATE '{high.isoformat()}'")
    return "".join(out)


def _record(
    con: duckdb.DuckDBPyConnection,
    path: str,
    table: str | None,
    digest: str,
    fdate: date | None,
    counts: tuple[int, int, int],
    status: str,
    reason: str | None,
) -> None:
    con.execute("DELETE FROM meta.load_manifest WHERE path = ?", [path])
    con.execute(
        "INSERT INTO meta.load_manifest VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
        [path, table, digest, fdate, *counts, status, reason],
    )


def _note_first_change(
    con: duckdb.DuckDBPyConnection, table: Table, key_match: str, fdate: date | None
) -> None:
    """The first day this file changes, before its rows replace the old ones (temp _first_change).

    A row's event date, except for a re-delivered row of a validity interval (a product that
    ended or changed fee): an end changes holdings from the earlier of its old and new end, and
    a value is known from the delivery's period on. Dating either from the product's start
    years ago staled every snapshot each month, and a rebuild then wrote today's fee into them.
    """
    if table.event_time is None:
        return
    event = f'CAST(g."{table.event_time}" AS DATE)'
    first = f"min({event})"
    join = ""
    if "end_date" in table.column_names:
        same = " AND ".join(
            f'r."{c}" IS NOT DISTINCT FROM g."{c}"' for c in table.column_names if c != "end_date"
        )
        never = "DATE '9999-12-31'"
        known = f"DATE '{fdate.isoformat()}'" if fdate else event
        ended = (
            f"CASE WHEN r.end_date IS NOT DISTINCT FROM g.end_date THEN {never}"
            f" ELSE least(coalesce(r.end_date, {never}), coalesce(g.end_date, {never})) END"
        )
        first = f"""nullif(min(CASE
            WHEN r."{table.key[0]}" IS NULL THEN {event}
            WHEN NOT ({same}) THEN least({known}, {ended})
            ELSE {ended} END), {never})"""
        join = f' LEFT JOIN raw."{table.name}" r ON {key_match}'
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE _first_change AS SELECT {first} AS d FROM _good g{join}"
    )


def _mark_stale(con: duckdb.DuckDBPyConnection, table: Table) -> None:
    """Late data for a period already built: its snapshots must be rebuilt."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables"
        " WHERE table_schema = 'feat' AND table_name = 'build_log'"
    ).fetchone()[0]
    if not exists or table.event_time is None:
        return
    earliest = con.execute("SELECT d FROM _first_change").fetchone()[0]
    if earliest is not None:
        con.execute("UPDATE feat.build_log SET stale = true WHERE as_of >= ?", [earliest])


def ingest_landing(settings: Settings, source: Path | None = None) -> IngestReport:
    """Load every new or changed landing file under `source` (default: `ingest.source`, else the
    work dir's landing/)."""
    wd = Workdir.from_settings(settings).ensure()
    source = Path(source or settings.ingest.source or wd.landing)
    if not source.is_dir():
        raise InputError(f"landing folder not found: {source}")
    started = time.perf_counter()
    report = IngestReport()
    con = connect(wd)
    try:
        ensure_schema(con)
        ensure_rollups(con)
        known = {
            path: (digest, status)
            for path, digest, status in con.execute(
                "SELECT path, checksum, status FROM meta.load_manifest"
            ).fetchall()
        }
        loaded_digests = {d: p for p, (d, s) in known.items() if s == "loaded"}
        for path in discover(source):
            report.files_seen += 1
            _ingest_one(con, path, source, known, loaded_digests, settings, report)
        # Once per run, not per daily file: a month of files rebuilds each touched week once.
        refresh_rollups(con)
    finally:
        con.close()
    report.seconds = round(time.perf_counter() - started, 2)
    return report


def _ingest_one(con, path, source, known, loaded_digests, settings, report) -> None:
    sfile = str(path.resolve())
    digest = checksum(path)
    fdate = file_date(path)
    if known.get(sfile, (None,))[0] == digest:
        report.files_skipped += 1
        return
    if digest in loaded_digests and loaded_digests[digest] != sfile:
        report.files_skipped += 1
        con.execute("BEGIN")
        _record(
            con,
            sfile,
            None,
            digest,
            fdate,
            (0, 0, 0),
            "duplicate",
            f"same content as {loaded_digests[digest]}",
        )
        con.execute("COMMIT")
        known[sfile] = (digest, "duplicate")
        return
    table_name = (
        path.relative_to(source).parts[0] if len(path.relative_to(source).parts) > 1 else None
    )
    table = TABLES.get(table_name or "")
    con.execute("BEGIN")
    try:
        if table is None:
            raise _Rejected(f"unknown table folder {table_name!r}")
        _, extra = _stage(con, table, path)
        if extra:
            log.warning("%s: ignoring unknown column(s) %s", path.name, ", ".join(extra))
        counts = _load_file(con, table, path, digest, fdate, settings.ingest.max_quarantine_share)
        _mark_stale(con, table)
        _record(con, sfile, table.name, digest, fdate, counts, "loaded", None)
        con.execute("COMMIT")
    except _Rejected as exc:
        con.execute("ROLLBACK")
        con.execute("BEGIN")
        _record(con, sfile, table_name, digest, fdate, (0, 0, 0), "rejected", str(exc))
        con.execute("COMMIT")
        report.files_rejected += 1
        report.rejected[sfile] = str(exc)
        known[sfile] = (digest, "rejected")
        log.warning("rejected %s: %s", path, exc)
        return
    except BaseException:
        con.execute("ROLLBACK")
        raise
    loaded, bad, _ = counts
    log.debug("committed %s: %d rows loaded, %d quarantined", path.name, loaded, bad)
    known[sfile] = (digest, "loaded")
    loaded_digests[digest] = sfile
    report.files_loaded += 1
    report.rows_loaded[table.name] = report.rows_loaded.get(table.name, 0) + loaded
    if bad:
        report.rows_quarantined[table.name] = report.rows_quarantined.get(table.name, 0) + bad


def status(settings: Settings) -> dict[str, list[dict]]:
    """Row counts and date ranges per raw table, last loads, quarantine by reason, rejected files."""
    wd = Workdir.from_settings(settings)
    con = connect(wd, read_only=True)
    try:
        ensure_exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'meta'"
            " AND table_name = 'load_manifest'"
        ).fetchone()[0]
        if not ensure_exists:
            raise InputError(f"nothing ingested into {wd.db_path} yet: run `churn ingest`")
        tables = []
        for t in TABLES.values():
            ev = f'min("{t.event_time}"), max("{t.event_time}")' if t.event_time else "NULL, NULL"
            n, lo, hi, last = con.execute(
                f'SELECT count(*), {ev}, max(_loaded_at) FROM raw."{t.name}"'
            ).fetchone()
            tables.append({"table": t.name, "rows": n, "from": lo, "to": hi, "last_load": last})
        quarantine = [
            {"table": t, "reason": r, "rows": n}
            for t, r, n in con.execute(
                "SELECT table_name, reason, count(*) FROM meta.quarantine GROUP BY 1, 2 ORDER BY 1, 3 DESC"
            ).fetchall()
        ]
        rejected = [
            {"file": p, "status": s, "reason": r}
            for p, s, r in con.execute(
                "SELECT path, status, reason FROM meta.load_manifest"
                " WHERE status <> 'loaded' ORDER BY loaded_at"
            ).fetchall()
        ]
    finally:
        con.close()
    return {"tables": tables, "quarantine": quarantine, "rejected": rejected}


def quarantine_summary(report: IngestReport) -> Counter:
    return Counter(report.rows_quarantined)
