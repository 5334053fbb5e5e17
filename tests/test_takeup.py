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
