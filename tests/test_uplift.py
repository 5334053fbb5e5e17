"""Uplift: Qini arithmetic on hand-made cases (hand-worked table: test_uplift_snapshot.py), a two-model learner on a known effect, policy use."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from models.uplift import fit_uplift, qini_coefficient


def test_qini_coefficient_is_one_for_a_perfect_ranking_and_negative_when_reversed():
    rng = np.random.default_rng(0)
    n = 2000
    treated = rng.random(n) < 0.5
    churned = (rng.random(n) < 0.3).astype(int)
    perfect = (1 - churned) * treated - (1 - churned) * ~treated
    assert qini_coefficient(churned, treated, perfect) == pytest.approx(1.0)
    assert qini_coefficient(churned, treated, -perfect) < 0
    assert abs(qini_coefficient(churned, treated, rng.random(n))) < 0.25


def test_qini_needs_both_arms():
    with pytest.raises(ValueError, match="both treated and control"):
        qini_coefficient(np.array([0, 1]), np.array([1, 1]), np.array([0.1, 0.2]))


def _campaign(n: int, seed: int) -> pl.DataFrame:
    """Contact lowers churn only for price-sensitive customers, and only with a discount."""
    rng = np.random.default_rng(seed)
    price = rng.random(n)
    noise = rng.normal(size=n)
    treated = rng.random(n) < 0.5
    offer = rng.choice(["discount", "loyalty_bonus"], n)
    base = 0.25 + 0.1 * (noise > 1)
    effect = np.where(treated & (offer == "discount") & (price > 0.5), 0.2, 0.0)
    churned = (rng.random(n) < base - effect).astype(float)
    return pl.DataFrame(
        {
            "price_sensitivity": price,
            "noise": noise,
            "segment": rng.choice(["individual", "family"], n),
            "treated": treated,
            "offer": offer,
            "churned": churned,
        }
    )


def test_two_model_learner_finds_who_responds_to_which_offer():
    data = _campaign(16000, 1)
    cols = ["price_sensitivity", "noise", "segment"]
    t, c = data.filter(pl.col("treated")), data.filter(~pl.col("treated"))
    model = fit_uplift(t, t["churned"].to_numpy(), c, c["churned"].to_numpy(), cols, seed=3)
    assert model.offers == ["discount", "loyalty_bonus"]

    probe = _campaign(4000, 2)
    est = model.uplift_columns(probe)
    responsive = (probe["price_sensitivity"] > 0.5).to_numpy()
    discount = est["uplift_discount"].to_numpy()
    assert discount[responsive].mean() - discount[~responsive].mean() > 0.1
    assert abs(est["uplift_loyalty_bonus"].to_numpy().mean()) < 0.05

    # Ranking held-out customers by the uplift of the offer they got comes close to ranking by
    # the true effect (Qini against a perfect outcome ordering is small even for the truth).
    y, tr = probe["churned"].to_numpy(), probe["treated"].to_numpy()
    truth = ((probe["offer"] == "discount") & (probe["price_sensitivity"] > 0.5)).to_numpy()
    q_truth = qini_coefficient(y, tr, truth + 1e-6 * np.arange(len(y)) / len(y))
    q_model = qini_coefficient(y, tr, model.uplift(probe, probe["offer"]))
    q_random = qini_coefficient(y, tr, np.random.default_rng(5).random(len(y)))
    assert q_truth > 0.03
    assert q_model > 0.6 * q_truth
    assert q_model > q_random + 0.02


def test_fit_refuses_an_arm_without_churners():
    data = _campaign(400, 4).with_columns(pl.lit(0.0).alias("churned"))
    t, c = data.filter(pl.col("treated")), data.filter(~pl.col("treated"))
    with pytest.raises(ValueError, match="too few churners"):
        fit_uplift(t, t["churned"].to_numpy(), c, c["churned"].to_numpy(), ["noise"])


def _candidates(churn: np.ndarray, deciles, group: str, tier: str, spend: float) -> pl.DataFrame:
    """Scored, eligible customers as the policy receives them (A grade, no contact history)."""
    n = len(churn)
    text = lambda v: pl.Series([v] * n, dtype=pl.Utf8)  # noqa: E731 - column shorthand
    return pl.DataFrame(
        {
            "customer_id": [f"C{i:04d}" for i in range(n)],
            "churn_probability": churn,
            "risk_decile": deciles,
            "credit_grade": text("A"),
            "credit_pd": [0.01] * n,
            "reason_1": text("r"),
            "reason_2": text(None),
            "reason_3": text(None),
            "reason_group_1": text(group),
            "reason_group_2": text(None),
            "reason_group_3": text(None),
            "segment": text("individual"),
            "value_tier": text(tier),
            "lifecycle_stage": text("maturity"),
            "monthly_spend": [spend] * n,
            "marketing_opt_out": [False] * n,
            "do_not_contact": [False] * n,
            "last_contact_date": pl.Series([None] * n, dtype=pl.Date),
            "contacts_in_period": [0] * n,
        }
    )


def test_policy_ranks_by_uplift_when_estimates_exist(settings):
    from retention.policy import decide

    # One offer, so the ranking alone decides who is chosen.
    cfg = settings.retention.model_copy(
        update={"control_share": 0.0, "offers": settings.retention.offers[:1]}
    )
    offers = [o.name for o in cfg.offers]
    n = 200
    # Half are high-risk sure things (no uplift), half are mid-risk persuadables.
    risky = np.arange(n) < n // 2
    frame = _candidates(np.where(risky, 0.8, 0.3), np.where(risky, 10, 6), "price", "silver", 50.0)
    # Budget for about a quarter of them through SMS with the cheapest offer.
    budget = 50 * (0.1 + 0.35 * 5)
    without = decide(frame, cfg, date(2025, 6, 30), "L1", 1, budget).retention_list
    # Risk × acceptance ranking spends the budget on the high-risk sure things first.
    assert (without["churn_probability"] == 0.8).mean() > 0.8

    uplift = pl.DataFrame({f"uplift_{o}": np.where(risky, 0.0, 0.25) for o in offers})
    with_uplift = decide(
        pl.concat([frame, uplift], how="horizontal"), cfg, date(2025, 6, 30), "L1", 1, budget
    ).retention_list
    assert with_uplift.height > 0
    assert with_uplift["churn_probability"].max() == pytest.approx(0.3)  # only persuadables
    # The estimate refers to the reference channel; the chosen channel scales it by its reach ×
    # persuasion, and nobody is saved more surely than they would churn.
    ch = cfg.channels
    factor = {c: v.reach * v.persuasion for c, v in ch.items()}
    ref = factor[cfg.uplift.reference_channel]
    expected = [min(0.25 * factor[c] / ref, 0.3) for c in with_uplift["channel"]]
    assert with_uplift["save_probability"].to_list() == pytest.approx(expected)


def test_realisation_is_shrunk_toward_one_by_the_campaigns_precision():
    from retention.evaluation import realisation, saves_standard_error

    # A precise result (se → 0) is taken as it is; clipped to [0, max_factor].
    assert realisation(2.0, 20.0, 0.0, 0.5) == pytest.approx(0.1)
    assert realisation(-3.0, 10.0, 0.0, 0.5) == 0.0  # campaigns that did harm earn nothing
    assert realisation(30.0, 10.0, 0.0, 0.5, max_factor=2.0) == 2.0
    # By hand: ratio 0.1, se of the ratio 10 / 20 = 0.5, prior sd 0.5 → weight ½ → 0.55.
    assert realisation(2.0, 20.0, 10.0, 0.5) == pytest.approx(0.55)
    # A result ten times its prior spread in noise barely moves the factor.
    assert realisation(2.0, 20.0, 100.0, 0.5) == pytest.approx(1 - 0.9 * 0.25 / 25.25)
    assert realisation(0.0, 0.0, 1.0, 0.5) == 1.0
    with pytest.raises(ValueError):
        realisation(1.0, -1.0, 1.0, 0.5)
    # se of (pc − pt) × nt: 100 treated at 5 %, 400 control at 10 % → 100 × √(.09/400 + .0475/100).
    assert saves_standard_error(100, 400, 0.05, 0.10) == pytest.approx(
        100 * (0.09 / 400 + 0.0475 / 100) ** 0.5
    )
    assert saves_standard_error(100, 0, 0.05, 0.10) == float("inf")


def test_policy_scales_prior_saves_by_campaign_realisation(settings):
    from retention.policy import decide

    cfg = settings.retention.model_copy(
        update={"control_share": 0.0, "offers": settings.retention.offers[:1]}
    )
    offer = cfg.offers[0].name
    n = 50
    frame = _candidates(np.linspace(0.2, 0.9, n), [9] * n, "complaints", "gold", 80.0)
    prior = decide(frame, cfg, date(2025, 6, 30), "L", 1, 1e6).retention_list
    scaled = decide(frame, cfg, date(2025, 6, 30), "L", 1, 1e6, {offer: 0.05}).retention_list
    assert scaled.height < prior.height  # contacts that no longer pay are dropped
    both = prior.join(scaled, on="customer_id", suffix="_scaled")
    assert both["save_probability_scaled"].to_list() == pytest.approx(
        (both["save_probability"] * 0.05).to_list()
    )


def _hazard_campaign(n: int, seed: int) -> pl.DataFrame:
    """Like the simulator: offers scale the churn risk; who responds depends on traits and offer.

    A discount cuts risk by 60 % for price-sensitive customers only; an account manager visit by
    60 % for enterprises only; risk itself depends on other features (which matter for uplift in
    absolute terms, since uplift = risk × relative reduction).
    """
    rng = np.random.default_rng(seed)
    price = rng.random(n)
    tickets = rng.poisson(1.0, n).astype(float)
    segment = rng.choice(["individual", "enterprise"], n, p=[0.7, 0.3])
    treated = rng.random(n) < 0.5
    offer = np.where(
        segment == "enterprise",
        rng.choice(["discount", "account_manager_visit"], n),
        "discount",
    )
    risk = 1 / (1 + np.exp(-(-2.2 + 0.5 * tickets + 0.8 * price)))
    cut = np.where(offer == "discount", price > 0.6, segment == "enterprise")
    p = risk * np.where(treated & cut, 0.4, 1.0)
    return pl.DataFrame(
        {
            "price_sensitivity": price,
            "tickets": tickets,
            "segment": segment,
            "treated": treated,
            "offer": pl.Series(np.where(treated, offer, None).tolist(), dtype=pl.Utf8),
            "churned": (rng.random(n) < p).astype(float),
        }
    )


def test_relative_learner_finds_offer_specific_responders_from_a_small_campaign():
    data = _hazard_campaign(6000, 7)
    cols = ["price_sensitivity", "tickets", "segment"]
    t, c = data.filter(pl.col("treated")), data.filter(~pl.col("treated"))
    model = fit_uplift(t, t["churned"].to_numpy(), c, c["churned"].to_numpy(), cols, seed=1)
    assert model.learner == "relative"
    assert model.offers == ["account_manager_visit", "discount"]
    probe = _hazard_campaign(4000, 8)
    est = model.uplift_columns(probe)
    price = probe["price_sensitivity"].to_numpy()
    enterprise = (probe["segment"] == "enterprise").to_numpy()
    discount, visit = (
        est["uplift_discount"].to_numpy(),
        est["uplift_account_manager_visit"].to_numpy(),
    )
    # Directional: the discount helps the price-sensitive more, the visit helps enterprises.
    assert discount[price > 0.6].mean() - discount[price < 0.4].mean() > 0.04
    low = enterprise & (price < 0.4)  # visits are offered to enterprises only
    assert visit[low].mean() - discount[low].mean() > 0.04
    # Held-out Qini on the offers actually given beats random ranking and the T-learner.
    y, tr = probe["churned"].to_numpy(), probe["treated"].to_numpy()
    given = probe["offer"].fill_null("discount")
    q = qini_coefficient(y, tr, model.uplift(probe, given))
    two = fit_uplift(
        t, t["churned"].to_numpy(), c, c["churned"].to_numpy(), cols, seed=1, learner="two_model"
    )
    q_two = qini_coefficient(y, tr, two.uplift(probe, given))
    q_random = qini_coefficient(y, tr, np.random.default_rng(5).random(len(y)))
    assert q > q_random + 0.03
    assert q > q_two


def test_unknown_learner_is_refused():
    data = _campaign(400, 4)
    t, c = data.filter(pl.col("treated")), data.filter(~pl.col("treated"))
    with pytest.raises(ValueError, match="unknown uplift learner"):
        fit_uplift(t, t["churned"].to_numpy(), c, c["churned"].to_numpy(), ["noise"], learner="x")


@pytest.mark.parametrize(
    ("qini", "qini_risk", "champion"),
    [
        (None, None, False),
        (-0.01, 0.0, False),
        (0.02, 0.03, False),
        (0.03, 0.03, False),
        (0.05, 0.03, True),
        (0.05, None, True),
    ],
)
def test_uplift_becomes_champion_only_above_the_bar_and_risk_ranking(qini, qini_risk, champion):
    from models.uplift import uplift_gate

    ok, why = uplift_gate(qini, qini_risk, 0.0)
    assert ok is champion and why


def test_uplift_must_beat_risk_ranking_by_more_than_noise():
    from models.uplift import uplift_gate

    # The 200k world that lost 70 % of its profit: 0.0042 against 0.0036 is within noise.
    ok, why = uplift_gate(0.0042, 0.0036, 0.0, gain_se=0.003, min_gain_se=2.0)
    assert not ok and "2 standard errors" in why
    assert uplift_gate(0.0142, 0.0036, 0.0, gain_se=0.003, min_gain_se=2.0)[0]


def test_qini_gain_se_shrinks_with_more_customers_and_is_zero_for_the_same_score():
    from models.uplift import qini_gain_se

    rng = np.random.default_rng(3)
    ses = []
    for n in (1000, 8000):
        t = rng.random(n) < 0.5
        churned = (rng.random(n) < np.where(t, 0.05, 0.08)).astype(int)
        score, baseline = rng.random(n), rng.random(n)
        ids = np.arange(n).astype(str)
        ses.append(qini_gain_se(churned, t, score, baseline, ids, draws=100))
        assert qini_gain_se(churned, t, score, score, ids, draws=50) == 0.0
    assert ses[1] < 0.6 * ses[0]


def test_campaign_loop_chooses_a_learner_by_customer_folds_and_fits_it_per_offer():
    from models.uplift_eval import choose_campaign_learner
    from models.uplift_holdout import mark_held_out, split_held_out

    # Two list dates per customer: the inner folds must keep a customer's rows together.
    one = _hazard_campaign(3000, 11).with_row_index("i")
    frame = pl.concat(
        [one.with_columns(pl.lit(d).alias("as_of")) for d in (date(2025, 1, 31), date(2025, 2, 28))]
    ).with_columns(
        pl.format("C{}", pl.col("i")).alias("customer_id"),
        (pl.col("treated") | (pl.col("i") % 3 == 0)).alias("listed"),
        pl.col("churned").cast(pl.Int32),
    )
    train, hold = split_held_out(mark_held_out(frame, 0.25, 0))
    cols = ["price_sensitivity", "tickets", "segment"]
    name, scores = choose_campaign_learner(train, cols, candidates=("solo", "two_model"))
    assert name in ("solo", "two_model") and set(scores) == {"solo", "two_model"}
    assert all(np.isfinite(v) for v in scores.values())
    t, c = train.filter(pl.col("treated")), train.filter(~pl.col("treated"))
    model = fit_uplift(
        t, t["churned"].to_numpy(), c, c["churned"].to_numpy(), cols, seed=0, learner=name
    )
    assert model.offers == ["account_manager_visit", "discount"]
    est = model.uplift_columns(hold)
    assert est.columns == ["uplift_account_manager_visit", "uplift_discount"]
    price = hold["price_sensitivity"].to_numpy()
    discount = est["uplift_discount"].to_numpy()
    assert discount[price > 0.6].mean() > discount[price < 0.4].mean()
    given = model.uplift(hold, hold["offer"])
    assert given[hold["offer"].is_null().to_numpy()].tolist() == [0.0] * int(
        hold["offer"].is_null().sum()
    )
