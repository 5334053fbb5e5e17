"""Weekly usage rollups: daily usage folded into per-customer weeks, and usage windows read from them.

A window (T - w, T] is the whole weeks inside it plus, for the few weeks a window boundary cuts
through, their days. Sums, counts, maxima and the moments of a least-squares slope add up across
such pieces, so every usage feature equals the one summed day by day; only the order of
floating-point additions changes (the build rounds floats to 6 decimals afterwards).

Weeks start on Mondays. All SQL here is assembled from the fixed metric names below, config
integers and dates formatted by Python; nothing comes from free text.
"""

# ruff: noqa: S608

from __future__ import annotations

from datetime import date, timedelta

# (column, aggregate over the window, label, reason group) — the daily metrics usage features use.
USAGE_METRICS = (
    ("voice_min", "sum", "voice minutes", "usage_down"),
    ("sms_count", "sum", "SMS sent", "usage_down"),
    ("data_mb", "sum", "data used (MB)", "usage_down"),
    ("roaming_mb", "sum", "roaming data (MB)", None),
    ("offnet_share", "avg", "average off-net share of calls", "price"),
    ("dropped_call_rate", "avg", "average dropped-call rate", "network_quality"),
)
SUMS = tuple(col for col, agg, _, _ in USAGE_METRICS if agg == "sum")
MEANS = tuple(col for col, agg, _, _ in USAGE_METRICS if agg == "avg")
# Daily trends: regr_slope(y, day) over the slope window.
SLOPES = ("data_mb", "voice_min")
SLOPE_DAYS = 90
# The "previous 60 days" of the 30-vs-60 trends: (T - 90, T - 30].
PREV = (30, 90)

EPOCH = date(1970, 1, 5)  # a Monday
WEEK_START = "(usage_date - CAST((usage_date - DATE '1970-01-05') % 7 AS INTEGER))"

SOURCE = "raw.usage_daily"
TABLE = "rollup.usage_weekly"
QUEUE = "rollup.usage_dirty"


def week_start(d: date) -> date:
    return d - timedelta(days=(d - EPOCH).days % 7)


def rollup_columns() -> list[tuple[str, str]]:
    """Columns of the weekly rollup table, in order (the DDL and both piece selects use them)."""
    cols = [("customer_id", "VARCHAR"), ("week_start", "DATE"), ("days", "BIGINT")]
    cols.append(("last_day", "DATE"))
    cols += [(c, "BIGINT" if c == "sms_count" else "DOUBLE") for c in SUMS]
    for c in MEANS:
        cols += [(f"{c}_sum", "DOUBLE"), (f"{c}_n", "BIGINT")]
    for y in SLOPES:
        # day index j within the piece: count, sum j, sum j², sum j·y over days where y is known
        cols += [(f"{y}_n", "BIGINT"), (f"{y}_j", "BIGINT"), (f"{y}_jj", "BIGINT")]
        cols.append((f"{y}_jy", "DOUBLE"))
    return cols


def weekly_rollup_sql(where: str) -> str:
    """One row per customer and week over the daily rows matching `where` (whole weeks)."""
    parts = [
        "customer_id",
        "week_start",
        "count(*) AS days",
        "max(usage_date) AS last_day",
    ]
    for c in SUMS:
        kind = "BIGINT" if c == "sms_count" else "DOUBLE"
        parts.append(f"CAST(sum({c}) AS {kind}) AS {c}")
    for c in MEANS:
        parts += [f"sum({c}) AS {c}_sum", f"count({c}) AS {c}_n"]
    for y in SLOPES:
        known = f"FILTER (WHERE {y} IS NOT NULL)"
        parts += [
            f"count({y}) AS {y}_n",
            f"CAST(coalesce(sum(j) {known}, 0) AS BIGINT) AS {y}_j",
            f"CAST(coalesce(sum(j * j) {known}, 0) AS BIGINT) AS {y}_jj",
            f"sum(j * {y}) AS {y}_jy",
        ]
    return (
        f"SELECT {', '.join(parts)} FROM ("
        f" SELECT *, {WEEK_START} AS week_start, CAST(usage_date - {WEEK_START} AS BIGINT) AS j"
        f" FROM {SOURCE} WHERE {where}) GROUP BY customer_id, week_start"
    )


def _day_piece() -> str:
    """A daily row shaped like a rollup row: a piece of one day (j = 0)."""
    parts = [
        "customer_id",
        "usage_date AS lo",
        "CAST(1 AS BIGINT) AS days",
        "usage_date AS last_day",
    ]
    for c in SUMS:
        kind = "BIGINT" if c == "sms_count" else "DOUBLE"
        parts.append(f"CAST({c} AS {kind}) AS {c}")
    for c in MEANS:
        parts += [f"{c} AS {c}_sum", f"CAST({c} IS NOT NULL AS BIGINT) AS {c}_n"]
    for y in SLOPES:
        parts += [
            f"CAST({y} IS NOT NULL AS BIGINT) AS {y}_n",
            f"CAST(0 AS BIGINT) AS {y}_j",
            f"CAST(0 AS BIGINT) AS {y}_jj",
            f"CAST(0 AS DOUBLE) AS {y}_jy",
        ]
    return ", ".join(parts)


def _lit(d: date) -> str:
    return f"DATE '{d.isoformat()}'"


def boundaries(windows: list[int]) -> list[int]:
    """Days back from as-of where some usage window starts or ends, shortest first."""
    return sorted(set(int(w) for w in windows) | {*PREV, SLOPE_DAYS, max([*windows, 180])})


def plan(as_of: date, windows: list[int]) -> tuple[list[date], list[tuple[date, date]]]:
    """Whole weeks to read from the rollup, and day ranges to read raw, for (as_of - max, as_of].

    A week is read day by day when a boundary (or as-of itself) cuts through it.
    """
    bounds = boundaries(windows)
    first = as_of - timedelta(days=bounds[-1] - 1)
    cut = set()
    for b in [0, *bounds]:
        day = as_of - timedelta(days=b)
        if day != week_start(day) + timedelta(days=6):
            cut.add(week_start(day))
    weeks = []
    s = week_start(first)
    if s < first:
        s += timedelta(days=7)
    while s + timedelta(days=6) <= as_of:
        if s not in cut:
            weeks.append(s)
        s += timedelta(days=7)
    ranges: list[tuple[date, date]] = []
    for s in sorted(cut):
        lo, hi = max(s, first), min(s + timedelta(days=6), as_of)
        if lo > hi:
            continue
        if ranges and ranges[-1][1] + timedelta(days=1) >= lo:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], hi))
        else:
            ranges.append((lo, hi))
    return weeks, ranges


def usage_ctes(windows: list[int], as_of: date, names: dict[str, str]) -> str:
    """The CTEs ending in `u` (one row per customer, the usage features) read from rollups.

    `names` maps each usage feature to its window key: ("sum", col, w), ("avg", col, w),
    ("days", w), ("last",), ("prev", col), ("slope", col) — see usage_features.
    """
    t = "CAST($as_of AS DATE)"
    bounds = boundaries(windows)
    weeks, ranges = plan(as_of, windows)
    cols = [c for c, _ in rollup_columns() if c not in ("customer_id", "week_start")]
    pieces = []
    if weeks:
        listed = ", ".join(_lit(w) for w in weeks)
        pieces.append(
            f"SELECT customer_id, week_start AS lo, {', '.join(cols)} FROM {TABLE}"
            f" WHERE week_start BETWEEN {_lit(weeks[0])} AND {_lit(weeks[-1])}"
            f" AND week_start IN ({listed})"
        )
    for lo, hi in ranges:
        pieces.append(
            f"SELECT {_day_piece()} FROM {SOURCE} WHERE usage_date BETWEEN {_lit(lo)} AND {_lit(hi)}"
        )
    band = "CASE " + " ".join(f"WHEN lo > {t} - {b} THEN {k}" for k, b in enumerate(bounds))
    band += f" ELSE {len(bounds)} END"
    o = f"(lo - {t})"
    sums = ["sum(days) AS days", "max(last_day) AS last_day"]
    sums += [f"sum({c}) AS {c}" for c in SUMS]
    sums += [f"sum({c}_{k}) AS {c}_{k}" for c in MEANS for k in ("sum", "n")]
    for y in SLOPES:
        sums += [
            f"sum({y}_n) AS {y}_n",
            f"sum({y}_n * {o} + {y}_j) AS {y}_sx",
            f"sum({y}_n * {o} * {o} + 2 * {o} * {y}_j + {y}_jj) AS {y}_sxx",
            f"sum({o} * {y} + {y}_jy) AS {y}_sxy",
        ]
    slope_band = bounds.index(SLOPE_DAYS)
    sy = {y: f"{y}_sy" for y in SLOPES}

    def upto(w: int) -> str:
        return f"FILTER (WHERE band <= {bounds.index(int(w))})"

    totals = ["max(last_day) AS last_day"]
    for y in SLOPES:
        f = f"FILTER (WHERE band <= {slope_band})"
        totals += [f"sum({y}_{m}) {f} AS {y}_{m}" for m in ("n", "sx", "sxx", "sxy")]
        totals.append(f"sum({y}) {f} AS {sy[y]}")
    out = []
    for name, key in names.items():
        kind = key[0]
        if kind == "sum":
            _, c, w = key
            totals.append(f'sum({c}) {upto(w)} AS "{name}"')
            out.append(f'CAST("{name}" AS DOUBLE) AS "{name}"')
        elif kind == "avg":
            _, c, w = key
            totals.append(f'sum({c}_sum) {upto(w)} AS "{name}__s"')
            totals.append(f'sum({c}_n) {upto(w)} AS "{name}__n"')
            out.append(f'CAST("{name}__s" / nullif("{name}__n", 0) AS DOUBLE) AS "{name}"')
        elif kind == "days":
            totals.append(f'sum(days) {upto(key[1])} AS "{name}"')
            out.append(f'CAST("{name}" AS BIGINT) AS "{name}"')
        elif kind == "last":
            out.append(f'{t} - last_day AS "{name}"')
        elif kind == "prev":
            lo, hi = (bounds.index(p) for p in PREV)
            totals.append(f'sum({key[1]}) FILTER (WHERE band > {lo} AND band <= {hi}) AS "{name}"')
            out.append(f'"{name}"')
        elif kind == "slope":
            y = key[1]
            n, sx, sxx, sxy = (f"{y}_{m}" for m in ("n", "sx", "sxx", "sxy"))
            den = f"({n} * {sxx} - {sx} * {sx})"
            # regr_slope: NULL without rows, NaN when every day is the same (no spread in x)
            out.append(
                f"CASE WHEN coalesce({n}, 0) = 0 THEN NULL"
                f" WHEN {den} = 0 THEN CAST('NaN' AS DOUBLE)"
                f" ELSE (CAST({n} AS DOUBLE) * {sxy} - CAST({sx} AS DOUBLE) * {sy[y]})"
                f' / CAST({den} AS DOUBLE) END AS "{name}"'
            )
        else:  # pragma: no cover - names come from usage_features
            raise ValueError(f"unknown usage feature kind {key!r}")
    union = "\n    UNION ALL\n    ".join(pieces)
    return f"""u_pieces AS (
    {union}
),
u_band AS (
    SELECT customer_id, {band} AS band, {", ".join(sums)}
    FROM u_pieces GROUP BY customer_id, band
),
u_totals AS (
    SELECT customer_id, {", ".join(totals)}
    FROM u_band GROUP BY customer_id
),
u AS (
    SELECT customer_id, {", ".join(out)}
    FROM u_totals
)"""
