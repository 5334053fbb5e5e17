"""The uplift hold-out by customer: a held-out customer has no row in training, at any list date."""

from __future__ import annotations

import polars as pl

HELD_OUT = "held_out"


def mark_held_out(frame: pl.DataFrame, share: float, seed: int) -> pl.DataFrame:
    """`held_out` for every row of a customer whose id hashes into the held-out share.

    By customer, not by row: outcome windows of successive list dates overlap (a 60-day window
    from monthly lists), so one churn event labels a customer's rows at two dates; if one of them
    trained the model, the other's held-out outcome would already be known to it. The hash keeps
    a customer on the same side across runs and lists.
    """
    held = (frame["customer_id"].hash(seed=seed) % 10_000) < int(share * 10_000)
    return frame.with_columns(held.alias(HELD_OUT))


def split_held_out(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Training rows (customers not held out) and the held-out customers' campaign rows.

    The Qini is measured on list rows only (treated and control group), as campaigns are; a
    held-out customer's rows off any list are used by neither side.
    """
    train = frame.filter(~pl.col(HELD_OUT))
    hold = frame.filter(pl.col(HELD_OUT) & pl.col("listed"))
    return train, hold
