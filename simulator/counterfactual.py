"""Counterfactual truth: each customer's churn over a horizon with and without a contact.

Exact expectations of what the simulator does (`World.apply_treatments`, then the monthly
intent draws), at three levels of knowledge:

- ``oracle``: the world's full state, including each customer's latent responsiveness and the
  churn intents already drawn for the contact month;
- ``intents``: everything but the latent responsiveness (integrated out exactly);
- ``observable``: neither the latent responsiveness nor the drawn intents (an intent has the
  probability of the hazard that drew it): the Bayes ceiling for a model that knows every
  customer's true hazard and contact-time state.

Month 1 is the contact month, whose intents are already drawn: an accepted offer cancels an
intent with probability 1 − EFFECT[o]; a resented contact adds one with probability
h × (BACKFIRE − 1). Later months churn at the hazard times the contact's multiplier (the effect
lasts `EFFECT_DAYS`, longer than any horizon used), with today's hazard as the forecast of the
hazard in those months, for treated and untreated alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

import simulator.response as rm
from simulator.month import _days, _epoch
from simulator.world import World

KNOWLEDGE = ("oracle", "intents", "observable")


def contact_frame(world: World) -> pl.DataFrame:
    """The active base at the contact month with what the counterfactual needs."""
    s = world.state.filter(pl.col("active")).join(
        world.responses, on="customer_id", how="left", maintain_order="left"
    )
    m0 = _epoch(world.next_month)
    until = _days(s["effect_until"].to_numpy().astype("datetime64[D]"))
    old = np.where(until >= m0, s["effect_mult"].to_numpy(), 1.0)
    intent = _days(s["intent_date"].to_numpy().astype("datetime64[D]"))
    return s.with_columns(
        # Hazard without a running effect: a new contact's effect replaces the old one.
        (pl.col("hazard") / pl.Series(old)).clip(0.0, 0.95).alias("_h_raw"),
        pl.Series("_intent", (intent >= m0) & (intent < m0 + 31)),
    )


def churn_probabilities(
    frame: pl.DataFrame, offer: str, channel: str, horizon_days: int, knows: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(churn) untreated, P(churn) treated, P(offer accepted), per row of `contact_frame`."""
    if knows not in KNOWLEDGE:
        raise ValueError(f"knows must be one of {KNOWLEDGE}")
    months = horizon_days / 30.4
    later = max(months - 1.0, 0.0)
    h = frame["hazard"].to_numpy()
    h_raw = frame["_h_raw"].to_numpy()
    intent = frame["_intent"].to_numpy().astype(float) if knows != "observable" else h
    latent = frame["responsiveness"].fill_null(0.0).to_numpy() if knows == "oracle" else None
    st = rm.state_arrays(frame)
    acc, bad = rm.expected_outcomes(offer, channel, st, latent)
    neutral = 1.0 - acc - bad

    def churn(mult: float | np.ndarray) -> np.ndarray:
        first = intent * np.minimum(mult, 1.0) + (1 - intent) * np.clip(
            h * np.maximum(np.asarray(mult) - 1.0, 0.0), 0.0, 1.0
        )
        survive_later = (1 - np.clip(h_raw * mult, 0.0, 0.95)) ** later
        return first + (1 - first) * (1 - survive_later)

    p_control = churn(1.0)
    p_treated = acc * churn(rm.EFFECT[offer]) + bad * churn(rm.BACKFIRE) + neutral * p_control
    return p_control, p_treated, acc


def counterfactual(
    world: World,
    horizon_days: int,
    knows: str = "oracle",
    offers: list[str] | None = None,
    channels: list[str] | None = None,
) -> pl.DataFrame:
    """Per active customer × offer × channel: P(churn) without and with the contact, uplift
    (their difference: expected customers saved) and the probability the offer is accepted."""
    frame = contact_frame(world)
    parts = []
    for offer in offers or list(rm.EFFECT):
        for channel in channels or list(rm.CHANNELS):
            p_c, p_t, acc = churn_probabilities(frame, offer, channel, horizon_days, knows)
            parts.append(
                pl.DataFrame(
                    {
                        "customer_id": frame["customer_id"],
                        "offer": offer,
                        "channel": channel,
                        "p_churn_control": p_c,
                        "p_churn_treated": p_t,
                        "uplift": p_c - p_t,
                        "accept": acc,
                    }
                )
            )
    return pl.concat(parts)


def load(out: Path) -> World:
    return World.load(Path(out))
