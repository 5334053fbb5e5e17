"""Read-only queries behind the cockpit: short-lived DuckDB connections returning polars frames."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from retention.export_safety import neutralise, safe_name
from retention.handoff import contact_rows
from retention.policy import LIST_COLUMNS as POLICY_LIST_COLUMNS

EMPTY_HINT = "No data yet — run `churn demo` first (or `churn cycle`)."
BUSY_HINT = "The pipeline is writing to the warehouse right now; refresh in a moment."


class DashboardDataError(Exception):
    """A condition the page explains to the user instead of failing."""


class NoData(DashboardDataError):
    """The warehouse, a table or the rows a page needs do not exist yet."""


class WarehouseBusy(DashboardDataError):
    """A running pipeline holds the DuckDB write lock."""


def warehouse_path(home: str | Path) -> Path:
    return Path(home) / "warehouse.duckdb"


@contextlib.contextmanager
def connect(home: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """One read-only connection per batch of queries, closed at once so the pipeline never waits."""
    path = warehouse_path(home)
    if not path.is_file():
        raise NoData(EMPTY_HINT)
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as exc:
        raise WarehouseBusy(BUSY_HINT) from exc
    try:
        yield con
    except duckdb.CatalogException as exc:
        raise NoData(f"{EMPTY_HINT} ({str(exc).splitlines()[0]})") from exc
    finally:
        con.close()


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> pl.DataFrame:
    return con.sql(sql, params=list(params)).pl()


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.sql(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables"
    ).fetchall()
    return {r[0] for r in rows}


def _require(con: duckdb.DuckDBPyConnection, *names: str) -> set[str]:
    have = _tables(con)
    missing = [n for n in names if n not in have]
    if missing:
        raise NoData(f"{EMPTY_HINT} (missing table {', '.join(missing)})")
    return have


# --- Overview -------------------------------------------------------------------------------


@dataclass
class Overview:
    as_of: date
    scores: pl.DataFrame  # latest scores with tier, segment and monthly spend
    churn_trend: pl.DataFrame  # as_of, customers, churn_30d, churn_90d (observed rates)
    manifest: dict[str, Any] | None = None


def overview(home: str | Path) -> Overview:
    with connect(home) as con:
        have = _require(con, "scores.customer_scores")
        latest = con.sql("SELECT max(as_of) FROM scores.customer_scores").fetchall()[0][0]
        if latest is None:
            raise NoData(EMPTY_HINT + " (no scores yet)")
        snapshot = "feat.customer_snapshot" in have
        meta = (
            "f.value_tier, f.segment, f.monthly_spend"
            if snapshot
            else "NULL::VARCHAR AS value_tier, NULL::VARCHAR AS segment, NULL::DOUBLE AS monthly_spend"
        )
        join = "LEFT JOIN feat.customer_snapshot f USING (customer_id, as_of)" if snapshot else ""
        scores = _frame(
            con,
            f"SELECT s.customer_id, s.churn_probability, s.risk_decile, {meta}"  # noqa: S608 - fixed fragments
            f" FROM scores.customer_scores s {join} WHERE s.as_of = ?",
            [latest],
        )
        trend = pl.DataFrame(
            schema={
                "as_of": pl.Date,
                "customers": pl.Int64,
                "churn_30d": pl.Float64,
                "churn_90d": pl.Float64,
            }
        )
        if snapshot:
            trend = _frame(
                con,
                "SELECT as_of, count(*) AS customers, avg(churn_30d) AS churn_30d,"
                " avg(churn_90d) AS churn_90d FROM feat.customer_snapshot GROUP BY 1 ORDER BY 1",
            )
        manifest = None
        if "retention.list_manifest" in have:
            rows = con.sql(
                "SELECT manifest_json FROM retention.list_manifest"
                " ORDER BY as_of DESC, created_at DESC LIMIT 1"
            ).fetchall()
            manifest = json.loads(rows[0][0]) if rows else None
    return Overview(latest, scores, trend, manifest)


def risk_by_group(scores: pl.DataFrame, by: str) -> pl.DataFrame:
    """Customers, expected churners, high-risk count and monthly revenue at risk per group."""
    return (
        scores.group_by(pl.col(by).fill_null("unknown"))
        .agg(
            pl.len().alias("customers"),
            (pl.col("risk_decile") >= 9).sum().alias("high_risk"),
            pl.col("churn_probability").sum().alias("expected_churners"),
            (pl.col("churn_probability") * pl.col("monthly_spend").fill_null(0.0))
            .sum()
            .alias("revenue_at_risk"),
        )
        .sort("revenue_at_risk", descending=True)
    )


# --- Retention lists ------------------------------------------------------------------------

# customer_id is internal: the list page and its exports only ever see the masked key.
LIST_COLUMNS = (
    "customer_key",
    *(c for c in POLICY_LIST_COLUMNS if c not in ("list_id", "as_of", "customer_id")),
)


def list_ids(home: str | Path) -> pl.DataFrame:
    """Stored lists, newest first: list_id, as_of, customers, and why a list is held (or null)."""
    with connect(home) as con:
        have = _require(con, "retention.retention_lists")
        # A held list is stored for review; the reason lives in its manifest.
        held = (
            "(SELECT json_extract_string(m.manifest_json, '$.held')"
            " FROM retention.list_manifest m WHERE m.list_id = l.list_id LIMIT 1)"
            if "retention.list_manifest" in have
            else "NULL::VARCHAR"
        )
        return _frame(
            con,
            f"SELECT list_id, as_of, count(*) AS customers, {held} AS held"  # noqa: S608 - fixed fragment
            " FROM retention.retention_lists l GROUP BY 1, 2 ORDER BY as_of DESC, list_id DESC",
        )


def retention_list(home: str | Path, list_id: str) -> pl.DataFrame:
    with connect(home) as con:
        _require(con, "retention.retention_lists")
        cols = {
            r[0]
            for r in con.sql(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = 'retention' AND table_name = 'retention_lists'"
            ).fetchall()
        }
        select = ", ".join(c for c in LIST_COLUMNS if c in cols)
        return _frame(
            con,
            f"SELECT {select} FROM retention.retention_lists WHERE list_id = ?"  # noqa: S608 - known columns
            " ORDER BY expected_value DESC NULLS LAST",
            [list_id],
        )


def filter_list(
    frame: pl.DataFrame,
    *,
    value_tier: Sequence[str] = (),
    segment: Sequence[str] = (),
    offer: Sequence[str] = (),
    channel: Sequence[str] = (),
    deciles: tuple[int, int] = (1, 10),
    group: str = "all",
) -> pl.DataFrame:
    """Apply the list page's filters; an empty selection means no filter on that column."""
    cond = pl.col("risk_decile").is_between(deciles[0], deciles[1])
    for col, chosen in (
        ("value_tier", value_tier),
        ("segment", segment),
        ("offer", offer),
        ("channel", channel),
    ):
        if chosen:
            cond &= pl.col(col).is_in(list(chosen))
    if group == "treated":
        cond &= ~pl.col("control_flag")
    elif group == "control":
        cond &= pl.col("control_flag")
    return frame.filter(cond)


def to_csv(frame: pl.DataFrame) -> bytes:
    """CSV with every text cell a spreadsheet would run as a formula neutralised."""
    return neutralise(frame).write_csv().encode("utf-8")


def to_xlsx(frame: pl.DataFrame, sheet: str = "retention_list") -> bytes:
    """XLSX with every text cell a spreadsheet would run as a formula neutralised."""
    buf = io.BytesIO()
    neutralise(frame).write_excel(buf, worksheet=sheet, autofit=True)
    return buf.getvalue()


def contacts_download(frame: pl.DataFrame, kind: str) -> bytes:
    """What the download buttons hand marketing: customers to contact only, never the control."""
    contacts = contact_rows(frame)
    return to_csv(contacts) if kind == "csv" else to_xlsx(contacts)


def download_name(list_id: str, kind: str) -> str:
    """`<list id>.<kind>`, refusing a list id that is not one plain file name."""
    try:
        return f"{safe_name(list_id, 'list id')}.{kind}"
    except ValueError as exc:
        raise DashboardDataError(str(exc)) from None


# --- Customer -------------------------------------------------------------------------------


def customer_choices(home: str | Path, limit: int = 300) -> pl.DataFrame:
    """The riskiest customers at the latest scoring date, to pick from."""
    with connect(home) as con:
        _require(con, "scores.customer_scores")
        return _frame(
            con,
            "SELECT customer_id, churn_probability, risk_decile FROM scores.customer_scores"
            " WHERE as_of = (SELECT max(as_of) FROM scores.customer_scores)"
            " ORDER BY churn_probability DESC, customer_id LIMIT ?",
            [limit],
        )


def masked_choices(home: str | Path, limit: int = 300) -> pl.DataFrame:
    """Marketing's pick list: the riskiest customers of the newest list, by masked key only."""
    with connect(home) as con:
        _require(con, "retention.retention_lists")
        return _frame(
            con,
            "SELECT customer_key, churn_probability FROM retention.retention_lists"
            " WHERE list_id = (SELECT list_id FROM retention.retention_lists"
            "                  ORDER BY as_of DESC, list_id DESC LIMIT 1)"
            " ORDER BY churn_probability DESC, customer_key LIMIT ?",
            [limit],
        )


def customer_for_key(home: str | Path, key: str) -> str | None:
    """The internal id behind a masked key of a published list (never shown), or None."""
    with connect(home) as con:
        _require(con, "retention.retention_lists")
        row = con.execute(
            "SELECT customer_id FROM retention.retention_lists WHERE customer_key = ? LIMIT 1",
            [key],
        ).fetchone()
    return row[0] if row else None


@dataclass
class CustomerView:
    customer_id: str
    profile: dict[str, Any] = field(default_factory=dict)
    scores: pl.DataFrame = field(default_factory=pl.DataFrame)
    timeline: pl.DataFrame = field(default_factory=pl.DataFrame)  # month, metric, value
    offers: pl.DataFrame = field(default_factory=pl.DataFrame)
    tickets: pl.DataFrame = field(default_factory=pl.DataFrame)


# Monthly aggregates per raw table: (table, metric label, SQL expression over the month).
TIMELINE = (
    ("raw.usage_daily", "usage_date", "voice minutes", "sum(voice_min)"),
    ("raw.usage_daily", "usage_date", "data MB", "sum(data_mb)"),
    ("raw.usage_daily", "usage_date", "dropped call rate", "avg(dropped_call_rate)"),
    ("raw.invoices", "period_start", "billed", "sum(amount)"),
    ("raw.payments", "payment_date", "paid", "sum(amount)"),
    ("raw.topups", "topup_ts", "top-ups", "sum(amount)"),
    ("raw.tickets", "opened_ts", "complaints", "count(*)"),
)


def fill_months(timeline: pl.DataFrame, additive: Sequence[str]) -> pl.DataFrame:
    """A month with no tickets or top-ups is a zero, not a gap; averages keep their gaps."""
    if timeline.is_empty():
        return timeline
    # Only series the customer has at all: a prepaid customer gets no all-zero bill chart.
    additive = [m for m in additive if m in set(timeline["metric"])]
    months = pl.date_range(
        timeline["month"].min(), timeline["month"].max(), "1mo", eager=True
    ).alias("month")
    grid = pl.DataFrame(months).join(pl.DataFrame({"metric": list(additive)}), how="cross")
    filled = (
        grid.join(timeline, on=["month", "metric"], how="left")
        .with_columns(pl.col("value").fill_null(0.0))
        .select("month", "metric", "value")
    )
    rest = timeline.filter(~pl.col("metric").is_in(list(additive))).select(filled.columns)
    return pl.concat([filled, rest]).sort("metric", "month")


def customer(home: str | Path, customer_id: str) -> CustomerView:
    view = CustomerView(customer_id)
    with connect(home) as con:
        have = _tables(con)
        if "feat.customer_snapshot" in have:
            snap = _frame(
                con,
                "SELECT as_of, segment, value_tier, lifecycle_stage, plan_id, payment_type, region,"
                " tenure_days, monthly_spend, days_to_contract_end FROM feat.customer_snapshot"
                " WHERE customer_id = ? ORDER BY as_of DESC LIMIT 1",
                [customer_id],
            )
            if snap.height:
                view.profile.update(snap.row(0, named=True))
        if "raw.customers" in have:
            raw = _frame(
                con,
                "SELECT segment, region, payment_type, plan_id, activation_date, contract_end"
                " FROM raw.customers WHERE customer_id = ?",
                [customer_id],
            )
            if raw.height:
                for k, v in raw.row(0, named=True).items():
                    view.profile.setdefault(k, v)
        if "scores.customer_scores" in have:
            view.scores = _frame(
                con,
                "SELECT as_of, churn_probability, risk_decile, credit_pd, credit_grade,"
                " reason_1, reason_2, reason_3, churn_model_version FROM scores.customer_scores"
                " WHERE customer_id = ? ORDER BY as_of",
                [customer_id],
            )
        parts = [
            f"SELECT date_trunc('month', {col})::DATE AS month, '{label}' AS metric,"  # noqa: S608 - constants
            f" ({expr})::DOUBLE AS value FROM {table} WHERE customer_id = $cid GROUP BY 1"
            for table, col, label, expr in TIMELINE
            if table in have
        ]
        if parts:
            timeline = con.sql(" UNION ALL ".join(parts), params={"cid": customer_id}).pl()
            additive = [m for t, _, m, expr in TIMELINE if t in have and not expr.startswith("avg")]
            view.timeline = fill_months(timeline, additive)
        if "raw.tickets" in have:
            view.tickets = _frame(
                con,
                "SELECT opened_ts, resolved_ts, category, severity, sla_hours, repeat_flag"
                " FROM raw.tickets WHERE customer_id = ? ORDER BY opened_ts DESC LIMIT 20",
                [customer_id],
            )
        if "retention.retention_lists" in have:
            contacts = "raw.contacts" in have
            response = "c.response" if contacts else "NULL::VARCHAR AS response"
            join = (
                "LEFT JOIN raw.contacts c ON c.list_id = l.list_id AND c.customer_id = l.customer_id"
                if contacts
                else ""
            )
            view.offers = _frame(
                con,
                "SELECT l.list_id, l.as_of, l.offer, l.channel, l.control_flag, l.churn_probability,"  # noqa: S608
                f" l.expected_value, l.contact_by, {response} FROM retention.retention_lists l {join}"
                " WHERE l.customer_id = ? ORDER BY l.as_of DESC",
                [customer_id],
            )
    if not view.profile and view.scores.is_empty():
        raise NoData(f"No customer {customer_id!r} in the warehouse.")
    return view


# --- Monitoring -----------------------------------------------------------------------------


def drift_runs(home: str | Path) -> pl.DataFrame:
    with connect(home) as con:
        _require(con, "monitor.drift_runs")
        return _frame(con, "SELECT * FROM monitor.drift_runs ORDER BY run_at DESC")


def feature_drift(home: str | Path, run_at: Any, top: int = 20) -> pl.DataFrame:
    """The run's most drifted features; strength is −log10(p) for tests, the distance otherwise."""
    with connect(home) as con:
        _require(con, "monitor.feature_drift")
        return _frame(
            con,
            """
            SELECT feature, method, drift_score, drifted,
                   CASE WHEN method ILIKE '%p_value%'
                        THEN -log10(greatest(drift_score, 1e-300)) ELSE drift_score END AS strength
            FROM monitor.feature_drift WHERE run_at = ?
            ORDER BY drifted DESC, strength DESC, feature LIMIT ?
            """,
            [run_at, top],
        )


def reports(home: str | Path) -> list[Path]:
    """Evidently HTML reports, newest as-of first."""
    folder = Path(home) / "reports"
    files = sorted(folder.glob("*.html"), key=lambda p: p.stem)  # drift before quality
    return sorted(files, key=lambda p: p.stem.rsplit("_", 1)[-1], reverse=True)


# --- Campaigns ------------------------------------------------------------------------------


def campaign_results(home: str | Path) -> pl.DataFrame:
    with connect(home) as con:
        have = _tables(con)
        if "eval.campaign_results" not in have:
            return pl.DataFrame()  # the page explains that nothing has been evaluated yet
        as_of = (
            "(SELECT max(as_of) FROM retention.list_manifest m WHERE m.list_id = r.list_id)"
            if "retention.list_manifest" in have
            else "NULL::DATE"
        )
        return _frame(
            con,
            f"SELECT r.*, {as_of} AS as_of FROM eval.campaign_results r"  # noqa: S608 - fixed fragment
            " ORDER BY as_of DESC NULLS LAST, list_id, window_days, breakdown, grp",
        )
