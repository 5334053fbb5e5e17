"""What leaves the warehouse: marketing's contact rows and the analysts' control-group rows."""

from __future__ import annotations

import polars as pl

# Control customers are never contacted: their file carries no offer, channel or cost, nothing a
# campaign system could act on.
CONTROL_DROP = (
    "control_flag",
    "offer",
    "channel",
    "accept_probability",
    "save_probability",
    "expected_value",
    "offer_cost",
    "contact_cost",
    "contact_by",
)


def contact_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """Customers to contact only, without the control flag (every row is to be contacted)."""
    return rows.filter(~pl.col("control_flag")).drop("control_flag")


def control_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """The control group for analysts: who was held out, with no offer, channel or cost."""
    return rows.filter(pl.col("control_flag")).drop([c for c in CONTROL_DROP if c in rows.columns])
