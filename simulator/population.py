"""The customer population: plans, segments, latent traits and each customer's hidden offer response."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from configs.contracts import SEGMENTS
from configs.schema import SimulatorConfig
from simulator.response import RESPONSIVENESS_SD

REGIONS = ("north", "south", "east", "west", "central", "coast", "highlands", "capital")

# plan_id, name, payment type, monthly fee, voice minutes, sms, data MB
PLANS = (
    ("PRE-S", "Prepaid Small", "prepaid", 10.0, 100, 100, 2_000),
    ("PRE-M", "Prepaid Medium", "prepaid", 20.0, 300, 300, 8_000),
    ("PRE-L", "Prepaid Large", "prepaid", 35.0, 1_000, 1_000, 25_000),
    ("POST-S", "Postpaid Small", "postpaid", 25.0, 300, 200, 5_000),
    ("POST-M", "Postpaid Medium", "postpaid", 45.0, 1_000, 1_000, 20_000),
    ("POST-L", "Postpaid Large", "postpaid", 70.0, 3_000, 3_000, 60_000),
    ("POST-X", "Postpaid Unlimited", "postpaid", 110.0, 10_000, 10_000, 200_000),
)
BROADBAND_FEE = 35.0
FIXED_FEE = 15.0


def plans_frame() -> pl.DataFrame:
    return pl.DataFrame(
        PLANS,
        schema=[
            "plan_id",
            "plan_name",
            "payment_type",
            "monthly_fee",
            "voice_min",
            "sms",
            "data_mb",
        ],
        orient="row",
    ).with_columns(pl.col("voice_min", "sms", "data_mb").cast(pl.Float64))


def _plan_for(
    usage_level: np.ndarray, postpaid: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Customers mostly pick a plan that fits their usage, with noise (source of plan misfit)."""
    noisy = usage_level * rng.lognormal(0.0, 0.45, usage_level.size)
    pre = np.select([noisy < 0.7, noisy < 1.5], ["PRE-S", "PRE-M"], "PRE-L")
    post = np.select(
        [noisy < 0.6, noisy < 1.3, noisy < 2.4], ["POST-S", "POST-M", "POST-L"], "POST-X"
    )
    return np.where(postpaid, post, pre)


def new_customers(
    cfg: SimulatorConfig,
    rng: np.random.Generator,
    n: int,
    first_id: int,
    activation_start: date,
    activation_days: int,
) -> dict[str, np.ndarray]:
    """Draw n customers activated uniformly over [activation_start, +activation_days)."""
    mix = np.array([cfg.segment_mix.get(s, 0.0) for s in SEGMENTS], dtype=float)
    segment = rng.choice(np.array(SEGMENTS), size=n, p=mix / mix.sum())
    business = np.isin(segment, ("enterprise", "government"))
    postpaid_p = np.where(business, 0.95, cfg.postpaid_share)
    postpaid = rng.random(n) < postpaid_p
    usage_level = rng.lognormal(0.0, 0.55, n) * np.where(segment == "family", 1.3, 1.0)
    usage_level *= np.where(business, 1.5, 1.0)
    act_offset = rng.integers(0, max(activation_days, 1), n)
    activation = np.datetime64(activation_start) + act_offset.astype("timedelta64[D]")
    term_months = np.where(postpaid, rng.choice([12, 24, 36], n, p=[0.3, 0.55, 0.15]), 0)
    contract_end = np.where(
        postpaid,
        activation + (term_months * 30.4).astype("timedelta64[D]"),
        np.datetime64("NaT"),
    )
    grade_n = rng.integers(1, 6, n).astype(str)
    grade_c = np.where(segment == "government", "A", rng.choice(["A", "B"], n))
    enterprise_grade = np.where(business, np.char.add(grade_n, grade_c), None).tolist()
    account_manager = np.where(
        business, np.char.add("AM", rng.integers(100, 160, n).astype(str)), None
    ).tolist()
    ids = np.char.add("C", np.char.zfill((first_id + np.arange(n)).astype(str), 8))
    satisfaction = rng.normal(0.0, 1.0, n)
    price_sensitivity = rng.beta(2.0, 3.0, n) * np.where(business, 0.6, 1.0)
    financial_stress = rng.beta(1.3, 6.0, n) * np.where(business, 0.5, 1.0)
    latent_risk = rng.normal(0.0, 1.0, n)  # unobserved stickiness (moving, life events)
    return {
        "customer_id": ids,
        "segment": segment,
        "region": rng.choice(np.array(REGIONS), n),
        "activation_date": activation,
        "payment_type": np.where(postpaid, "postpaid", "prepaid"),
        "plan_id": _plan_for(usage_level, postpaid, rng),
        "contract_end": contract_end,
        "handset_age_months": rng.integers(0, 48, n).astype(np.int32),
        "enterprise_grade": enterprise_grade,
        "account_manager": account_manager,
        "marketing_opt_out": rng.random(n) < 0.04,
        "do_not_contact": rng.random(n) < 0.015,
        "has_broadband": rng.random(n) < np.where(segment == "individual", 0.25, 0.55),
        "has_fixed": rng.random(n) < np.where(business, 0.6, 0.15),
        "usage_level": usage_level,
        "data_affinity": rng.beta(2.0, 2.0, n),
        "satisfaction": satisfaction,
        "price_sensitivity": price_sensitivity,
        "financial_stress": financial_stress,
        "latent_risk": latent_risk,
    }


def response_types(customers: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """Each customer's latent responsiveness to retention contacts, shared by every offer.

    The hidden part of `simulator.response`'s acceptance model (the rest is the customer's
    state at contact time): some people engage with their operator, some never do.
    """
    z = rng.normal(0.0, RESPONSIVENESS_SD, customers.height)
    return pl.DataFrame({"customer_id": customers["customer_id"], "responsiveness": z})


def month_starts(start: date, months: int) -> list[date]:
    out, y, m = [], start.year, start.month
    for _ in range(months):
        out.append(date(y, m, 1))
        m += 1
        if m == 13:
            y, m = y + 1, 1
    return out


def next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)
