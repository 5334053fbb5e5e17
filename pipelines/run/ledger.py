"""The cycle ledger: which stages of a cycle finished for an as-of date and config, with details."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

from configs.schema import Settings
from pipelines.store.config import config_hash
from pipelines.store.warehouse import LEDGER_DDL, connection
from pipelines.store.workdir import Workdir


def as_record(obj: Any) -> Any:
    """A JSON-friendly view of a stage report (dataclasses, dates, paths)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: as_record(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): as_record(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [as_record(v) for v in obj]
    if isinstance(obj, date | datetime | Path):
        return str(obj)
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    return str(obj)


def mark_stage(settings: Settings, as_of: date, stage: str, detail: Any) -> None:
    with connection(settings) as con:
        con.execute(LEDGER_DDL)
        con.execute("BEGIN")
        con.execute(
            "DELETE FROM meta.cycle_ledger WHERE as_of = ? AND config_hash = ? AND stage = ?",
            [as_of, config_hash(settings), stage],
        )
        con.execute(
            "INSERT INTO meta.cycle_ledger VALUES (?, ?, ?, now()::TIMESTAMP, ?)",
            [as_of, config_hash(settings), stage, json.dumps(as_record(detail), default=str)],
        )
        con.execute("COMMIT")


def ledger(settings: Settings, as_of: date) -> dict[str, dict[str, Any]]:
    """Completed stages for an as-of date under the current config, with their details."""
    wd = Workdir.from_settings(settings)
    if not wd.db_path.exists():
        return {}
    with connection(wd) as con:
        con.execute(LEDGER_DDL)
        rows = con.execute(
            "SELECT stage, detail FROM meta.cycle_ledger WHERE as_of = ? AND config_hash = ?",
            [as_of, config_hash(settings)],
        ).fetchall()
    return {stage: json.loads(detail) for stage, detail in rows}
