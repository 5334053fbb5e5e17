"""Retention policy: budget and capacity hold, exclusions hold, control group is fair, stats are right."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from pipelines.store.config import load_settings
from retention.evaluation import compare, roi
from retention.handoff import contact_rows, control_rows
from retention.masking import mask_ids
from retention.policy import decide

AS_OF = date(2025, 6, 30)


def customers(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    groups = ["complaints", "usage_down", "bill_shock", "price", "contract_end", None]
    return pl.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "churn_probability": rng.beta(1, 8, n),
            "risk_decile": rng.integers(1, 11, n).astype(np.int32),
            "credit_grade": rng.choice(list("ABCDE"), n, p=[0.5, 0.2, 0.15, 0.1, 0.05]),
            "credit_pd": rng.random(n) * 0.3,
            "reason_1": ["2 complaints in 90 days"] * n,
            "reason_2": ["data usage -40% vs previous 60 days"] * n,
            "reason_3": pl.Series([None] * n, dtype=pl.Utf8),
            "reason_group_1": pl.Series(
                rng.choice(np.array(groups, dtype=object), n).tolist(), dtype=pl.Utf8
            ),
            "reason_group_2": pl.Series(
                rng.choice(np.array(groups, dtype=object), n).tolist(), dtype=pl.Utf8
            ),
            "reason_group_3": pl.Series([None] * n, dtype=pl.Utf8),
            "churn_model_version": ["3"] * n,
            "credit_model_version": ["2"] * n,
            "segment": rng.choice(
                ["individual", "family", "enterprise", "government"], n, p=[0.6, 0.25, 0.1, 0.05]
            ),
            "value_tier": rng.choice(["basic", "silver", "gold", "diamond"], n),
            "lifecycle_stage": rng.choice(["growth", "maturity", "decline"], n),
            "monthly_spend": rng.gamma(3, 25, n),
            "marketing_opt_out": rng.random(n) < 0.05,
            "do_not_contact": rng.random(n) < 0.03,
            "last_contact_date": pl.Series(
                [
                    AS_OF - timedelta(days=int(d)) if d < 60 else None
                    for d in rng.integers(0, 200, n)
                ],
                dtype=pl.Date,
            ),
            "contacts_in_period": rng.integers(0, 3, n),
        }
    )


@pytest.fixture
def cfg():
    return load_settings(environ={}).retention


def run(cfg, frame, budget=None, seed=7, **overrides):
    cfg = cfg.model_copy(update=overrides) if overrides else cfg
    return decide(frame, cfg, AS_OF, "L-test", seed, budget)


def test_budget_and_channel_capacity_are_never_exceeded(cfg):
    frame = customers(4000)
    channels = {k: v.model_copy(update={"capacity": 40}) for k, v in cfg.channels.items()}
    result = run(cfg, frame, budget=1500.0, channels=channels)
    rl = result.retention_list
    treated = rl.filter(~pl.col("control_flag"))
    spent = (treated["contact_cost"] + treated["accept_probability"] * treated["offer_cost"]).sum()
    assert spent <= 1500.0 + 1e-6 and result.budget_used == pytest.approx(spent, abs=0.01)
    assert treated["channel"].value_counts()["count"].max() <= 40
    assert rl.height > 0


def test_nobody_excluded_is_on_the_list(cfg):
    frame = customers(3000)
    rl = run(cfg, frame).retention_list
    on = frame.filter(pl.col("customer_id").is_in(rl["customer_id"].implode()))
    assert not on["do_not_contact"].any() and not on["marketing_opt_out"].any()
    cooled = on.filter(
        pl.col("last_contact_date") > AS_OF - timedelta(days=cfg.contact_policy.cooldown_days)
    )
    assert cooled.is_empty()
    assert (on["contacts_in_period"] < cfg.contact_policy.max_contacts).all()
    weak_low = on.filter(
        pl.col("credit_grade").is_in(["D", "E"]) & pl.col("value_tier").is_in(["basic", "silver"])
    )
    assert weak_low.is_empty()


def test_weak_credit_gets_no_subsidy_or_credit_offers_and_poor_low_value_go_to_collections(cfg):
    frame = customers(3000)
    result = run(cfg, frame)
    rl = result.retention_list
    credit_offers = {o.name for o in cfg.offers if o.device_subsidy or o.extends_credit}
    weak = rl.filter(pl.col("credit_grade").is_in(cfg.weak_grades))
    assert not set(weak["offer"]) & credit_offers
    expected = frame.filter(
        pl.col("credit_grade").is_in(["D", "E"]) & pl.col("value_tier").is_in(["basic", "silver"])
    )
    assert set(result.collections["customer_id"]) == set(expected["customer_id"])


def test_channel_is_chosen_by_expected_value_within_capacity(cfg):
    """A valuable, risky customer is worth a call; a modest one an SMS; a full channel yields."""
    from retention.policy import offer_options

    frame = customers(3).with_columns(
        pl.lit(0.6).alias("churn_probability"),
        pl.Series("monthly_spend", [150.0, 28.0, 140.0]),
        pl.lit("individual").alias("segment"),
        pl.lit("gold").alias("value_tier"),
        pl.lit("A").alias("credit_grade"),
        pl.lit(None, dtype=pl.Utf8).alias("reason_group_1"),
        pl.lit(None, dtype=pl.Utf8).alias("reason_group_2"),
        pl.lit(False).alias("marketing_opt_out"),
        pl.lit(False).alias("do_not_contact"),
        pl.lit(None, dtype=pl.Date).alias("last_contact_date"),
        pl.lit(0).alias("contacts_in_period"),
    )
    kw = {"budget": 1e6, "control_share": 0.0, "min_expected_value": 0.0}
    rl = run(cfg, frame, **kw).retention_list.sort("customer_id")
    assert rl["channel"].to_list() == ["outbound_call", "sms", "outbound_call"]
    # By hand: P(accept) = reach × min(acceptance × persuasion, 0.95);
    # EV = P(accept) × (churn × save_given_accept × value − offer cost)
    #      − reach × backfire_rate × backfire_increase × churn × value − contact cost,
    # and the list's channel is the one with the highest EV.
    value = 28.0 * cfg.margin_rate * cfg.value_horizon_months
    opts = offer_options(frame[1].with_columns(pl.lit(value).alias("value")), cfg)
    prior = cfg.response_prior
    by_hand = {}
    for name, ch in cfg.channels.items():
        if "individual" not in ch.segments:
            continue
        resent = ch.reach * prior.backfire_rate * prior.backfire_churn_increase
        by_hand[name] = max(
            ch.reach
            * min(o.accept_rate * ch.persuasion, 0.95)
            * (0.6 * prior.save_given_accept * value - o.cost)
            - resent * 0.6 * value
            - ch.cost
            for o in cfg.offers
            if "individual" in o.segments and "gold" in o.tiers
        )
    ev = dict(opts.group_by("channel").agg(pl.col("_ev").max()).iter_rows())
    assert ev == pytest.approx(by_hand)
    assert max(by_hand, key=by_hand.get) == "sms" and by_hand["outbound_call"] > 0
    # With one call left, the customer ranked first takes it; the other gets their next best.
    one_call = dict(cfg.channels)
    one_call["outbound_call"] = one_call["outbound_call"].model_copy(update={"capacity": 1})
    rl = run(cfg, frame, channels=one_call, **kw).retention_list.sort("customer_id")
    assert rl["channel"].to_list() == ["outbound_call", "sms", "sms"]


def test_control_group_is_reproducible_stratified_and_never_offered(cfg):
    frame = customers(6000)
    a = run(cfg, frame, seed=11).retention_list
    b = run(cfg, frame, seed=11).retention_list
    assert a.equals(b)
    c = run(cfg, frame, seed=12).retention_list
    assert set(a.filter(pl.col("control_flag"))["customer_id"]) != set(
        c.filter(pl.col("control_flag"))["customer_id"]
    )
    share = a["control_flag"].mean()
    assert 0.06 < share < 0.14
    by_tier = a.group_by("value_tier").agg(pl.col("control_flag").mean())
    assert (by_tier["control_flag"] > 0.03).all()
    # Control customers consume no budget, and nothing handed off offers them anything: the
    # contact rows hold no control customer, the control rows no offer, channel or cost.
    result = run(cfg, frame, seed=11)
    treated = a.filter(~pl.col("control_flag"))
    assert result.budget_used == pytest.approx(result_cost(treated), abs=0.01)
    contacts, control = contact_rows(a), control_rows(a)
    assert contacts.height == treated.height and "control_flag" not in contacts.columns
    assert not set(contacts["customer_id"]) & set(control["customer_id"])
    assert control.height == a["control_flag"].sum() > 0
    offering = {"offer", "channel", "offer_cost", "contact_cost", "expected_value", "contact_by"}
    assert not offering & set(control.columns)
    treated_only = run(cfg, frame, seed=11, control_share=0.0).retention_list
    assert treated_only["control_flag"].sum() == 0


def result_cost(rows: pl.DataFrame) -> float:
    return float((rows["contact_cost"] + rows["accept_probability"] * rows["offer_cost"]).sum())


@hsettings(max_examples=25, deadline=None)
@given(budget=st.floats(0, 5000), n=st.integers(20, 400), seed=st.integers(0, 10_000))
def test_budget_holds_for_any_budget(budget, n, seed):
    cfg = load_settings(environ={}).retention
    rl = decide(customers(n, seed), cfg, AS_OF, "L", seed, budget).retention_list
    if rl.height:
        assert result_cost(rl.filter(~pl.col("control_flag"))) <= budget + 1e-6
        assert (rl["expected_value"] > cfg.min_expected_value).all()


def test_masking_is_salted_and_stable():
    ids = pl.Series(["C1", "C2", "C1"])
    a, b = mask_ids(ids, "salt-a"), mask_ids(ids, "salt-b")
    assert a[0] == a[2] and a[0] != a[1] and a[0] != b[0]
    assert not any("C1" in k for k in a)
    with pytest.raises(ValueError):
        mask_ids(ids, "")


def test_evaluation_statistics_against_hand_computed_values():
    r = compare(treated_n=1000, treated_churned=50, control_n=500, control_churned=40)
    assert r["treated_churn_rate"] == 0.05 and r["control_churn_rate"] == 0.08
    assert r["difference"] == pytest.approx(0.03)
    # Expected counts all >= 5: the score test, and the interval holds the differences it does not
    # reject: at each bound the score statistic (rates fitted under that difference, here by a
    # numerical maximum likelihood) is exactly ±1.96.
    assert r["test"] == "score (χ²)"
    from scipy.optimize import minimize_scalar

    def score(delta: float) -> float:
        def nll(pc: float) -> float:
            pt = pc - delta
            return -(
                40 * np.log(pc) + 460 * np.log(1 - pc) + 50 * np.log(pt) + 950 * np.log(1 - pt)
            )

        pc = minimize_scalar(
            nll, bounds=(delta + 1e-9, 1 - 1e-9), method="bounded", options={"xatol": 1e-12}
        ).x
        pt = pc - delta
        return (0.03 - delta) / np.sqrt(pc * (1 - pc) / 500 + pt * (1 - pt) / 1000)

    assert score(r["ci_low"]) == pytest.approx(1.959964, abs=2e-3)
    assert score(r["ci_high"]) == pytest.approx(-1.959964, abs=2e-3)
    # χ² for [[50, 950], [40, 460]] without continuity correction
    from scipy.stats import chi2

    expected = np.outer([1000, 500], [90, 1410]) / 1500
    observed = np.array([[50, 950], [40, 460]])
    assert r["p_value"] == pytest.approx(chi2.sf(((observed - expected) ** 2 / expected).sum(), 1))
    assert r["incremental_saves"] == pytest.approx(30.0)
    assert roi(30.0, 100.0, 1000.0) == pytest.approx(2.0)
    assert roi(1.0, 1.0, 0.0) is None


def test_list_is_published_masked_owner_only_and_reproducible(tmp_path):
    """Targeting end to end on stored scores: masked exports, 0600 files, same list id twice."""
    import duckdb

    from configs.contracts import TABLES, raw_table_ddl
    from pipelines.stages.target import build_retention_list

    settings = load_settings(home=tmp_path / "home", environ={})
    frame = customers(500)
    (tmp_path / "home").mkdir()
    con = duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA raw; CREATE SCHEMA scores; CREATE SCHEMA feat")
    for t in ("customers", "contacts"):
        con.execute(raw_table_ddl(TABLES[t]))
    con.register("f", frame)
    con.execute(
        "CREATE TABLE scores.customer_scores AS SELECT customer_id, DATE '2025-06-30' AS as_of, churn_probability,"
        " risk_decile, credit_pd, credit_grade, 0.0 AS credit_limit, churn_model_version, credit_model_version,"
        " reason_1, reason_2, reason_3, reason_group_1, reason_group_2, reason_group_3 FROM f"
    )
    con.execute(
        "CREATE TABLE feat.customer_snapshot AS SELECT customer_id, DATE '2025-06-30' AS as_of, segment,"
        " value_tier, lifecycle_stage, monthly_spend FROM f"
    )
    con.close()
    first = build_retention_list(settings, AS_OF)
    second = build_retention_list(settings, AS_OF)
    assert first.list_id == second.list_id and first.rows == second.rows > 0
    exported = pl.read_parquet(first.paths["parquet"])
    assert "customer_id" not in exported.columns
    assert not set(exported["customer_key"]) & set(frame["customer_id"])
    for path in first.paths.values():
        assert (Path(path).stat().st_mode & 0o777) == 0o600
    con = duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM retention.retention_lists").fetchone()[0] == first.rows
    con.close()


def test_learning_list_randomises_offers_within_every_guarantee(cfg):
    from retention.policy import learning_list

    frame = customers(4000)
    channels = {k: v.model_copy(update={"capacity": 300}) for k, v in cfg.channels.items()}
    c = cfg.model_copy(update={"control_share": 0.5, "channels": channels})
    result = learning_list(frame, c, AS_OF, "L-learn", 5, share=0.5, budget=3000.0)
    rl = result.retention_list
    again = learning_list(frame, c, AS_OF, "L-learn", 5, share=0.5, budget=3000.0).retention_list
    assert rl.equals(again)
    treated = rl.filter(~pl.col("control_flag"))
    assert result_cost(treated) <= 3000.0 + 1e-6
    assert treated["channel"].value_counts()["count"].max() <= 300
    # Same exclusions and credit gating as the policy's own lists.
    on = frame.filter(pl.col("customer_id").is_in(rl["customer_id"].implode()))
    assert not on["do_not_contact"].any() and not on["marketing_opt_out"].any()
    assert (on["contacts_in_period"] < cfg.contact_policy.max_contacts).all()
    credit_offers = {o.name for o in cfg.offers if o.device_subsidy or o.extends_credit}
    assert (
        not set(rl.filter(pl.col("credit_grade").is_in(cfg.weak_grades))["offer"]) & credit_offers
    )
    # Offers are drawn at random, not by expected value: every offer individuals may get appears,
    # and the offer does not follow the customer's churn risk.
    individual = rl.filter(pl.col("segment") == "individual")
    assert individual["offer"].n_unique() >= 4
    by_offer = individual.group_by("offer").agg(pl.col("churn_probability").mean())
    assert by_offer["churn_probability"].max() - by_offer["churn_probability"].min() < 0.05
    assert 0.4 < rl["control_flag"].mean() < 0.6
    with pytest.raises(ValueError):
        learning_list(frame, c, AS_OF, "L", 5, share=0.0)


def test_policy_never_contacts_below_cost_with_uplift_and_acceptance_estimates(cfg):
    """EV = uplift × value − acceptance × offer cost − contact cost, with the estimates given."""
    frame = customers(2000)
    offers = [o.name for o in cfg.offers]
    rng = np.random.default_rng(3)
    est = pl.DataFrame(
        {
            **{f"uplift_{o}": rng.uniform(-0.01, 0.05, frame.height) for o in offers},
            **{f"accept_{o}": rng.uniform(0.05, 0.9, frame.height) for o in offers},
        }
    )
    wide = pl.concat([frame, est], how="horizontal")
    rl = run(cfg, wide, budget=1e9, control_share=0.0).retention_list
    assert rl.height > 0
    j = rl.join(
        wide.with_row_index("_i").select("customer_id", "_i"), on="customer_id"
    ).with_columns(
        pl.struct("_i", "offer")
        .map_elements(
            lambda r: (est[f"uplift_{r['offer']}"][r["_i"]], est[f"accept_{r['offer']}"][r["_i"]]),
            return_dtype=pl.List(pl.Float64),
        )
        .alias("_est")
    )
    uplift, accept = j["_est"].list.get(0), j["_est"].list.get(1)
    # Estimates refer to the reference channel (learning campaigns'); the chosen channel scales
    # the uplift by its reach × persuasion relative to it (at most the churn probability), and
    # acceptance by reach and persuasion.
    ch = cfg.channels
    factor = {c: v.reach * v.persuasion for c, v in ch.items()}
    scale = j["channel"].replace_strict(factor) / factor[cfg.uplift.reference_channel]
    reach = j["channel"].replace_strict({c: v.reach for c, v in ch.items()})
    persuasion = j["channel"].replace_strict({c: v.persuasion for c, v in ch.items()})
    uplift = (uplift * scale).zip_with(
        uplift * scale < j["churn_probability"], j["churn_probability"]
    )
    accept = reach * (accept * persuasion).clip(upper_bound=0.95)
    assert j["save_probability"].to_list() == pytest.approx(uplift.to_list())
    assert j["accept_probability"].to_list() == pytest.approx(accept.to_list())
    ev = uplift * j["value"] - accept * j["offer_cost"] - j["contact_cost"]
    assert j["expected_value"].to_list() == pytest.approx(ev.to_list())
    assert (ev > cfg.min_expected_value).all()
    # Nobody with no positive estimated uplift is worth contacting.
    none = wide.with_columns([pl.lit(0.0).alias(f"uplift_{o}") for o in offers])
    assert run(cfg, none, budget=1e9).retention_list.height == 0


def test_benchmark_holds_every_strategy_to_the_budget_at_true_cost():
    from benchmarks.bench_retention import value_choice, within_budget

    ranked = pl.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D"],
            "offer": ["discount"] * 4,
            "channel": ["outbound_call", "outbound_call", "sms", "sms"],
            "contact_cost": [4.0, 4.0, 0.1, 0.1],
            "offer_cost": [30.0] * 4,
            "value": [200.0] * 4,
        }
    )
    truth = pl.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D", "A"],
            "offer": ["discount"] * 5,
            "channel": ["outbound_call", "outbound_call", "sms", "sms", "sms"],
            "accept": [0.7, 0.4, 0.7, 0.05, 0.01],
            "uplift": [0.1, 0.0, 0.2, -0.05, 0.9],
        }
    )
    # True costs: A 4 + 0.7·30 = 25, B 4 + 0.4·30 = 16, C 0.1 + 0.7·30 = 21.1, D 0.1 + 0.05·30
    # = 1.6. Run down in order: A fits, B and C would overspend, D fits. A's SMS row is not
    # the contact made, so it must not be used.
    chosen = within_budget(ranked, truth, 40.0)
    assert chosen["customer_id"].to_list() == ["A", "D"]
    v = value_choice(chosen)
    assert v["cost"] == pytest.approx(26.6) and v["cost"] <= 40.0
    assert v["expected_saves"] == pytest.approx(0.05)
    assert v["profit"] == pytest.approx(0.05 * 200 - 26.6)


def test_customers_far_behind_on_payment_go_to_collections_not_retention(cfg):
    """The churn label counts disconnection for non-payment; no retention offer prevents it."""
    frame = customers(2000, seed=3)
    dpd = np.random.default_rng(3).choice([None, 0, 11, 41, 72, 100], frame.height)
    frame = frame.with_columns(pl.Series("days_past_due_last", dpd.tolist(), dtype=pl.Int32))
    result = run(cfg, frame, budget=1e6, min_expected_value=-1e9)
    on = frame.filter(pl.col("customer_id").is_in(result.retention_list["customer_id"].implode()))
    assert on.height > 0
    assert (on["days_past_due_last"].fill_null(0) < cfg.max_days_past_due).all()
    assert (on["days_past_due_last"] == 11).any()  # a late bill alone is no reason to stop
    behind = frame.filter(pl.col("days_past_due_last") >= cfg.max_days_past_due)
    flagged = result.collections.filter(pl.col("reason").str.contains("non-payment"))
    assert result.excluded["arrears"] > 0
    assert set(flagged["customer_id"]) <= set(behind["customer_id"])
    # Every customer far behind is either flagged or excluded for an earlier reason.
    weak_low = behind.filter(
        pl.col("credit_grade").is_in(cfg.weak_grades)
        & pl.col("value_tier").is_in(["basic", "silver"])
    )
    assert flagged.height + weak_low.height == behind.height
    # A higher threshold lets them back in.
    lenient = run(cfg, frame, budget=1e6, min_expected_value=-1e9, max_days_past_due=365)
    assert "arrears" not in lenient.excluded


def test_channels_priced_one_at_a_time_rank_as_all_options_at_once(cfg):
    """The list stage prices one channel at a time to bound its memory; each customer's best
    offer per channel, and the ranking across channels, are those of every option at once."""
    from retention.policy import (
        _split_priced,
        _with_value,
        best_per_channel,
        channel_bests,
        offer_options,
    )

    priced, _ = _split_priced(_with_value(customers(3000, 5), cfg))
    takeup = {"discount__sms": 0.5, "loyalty_bonus": 0.7}  # a channel and a pooled factor
    expected = best_per_channel(offer_options(priced, cfg, takeup=takeup))
    got = channel_bests(priced, cfg, takeup=takeup)
    assert got.height == expected.height > 3000  # several channels per customer
    assert got.select(expected.columns).equals(expected)
