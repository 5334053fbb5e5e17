"""The synthetic operator: deterministic, contract-true, and behaving like an operator's customers."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from configs.contracts import TABLES
from configs.schema import SimulatorConfig
from simulator import advance, simulate
from simulator import response as rm
from simulator.counterfactual import counterfactual
from simulator.world import World

CFG = SimulatorConfig(customers=3000, months=8)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world")
    simulate(CFG, out, seed=7)
    return out


def _read(out: Path, table: str) -> pl.DataFrame:
    return pl.read_parquet(sorted((out / "landing" / table).glob("*.parquet")))


def test_same_seed_same_world(tmp_path: Path):
    small = SimulatorConfig(customers=300, months=2)
    a, b = tmp_path / "a", tmp_path / "b"
    simulate(small, a, seed=3)
    simulate(small, b, seed=3)
    files_a = sorted(p.relative_to(a) for p in (a / "landing").rglob("*.parquet"))
    files_b = sorted(p.relative_to(b) for p in (b / "landing").rglob("*.parquet"))
    assert files_a == files_b and files_a
    for rel in files_a:
        assert pl.read_parquet(a / rel).equals(pl.read_parquet(b / rel)), rel
    c = tmp_path / "c"
    simulate(small, c, seed=4)
    assert not _read(a, "usage_daily").equals(_read(c, "usage_daily"))


def test_refuses_to_overwrite_a_world(world: Path):
    with pytest.raises(ValueError, match="already holds a simulated world"):
        simulate(CFG, world, seed=7)


def test_every_file_matches_its_contract(world: Path):
    polars_of = {
        "VARCHAR": pl.Utf8,
        "INTEGER": pl.Int32,
        "DOUBLE": pl.Float64,
        "DATE": pl.Date,
        "TIMESTAMP": pl.Datetime("us"),
        "BOOLEAN": pl.Boolean,
    }
    for name, table in TABLES.items():
        folder = world / "landing" / name
        if name == "contacts":
            assert not folder.exists()
            continue
        frame = _read(world, name)
        assert list(frame.columns) == list(table.column_names), name
        for col in table.columns:
            assert frame.schema[col.name] == polars_of[col.dtype], (name, col.name)
            if not col.nullable:
                assert frame[col.name].null_count() == 0, (name, col.name)
            if col.allowed:
                assert set(frame[col.name].drop_nulls().unique()) <= set(col.allowed), (
                    name,
                    col.name,
                )
            if col.min_value is not None:
                assert frame[col.name].min() >= col.min_value, (name, col.name)
        assert frame.select(table.key).is_duplicated().sum() == 0 or name == "products", name


def test_monthly_churn_in_range(world: Path):
    truth = pl.read_parquet(world / "truth" / "monthly.parquet")
    rates = truth.group_by("month").agg(pl.col("churned").mean()).sort("month")["churned"]
    assert 0.015 <= rates.mean() <= 0.03, rates.to_list()
    assert rates.max() < 0.05


def _next_month_churn(world: Path) -> pl.DataFrame:
    """Per customer-month: did they churn the following month (from the disconnects file)."""
    dis = _read(world, "disconnects").select(
        "customer_id", pl.col("disconnect_date").dt.truncate("1mo").alias("churn_month")
    )
    return dis


def test_complaints_and_bill_shock_raise_churn(world: Path):
    tickets = (
        _read(world, "tickets")
        .select("customer_id", pl.col("opened_ts").dt.date().dt.truncate("1mo").alias("month"))
        .unique()
    )
    inv = _read(world, "invoices").select(
        "customer_id",
        pl.col("period_start").alias("month"),
        (
            pl.col("overage_amount") > 0.5 * (pl.col("mobile_amount") - pl.col("overage_amount"))
        ).alias("shock"),
    )
    dis = _next_month_churn(world)
    truth = pl.read_parquet(world / "truth" / "monthly.parquet").select("customer_id", "month")
    panel = (
        truth.join(
            tickets.with_columns(pl.lit(True).alias("complained")),
            on=["customer_id", "month"],
            how="left",
        )
        .join(inv, on=["customer_id", "month"], how="left")
        .join(dis, on="customer_id", how="left")
        .with_columns(
            (
                pl.col("churn_month").is_not_null()
                & (pl.col("churn_month") > pl.col("month"))
                & (pl.col("churn_month") <= pl.col("month").dt.offset_by("3mo"))
            ).alias("churn_3m"),
            pl.col("complained").fill_null(False),
            pl.col("shock").fill_null(False),
        )
    )
    by_complaint = panel.group_by("complained").agg(pl.col("churn_3m").mean())
    rate = dict(zip(by_complaint["complained"], by_complaint["churn_3m"], strict=True))
    assert rate[True] > 1.3 * rate[False], rate
    by_shock = panel.group_by("shock").agg(pl.col("churn_3m").mean())
    rate = dict(zip(by_shock["shock"], by_shock["churn_3m"], strict=True))
    assert rate[True] > 1.2 * rate[False], rate


def test_serious_arrears_concentrate_in_stressed_customers(world: Path):
    latent = pl.read_parquet(world / "truth" / "customers.parquet")
    coll = (
        _read(world, "collections")
        .filter(pl.col("days_past_due") >= 60)
        .select("customer_id")
        .unique()
    )
    post = (
        _read(world, "customers").filter(pl.col("payment_type") == "postpaid").select("customer_id")
    )
    df = post.join(latent, on="customer_id").with_columns(
        pl.col("customer_id").is_in(coll["customer_id"].implode()).alias("arrears")
    )
    assert 0.01 < df["arrears"].mean() < 0.15
    top = df["financial_stress"] > df["financial_stress"].quantile(0.8)
    assert df.filter(top)["arrears"].mean() > 2.5 * df.filter(~top)["arrears"].mean()


def test_usage_declines_before_voluntary_churn(world: Path):
    dis = _read(world, "disconnects").filter(pl.col("disconnect_type") == "voluntary")
    usage = _read(world, "usage_daily").join(dis, on="customer_id")
    days_before = (pl.col("disconnect_date") - pl.col("usage_date")).dt.total_days()
    usage = usage.with_columns(days_before.alias("d"))
    late = usage.filter(pl.col("d").is_between(1, 14))["voice_min"].mean()
    early = usage.filter(pl.col("d").is_between(60, 90))["voice_min"].mean()
    # Only some leavers wind down (to about half), so the average falls, but not to nothing.
    assert 0.7 * early < late < 0.95 * early, (late, early)


def test_advance_continues_without_gaps_and_deterministically(tmp_path: Path):
    small = SimulatorConfig(customers=300, months=2)
    for name in ("a", "b"):
        simulate(small, tmp_path / name, seed=11)
        advance(tmp_path / name, months=1)
    usage = _read(tmp_path / "a", "usage_daily")
    days = usage["usage_date"].unique().sort()
    assert days[0] == date(2025, 1, 1) and days[-1] == date(2025, 3, 31)
    assert days.len() == 31 + 28 + 31
    assert usage.equals(_read(tmp_path / "b", "usage_daily"))


def test_treatments_cancel_drawn_intents_and_leave_control_alone(tmp_path: Path):
    """Customers who have already decided to leave are saved by an accepted offer, not by none."""
    out = tmp_path / "w"
    simulate(SimulatorConfig(customers=6000, months=3), out, seed=5)
    state = World.load(out).state.filter(pl.col("active"))
    leaving = state.filter(pl.col("intent_date").is_not_null()).select("customer_id")
    others = state.filter(pl.col("intent_date").is_null()).select("customer_id").head(500)
    listed = pl.concat([leaving, others])
    control = np.random.default_rng(0).random(listed.height) < 0.5
    treatments = listed.with_columns(
        pl.lit("discount").alias("offer"),
        pl.lit("account_manager").alias("channel"),
        pl.lit(date(2025, 4, 1)).alias("contact_date"),
        pl.Series("control_flag", control),
        pl.lit("L1").alias("list_id"),
    )
    advance(out, months=1, treatments=treatments)
    dis = _read(out, "disconnects").filter(pl.col("disconnect_date") >= date(2025, 4, 1))
    t = treatments.join(
        leaving.with_columns(pl.lit(True).alias("leaving")), on="customer_id", how="left"
    ).with_columns(
        pl.col("customer_id").is_in(dis["customer_id"].implode()).alias("churned"),
        pl.col("leaving").fill_null(False),
    )
    rate = lambda f: t.filter(f)["churned"].mean()  # noqa: E731
    assert rate(pl.col("leaving") & pl.col("control_flag")) > 0.95
    assert rate(pl.col("leaving") & ~pl.col("control_flag")) < 0.85
    contacts = _read(out, "contacts")
    assert contacts.filter(pl.col("control_flag"))["response"].null_count() == int(control.sum())
    treated = contacts.filter(~pl.col("control_flag"))
    assert treated["response"].null_count() == 0
    assert set(treated["response"]) == {"accepted", "declined", "no_answer"}


def test_counterfactual_equals_playing_the_world_forward(tmp_path: Path):
    """The exact expectation of saves in the contact month equals the average over replays of
    the same world treated and untreated with common random numbers (drawn intents included)."""
    out = tmp_path / "w"
    simulate(SimulatorConfig(customers=800, months=3), out, seed=21)
    world = World.load(out)
    active = world.state.filter(pl.col("active")).select("customer_id")
    truth = counterfactual(world, 30, "oracle", ["discount"], ["outbound_call"])
    assert truth["uplift"].min() < 0 < truth["uplift"].max()  # some are put off by the call
    analytic = float(truth["uplift"].sum())

    def churners(treated: bool, seed: int) -> int:
        w = World.load(out)
        w.rng = np.random.default_rng(seed)
        lst = active.with_columns(
            pl.lit("discount").alias("offer"),
            pl.lit("outbound_call").alias("channel"),
            pl.lit(w.next_month).alias("contact_date"),
            pl.lit(not treated).alias("control_flag"),
            pl.lit("L").alias("list_id"),
        )
        w.apply_treatments(lst, w.next_month)
        month = w.step()
        return int(month.truth.filter(pl.col("churned")).height)

    saved = np.array([churners(False, r) - churners(True, r) for r in range(40)])
    se = saved.std(ddof=1) / np.sqrt(saved.size)
    assert abs(saved.mean() - analytic) < 4 * se + 0.05, (saved.mean(), analytic, se)
    # Without the drawn intents, a customer's chance of having one is their hazard.
    observable = counterfactual(world, 30, "observable", ["discount"], ["outbound_call"])
    leaving = counterfactual(world, 30, "intents", ["discount"], ["outbound_call"])
    assert observable["p_churn_control"].to_list() != leaving["p_churn_control"].to_list()
    h = World.load(out).state.filter(pl.col("active"))["hazard"].to_numpy()
    assert observable["p_churn_control"].to_numpy() == pytest.approx(h, rel=1e-9)


def test_response_model_is_near_field_evidence(world: Path):
    """A proactive call cuts churn by about a tenth (Godinho de Matos et al. 2018) with the best
    offer; about 4-5 % of those reached react badly (Ascarza et al. 2016)."""
    w = World.load(world)
    truth = counterfactual(w, 100, "oracle", None, ["outbound_call"])
    per_offer = truth.group_by("offer").agg(
        (1 - pl.col("p_churn_treated").sum() / pl.col("p_churn_control").sum()).alias("cut")
    )
    cut = dict(per_offer.iter_rows())
    assert 0.07 < max(cut["discount"], cut["plan_rightsizing"]) < 0.2, cut
    state = rm.state_arrays(w.state.filter(pl.col("active")))
    bad = np.mean([rm.backfire_probability(o, state).mean() for o in rm.EFFECT])
    assert 0.03 < bad < 0.07, bad


def test_drift_month_raises_churn(tmp_path: Path):
    base = SimulatorConfig(customers=4000, months=6)
    drift = base.model_copy(update={"drift_month": 4, "drift_strength": 3.0})
    simulate(base, tmp_path / "base", seed=9)
    simulate(drift, tmp_path / "drift", seed=9)
    rate = lambda p: (
        pl.read_parquet(p / "truth" / "monthly.parquet")
        .filter(  # noqa: E731
            pl.col("month") >= date(2025, 5, 1)
        )["churned"]
        .mean()
    )
    assert rate(tmp_path / "drift") > 1.3 * rate(tmp_path / "base")
