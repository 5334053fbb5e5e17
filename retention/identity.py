"""A retention list's identity: the same inputs always give the same list id and seed."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import polars as pl


def list_identity(
    as_of: date,
    config_hash: str,
    candidates: pl.DataFrame,
    budget: float,
    uplift_version: str | None = None,
    realised: dict[str, float] | None = None,
) -> tuple[str, int]:
    """Same as-of, config, models and budget → same list id and seed (reproducible, no duplicates)."""
    versions = sorted(
        set(candidates["churn_model_version"].cast(pl.Utf8))
        | set(candidates["credit_model_version"].cast(pl.Utf8))
    )
    if uplift_version is not None:
        versions.append(f"uplift{uplift_version}")
    if realised:
        versions.append(json.dumps(realised, sort_keys=True))
    key = f"{as_of}|{config_hash}|{','.join(versions)}|{budget}"
    digest = hashlib.sha256(key.encode()).hexdigest()
    return f"L{as_of.strftime('%Y%m%d')}-{digest[:8]}", int(digest[8:16], 16)


def takeup_identity(report: dict | None) -> dict[str, float]:
    """What of the take-up model makes a list what it is: whether it ranked, and its fit."""
    if not report or not report.get("used"):
        return {}
    return {"takeup_model:logloss": report["logloss"], "takeup_model:rounds": report["rounds"]}
