"""Usage rollups: every feature read from the weekly rollups equals the one summed from daily
rows, after late and corrected deliveries too, and a snapshot never reads a lagging rollup."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from configs.schema import SimulatorConfig
from features.rollup import boundaries, plan, week_start
from pipelines.stages.features import build_frame, build_snapshots, data_end, load_snapshots
from pipelines.stages.ingest import ingest_landing
from pipelines.store.config import load_settings
from pipelines.store.errors import InputError
from simulator import simulate

# Month ends, a Sunday (as-of closes a week) and a mid-week day.
AS_OF = [
    date(2025, 3, 31),
    date(2025, 4, 13),
    date(2025, 4, 16),
    date(2025, 4, 30),
    date(2025, 5, 31),
]
# Days inside whole weeks no window boundary cuts for the March and April month ends: their
# usage reaches those snapshots through the rollup, not through raw days.
LATE = date(2025, 3, 12)
CORRECTED = date(2025, 4, 9)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Five months loaded, but for one usage day whose file is held back (it arrives late)."""
    home = tmp_path_factory.mktemp("rollups") / "home"
    simulate(SimulatorConfig(customers=450, months=5), home, seed=8)
    late = _usage_file(home, LATE)
    shutil.move(late, home / late.name)
    ingest_landing(load_settings(home=home, environ={}))
    return home


def _usage_file(home: Path, day: date) -> Path:
    return home / "landing" / "usage_daily" / f"usage_daily_{day.isoformat()}.parquet"


def _both(settings, as_of: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The snapshot summed from daily rows, and the one read from the rollups."""
    con = duckdb.connect(str(Path(settings.home) / "warehouse.duckdb"))
    try:
        end = data_end(con)
        daily = build_frame(con, settings, as_of, end, rollups=False)
        rolled = build_frame(con, settings, as_of, end, rollups=True)
    finally:
        con.close()
    return daily.sort("customer_id"), rolled.sort("customer_id")


def _assert_same(daily: pl.DataFrame, rolled: pl.DataFrame) -> None:
    assert daily.height > 350
    # Same columns and types; floats may differ in the last bit where the order of addition
    # changed, never by more than the build's 6-decimal rounding step.
    assert_frame_equal(daily, rolled, check_exact=False, rel_tol=1e-12, abs_tol=1.1e-6)


def test_rollup_features_equal_daily_features_after_late_and_corrected_deliveries(world, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(world, home)
    settings = load_settings(home=home, environ={})
    late, corrected = _usage_file(home, LATE), _usage_file(home, CORRECTED)
    for as_of in AS_OF[:2]:
        _assert_same(*_both(settings, as_of))
    before = _both(settings, date(2025, 4, 30))[1]

    # The late day arrives after later days were loaded; the corrected day is re-delivered
    # with triple voice and data and a tenth of its customers gone.
    shutil.move(home / late.name, late)
    fixed = pl.read_parquet(corrected)
    fixed = fixed.filter(pl.int_range(pl.len()) % 10 != 3).with_columns(
        pl.col("voice_min") * 3, pl.col("data_mb") * 3
    )
    fixed.write_parquet(corrected)
    ingest_landing(settings)
    for as_of in AS_OF:
        _assert_same(*_both(settings, as_of))
    after = _both(settings, date(2025, 4, 30))[1]
    # The deliveries moved the features the rollups serve, so a stale week would show.
    for col in ("voice_min_30d", "data_mb_90d", "active_days_90d", "data_slope_90d"):
        assert not after[col].equals(before[col]), col


def test_a_snapshot_never_reads_lagging_rollups(world, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(world, home)
    settings = load_settings(home=home, environ={})
    as_of = date(2025, 4, 30)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    # Daily rows changed behind ingestion's back and the week queued: build_frame refuses.
    con.execute(
        "UPDATE raw.usage_daily SET voice_min = voice_min + 100 WHERE usage_date = ?", [CORRECTED]
    )
    con.execute("INSERT INTO rollup.usage_dirty VALUES (?)", [week_start(CORRECTED)])
    with pytest.raises(InputError, match="rollups lag"):
        build_frame(con, settings, as_of, data_end(con))
    con.close()
    # build_snapshots brings them up to date first, and then equals the daily sums.
    build_snapshots(settings, as_of)
    daily = _both(settings, as_of)[0]
    stored = load_snapshots(settings, [as_of]).sort("customer_id")
    _assert_same(daily.select(stored.columns), stored)

    # A warehouse loaded before rollups existed gets them built from its daily rows.
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("DROP SCHEMA rollup CASCADE")
    con.close()
    with pytest.raises(InputError, match="rollups are missing"):
        _both(settings, as_of)
    build_snapshots(settings, date(2025, 3, 31))
    _assert_same(*_both(settings, as_of))


@hsettings(max_examples=200, deadline=None)
@given(
    as_of=st.dates(date(2024, 1, 1), date(2027, 12, 31)),
    windows=st.lists(st.integers(1, 400), min_size=1, max_size=5),
)
def test_weeks_and_raw_days_tile_the_window_without_crossing_a_boundary(as_of, windows):
    weeks, ranges = plan(as_of, windows)
    bounds = boundaries(windows)
    days = [s + timedelta(days=k) for s in weeks for k in range(7)]
    days += [lo + timedelta(days=k) for lo, hi in ranges for k in range((hi - lo).days + 1)]
    first = as_of - timedelta(days=bounds[-1] - 1)
    assert sorted(days) == [first + timedelta(days=k) for k in range(bounds[-1])]
    for s in weeks:
        assert week_start(s) == s
        for b in [0, *bounds]:  # no whole week holds both sides of a window's start
            edge = as_of - timedelta(days=b)
            assert not (s <= edge < s + timedelta(days=6))
