"""The feature dictionary: every snapshot feature with its meaning, window, type and sources."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureSpec:
    """One model feature, described for people (dictionary, reason codes) and for code."""

    name: str
    description: str
    dtype: str  # DOUBLE, INTEGER, VARCHAR (categorical)
    sources: tuple[str, ...]
    window_days: int | None = None
    # Which retention reason this feature speaks to (see ARCHITECTURE.md "Reason groups").
    reason_group: str | None = None
    # Phrase for a reason code, formatted with the feature's value as {value}
    # (e.g. "data usage down {pct_down:.0f}% vs previous 60 days"); None: generic phrase.
    reason_template: str | None = None


# Filled by the snapshot definitions (features/snapshot.py).
FEATURES: tuple[FeatureSpec, ...] = ()
