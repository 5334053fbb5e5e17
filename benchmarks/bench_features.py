"""Feature snapshot build vs a plain DuckDB aggregate (floor) vs a pandas rewrite: time and peak RSS."""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")

RESULTS = Path(__file__).resolve().parent / "results"
PARTS = ("build", "build_daily", "floor", "pandas")
TARGET_BUILD_SECONDS = 20.0
TARGET_BUILD_VS_FLOOR = 5.0
TARGET_PANDAS_VS_BUILD = 10.0


def _settings(home: Path, customers: int, months: int):
    from pipelines.store.config import load_settings

    return load_settings(
        home=home,
        environ={},
        overrides={"simulator": {"customers": customers, "months": months}},
    )


def _connect(settings, read_only: bool = False):
    from pipelines.store.warehouse import connect
    from pipelines.store.workdir import Workdir

    return connect(Workdir.from_settings(settings), read_only=read_only)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def month_end_on_or_before(d: date) -> date:
    """The latest calendar month end <= d."""
    if (d + timedelta(days=1)).month != d.month:
        return d
    return d.replace(day=1) - timedelta(days=1)


# --- parts: each runs in its own child process -------------------------------------------


def part_setup(settings) -> dict:
    from pipelines.stages.ingest import ingest_landing
    from simulator import simulate

    t0 = time.perf_counter()
    simulate(settings.simulator, settings.home, seed=settings.seed)
    t1 = time.perf_counter()
    ingest_landing(settings)
    t2 = time.perf_counter()
    return {"simulate_seconds": t1 - t0, "ingest_seconds": t2 - t1}


def part_rollups(settings) -> dict:
    """Bring the weekly usage rollups up to date (all weeks, for a work dir loaded before them)."""
    from pipelines.stages.rollups import refresh_rollups

    con = _connect(settings)
    try:
        t0 = time.perf_counter()
        weeks = refresh_rollups(con)
        return {"seconds": time.perf_counter() - t0, "weeks": weeks}
    finally:
        con.close()


def part_build(settings, as_of: date, rollups: bool = True) -> dict:
    """build_frame as the pipeline runs it (usage from the weekly rollups), or with
    `rollups=False` summing every daily row (the build before rollups; same features)."""
    from features.columns import feature_columns
    from features.snapshot import feature_specs
    from pipelines.stages.features import build_frame, data_end

    con = _connect(settings)
    try:
        end = data_end(con)
        t0 = time.perf_counter()
        frame = build_frame(con, settings, as_of, end, rollups=rollups)
        seconds = time.perf_counter() - t0
    finally:
        con.close()
    return {
        "seconds": seconds,
        "rows": frame.height,
        "columns": frame.width,
        "features": len(feature_specs(settings.features)),
        "model_inputs": len(feature_columns(frame.columns)),
    }


FLOOR_SQL = """
SELECT customer_id,
       sum(voice_min) AS voice_min, sum(sms_count) AS sms_count, sum(data_mb) AS data_mb,
       sum(roaming_mb) AS roaming_mb, avg(dropped_call_rate) AS dropped_call_rate
FROM raw.usage_daily WHERE usage_date <= $as_of GROUP BY customer_id
"""


def part_floor(settings, as_of: date) -> dict:
    con = _connect(settings)
    try:
        t0 = time.perf_counter()
        frame = con.sql(FLOOR_SQL, params={"as_of": as_of}).pl()
        seconds = time.perf_counter() - t0
    finally:
        con.close()
    return {"seconds": seconds, "rows": frame.height, "columns": frame.width}


def pandas_features(tables: dict, as_of: date):
    """What a data scientist would write: filter, groupby, merge, one window at a time."""
    import pandas as pd

    t = pd.Timestamp(as_of)
    cust = tables["customers"]
    disc = tables["disconnects"]
    gone = set(disc.loc[disc["disconnect_date"] <= t, "customer_id"])
    cust = cust[(cust["activation_date"] <= t) & ~cust["customer_id"].isin(gone)]
    out = cust[["customer_id"]].set_index("customer_id")

    # usage windows
    u = tables["usage_daily"]
    u = u[u["usage_date"] <= t].copy()
    u["age"] = (t - u["usage_date"]).dt.days
    for w in (7, 30, 90, 180):
        g = (
            u[u["age"] < w]
            .groupby("customer_id")
            .agg(
                voice_min=("voice_min", "sum"),
                sms_count=("sms_count", "sum"),
                data_mb=("data_mb", "sum"),
                roaming_mb=("roaming_mb", "sum"),
                offnet_share=("offnet_share", "mean"),
                dropped_call_rate=("dropped_call_rate", "mean"),
                active_days=("usage_date", "count"),
            )
        )
        g.columns = [f"{c}_{w}d" for c in g.columns]
        out = out.merge(g, left_index=True, right_index=True, how="left")
    last = u.groupby("customer_id")["usage_date"].max()
    out["days_since_last_usage"] = (t - last).dt.days
    prev = u[(u["age"] >= 30) & (u["age"] < 90)].groupby("customer_id")[["voice_min", "data_mb"]]
    prev = prev.sum().add_suffix("_prev60")
    out = out.merge(prev, left_index=True, right_index=True, how="left")
    out["data_trend_30v60"] = (out["data_mb_30d"] / 30) / (out["data_mb_prev60"] / 60).replace(
        0, float("nan")
    ) - 1
    out["voice_trend_30v60"] = (out["voice_min_30d"] / 30) / (out["voice_min_prev60"] / 60).replace(
        0, float("nan")
    ) - 1

    # bills: last amount, median of the three before, ratio
    inv = tables["invoices"]
    inv = inv[inv["issue_date"] <= t].sort_values(["customer_id", "issue_date"])
    inv = inv.assign(rank=inv.groupby("customer_id").cumcount(ascending=False))
    out["bill_last"] = inv[inv["rank"] == 0].set_index("customer_id")["amount"]
    out["bill_median_prev3"] = (
        inv[inv["rank"].between(1, 3)].groupby("customer_id")["amount"].median()
    )
    out["bill_shock_ratio"] = out["bill_last"] / out["bill_median_prev3"].replace(0, float("nan"))

    # payments: late over 180 days
    pay = tables["payments"]
    pay = pay[(pay["payment_date"] <= t) & pay["invoice_id"].notna()]
    paid = pay.groupby("invoice_id", as_index=False)["payment_date"].min()
    bills = inv[inv["issue_date"] > t - pd.Timedelta(days=180)].merge(
        paid, on="invoice_id", how="left"
    )
    bills["late"] = bills["payment_date"] > bills["due_date"]
    bills["days_late"] = (bills["payment_date"] - bills["due_date"]).dt.days.clip(lower=0)
    bills["unpaid_due"] = bills["payment_date"].isna() & (bills["due_date"] <= t)
    g = bills.groupby("customer_id").agg(
        late_payments_180d=("late", "sum"),
        avg_days_late_180d=("days_late", "mean"),
        unpaid_due_bills=("unpaid_due", "sum"),
    )
    out = out.merge(g, left_index=True, right_index=True, how="left")

    # complaints
    tk = tables["tickets"]
    tk = tk[tk["opened_ts"] < t + pd.Timedelta(days=1)]
    for w in (30, 90):
        recent = tk[tk["opened_ts"] >= t - pd.Timedelta(days=w - 1)]
        out[f"complaints_{w}d"] = recent.groupby("customer_id").size()
    severe = tk[
        (tk["opened_ts"] >= t - pd.Timedelta(days=89)) & tk["severity"].isin(["high", "critical"])
    ]
    out["severe_complaints_90d"] = severe.groupby("customer_id").size()
    out["days_since_complaint"] = (
        t - tk.groupby("customer_id")["opened_ts"].max().dt.normalize()
    ).dt.days

    counts = [
        c
        for c in out.columns
        if c.startswith(("active_days", "complaints", "severe", "late_", "unpaid"))
    ]
    out[counts] = out[counts].fillna(0)
    return out.reset_index()


PANDAS_TABLES = ("customers", "disconnects", "usage_daily", "invoices", "payments", "tickets")


def part_pandas(settings, as_of: date) -> dict:
    con = _connect(settings)
    try:
        t0 = time.perf_counter()
        tables = {name: con.sql(f"select * from raw.{name}").df() for name in PANDAS_TABLES}
        read = time.perf_counter() - t0
    finally:
        con.close()
    t1 = time.perf_counter()
    frame = pandas_features(tables, as_of)
    compute = time.perf_counter() - t1
    return {
        "read_seconds": read,
        "seconds": compute,
        "total_seconds": read + compute,
        "rows": len(frame),
        "features": frame.shape[1] - 1,
    }


def run_part(part: str, home: Path, customers: int, months: int, as_of: date | None) -> dict:
    settings = _settings(home, customers, months)
    if part == "setup":
        result = part_setup(settings)
    elif part == "rollups":
        result = part_rollups(settings)
    elif part == "build":
        result = part_build(settings, as_of)
    elif part == "build_daily":
        result = part_build(settings, as_of, rollups=False)
    elif part == "floor":
        result = part_floor(settings, as_of)
    elif part == "pandas":
        result = part_pandas(settings, as_of)
    else:
        raise SystemExit(f"unknown part {part}")
    return {**result, "peak_rss_mb": _peak_mb()}


def child(part: str, home: Path, customers: int, months: int, as_of: date | None) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_features", "--part", part, "--home", str(home)]
    cmd += ["--customers", str(customers), "--months", str(months)]
    if as_of:
        cmd += ["--as-of", as_of.isoformat()]
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    if out.returncode != 0:
        raise RuntimeError(f"part {part} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    return result


# --- parent: orchestrate, summarise, report ----------------------------------------------


def machine_info() -> dict:
    from benchmarks.run import machine_info as info

    return info()


def summarise(runs: list[dict]) -> dict:
    """Median of every timing over the repeats, max of peak RSS; other fields from the first run."""
    out = dict(runs[0])
    for key in runs[0]:
        if key.endswith("seconds"):
            out[key] = round(statistics.median(r[key] for r in runs), 3)
    out["peak_rss_mb"] = round(max(r["peak_rss_mb"] for r in runs), 1)
    out["repeats"] = len(runs)
    return out


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def markdown(r: dict) -> str:
    p, s = r["parts"], r["sizes"]
    b, f, pd_ = p["build"], p["floor"], p["pandas"]
    d = p["build_daily"]
    ratios = r["ratios"]
    lines = [
        f"# Feature build benchmark {r['started']}",
        "",
        f"machine: {r['machine']}",
        "",
        f"customers: {s['customers']:,} (active at as-of: {s['active_customers']:,}), "
        f"usage rows: {s['usage_rows']:,}, months: {s['months']}, as-of: {r['as_of']} "
        f"(data end {r['data_end']}), repeats: {r['repeat']} (median seconds, max RSS)",
        "",
        "| part | seconds | peak RSS MB | rows out | features |",
        "|---|---:|---:|---:|---:|",
        f"| build (build_frame: snapshot + labels) | {b['seconds']:.2f} | {b['peak_rss_mb']:,.0f} | "
        f"{b['rows']:,} | {b['features']} specs ({b['model_inputs']} model inputs) |",
        f"| build from daily rows (no rollups: the build before) | {d['seconds']:.2f} | "
        f"{d['peak_rss_mb']:,.0f} | {d['rows']:,} | {d['features']} specs |",
        f"| floor (one usage GROUP BY → polars) | {f['seconds']:.2f} | {f['peak_rss_mb']:,.0f} | "
        f"{f['rows']:,} | {f['columns'] - 1} |",
        f"| pandas read (6 raw tables → .df()) | {pd_['read_seconds']:.2f} | | | |",
        f"| pandas compute (groupby/merge) | {pd_['seconds']:.2f} | {pd_['peak_rss_mb']:,.0f} "
        f"(read+compute) | {pd_['rows']:,} | {pd_['features']} |",
        f"| pandas total | {pd_['total_seconds']:.2f} | | | |",
        "",
        "| check | value | target | result |",
        "|---|---:|---:|---|",
        f"| build seconds | {b['seconds']:.2f} | < {TARGET_BUILD_SECONDS:.0f} | "
        f"{verdict(b['seconds'] < TARGET_BUILD_SECONDS)} |",
        f"| build / floor | {ratios['build_vs_floor']:.1f}× | ≤ {TARGET_BUILD_VS_FLOOR:.0f}× | "
        f"{verdict(ratios['build_vs_floor'] <= TARGET_BUILD_VS_FLOOR)} |",
        f"| build from daily rows / floor | {ratios['build_daily_vs_floor']:.1f}× | (before) | |",
        f"| pandas compute / build, raw ({pd_['features']} vs {b['features']} features) | "
        f"{ratios['pandas_vs_build_raw']:.2f}× | ≥ {TARGET_PANDAS_VS_BUILD:.0f}× | "
        f"{verdict(ratios['pandas_vs_build_raw'] >= TARGET_PANDAS_VS_BUILD)} |",
        f"| pandas compute / build, per feature (s/feature) | "
        f"{ratios['pandas_vs_build_per_feature']:.2f}× | ≥ {TARGET_PANDAS_VS_BUILD:.0f}× | "
        f"{verdict(ratios['pandas_vs_build_per_feature'] >= TARGET_PANDAS_VS_BUILD)} |",
        f"| pandas total (read+compute) / build, end to end | "
        f"{ratios['pandas_total_vs_build_raw']:.2f}× | ≥ {TARGET_PANDAS_VS_BUILD:.0f}× | "
        f"{verdict(ratios['pandas_total_vs_build_raw'] >= TARGET_PANDAS_VS_BUILD)} |",
        f"| rollups brought up to date before the run | {r['rollups']['seconds']:.2f} s | (info) | "
        f"{r['rollups']['weeks']} week(s) |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="work dir to reuse (simulated+ingested once)")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--months", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--skip-pandas", action="store_true", help="leave out the pandas rewrite (e.g. at 1M)"
    )
    parser.add_argument("--part", choices=("setup", "rollups", *PARTS), help=argparse.SUPPRESS)
    parser.add_argument("--as-of", type=date.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.part:
        result = run_part(args.part, args.home, args.customers, args.months, args.as_of)
        print(json.dumps(result, default=str))
        return 0

    home = args.home or Path(tempfile.mkdtemp(prefix=f"churn-bench-features-{args.customers}-"))
    home.mkdir(parents=True, exist_ok=True)
    settings = _settings(home, args.customers, args.months)
    from pipelines.store.workdir import Workdir

    setup = None
    if not Workdir.from_settings(settings).db_path.exists():
        print(f"simulating + ingesting {args.customers:,} customers into {home} …", flush=True)
        setup = child("setup", home, args.customers, args.months, None)
        print(
            f"  simulate {setup['simulate_seconds']:.1f}s, ingest {setup['ingest_seconds']:.1f}s",
            flush=True,
        )
    else:
        print(f"reusing {home}", flush=True)
    # A work dir loaded before rollups existed gets them now (ingestion keeps them current).
    rollups = child("rollups", home, args.customers, args.months, None)
    print(f"  rollups brought up to date: {rollups['weeks']} week(s) in {rollups['seconds']:.1f}s")

    from pipelines.stages.features import data_end

    con = _connect(settings, read_only=True)
    try:
        end = data_end(con)
        as_of = month_end_on_or_before(end)
        customers = con.execute("SELECT count(*) FROM raw.customers").fetchone()[0]
        usage_rows = con.execute("SELECT count(*) FROM raw.usage_daily").fetchone()[0]
    finally:
        con.close()

    parts = {}
    for part in [p for p in PARTS if not (args.skip_pandas and p == "pandas")]:
        runs = []
        for i in range(args.repeat):
            m = child(part, home, args.customers, args.months, as_of)
            runs.append(m)
            print(
                f"{part:<7} run {i + 1}: {m['seconds']:.2f}s  {m['peak_rss_mb']:.0f} MB", flush=True
            )
        parts[part] = summarise(runs)

    if "pandas" not in parts:  # not run: no pandas figures
        parts["pandas"] = {"seconds": float("nan"), "read_seconds": float("nan"), "features": 43}
        parts["pandas"] |= {"total_seconds": float("nan"), "peak_rss_mb": 0.0, "rows": 0}
    b, f, pd_ = parts["build"], parts["floor"], parts["pandas"]
    ratios = {
        "build_vs_floor": b["seconds"] / max(f["seconds"], 1e-9),
        "build_daily_vs_floor": parts["build_daily"]["seconds"] / max(f["seconds"], 1e-9),
        "pandas_vs_build_raw": pd_["seconds"] / max(b["seconds"], 1e-9),
        "pandas_vs_build_per_feature": (pd_["seconds"] / pd_["features"])
        / max(b["seconds"] / b["features"], 1e-9),
        "pandas_total_vs_build_raw": pd_["total_seconds"] / max(b["seconds"], 1e-9),
    }
    result = {
        "started": datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "home": str(home),
        "as_of": as_of.isoformat(),
        "data_end": end.isoformat(),
        "repeat": args.repeat,
        "sizes": {
            "customers": int(customers),
            "active_customers": int(b["rows"]),
            "usage_rows": int(usage_rows),
            "months": args.months,
        },
        "setup": setup,
        "rollups": rollups,
        "parts": parts,
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "ratio_notes": {
            "pandas_vs_build_raw": "pandas compute seconds for its N features / build seconds for all features",
            "pandas_vs_build_per_feature": "(pandas compute s / pandas features) / (build s / build features)",
        },
        "targets": {
            "build_seconds_lt": TARGET_BUILD_SECONDS,
            "build_vs_floor_le": TARGET_BUILD_VS_FLOOR,
            "pandas_vs_build_ge": TARGET_PANDAS_VS_BUILD,
        },
        "pass": {
            "build_seconds": b["seconds"] < TARGET_BUILD_SECONDS,
            "build_vs_floor": ratios["build_vs_floor"] <= TARGET_BUILD_VS_FLOOR,
            "pandas_vs_build_raw": ratios["pandas_vs_build_raw"] >= TARGET_PANDAS_VS_BUILD,
            "pandas_vs_build_per_feature": ratios["pandas_vs_build_per_feature"]
            >= TARGET_PANDAS_VS_BUILD,
            "pandas_total_vs_build": ratios["pandas_total_vs_build_raw"] >= TARGET_PANDAS_VS_BUILD,
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    text = markdown(result)
    (RESULTS / f"features_{stamp}.json").write_text(json.dumps(result, indent=2, default=str))
    (RESULTS / f"features_{stamp}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
