"""Relative companions: a customer's usage trend against their segment's trend over the same window.

A shift that moves the whole base (a competitor launch, a tariff change, an outage, a holiday)
moves every customer's own trend; the ratio to the segment's trend stays put, so a model can
learn "uses less than peers" rather than "uses less than last quarter". Computed from the rows
of one snapshot (customers active at as-of, data up to as-of), so it stays point in time.
"""

from __future__ import annotations

import polars as pl

from features.dictionary import FeatureSpec

# (companion, recent 30-day column, prior 60-day column, what it measures)
COMPANIONS = (
    ("voice_trend_vs_segment", "voice_min_30d", "voice_min_prev60", "voice"),
    ("data_trend_vs_segment", "data_mb_30d", "data_mb_prev60", "data"),
)


def relative_specs() -> tuple[FeatureSpec, ...]:
    return tuple(
        FeatureSpec(
            name,
            f"{what} use last 30 days vs the 60 before, relative to the same change across the "
            "customer's segment (1 + own change) / (1 + segment change) - 1",
            "DOUBLE",
            ("usage_daily", "customers"),
            90,
            "usage_down",
            f"{what} usage {{value:+.0%}} against the segment's trend",
        )
        for name, _, _, what in COMPANIONS
    )


def add_relative_features(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with each companion appended (a whole snapshot: segments must be complete)."""
    out = []
    for name, recent, prior, _ in COMPANIONS:
        own = (pl.col(recent) / 30.0) / pl.col(prior).truediv(60.0)
        peers = (pl.col(recent).sum() / 30.0) / (pl.col(prior).sum() / 60.0)
        peers = peers.over("as_of", "segment")
        valid = (pl.col(prior) > 0) & (peers > 0)
        out.append(pl.when(valid).then(own / peers - 1.0).otherwise(None).alias(name))
    return frame.with_columns(out)
