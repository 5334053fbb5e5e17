"""Calibrate offer acceptance from campaign responses: observed take-up against predicted."""

from __future__ import annotations

import polars as pl


def takeup_factors(contacts: pl.DataFrame, prior_strength: float) -> dict[str, float]:
    """Per offer × channel (key "offer__channel") and per offer (key "offer"): observed take-ups
    over predicted ones, shrunk toward 1 by `prior_strength` predicted take-ups.

    `contacts` holds one row per treated contact that was carried out: `offer`, `channel`,
    `accept_probability` (what the list predicted) and `accepted` (the response). Take-up is seen
    on every contact, not only on churners, so it calibrates much faster than saves do; the
    per-offer factor pools channels for a channel no campaign has used yet.
    """
    if prior_strength < 0:
        raise ValueError("the prior strength must not be negative")
    if contacts.is_empty():
        return {}
    out: dict[str, float] = {}
    for keys in (["offer", "channel"], ["offer"]):
        grouped = contacts.group_by(keys).agg(
            pl.col("accepted").cast(pl.Float64).sum().alias("observed"),
            pl.col("accept_probability").sum().alias("predicted"),
        )
        for row in grouped.iter_rows(named=True):
            denominator = row["predicted"] + prior_strength
            if denominator <= 0:
                continue
            key = "__".join(row[k] for k in keys)
            out[key] = round((row["observed"] + prior_strength) / denominator, 4)
    return out


def factor_for(factors: dict[str, float] | None, offer: str, channel: str) -> float:
    """The take-up factor of an offer through a channel: its own, else the offer's pooled one."""
    if not factors:
        return 1.0
    return factors.get(f"{offer}__{channel}", factors.get(offer, 1.0))
