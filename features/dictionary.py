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
    # Phrase for a reason code: `reason_template.format(value=x)`, e.g.
    # "data usage {value:+.0%} vs previous 60 days"; None: a generic phrase is used.
    reason_template: str | None = None
