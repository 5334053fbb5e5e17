"""Ingestion: contracts enforced, bad rows quarantined with reasons, idempotent, atomic, crash-safe."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from configs.schema import SimulatorConfig
from pipelines.stages.ingest import ingest_landing
from simulator import simulate


def usage_rows(n: int = 5, day: date = date(2025, 1, 1), start: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": [f"C{i:08d}" for i in range(start, start + n)],
            "usage_date": [day] * n,
            "voice_min": [10.0 + i for i in range(n)],
            "sms_count": pl.Series([1] * n, dtype=pl.Int32),
            "data_mb": [100.0] * n,
            "roaming_mb": [0.0] * n,
            "offnet_share": [0.2] * n,
            "dropped_call_rate": [0.01] * n,
        }
    )


def put(landing: Path, table: str, stamp: str, frame: pl.DataFrame, fmt: str = "parquet") -> Path:
    path = landing / table / f"{table}_{stamp}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)
    return path


def q(settings, sql: str, params=None):
    con = duckdb.connect(str(Path(settings.home) / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


@pytest.fixture
def landing(settings) -> Path:
    path = Path(settings.home) / "landing"
    path.mkdir(parents=True)
    return path


def reasons(settings) -> dict[str, int]:
    return dict(q(settings, "SELECT reason, count(*) FROM meta.quarantine GROUP BY 1"))


def test_clean_file_loads_with_lineage(settings, landing):
    path = put(landing, "usage_daily", "2025-01-01", usage_rows())
    report = ingest_landing(settings)
    assert report.files_loaded == 1 and report.rows_loaded == {"usage_daily": 5}
    rows = q(settings, "SELECT DISTINCT _source_file FROM raw.usage_daily")
    assert rows == [(str(path.resolve()),)]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (
            lambda f: f.with_columns(
                pl.when(pl.int_range(pl.len()) == 1)
                .then(None)
                .otherwise(pl.col("customer_id"))
                .alias("customer_id")
            ),
            "customer_id: missing value",
        ),
        (
            lambda f: f.with_columns(
                pl.when(pl.int_range(pl.len()) == 1)
                .then(-5.0)
                .otherwise(pl.col("voice_min"))
                .alias("voice_min")
            ),
            "voice_min: below minimum 0",
        ),
        (
            lambda f: f.with_columns(
                pl.when(pl.int_range(pl.len()) == 1)
                .then(1.5)
                .otherwise(pl.col("offnet_share"))
                .alias("offnet_share")
            ),
            "offnet_share: above maximum 1",
        ),
        (lambda f: pl.concat([f, f[2:3]]), "duplicate key within file"),
    ],
)
def test_bad_rows_are_quarantined_and_clean_rows_load(settings, landing, mutate, reason):
    put(landing, "usage_daily", "2025-01-01", mutate(usage_rows()))
    report = ingest_landing(settings)
    assert reasons(settings) == {reason: 1}
    assert report.rows_loaded["usage_daily"] == 4 + (reason == "duplicate key within file")
    raw_row = q(settings, "SELECT raw_row FROM meta.quarantine")[0][0]
    assert "customer_id" in raw_row


def test_bad_code_and_bad_values_in_csv(settings, landing):
    customers = landing / "customers" / "customers_2025-01.csv"
    customers.parent.mkdir(parents=True)
    customers.write_text(
        "customer_id,segment,region,activation_date,payment_type,plan_id,contract_end,"
        "handset_age_months,enterprise_grade,account_manager,marketing_opt_out,do_not_contact\n"
        "C1,individual,north,2024-01-05,prepaid,PRE-S,,3,,,false,false\n"
        "C2,INDIVIDUAL?,north,2024-01-05,prepaid,PRE-S,,3,,,false,false\n"
        "C3,family,north,2024-13-45,prepaid,PRE-S,,3,,,false,false\n"
        "C4,family,north,2024-02-01,prepaid,PRE-S,,three,,,false,false\n"
        " C5 ,family,north,2024-02-01,postpaid,POST-S,2026-02-01,1,,,false,false\n"
        + "".join(
            f"C{i},family,south,2024-02-01,prepaid,PRE-M,,1,,,true,false\n" for i in range(6, 10)
        )
    )
    ingest_landing(settings)
    assert reasons(settings) == {
        "segment: value not allowed": 1,
        "activation_date: not a valid date": 1,
        "handset_age_months: not a valid integer": 1,
    }
    assert q(settings, "SELECT count(*) FROM raw.customers")[0][0] == 6


@pytest.mark.parametrize(
    ("write", "fragment"),
    [
        (
            lambda p: usage_rows().rename({"usage_date": "usage_day"}).write_parquet(p),
            "missing required column(s): usage_date",
        ),
        (lambda p: usage_rows().head(0).write_parquet(p), "empty file"),
        (lambda p: p.write_bytes(b"PAR1" + b"\x00" * 40), "unreadable file"),
        (lambda p: p.write_bytes(_parquet_bytes()[:-30]), "unreadable file"),
    ],
)
def test_broken_files_are_rejected_whole(settings, landing, write, fragment):
    path = landing / "usage_daily" / "usage_daily_2025-01-02.parquet"
    path.parent.mkdir(parents=True)
    write(path)
    put(landing, "usage_daily", "2025-01-01", usage_rows())
    report = ingest_landing(settings)
    assert report.files_rejected == 1
    assert fragment in report.rejected[str(path.resolve())]
    assert q(settings, "SELECT count(*) FROM raw.usage_daily")[0][0] == 5
    status = q(
        settings, "SELECT status FROM meta.load_manifest WHERE path = ?", [str(path.resolve())]
    )
    assert status == [("rejected",)]


def _parquet_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    usage_rows(50).write_parquet(buf)
    return buf.getvalue()


def test_csv_wrong_delimiter_and_encoding_are_rejected(settings, landing):
    folder = landing / "usage_daily"
    folder.mkdir(parents=True)
    semi = folder / "usage_daily_2025-01-03.csv"
    semi.write_text(usage_rows().write_csv(separator=";"))
    latin = landing / "customers" / "customers_2025-01.csv"
    latin.parent.mkdir(parents=True)
    latin.write_bytes(
        (
            "customer_id,segment,region,activation_date,payment_type,plan_id,contract_end,"
            "handset_age_months,enterprise_grade,account_manager,marketing_opt_out,do_not_contact\n"
            "C1,individual,Zürich-Süd,2024-01-05,prepaid,PRE-S,,3,,,false,false\n"
        ).encode("latin-1")
    )
    report = ingest_landing(settings)
    assert "missing required column" in report.rejected[str(semi.resolve())]
    assert (
        "UTF-8" in report.rejected[str(latin.resolve())]
        or "unreadable" in report.rejected[str(latin.resolve())]
    )


def test_unknown_table_folder_and_extra_columns(settings, landing):
    put(landing, "weather", "2025-01-01", pl.DataFrame({"x": [1]}))
    put(
        landing,
        "usage_daily",
        "2025-01-01",
        usage_rows().with_columns(pl.lit("b7").alias("export_batch")),
    )
    report = ingest_landing(settings)
    assert any("unknown table folder 'weather'" in r for r in report.rejected.values())
    assert report.rows_loaded == {"usage_daily": 5}


def test_double_ingestion_changes_nothing(settings, landing):
    put(landing, "usage_daily", "2025-01-01", usage_rows())
    put(landing, "usage_daily", "2025-01-02", usage_rows(day=date(2025, 1, 2)))
    ingest_landing(settings)
    before = q(settings, "SELECT * EXCLUDE (_loaded_at) FROM raw.usage_daily ORDER BY ALL")
    manifest = q(settings, "SELECT path, checksum, loaded_at FROM meta.load_manifest ORDER BY 1")
    report = ingest_landing(settings)
    assert report.files_loaded == 0 and report.files_skipped == 2
    assert q(settings, "SELECT * EXCLUDE (_loaded_at) FROM raw.usage_daily ORDER BY ALL") == before
    assert (
        q(settings, "SELECT path, checksum, loaded_at FROM meta.load_manifest ORDER BY 1")
        == manifest
    )


def test_corrected_redelivery_replaces_its_rows(settings, landing):
    path = put(landing, "usage_daily", "2025-01-01", usage_rows(5))
    ingest_landing(settings)
    fixed = usage_rows(4).with_columns(pl.lit(99.0).alias("voice_min"))
    fixed.write_parquet(path)
    ingest_landing(settings)
    rows = q(settings, "SELECT count(*), min(voice_min), max(voice_min) FROM raw.usage_daily")
    assert rows == [(4, 99.0, 99.0)]


def test_duplicate_delivery_under_another_name_is_skipped(settings, landing):
    first = put(landing, "usage_daily", "2025-01-01", usage_rows())
    (landing / "usage_daily" / "usage_daily_2025-01-01_copy.parquet").write_bytes(
        first.read_bytes()
    )
    report = ingest_landing(settings)
    assert report.files_loaded == 1 and report.files_skipped == 1
    assert q(settings, "SELECT count(*) FROM raw.usage_daily")[0][0] == 5
    assert (
        q(settings, "SELECT count(*) FROM meta.load_manifest WHERE status = 'duplicate'")[0][0] == 1
    )


def test_latest_delivery_wins_across_files(settings, landing):
    products = pl.DataFrame(
        {
            "customer_id": ["C1"],
            "product": ["mobile"],
            "start_date": [date(2024, 5, 1)],
            "end_date": pl.Series([None], dtype=pl.Date),
            "monthly_fee": [25.0],
        }
    )
    put(landing, "products", "2025-01", products)
    ingest_landing(settings)
    put(
        landing,
        "products",
        "2025-03",
        products.with_columns(pl.lit(date(2025, 3, 9)).alias("end_date")),
    )
    ingest_landing(settings)
    assert q(settings, "SELECT end_date FROM raw.products") == [(date(2025, 3, 9),)]
    # a late re-delivery of the older file does not undo the newer fact
    old = landing / "products" / "products_2025-01.parquet"
    products.with_columns(pl.lit(30.0).alias("monthly_fee")).write_parquet(old)
    ingest_landing(settings)
    assert q(settings, "SELECT end_date, monthly_fee FROM raw.products") == [
        (date(2025, 3, 9), 25.0)
    ]


def test_late_file_marks_built_snapshots_stale(settings, landing):
    put(landing, "usage_daily", "2025-02-01", usage_rows(day=date(2025, 2, 1)))
    ingest_landing(settings)
    con = duckdb.connect(str(Path(settings.home) / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA feat; CREATE TABLE feat.build_log (as_of DATE, stale BOOLEAN)")
    con.execute("INSERT INTO feat.build_log VALUES ('2024-12-31', false), ('2025-01-31', false)")
    con.close()
    put(landing, "usage_daily", "2025-01-15", usage_rows(day=date(2025, 1, 15)))
    ingest_landing(settings)
    assert q(settings, "SELECT as_of, stale FROM feat.build_log ORDER BY 1") == [
        (date(2024, 12, 31), False),
        (date(2025, 1, 31), True),
    ]


def test_hostile_file_names_are_harmless(settings, landing):
    evil = (
        landing
        / "usage_daily"
        / "usage_daily_2025-01-01'; DROP TABLE meta.load_manifest; --.parquet"
    )
    evil.parent.mkdir(parents=True)
    usage_rows().write_parquet(evil)
    ingest_landing(settings)
    assert q(settings, "SELECT count(*) FROM meta.load_manifest")[0][0] == 1
    assert q(settings, "SELECT count(*) FROM raw.usage_daily")[0][0] == 5


def test_missing_source_is_a_clear_error(settings, tmp_path):
    from pipelines.store.errors import InputError

    with pytest.raises(InputError, match="landing folder not found"):
        ingest_landing(settings, tmp_path / "nope")


def test_every_injected_defect_ends_in_quarantine_or_rejection(tmp_path, make_settings):
    settings = make_settings()
    home = Path(settings.home)
    simulate(SimulatorConfig(customers=400, months=2, defect_rate=0.25), home, seed=2)
    report = ingest_landing(settings)
    defects = pl.read_parquet(home / "truth" / "defects.parquet")
    assert defects.height > 0
    quarantined = {
        (Path(f).name) for (f,) in q(settings, "SELECT DISTINCT source_file FROM meta.quarantine")
    }
    rejected = {Path(p).name for p in report.rejected}
    kinds = set()
    for row in defects.iter_rows(named=True):
        name = Path(row["file"]).name
        if row["kind"] in ("duplicate_rows", "bad_code", "missing_value", "out_of_range"):
            assert name in quarantined or name in rejected, row
        elif row["kind"] == "renamed_column":
            assert name in rejected, row
        kinds.add(row["kind"])
    assert len(kinds) >= 3


@pytest.mark.faults
def test_killed_ingest_leaves_no_partial_rows_and_rerun_completes(tmp_path, make_settings):
    settings = make_settings()
    home = Path(settings.home)
    simulate(SimulatorConfig(customers=1500, months=2), home, seed=4)
    from pipelines.store.config import load_settings

    reference = load_settings(home=tmp_path / "ref", environ={})
    ref_home = Path(reference.home)
    ref_home.mkdir(parents=True)
    ingest_landing(reference, home / "landing")
    expected = dict(
        q(
            reference,
            "SELECT 'usage', count(*) FROM raw.usage_daily UNION ALL SELECT 'inv', count(*) FROM raw.invoices",
        )
    )
    code = (
        "import sys; from pipelines.store.config import load_settings; from pipelines.stages.ingest import ingest_landing;"
        "ingest_landing(load_settings(home=sys.argv[1], environ={}))"
    )
    for delay in (0.8, 1.6, 2.4):
        proc = subprocess.Popen([sys.executable, "-c", code, str(home)])
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # no file is ever half loaded: every source file's rows equal what the manifest says
        usage_exists = (home / "warehouse.duckdb").exists() and q(
            settings,
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema = 'raw' AND table_name = 'usage_daily'",
        )[0][0]
        # A kill before the first usage file was loaded (slow machine) leaves no table: no
        # manifest row may then claim usage rows either.
        if (home / "warehouse.duckdb").exists() and not usage_exists:
            assert (
                not q(
                    settings,
                    "SELECT count(*) FROM information_schema.tables"
                    " WHERE table_schema = 'meta' AND table_name = 'load_manifest'",
                )[0][0]
                or not q(
                    settings,
                    "SELECT count(*) FROM meta.load_manifest WHERE table_name = 'usage_daily'",
                )[0][0]
            )
        if usage_exists:
            rows = q(
                settings,
                "SELECT m.rows_loaded, count(r._source_file) FROM meta.load_manifest m"
                " LEFT JOIN raw.usage_daily r ON r._source_file = m.path"
                " WHERE m.table_name = 'usage_daily' GROUP BY m.path, m.rows_loaded",
            )
            assert all(a == b for a, b in rows)
    ingest_landing(settings)
    got = dict(
        q(
            settings,
            "SELECT 'usage', count(*) FROM raw.usage_daily UNION ALL SELECT 'inv', count(*) FROM raw.invoices",
        )
    )
    assert got == expected
