"""Snapshot mode: robust type inference and target mapping for a customer-level table."""

from __future__ import annotations

import polars as pl

NULL_TOKENS = ["", "na", "n/a", "nan", "null", "none", "?", "-", "missing"]
TRUE_TOKENS = {"yes", "true", "y", "t"}
FALSE_TOKENS = {"no", "false", "n", "f"}


def clean_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Strip whitespace and turn the usual missing-value spellings into nulls."""
    return frame.with_columns(
        pl.when(pl.col(c).str.strip_chars().str.to_lowercase().is_in(NULL_TOKENS))
        .then(None)
        .otherwise(pl.col(c).str.strip_chars())
        .alias(c)
        for c in frame.columns
    )


def infer_types(frame: pl.DataFrame, min_numeric_share: float = 0.95) -> pl.DataFrame:
    """Text columns become numbers (incl. 5e+05), 0/1 for yes/no and true/false, or categories."""
    out = []
    for c in frame.columns:
        col = frame[c]
        present = col.drop_nulls()
        if present.len() == 0:
            out.append(pl.lit(None, dtype=pl.Float64).alias(c))
            continue
        lower = present.str.to_lowercase()
        if lower.is_in(list(TRUE_TOKENS | FALSE_TOKENS)).all():
            out.append(
                pl.when(pl.col(c).is_null())
                .then(None)
                .otherwise(pl.col(c).str.to_lowercase().is_in(list(TRUE_TOKENS)))
                .cast(pl.Float64)
                .alias(c)
            )
            continue
        as_num = present.str.replace_all(",", "").cast(pl.Float64, strict=False)
        if as_num.null_count() <= (1 - min_numeric_share) * present.len():
            out.append(pl.col(c).str.replace_all(",", "").cast(pl.Float64, strict=False).alias(c))
        else:
            out.append(pl.col(c).cast(pl.Utf8).alias(c))
    return frame.select(out)


def target_vector(frame: pl.DataFrame, target: str, positive: str) -> pl.Series:
    """1 where the target equals the positive value (compared as trimmed, case-insensitive text)."""
    if target not in frame.columns:
        raise ValueError(
            f"target column {target!r} not found; columns are: {', '.join(frame.columns[:30])}"
        )
    col = frame[target].cast(pl.Utf8).str.strip_chars().str.to_lowercase()
    if col.null_count():
        raise ValueError(f"target column {target!r} has {col.null_count()} missing value(s)")
    y = (col == str(positive).strip().lower()).cast(pl.Int8)
    if y.n_unique() < 2:
        seen = ", ".join(sorted(set(col.unique().to_list()))[:5])
        raise ValueError(
            f"target {target!r} has a single class for positive value {positive!r} (values seen: {seen})"
        )
    return y
