"""Which snapshots may train or validate a model: complete feature windows and matured labels.

A snapshot whose feature windows reach before the first day of loaded data sees empty or
partial windows (a 180-day usage sum over 30 days of data), so a model trained or validated on
it learns the data's start, not the customers. Such snapshots are incomplete.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from configs.schema import FeaturesConfig
from features.split import month_end, out_of_time_split


class ShortHistory(ValueError):
    """Too little complete, matured history to train and validate out of time."""


def lookback_days(cfg: FeaturesConfig) -> int:
    """How far back from as-of the longest usage window reaches."""
    return max(cfg.windows_days)


def is_complete(as_of: date, data_start: date | None, lookback: int) -> bool:
    """True when the window (as_of - lookback, as_of] lies inside the loaded data.

    Without loaded usage (snapshots written by other means) there is no start to judge by.
    """
    return data_start is None or as_of - timedelta(days=lookback - 1) >= data_start


def first_complete(data_start: date, lookback: int) -> date:
    """The first month end whose feature windows lie inside the data."""
    return month_end(data_start + timedelta(days=lookback - 1))


@dataclass(frozen=True)
class TrainingPlan:
    train: list[date]
    validation: date


def plan_training(
    matured: list[date],
    data_start: date | None,
    data_end: date | None,
    lookback: int,
    horizon_days: int,
    min_train: int,
) -> TrainingPlan:
    """Train on complete snapshots whose labels ended before the latest complete matured one.

    `matured` are the snapshot dates whose `horizon_days` labels are known. Raises ShortHistory
    saying how much data is needed when fewer than `min_train` training dates remain.
    """
    usable = sorted(d for d in matured if is_complete(d, data_start, lookback))
    have = 0
    if usable:
        try:
            train, valid = out_of_time_split(usable, usable[-1], horizon_days)
        except ValueError:
            train, valid = [], usable[-1]
        have = len(train)
        if have >= min_train:
            return TrainingPlan(train, valid)
    plural = "s" if min_train != 1 else ""
    head = (
        f"need {min_train} complete snapshot{plural} with matured {horizon_days}-day labels "
        f"outside the validation month, plus a complete one to validate on; have {have}"
    )
    if data_start is None:
        raise ShortHistory(f"{head} (build more snapshot history)")
    needed = needed_data_end(data_start, lookback, horizon_days, min_train)
    raise ShortHistory(
        f"{head} (data starts {data_start}, ends {data_end}; a snapshot is complete once "
        f"{lookback} days of data precede its as-of); that needs data through {needed}"
    )


def needed_data_end(data_start: date, lookback: int, horizon_days: int, min_train: int) -> date:
    """The first data end at which plan_training succeeds with monthly snapshots."""
    t = first_complete(data_start, lookback)
    for _ in range(min_train - 1):
        t = month_end(t + timedelta(days=1))
    valid = month_end(t + timedelta(days=horizon_days))
    return valid + timedelta(days=horizon_days)
