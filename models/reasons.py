"""Reason codes: the features that push a customer's risk up most, as short readable phrases."""

from __future__ import annotations

import math

import numpy as np

from features.dictionary import FeatureSpec


def top_contributors(contrib: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest positive contributions per row (bias column dropped)."""
    c = contrib[:, :-1]
    k = min(k, c.shape[1])
    idx = np.argpartition(-c, kth=k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(c, idx, axis=1)
    order = np.argsort(-vals, axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(vals, order, axis=1)


def phrase(name: str, value, spec: FeatureSpec | None) -> str:
    """One reason in words, from the feature's template when it has one."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if spec is not None and spec.reason_template and not missing:
        try:
            return spec.reason_template.format(value=float(value))
        except (ValueError, TypeError):
            pass
    label = spec.description if spec is not None else name.replace("_", " ")
    if missing:
        return f"{label}: none recorded"
    if isinstance(value, float):
        return f"{label}: {value:,.2f}".rstrip("0").rstrip(".")
    return f"{label}: {value}"


def reason_codes(
    contrib: np.ndarray,
    values: dict[str, np.ndarray],
    columns: list[str],
    specs: dict[str, FeatureSpec],
    k: int = 3,
) -> tuple[list[list[str]], list[list[str | None]]]:
    """Per row: k phrases and their reason groups, strongest first; only risk-raising features."""
    idx, vals = top_contributors(contrib, k)
    phrases: list[list[str]] = []
    groups: list[list[str | None]] = []
    cols = np.array(columns, dtype=object)
    names = cols[idx]
    for r in range(idx.shape[0]):
        row_p, row_g = [], []
        for j in range(idx.shape[1]):
            if vals[r, j] <= 0:
                break
            name = names[r, j]
            spec = specs.get(name)
            row_p.append(phrase(name, values[name][r], spec))
            row_g.append(spec.reason_group if spec else None)
        phrases.append(row_p)
        groups.append(row_g)
    return phrases, groups
