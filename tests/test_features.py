"""Point-in-time features: no future data leaks in, labels look only ahead, rules behave."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from configs.contracts import TABLES
from configs.schema import FeaturesConfig, SimulatorConfig
from features.columns import feature_columns
from features.snapshot import META_COLUMNS, feature_specs, lifecycle_case, tier_case
from features.split import latest_matured, monthly_as_of_dates, out_of_time_split
from pipelines.stages.features import build_snapshots, load_snapshots, needs_build
from pipelines.stages.ingest import ingest_landing
from pipelines.stages.rollups import rebuild_rollups
from pipelines.store.config import load_settings
from simulator import simulate

AS_OF = date(2025, 4, 30)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("feat") / "home"
    settings = load_settings(home=home, environ={})
    simulate(SimulatorConfig(customers=900, months=7), home, seed=21)
    ingest_landing(settings)
    return home


def _copy(loaded: Path, tmp_path: Path):
    home = tmp_path / "home"
    home.mkdir(parents=True)
    shutil.copy(loaded / "warehouse.duckdb", home / "warehouse.duckdb")
    return load_settings(home=home, environ={})


def _snapshot(settings, as_of=AS_OF) -> pl.DataFrame:
    build_snapshots(settings, as_of)
    snap = load_snapshots(settings, [as_of]).sort("customer_id")
    return snap.select(["customer_id", "as_of", *feature_columns(snap.columns)])


def _future_edit(settings, delete: bool) -> None:
    """Delete (or scramble) every raw fact stamped after AS_OF, in every table."""
    con = duckdb.connect(str(Path(settings.home) / "warehouse.duckdb"))
    after = AS_OF + timedelta(days=1)
    for name, table in TABLES.items():
        if table.event_time is None:
            continue
        col = table.event_time
        if delete:
            con.execute(f'DELETE FROM raw."{name}" WHERE "{col}" >= ?', [after])
        elif name == "usage_daily":
            con.execute(
                "UPDATE raw.usage_daily SET voice_min = voice_min * 7 + 3, data_mb = 0 WHERE usage_date >= ?",
                [after],
            )
        elif name == "invoices":
            con.execute(
                "UPDATE raw.invoices SET amount = amount * 10 WHERE issue_date >= ?", [after]
            )
    # Facts about the future attached to older rows: resolutions and product ends after AS_OF.
    con.execute(
        "UPDATE raw.tickets SET resolved_ts = resolved_ts + INTERVAL 30 DAY WHERE resolved_ts >= ?",
        [after],
    )
    con.execute("UPDATE raw.products SET end_date = end_date + 40 WHERE end_date >= ?", [after])
    rebuild_rollups(con)  # daily rows changed behind ingestion's back
    con.close()


@pytest.mark.parametrize("delete", [True, False], ids=["delete-future", "change-future"])
def test_future_data_does_not_change_the_snapshot(loaded, tmp_path, delete):
    base = _snapshot(_copy(loaded, tmp_path / "a"))
    edited = _copy(loaded, tmp_path / "b")
    _future_edit(edited, delete)
    after = _snapshot(edited)
    assert base.height > 500
    assert base.equals(after)


def test_past_data_does_change_the_snapshot(loaded, tmp_path):
    """The leakage test above can fail: edits at or before as-of do move features."""
    base = _snapshot(_copy(loaded, tmp_path / "a"))
    edited = _copy(loaded, tmp_path / "b")
    con = duckdb.connect(str(Path(edited.home) / "warehouse.duckdb"))
    con.execute("UPDATE raw.usage_daily SET data_mb = data_mb * 3 WHERE usage_date = ?", [AS_OF])
    rebuild_rollups(con)
    con.close()
    assert not base.equals(_snapshot(edited))


def test_labels_look_only_after_as_of(loaded, tmp_path):
    settings = _copy(loaded, tmp_path)
    build_snapshots(settings, AS_OF)
    snap = load_snapshots(settings, [AS_OF])
    con = duckdb.connect(str(Path(settings.home) / "warehouse.duckdb"), read_only=True)
    leavers = {
        r[0]
        for r in con.execute(
            "SELECT customer_id FROM raw.disconnects WHERE disconnect_date > ? AND disconnect_date <= ?"
            " UNION SELECT customer_id FROM raw.events WHERE event_type = 'port_out_request'"
            " AND event_ts >= ? AND event_ts < ?",
            [
                AS_OF,
                AS_OF + timedelta(days=30),
                AS_OF + timedelta(days=1),
                AS_OF + timedelta(days=31),
            ],
        ).fetchall()
    }
    gone_before = {
        r[0]
        for r in con.execute(
            "SELECT customer_id FROM raw.disconnects WHERE disconnect_date <= ?", [AS_OF]
        ).fetchall()
    }
    con.close()
    assert not gone_before & set(snap["customer_id"]), "customers gone at as-of must be excluded"
    labelled = set(snap.filter(pl.col("churn_30d") == 1)["customer_id"])
    assert labelled == leavers & set(snap["customer_id"])
    assert snap["churn_90d"].null_count() == 0  # data runs to July: 90 days have matured
    prepaid = snap.filter(pl.col("payment_type") == "prepaid")
    assert prepaid["default_30d"].null_count() == prepaid.height


def test_immature_labels_are_null(loaded, tmp_path):
    settings = _copy(loaded, tmp_path)
    build_snapshots(settings, date(2025, 6, 30))
    snap = load_snapshots(settings, [date(2025, 6, 30)])
    assert snap["churn_30d"].null_count() == 0
    assert snap["churn_90d"].null_count() == snap.height


def test_build_is_idempotent_and_tracked(loaded, tmp_path):
    settings = _copy(loaded, tmp_path)
    assert needs_build(settings, AS_OF)
    build_snapshots(settings, AS_OF, history=3)
    first = load_snapshots(settings).sort(["as_of", "customer_id"])
    build_snapshots(settings, AS_OF, history=3)
    again = load_snapshots(settings).sort(["as_of", "customer_id"])
    assert first.equals(again)
    assert sorted(first["as_of"].unique()) == [date(2025, 2, 28), date(2025, 3, 31), AS_OF]
    assert not needs_build(settings, AS_OF)
    changed = load_settings(home=settings.home, environ={"CHURN_FEATURES__TIERS__GOLD": "60"})
    assert needs_build(changed, AS_OF)
    assert (Path(settings.home) / "features" / "feature_dictionary.csv").exists()
    assert (Path(settings.home) / "features" / f"customer_snapshot_{AS_OF}.parquet").exists()


def test_dictionary_covers_every_feature_column(loaded, tmp_path):
    settings = _copy(loaded, tmp_path)
    snap = _snapshot(settings)
    names = {s.name for s in feature_specs(settings.features)}
    meta = set(META_COLUMNS) - {"customer_id", "as_of"}
    assert set(feature_columns(snap.columns)) - meta == names
    for spec in feature_specs(settings.features):
        assert spec.description and spec.sources
        if spec.reason_template:
            spec.reason_template.format(value=1.5)  # every template formats a number


def _eval(sql: str, rows: list[dict]) -> list[str]:
    frame = pl.DataFrame(rows)
    con = duckdb.connect()
    con.register("t", frame)
    return [r[0] for r in con.execute(f"SELECT {sql} FROM t").fetchall()]


def test_value_tiers_on_hand_built_cases():
    cfg = FeaturesConfig()
    spends = [0.0, 34.99, 35.0, 69.9, 70.0, 119.0, 120.0, 500.0]
    assert _eval(tier_case(cfg), [{"monthly_spend": s} for s in spends]) == [
        "basic",
        "basic",
        "silver",
        "silver",
        "gold",
        "gold",
        "diamond",
        "diamond",
    ]


@hsettings(max_examples=60, deadline=None)
@given(
    spend=st.floats(0, 1000, allow_nan=False),
    cuts=st.tuples(st.floats(1, 100), st.floats(1, 100), st.floats(1, 100)).map(sorted),
)
def test_tier_is_monotone_in_spend(spend, cuts):
    silver, gold, diamond = cuts
    if not (diamond > gold > silver):
        return
    cfg = FeaturesConfig(tiers={"silver": silver, "gold": gold, "diamond": diamond})
    order = ["basic", "silver", "gold", "diamond"]
    low, high = _eval(
        tier_case(cfg), [{"monthly_spend": spend}, {"monthly_spend": spend * 1.5 + 1}]
    )
    assert order.index(high) >= order.index(low)
    expected = (
        "diamond"
        if spend >= diamond
        else "gold"
        if spend >= gold
        else "silver"
        if spend >= silver
        else "basic"
    )
    assert low == expected


def test_lifecycle_rules_on_hand_built_cases():
    cfg = FeaturesConfig()
    rows = [
        {
            "tenure_days": 30,
            "data_trend_30v60": -0.9,
            "voice_trend_30v60": -0.9,
            "spend_trend_30v60": -0.9,
            "payment_type": "postpaid",
        },
        {
            "tenure_days": 800,
            "data_trend_30v60": -0.4,
            "voice_trend_30v60": -0.3,
            "spend_trend_30v60": 0.0,
            "payment_type": "prepaid",
        },
        {
            "tenure_days": 800,
            "data_trend_30v60": 0.0,
            "voice_trend_30v60": 0.0,
            "spend_trend_30v60": -0.3,
            "payment_type": "postpaid",
        },
        {
            "tenure_days": 200,
            "data_trend_30v60": 0.0,
            "voice_trend_30v60": 0.0,
            "spend_trend_30v60": 0.0,
            "payment_type": "postpaid",
        },
        {
            "tenure_days": 900,
            "data_trend_30v60": 0.0,
            "voice_trend_30v60": 0.0,
            "spend_trend_30v60": 0.2,
            "payment_type": "postpaid",
        },
        {
            "tenure_days": 900,
            "data_trend_30v60": 0.01,
            "voice_trend_30v60": 0.0,
            "spend_trend_30v60": 0.0,
            "payment_type": "postpaid",
        },
    ]
    assert _eval(lifecycle_case(cfg), rows) == [
        "development",
        "decline",
        "decline",
        "growth",
        "growth",
        "maturity",
    ]


@hsettings(max_examples=80, deadline=None)
@given(
    as_of=st.dates(date(2020, 1, 1), date(2030, 12, 1)).map(
        lambda d: (d.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    ),
    history=st.integers(1, 24),
    horizon=st.sampled_from([30, 60, 90]),
)
def test_out_of_time_split_never_overlaps_label_windows(as_of, history, horizon):
    dates = monthly_as_of_dates(as_of, history)
    assert len(dates) == history and dates[-1] == as_of and dates == sorted(set(dates))
    try:
        train, valid = out_of_time_split(dates, as_of, horizon)
    except ValueError:
        assert all(d > as_of - timedelta(days=horizon) for d in dates)
        return
    assert valid == as_of
    assert all(d + timedelta(days=horizon) <= valid for d in train)


def test_latest_matured_picks_the_newest_complete_label():
    dates = monthly_as_of_dates(date(2025, 6, 30), 6)
    assert latest_matured(dates, date(2025, 6, 30), 30) == date(2025, 5, 31)
    assert latest_matured(dates, date(2025, 6, 30), 90) == date(2025, 3, 31)
    assert latest_matured(dates, date(2025, 2, 1), 90) is None


def test_large_bases_are_built_in_partitions_with_the_same_result(loaded, tmp_path, caplog):
    """Above warehouse.partition_customers the build runs per customer-hash partition."""
    whole = _copy(loaded, tmp_path / "whole")
    build_snapshots(whole, AS_OF, history=2)
    split = load_settings(
        home=_copy(loaded, tmp_path / "split").home,
        environ={"CHURN_WAREHOUSE__PARTITION_CUSTOMERS": "300"},
    )
    with caplog.at_level("INFO", logger="pipelines.stages.features"):
        report = build_snapshots(split, AS_OF, history=2)
    assert "partitions" in caplog.text  # the partitioned path ran
    expected = load_snapshots(whole).sort(["as_of", "customer_id"])
    got = load_snapshots(split).sort(["as_of", "customer_id"])
    assert report.rows == got.height == expected.height > 600
    assert got.equals(expected)
    assert not needs_build(split, AS_OF)
    assert (Path(split.home) / "features" / f"customer_snapshot_{AS_OF}.parquet").exists()


def test_segment_relative_trend_ignores_a_shift_that_moves_everyone():
    """A competitor launch cuts every customer's voice by 30 %: own trends all fall, the
    companion stays where it was; a customer falling faster than peers still reads negative."""
    from features.relative import add_relative_features

    rng = np.random.default_rng(5)
    n = 400
    prior = rng.gamma(4, 150, n)
    change = np.where(np.arange(n) == 0, 0.5, rng.normal(1.0, 0.1, n))  # customer 0 halves
    base = pl.DataFrame(
        {
            "as_of": [AS_OF] * n,
            "segment": rng.choice(["individual", "family"], n),
            "voice_min_prev60": prior,
            "voice_min_30d": prior / 2 * change,
            "data_mb_prev60": prior * 10,
            "data_mb_30d": prior * 5 * change,
        }
    )
    shifted = base.with_columns(pl.col("voice_min_30d") * 0.7)
    before, after = add_relative_features(base), add_relative_features(shifted)
    own = shifted["voice_min_30d"] / 30 / (shifted["voice_min_prev60"] / 60) - 1
    assert own.mean() < -0.25  # the raw trend reads as everyone declining
    np.testing.assert_allclose(
        after["voice_trend_vs_segment"].to_numpy(), before["voice_trend_vs_segment"].to_numpy()
    )
    assert abs(after["voice_trend_vs_segment"].mean()) < 0.02
    assert after["voice_trend_vs_segment"][0] < -0.4
    # Point in time: each as-of date's peers are its own rows only.
    later = shifted.with_columns(pl.lit(AS_OF + timedelta(days=31)).alias("as_of"))
    both = add_relative_features(pl.concat([base, later]))
    np.testing.assert_allclose(
        both["voice_trend_vs_segment"].to_numpy(),
        np.concatenate([before["voice_trend_vs_segment"].to_numpy()] * 2),
    )


def test_snapshots_whose_windows_precede_the_data_never_train():
    from features.history import ShortHistory, is_complete, plan_training

    start = date(2025, 1, 1)
    dates = monthly_as_of_dates(date(2025, 12, 31), 13)  # 2024-12-31 .. 2025-12-31
    assert [d for d in dates if is_complete(d, start, 180)][0] == date(2025, 6, 30)
    assert not is_complete(date(2025, 5, 31), start, 180)
    matured = [d for d in dates if d + timedelta(days=90) <= date(2025, 12, 31)]
    plan = plan_training(matured, start, date(2025, 12, 31), 180, 90, 1)
    assert plan.train == [date(2025, 6, 30)] and plan.validation == date(2025, 9, 30)
    with pytest.raises(ShortHistory, match=r"need 2 complete snapshots .* have 1 .*2026-01-29"):
        plan_training(matured, start, date(2025, 12, 31), 180, 90, 2)
    # Seven months (issue 20's 100k cycle): nothing complete has matured.
    with pytest.raises(ShortHistory, match=r"have 0 \(data starts 2025-01-01, ends 2025-07-31"):
        plan_training(matured[:5], start, date(2025, 7, 31), 180, 90, 1)


def test_unchanged_snapshots_are_reused_and_their_labels_refreshed(loaded, tmp_path):
    """A new month arrives: past snapshots keep their features (no rebuild), their labels
    mature, and the result equals a build from scratch (issue 20: the 1M cycle rebuilt all)."""
    from simulator import advance

    may = date(2025, 5, 31)
    home = tmp_path / "reused"
    shutil.copytree(loaded, home)
    reused = load_settings(home=home, environ={})
    build_snapshots(reused, date(2025, 7, 31), history=3)
    assert load_snapshots(reused, [may])["churn_90d"].null_count() > 0  # not matured in July
    advance(home, months=1)
    ingest_landing(reused)
    scratch_home = tmp_path / "scratch"
    shutil.copytree(home, scratch_home)
    con = duckdb.connect(str(scratch_home / "warehouse.duckdb"))
    con.execute("DROP SCHEMA feat CASCADE")
    con.close()
    scratch = load_settings(home=scratch_home, environ={})

    july = load_snapshots(reused)
    report = build_snapshots(reused, date(2025, 8, 31), history=4)
    assert report.reused == [may, date(2025, 6, 30), date(2025, 7, 31)]
    assert report.as_of_dates == [may, date(2025, 6, 30), date(2025, 7, 31), date(2025, 8, 31)]
    assert build_snapshots(scratch, date(2025, 8, 31), history=4).reused == []
    got, expected = load_snapshots(reused), load_snapshots(scratch)
    # August re-delivers products whose fee changed: raw keeps only the latest fee, so a build
    # from scratch writes August's fee into May (not point in time); the reused May keeps the fee
    # known in July. Every other column equals the scratch build.
    fee = "products_monthly_fee"
    assert got.drop(fee).equals(expected.drop(fee))
    kept = got.filter(pl.col("as_of") < date(2025, 8, 1)).select("customer_id", "as_of", fee)
    assert kept.equals(july.select("customer_id", "as_of", fee))
    assert got.filter(pl.col("as_of") == may)["churn_90d"].null_count() == 0
    parquet = pl.read_parquet(home / "features" / f"customer_snapshot_{may}.parquet")
    assert parquet["churn_90d"].null_count() == 0
    # A change outside the features (a budget, a monitoring limit) keeps them reusable...
    other = {"CHURN_RETENTION__BUDGET": "1234", "CHURN_MONITORING__MAX_CURRENT_ROWS": "5000"}
    elsewhere = load_settings(home=home, environ=other)
    assert build_snapshots(elsewhere, date(2025, 8, 31), history=2).reused == [
        date(2025, 7, 31),
        date(2025, 8, 31),
    ]
    # ...a change of the features config (here a tier cut-off) invalidates every one.
    changed = load_settings(home=home, environ={"CHURN_FEATURES__TIERS__GOLD": "60"})
    assert build_snapshots(changed, date(2025, 8, 31), history=2).reused == []
