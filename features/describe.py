"""The feature dictionary for people: one row per snapshot column, as a table or CSV."""

from __future__ import annotations

import csv
import io

from configs.schema import Settings
from features.snapshot import META_COLUMNS, feature_specs


def dictionary_rows(settings: Settings) -> list[dict[str, str]]:
    rows = [
        {
            "name": name,
            "description": "identity / segmentation column",
            "window_days": "",
            "dtype": "",
            "sources": "customers",
            "reason_group": "",
        }
        for name in META_COLUMNS
    ]
    for s in feature_specs(settings.features):
        rows.append(
            {
                "name": s.name,
                "description": s.description,
                "window_days": "" if s.window_days is None else str(s.window_days),
                "dtype": s.dtype,
                "sources": ", ".join(s.sources),
                "reason_group": s.reason_group or "",
            }
        )
    return rows


def dictionary_csv(settings: Settings) -> str:
    buf = io.StringIO()
    rows = dictionary_rows(settings)
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()
