"""Which snapshot columns are labels and which are model inputs."""

from __future__ import annotations


def label_columns(columns: list[str]) -> list[str]:
    return [c for c in columns if c.startswith(("churn_", "default_")) and c.endswith("d")]


def feature_columns(columns: list[str]) -> list[str]:
    """Model inputs: everything but the key, the as-of date and the labels."""
    skip = {"customer_id", "as_of", *label_columns(columns)}
    return [c for c in columns if c not in skip]
