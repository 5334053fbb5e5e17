"""Out-of-time splits: train on as-of dates whose labels ended before validation starts."""

from __future__ import annotations

import calendar
from datetime import date, timedelta


def month_end(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def monthly_as_of_dates(as_of: date, history: int) -> list[date]:
    """as_of and the month ends before it, `history` dates in all, oldest first."""
    out = [as_of]
    cur = as_of
    for _ in range(history - 1):
        cur = month_end(cur.replace(day=1) - timedelta(days=1))
        out.append(cur)
    return sorted(out)


def latest_matured(as_of_dates: list[date], data_end: date, horizon_days: int) -> date | None:
    """The latest as-of date whose label window (as_of, as_of + H] lies inside the data."""
    ok = [d for d in as_of_dates if d + timedelta(days=horizon_days) <= data_end]
    return max(ok) if ok else None


def out_of_time_split(
    as_of_dates: list[date], validation_as_of: date, horizon_days: int
) -> tuple[list[date], date]:
    """Training dates are those whose label windows end on or before the validation as-of.

    So no training label can see an outcome that happens inside the validation window.
    """
    if validation_as_of not in as_of_dates:
        raise ValueError(f"validation as-of {validation_as_of} is not among the snapshot dates")
    cutoff = validation_as_of - timedelta(days=horizon_days)
    train = sorted(d for d in as_of_dates if d <= cutoff)
    if not train:
        raise ValueError(
            f"no snapshot on or before {cutoff} to train on: validating on {validation_as_of} "
            f"with a {horizon_days}-day horizon needs older snapshots (build more history)"
        )
    return train, validation_as_of


def customer_holdout(customer_ids, share: float, seed: int):
    """True on the rows of a stable `share` of customers, all of each one's rows together.

    Inner splits (early stopping, tuning, calibration) of customer × month rows hold out whole
    customers: a customer whose other months are in training would make the held-out part
    look easier than new customers are.
    """
    import numpy as np
    import polars as pl

    ids = pl.Series(customer_ids).cast(pl.Utf8)
    buckets = (ids.hash(seed=seed) % 1_000_000).to_numpy()
    return np.asarray(buckets < int(share * 1_000_000))


def credit_population(serious_days: int) -> str:
    """SQL condition on snapshot rows: customers the credit model is for.

    A customer already `serious_days` or more past due at as-of has, in effect, defaulted: the
    label would restate the present (`days_past_due_last`), so they are graded by rule instead.
    """
    return f"coalesce(days_past_due_last, 0) < {int(serious_days)}"
