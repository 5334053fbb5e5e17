"""Acceptance calibrated by campaign responses, and the expected-value rule that stops paying contacts."""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl
import pytest

from pipelines.store.config import load_settings
from pipelines.store.warehouse import LIST_DDL
from retention.policy import decide
from retention.takeup import factor_for, takeup_factors
from tests.test_retention import AS_OF, customers


def _contacts(offer: str, channel: str, n: int, predicted: float, accepted: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "offer": [offer] * n,
            "channel": [channel] * n,
            "accept_probability": [predicted] * n,
            "accepted": [i < accepted for i in range(n)],
        }
    )


def test_takeup_factor_is_observed_over_predicted_shrunk_toward_one():
    contacts = pl.concat(
        [
            _contacts("discount", "outbound_call", 200, 0.2, 20),  # 20 seen, 40 predicted
            _contacts("discount", "sms", 100, 0.1, 10),  # as predicted
        ]
    )
    f = takeup_factors(contacts, prior_strength=10.0)
    # By hand: (20 + 10) / (40 + 10) = 0.6; SMS (10 + 10) / (10 + 10) = 1; pooled 40 / 60.
    assert f["discount__outbound_call"] == pytest.approx(0.6)
    assert f["discount__sms"] == pytest.approx(1.0)
    assert f["discount"] == pytest.approx(40 / 60, abs=1e-4)
    assert takeup_factors(contacts, 0.0)["discount__outbound_call"] == pytest.approx(0.5)
    # A channel no campaign used takes the offer's pooled factor; an unknown offer none.
    assert factor_for(f, "discount", "app") == f["discount"]
    assert factor_for(f, "loyalty_bonus", "sms") == 1.0
    assert takeup_factors(contacts.head(0), 10.0) == {}
    with pytest.raises(ValueError):
        takeup_factors(contacts, -1.0)


def test_offer_takeup_reads_only_played_out_treated_contacts_of_earlier_lists():
    from pipelines.stages.target import offer_takeup

    settings = load_settings(environ={}, overrides={"retention": {"takeup": {"prior_strength": 0}}})
    con = duckdb.connect()
    con.execute(LIST_DDL)
    con.execute("CREATE SCHEMA raw")
    con.execute(
        "CREATE TABLE raw.contacts (contact_id VARCHAR, list_id VARCHAR, customer_id VARCHAR, "
        "offer VARCHAR, channel VARCHAR, contact_date DATE, control_flag BOOLEAN, response VARCHAR)"
    )
    rows = []
    for list_id, as_of in (("A", date(2025, 1, 31)), ("B", date(2025, 6, 30))):
        con.execute(
            "INSERT INTO retention.list_manifest VALUES (?, ?, now()::TIMESTAMP, '{}')",
            [list_id, as_of],
        )
        for i in range(10):
            control = i >= 8
            rows.append((list_id, f"C{i}", "discount", "outbound_call", 0.4, control))
            con.execute(
                "INSERT INTO raw.contacts VALUES (?, ?, ?, 'discount', 'outbound_call', ?, ?, ?)",
                [
                    f"{list_id}-C{i}",
                    list_id,
                    f"C{i}",
                    as_of,
                    control,
                    None if control else ("accepted" if i < 2 else "declined"),
                ],
            )
    lists = pl.DataFrame(
        rows,
        schema=["list_id", "customer_id", "offer", "channel", "accept_probability"]
        + ["control_flag"],
        orient="row",
    )
    con.register("_l", lists)
    con.execute("INSERT INTO retention.retention_lists BY NAME SELECT * FROM _l")
    # List B is not earlier than the as-of: only list A's 8 treated contacts count, 2 accepted
    # against 8 × 0.4 predicted.
    f = offer_takeup(con, settings, date(2025, 3, 31))
    assert f["discount__outbound_call"] == pytest.approx(2 / 3.2)
    # Before any list has played out there is nothing to calibrate with.
    assert offer_takeup(con, settings, date(2025, 1, 1)) == {}
    off = settings.model_copy(
        update={
            "retention": settings.retention.model_copy(
                update={"takeup": settings.retention.takeup.model_copy(update={"enabled": False})}
            )
        }
    )
    assert offer_takeup(con, off, date(2025, 3, 31)) == {}


def test_policy_acceptance_follows_campaign_takeup():
    cfg = load_settings(environ={}).retention.model_copy(update={"control_share": 0.0})
    frame = customers(3000, seed=5)
    prior = decide(frame, cfg, AS_OF, "L", 1, 1e6).retention_list
    offers = {o.name for o in cfg.offers}
    low = {o: 0.3 for o in offers}
    calibrated = decide(frame, cfg, AS_OF, "L", 1, 1e6, None, low).retention_list
    both = prior.join(calibrated, on=["customer_id", "offer", "channel"], suffix="_cal")
    assert both.height > 0
    assert both["accept_probability_cal"].to_list() == pytest.approx(
        (both["accept_probability"] * 0.3).to_list()
    )
    # Fewer take-ups than the configured rates promise: fewer contacts pay.
    assert calibrated.height < prior.height


def test_a_contact_that_saves_less_than_it_costs_is_not_made():
    """Resentment (backfire) and partial saves make a weak contact worth less than nothing."""
    settings = load_settings(environ={})
    base = settings.retention.model_copy(update={"control_share": 0.0, "min_expected_value": 0.0})
    frame = customers(3000, seed=9)
    listed = decide(frame, base, AS_OF, "L", 1, 1e6).retention_list
    assert listed.height > 0
    # By the rule: P(saved) = churn × (P(accept) × save_given_accept − reach × backfire × rise).
    prior = base.response_prior
    reach = listed["channel"].replace_strict({c: v.reach for c, v in base.channels.items()})
    saved = listed["churn_probability"] * (
        listed["accept_probability"] * prior.save_given_accept
        - reach * prior.backfire_rate * prior.backfire_churn_increase
    )
    assert listed["save_probability"].to_list() == pytest.approx(saved.to_list())
    ev = saved * listed["value"] - listed["accept_probability"] * listed["offer_cost"]
    assert (ev - listed["contact_cost"]).to_list() == pytest.approx(
        listed["expected_value"].to_list()
    )
    assert (listed["expected_value"] > 0).all()
    # If every reached customer resented the contact as much as a take-up saves, nobody pays.
    hostile = base.model_copy(
        update={
            "response_prior": prior.model_copy(
                update={"backfire_rate": 0.5, "backfire_churn_increase": 1.0}
            )
        }
    )
    assert decide(frame, hostile, AS_OF, "L", 1, 1e6).retention_list.height == 0
    # Without backfire and with full saves (the old prior), more contacts look worth making.
    naive = base.model_copy(
        update={
            "response_prior": prior.model_copy(
                update={"backfire_rate": 0.0, "save_given_accept": 1.0}
            )
        }
    )
    assert decide(frame, naive, AS_OF, "L", 1, 1e6).retention_list.height > listed.height


def _played_out_home(n_customers: int) -> duckdb.DuckDBPyConnection:
    """Two played-out learning lists (Jan, Feb) and a later one (Apr) whose responses are in,
    snapshots at every list date and at the targeting date; a discount appeals to customers
    with many top-ups, a loyalty bonus to nobody in particular."""
    import numpy as np

    rng = np.random.default_rng(7)
    con = duckdb.connect()
    con.execute(LIST_DDL)
    con.execute("CREATE SCHEMA raw")
    con.execute("CREATE SCHEMA feat")
    con.execute(
        "CREATE TABLE raw.contacts (contact_id VARCHAR, list_id VARCHAR, customer_id VARCHAR, "
        "offer VARCHAR, channel VARCHAR, contact_date DATE, control_flag BOOLEAN, response VARCHAR)"
    )
    dates = {"L1": date(2025, 1, 31), "L2": date(2025, 2, 28), "L4": date(2025, 4, 30)}
    snaps, lists, contacts = [], [], []
    for as_of in [*dates.values(), date(2025, 3, 31)]:
        topups = rng.poisson(3.0, n_customers).astype(float)
        snaps.append(
            pl.DataFrame(
                {
                    "customer_id": [f"C{i:05d}" for i in range(n_customers)],
                    "as_of": as_of,
                    "topups_30d": topups,
                    "tenure_months": rng.integers(1, 60, n_customers),
                    "churn_90d": rng.random(n_customers) < 0.05,  # a label: never a feature
                }
            )
        )
    for list_id, as_of in dates.items():
        con.execute(
            "INSERT INTO retention.list_manifest VALUES (?, ?, now()::TIMESTAMP, '{}')",
            [list_id, as_of],
        )
        snap = next(s for s in snaps if s["as_of"][0] == as_of)
        offers = rng.choice(["discount", "loyalty_bonus"], n_customers)
        z = np.where(offers == "discount", -3.0 + 0.6 * snap["topups_30d"].to_numpy(), -1.2)
        accepted = rng.random(n_customers) < 0.55 / (1.0 + np.exp(-z))
        for i in range(n_customers):
            cid, offer = f"C{i:05d}", str(offers[i])
            lists.append((list_id, cid, offer, "outbound_call", 0.2, False))
            response = "accepted" if accepted[i] else "declined"
            contacts.append(
                (f"{list_id}-{cid}", list_id, cid, offer, "outbound_call", as_of, False, response)
            )
    con.register("_s", pl.concat(snaps))
    con.execute("CREATE TABLE feat.customer_snapshot AS SELECT * FROM _s")
    con.register(
        "_l",
        pl.DataFrame(
            lists,
            schema=["list_id", "customer_id", "offer", "channel", "accept_probability"]
            + ["control_flag"],
            orient="row",
        ),
    )
    con.execute("INSERT INTO retention.retention_lists BY NAME SELECT * FROM _l")
    con.executemany("INSERT INTO raw.contacts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", contacts)
    return con


def test_takeup_model_ranks_the_list_once_it_beats_the_calibrated_acceptance():
    from pipelines.stages.target import offer_takeup, with_takeup

    settings = load_settings(environ={})
    con = _played_out_home(1500)
    as_of = date(2025, 3, 31)
    candidates = pl.DataFrame({"customer_id": [f"C{i:05d}" for i in range(1500)]})
    factors = offer_takeup(con, settings, as_of)
    assert factors  # the calibration alone would scale by offer
    out, left, report = with_takeup(settings, con, candidates, as_of, factors)
    # Only lists before the as-of: L1 and L2, 3,000 contacts (L4's responses come later).
    assert report["contacts"] == 3000 and report["used"], report
    assert left == {}  # the model learned from the same responses: no factor on top
    snap = con.sql(
        "SELECT customer_id, topups_30d FROM feat.customer_snapshot WHERE as_of = ?", params=[as_of]
    ).pl()
    joined = out.join(snap, on="customer_id")
    many = joined.filter(pl.col("topups_30d") >= 6)["accept_discount"].mean()
    few = joined.filter(pl.col("topups_30d") <= 1)["accept_discount"].mean()
    assert many > 2 * few  # who accepts a discount follows what the campaigns showed
    # Two features: the top-ups and the tenure; never the label, the key or the date.
    assert report["features"] == 2 and out.height == 1500

    # Too few contacts: the calibrated acceptance stays, and the manifest says why.
    few_settings = load_settings(
        environ={}, overrides={"retention": {"takeup": {"min_contacts": 5000}}}
    )
    same, kept, why = with_takeup(few_settings, con, candidates, as_of, factors)
    assert same.columns == candidates.columns and kept == factors
    assert not why["used"] and "needs 5000" in why["why"]
