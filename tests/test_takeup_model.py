"""The per-customer take-up model: learns who accepts which offer, and passes its gate only then."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from models.takeup import customer_folds, fit_takeup

REACH = 0.55  # the channel's reach × persuasion the contacts went through


def _contacts(n: int, seed: int, informative: bool) -> tuple[pl.DataFrame, np.ndarray]:
    """Contacts where a discount appeals to price-sensitive customers (or to nobody in particular)."""
    rng = np.random.default_rng(seed)
    price = rng.random(n)
    offer = rng.choice(["discount", "loyalty_bonus"], n)
    base = np.where(offer == "discount", 0.35, 0.25)
    if informative:
        z = np.where(offer == "discount", -2.0 + 4.0 * price, -1.1)
        base = 1.0 / (1.0 + np.exp(-z))
    truth = REACH * base
    frame = pl.DataFrame(
        {
            "customer_id": [f"C{i // 2:05d}" for i in range(n)],  # two contacts per customer
            "price_sensitivity_proxy": price,
            "tenure_months": rng.integers(1, 60, n),
            "segment": rng.choice(["consumer", "smb"], n),
            "offer": offer,
            "channel": "outbound_call",
            "accepted": rng.random(n) < truth,
        }
    )
    # The calibrated acceptance a list would have predicted: each offer's observed rate.
    rate = frame.group_by("offer").agg(pl.col("accepted").mean().alias("prior_probability"))
    return frame.join(rate, on="offer", how="left", maintain_order="left"), truth


COLUMNS = ["price_sensitivity_proxy", "tenure_months", "segment"]


def test_takeup_model_learns_who_accepts_and_beats_the_calibrated_rate():
    contacts, _ = _contacts(6000, 0, informative=True)
    model = fit_takeup(contacts, COLUMNS, {"outbound_call": REACH}, folds=3, seed=0)
    assert model.report["beats_prior"] and model.report["gain_se"] > 5
    assert model.report["logloss"] < 0.97 * model.report["prior_logloss"]
    grid = pl.DataFrame(
        {
            "price_sensitivity_proxy": np.linspace(0.02, 0.98, 25),
            "tenure_months": 24,
            "segment": "consumer",
        }
    )
    accept = model.accept_columns(grid, ["discount", "loyalty_bonus"])
    true_discount = 1.0 / (1.0 + np.exp(-(-2.0 + 4.0 * grid["price_sensitivity_proxy"].to_numpy())))
    # Acceptance of a reached customer, before the channel: rises with price sensitivity for a
    # discount as the truth does, and stays flat for the bonus.
    assert np.corrcoef(accept["accept_discount"].to_numpy(), true_discount)[0, 1] > 0.9
    assert np.abs(accept["accept_discount"].to_numpy() - true_discount).mean() < 0.08
    assert np.ptp(accept["accept_loyalty_bonus"].to_numpy()) < 0.15


def test_takeup_model_on_noise_does_not_beat_the_calibrated_rate():
    contacts, _ = _contacts(3000, 1, informative=False)
    model = fit_takeup(contacts, COLUMNS, {"outbound_call": REACH}, folds=3, seed=0)
    # Nothing but the offer matters, and the prior already knows each offer's rate exactly:
    # whatever the model gains out of fold is within noise of the prior.
    assert model.report["gain_se"] < 2.0


def test_takeup_folds_keep_each_customer_on_one_side():
    customers = np.array([f"C{i % 300}" for i in range(1200)])
    for train, valid in customer_folds(customers, 3, seed=4):
        assert not set(customers[train]) & set(customers[valid])


def test_takeup_model_estimates_only_offers_it_has_seen():
    contacts, _ = _contacts(3000, 2, informative=True)
    # Contacts through a channel the config no longer has are left out, not a crash.
    stray = contacts.head(50).with_columns(pl.lit("fax").alias("channel"))
    model = fit_takeup(pl.concat([contacts, stray]), COLUMNS, {"outbound_call": REACH}, 3, 0)
    assert model.report["contacts"] == 3000
    frame = contacts.head(5).select(COLUMNS)
    columns = model.accept_columns(frame, ["discount", "loyalty_bonus", "handset_upgrade"])
    # No campaign offered a handset: the list keeps its configured acceptance for it.
    assert columns.columns == ["accept_discount", "accept_loyalty_bonus"]


def test_paired_gain_counts_a_customers_contacts_as_one_draw():
    from models.takeup import paired_gain

    # Two customers, two contacts each: the per-customer sums are 0.3 and 0.1.
    customers = np.array(["A", "A", "B", "B"])
    gain, se = paired_gain(
        customers, np.array([0.4, 0.4, 0.5, 0.5]), np.array([0.5, 0.6, 0.5, 0.6])
    )
    assert gain == pytest.approx(0.1)
    # sd of (0.3, 0.1) = 0.1414; × sqrt(2) customers / 4 contacts.
    assert se == pytest.approx(0.1414214 * np.sqrt(2) / 4, rel=1e-5)
