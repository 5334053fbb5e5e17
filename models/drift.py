"""Drift arithmetic: per-feature drift from an Evidently report, reference dates, exclusions."""

from __future__ import annotations

import fnmatch
from datetime import date


def feature_drift(result: dict) -> tuple[float, list[dict]]:
    """Share of drifted features and one row per feature from an Evidently report's dict."""
    share, rows = 0.0, []
    for m in result["metrics"]:
        cfg = m.get("config", {})
        kind = cfg.get("type", "")
        if kind.endswith("DriftedColumnsCount"):
            share = float(m["value"]["share"])
        elif kind.endswith("ValueDrift"):
            method, threshold, value = (
                cfg.get("method", ""),
                cfg.get("threshold"),
                float(m["value"]),
            )
            drifted = value < threshold if "p_value" in method else value >= threshold
            rows.append(
                {
                    "feature": cfg["column"],
                    "method": method,
                    "drift_score": value,
                    "drifted": drifted,
                }
            )
    return share, rows


def reference_dates(params: dict[str, str], kind: str) -> list[date]:
    """The champion's reference snapshots from its run parameters."""
    key = "validation_as_of" if kind == "validation" else "train_as_of"
    return [date.fromisoformat(d) for d in params.get(key, "").split(",") if d]


def excluded(feature: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(feature, p) for p in patterns)
