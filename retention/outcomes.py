"""Campaign outcomes: treated vs control churn per window and group, with test, interval and ROI."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import polars as pl

from retention.evaluation import compare, roi, roi_interval

BREAKDOWNS = (("all", None), ("offer", "offer"), ("tier", "value_tier"))


# A treated customer costs the contact, plus the offer when accepted; a control costs nothing.
PAID = (
    pl.when(~pl.col("control_flag"))
    .then(
        pl.col("contact_cost")
        + pl.when(pl.col("response") == "accepted").then(pl.col("offer_cost")).otherwise(0.0)
    )
    .otherwise(0.0)
)


def with_outcomes(frame: pl.DataFrame, as_of: date, window: int) -> pl.DataFrame:
    """`churned` within `window` days of the list date and the `cost` actually paid."""
    return frame.with_columns(
        (
            pl.col("disconnect_date").is_not_null()
            & (pl.col("disconnect_date") <= as_of + timedelta(days=window))
        ).alias("churned"),
        PAID.alias("cost"),
    )


def realised_spend(frame: pl.DataFrame) -> float:
    """What the treated customers actually cost: contacts plus the offers accepted."""
    return round(float(frame.select(PAID.sum()).item()), 2)


def campaign_outcomes(
    frame: pl.DataFrame,
    list_id: str,
    as_of: date,
    data_end: date | None,
    windows: Sequence[int] = (30, 100),
    alpha: float = 0.05,
    min_control: int = 0,
) -> list[dict]:
    """One row per window × group (overall, per offer, per value tier) with both arms present.

    `frame` holds a list's customers: control_flag, offer, value_tier, value, contact_cost,
    offer_cost, disconnect_date (null while active) and response (the campaign system's record).
    A window has matured once the data reach `as_of` + window days.
    """
    rows = []
    for window in windows:
        matured = data_end is not None and data_end >= as_of + timedelta(days=window)
        f = with_outcomes(frame, as_of, window)
        for breakdown, key in BREAKDOWNS:
            groups = [("all", f)] if key is None else [(str(k[0]), g) for k, g in f.group_by(key)]
            for name, g in sorted(groups, key=lambda item: item[0]):
                t, c = g.filter(~pl.col("control_flag")), g.filter(pl.col("control_flag"))
                if t.is_empty() or c.is_empty():
                    continue
                stats = compare(
                    t.height,
                    int(t["churned"].sum()),
                    c.height,
                    int(c["churned"].sum()),
                    alpha=alpha,
                    min_control=min_control,
                )
                cost, value = float(t["cost"].sum()), float(t["value"].mean())
                low, high = roi_interval(stats["ci_low"], stats["ci_high"], t.height, value, cost)
                rows.append(
                    {
                        "list_id": list_id,
                        "window_days": window,
                        "breakdown": breakdown,
                        "grp": name,
                        "matured": matured,
                        **stats,
                        "cost": cost,
                        "roi": roi(stats["incremental_saves"], value, cost),
                        "roi_low": low,
                        "roi_high": high,
                    }
                )
    return rows
