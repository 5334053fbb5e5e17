"""High-cardinality categories as numbers: out-of-fold target means or level counts."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

METHODS = ("native", "target", "count")


def high_cardinality(frame: pl.DataFrame, columns: list[str], min_levels: int) -> list[str]:
    """Text columns with at least `min_levels` distinct values (found by type and count alone)."""
    return [
        c
        for c in columns
        if frame.schema[c] in (pl.Utf8, pl.Categorical)
        and frame[c].drop_nulls().n_unique() >= min_levels
    ]


@dataclass
class CategoryEncoder:
    """Replaces each listed text column by a number learned from the training rows.

    "target": the level's smoothed positive rate; "count": how often the level occurs;
    "native": no change (LightGBM splits on the categories itself).
    """

    method: str
    columns: list[str]
    prior: float = 0.0
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)

    def transform(self, frame: pl.DataFrame) -> pl.DataFrame:
        if self.method == "native" or not self.columns:
            return frame
        out = frame
        for c in self.columns:
            table = self.tables[c]
            # An unseen or missing level is worth the prior (target) or is never seen (count 0).
            default = self.prior if self.method == "target" else 0.0
            out = out.with_columns(
                pl.col(c)
                .cast(pl.Utf8)
                .replace_strict(
                    table["level"], table["value"], default=default, return_dtype=pl.Float64
                )
                .alias(c)
            )
        return out


def _table(levels: pl.Series, y: np.ndarray, method: str, prior: float, smooth: float):
    frame = pl.DataFrame({"level": levels.cast(pl.Utf8), "y": y}).drop_nulls("level")
    stats = frame.group_by("level").agg(pl.len().alias("n"), pl.col("y").sum().alias("pos"))
    if method == "count":
        return stats.select("level", pl.col("n").cast(pl.Float64).alias("value"))
    value = (pl.col("pos") + smooth * prior) / (pl.col("n") + smooth)
    return stats.select("level", value.alias("value"))


def fit_encoder(
    frame: pl.DataFrame,
    y: np.ndarray,
    columns: list[str],
    method: str,
    folds: int = 5,
    smooth: float = 20.0,
    seed: int = 0,
) -> tuple[CategoryEncoder, pl.DataFrame]:
    """The encoder fitted on all rows, and `frame` encoded for training.

    Target means of a training row come from the other folds only (out of fold), so a rare
    level cannot hand the model its own label.
    """
    if method not in METHODS:
        raise ValueError(f"unknown encoding {method!r}: one of {', '.join(METHODS)}")
    prior = float(np.mean(y))
    tables = {c: _table(frame[c], y, method, prior, smooth) for c in columns}
    encoder = CategoryEncoder(method, list(columns), prior, tables)
    if method != "target" or not columns:
        return encoder, encoder.transform(frame)
    from sklearn.model_selection import KFold

    encoded = {c: np.empty(frame.height) for c in columns}
    # Folds by row position only, so no row's own label decides which means it gets.
    for tr, va in KFold(n_splits=folds, shuffle=True, random_state=seed).split(frame):
        part_prior = float(np.mean(y[tr]))
        part = CategoryEncoder(
            "target",
            list(columns),
            part_prior,
            {c: _table(frame[c][tr], y[tr], "target", part_prior, smooth) for c in columns},
        )
        done = part.transform(frame[va].select(columns))
        for c in columns:
            encoded[c][va] = done[c].to_numpy()
    return encoder, frame.with_columns(pl.Series(c, encoded[c]) for c in columns)
