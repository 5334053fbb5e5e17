"""Writes the operator's nightly exports as landing files, injecting realistic defects on request."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl

from configs.contracts import TABLES
from simulator.month import DailyUsage, MonthTables

log = logging.getLogger(__name__)

_POLARS_TYPES = {
    "VARCHAR": pl.Utf8,
    "INTEGER": pl.Int32,
    "BIGINT": pl.Int64,
    "DOUBLE": pl.Float64,
    "DATE": pl.Date,
    "TIMESTAMP": pl.Datetime("us"),
    "BOOLEAN": pl.Boolean,
}
DEFECT_KINDS = (
    "duplicate_rows",
    "bad_code",
    "missing_value",
    "out_of_range",
    "renamed_column",
    "extra_column",
    "late_file",
)


def conform(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    """Select and cast exactly the contract's columns, in order."""
    cols = TABLES[table].columns
    return frame.select([pl.col(c.name).cast(_POLARS_TYPES[c.dtype]) for c in cols])


class LandingWriter:
    """One writer per simulate/advance call; keeps the defect log and withheld late files."""

    def __init__(
        self, out: Path, file_format: str, defect_rate: float, rng: np.random.Generator
    ) -> None:
        self.landing = out / "landing"
        self.truth = out / "truth"
        self.file_format = file_format
        self.defect_rate = defect_rate
        self.rng = rng
        self.defects: list[dict] = []
        self.rows: dict[str, int] = {}
        self.files = 0

    # --- paths and raw writes --------------------------------------------------------------

    def path(self, table: str, stamp: str) -> Path:
        return self.landing / table / f"{table}_{stamp}.{self.file_format}"

    def _write(self, path: Path, frame: pl.DataFrame) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        if self.file_format == "csv":
            frame.write_csv(tmp)
        else:
            frame.write_parquet(tmp, statistics=False)
        tmp.replace(path)
        self.files += 1

    def write(self, table: str, stamp: str, frame: pl.DataFrame) -> None:
        frame = conform(table, frame)
        if frame.height == 0:
            return  # nothing happened that day: no export
        self.rows[table] = self.rows.get(table, 0) + frame.height
        path = self.path(table, stamp)
        frame = self._maybe_defect(table, path, frame)
        if frame is not None:
            self._write(path, frame)

    def write_usage(self, u: DailyUsage) -> None:
        """One usage file per day holding every customer alive that day."""
        month_start, ids, alive = u.month_start, u.ids, u.alive
        voice, sms, data, roaming, offnet, dropped = (
            u.voice,
            u.sms,
            u.data,
            u.roaming,
            u.offnet,
            u.dropped,
        )
        for j in range(alive.shape[1]):
            idx = np.flatnonzero(alive[:, j])
            day = month_start + timedelta(days=j)
            frame = pl.DataFrame(
                {
                    "customer_id": ids[idx],
                    "usage_date": pl.Series([day] * idx.size, dtype=pl.Date),
                    "voice_min": np.round(voice[idx, j], 2).astype(np.float64),
                    "sms_count": sms[idx, j],
                    "data_mb": np.round(data[idx, j], 1).astype(np.float64),
                    "roaming_mb": np.round(roaming[idx, j], 1).astype(np.float64),
                    "offnet_share": np.round(offnet[idx, j], 3).astype(np.float64),
                    "dropped_call_rate": np.round(dropped[idx, j], 4).astype(np.float64),
                }
            )
            self.write("usage_daily", day.isoformat(), frame)

    # --- defects ----------------------------------------------------------------------------

    def _log(self, table: str, path: Path, kind: str, rows: list[int] | None = None) -> None:
        for r in rows or [-1]:
            self.defects.append(
                {
                    "table": table,
                    "file": str(path.relative_to(self.landing)),
                    "row": int(r),
                    "kind": kind,
                }
            )

    def _maybe_defect(self, table: str, path: Path, frame: pl.DataFrame) -> pl.DataFrame | None:
        if (
            self.defect_rate <= 0
            or table == "plans"
            or frame.height < 5
            or self.rng.random() > self.defect_rate * 4
        ):
            return frame
        kind = self.rng.choice(np.array(DEFECT_KINDS))
        spec = TABLES[table]
        k = max(1, int(frame.height * min(self.defect_rate, 0.05)))
        rows = sorted(
            self.rng.choice(frame.height, size=min(k, frame.height), replace=False).tolist()
        )
        if kind == "duplicate_rows":
            dup = frame[rows]
            self._log(table, path, kind, list(range(frame.height, frame.height + len(rows))))
            return pl.concat([frame, dup])
        if kind == "bad_code":
            coded = [c for c in spec.columns if c.allowed]
            if not coded:
                return frame
            col = coded[0].name
            self._log(table, path, kind, rows)
            mask = pl.Series(np.isin(np.arange(frame.height), rows))
            return frame.with_columns(
                pl.when(mask).then(pl.lit("UNKNOWN?")).otherwise(pl.col(col)).alias(col)
            )
        if kind == "missing_value":
            self._log(table, path, kind, rows)
            mask = pl.Series(np.isin(np.arange(frame.height), rows))
            return frame.with_columns(
                pl.when(mask).then(None).otherwise(pl.col("customer_id")).alias("customer_id")
            )
        if kind == "out_of_range":
            ranged = [c for c in spec.columns if c.min_value is not None and c.dtype == "DOUBLE"]
            if not ranged:
                return frame
            col = ranged[0].name
            self._log(table, path, kind, rows)
            mask = pl.Series(np.isin(np.arange(frame.height), rows))
            return frame.with_columns(
                pl.when(mask).then(pl.lit(-1.0)).otherwise(pl.col(col)).alias(col)
            )
        if kind == "renamed_column":
            col = spec.columns[1].name
            self._log(table, path, kind)
            return frame.rename({col: col + "_v2"})
        if kind == "extra_column":
            self._log(table, path, kind)
            return frame.with_columns(pl.lit("x").alias("export_batch"))
        if kind == "late_file" and table == "usage_daily":
            late_dir = self.truth / "state" / "late"
            late_dir.mkdir(parents=True, exist_ok=True)
            frame.write_parquet(late_dir / f"{path.name}.parquet")
            (late_dir / f"{path.name}.target").write_text(str(path))
            self._log(table, path, kind)
            return None
        return frame

    def deliver_late_files(self) -> int:
        """Files withheld earlier arrive now (after later days were already delivered)."""
        late_dir = self.truth / "state" / "late"
        if not late_dir.exists():
            return 0
        n = 0
        for target_file in sorted(late_dir.glob("*.target")):
            data_file = target_file.with_suffix(".parquet")
            target = Path(target_file.read_text())
            self._write(target, pl.read_parquet(data_file))
            data_file.unlink()
            target_file.unlink()
            n += 1
        return n

    def flush_defect_log(self) -> None:
        if not self.defects:
            return
        path = self.truth / "defects.parquet"
        # The first month of a new world can flush before anything else created truth/.
        path.parent.mkdir(parents=True, exist_ok=True)
        new = pl.DataFrame(self.defects)
        if path.exists():
            new = pl.concat([pl.read_parquet(path), new])
        new.write_parquet(path)
        self.defects = []


def write_month(writer: LandingWriter, tables: MonthTables) -> None:
    """Persist one simulated month's landing tables, usage first, in the month's export order."""
    writer.write_usage(tables.usage)
    for name, frame in tables.tables:
        writer.write(name, tables.tag, frame)
