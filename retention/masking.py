"""Masked customer keys: a salted hash, stable for one salt, useless without it."""

from __future__ import annotations

import hashlib

import polars as pl


def mask_ids(ids: pl.Series, salt: str) -> pl.Series:
    if not salt:
        raise ValueError("a masking salt is required")
    return pl.Series(
        "customer_key",
        ["K" + hashlib.sha256(f"{salt}:{i}".encode()).hexdigest()[:16] for i in ids.to_list()],
        dtype=pl.Utf8,
    )
