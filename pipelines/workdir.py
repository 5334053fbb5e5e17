"""The work directory: where every output lives, atomic file writes and the DuckDB connection."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from configs.schema import Settings
from pipelines.errors import InputError, WorkdirError


@dataclass(frozen=True)
class Workdir:
    """Paths of all state under one home folder (default .churn/)."""

    home: Path
    memory_limit_mb: int | None = field(default=None, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Workdir:
        return cls(Path(settings.home).expanduser().resolve(), settings.warehouse.memory_limit_mb)

    @property
    def db_path(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def truth(self) -> Path:
        return self.home / "truth"

    @property
    def features(self) -> Path:
        return self.home / "features"

    @property
    def lists(self) -> Path:
        return self.home / "lists"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def mlflow(self) -> Path:
        return self.home / "mlflow"

    @property
    def prefect_home(self) -> Path:
        return self.home / "prefect"

    @property
    def lock_path(self) -> Path:
        return self.home / "cycle.lock"

    @property
    def audit_log(self) -> Path:
        return self.home / "audit.log"

    def ensure(self) -> Workdir:
        """Create the home folder tree; a clear error if it cannot be written."""
        try:
            for path in (self.home, self.landing, self.features, self.lists, self.reports):
                path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkdirError(f"cannot create work directory {self.home}: {exc.strerror}") from exc
        if not os.access(self.home, os.W_OK):
            raise WorkdirError(f"work directory {self.home} is not writable")
        return self

    @property
    def mlflow_db(self) -> Path:
        return self.mlflow / "mlflow.db"

    def no_mlflow_store(self, settings: Settings) -> bool:
        """No local MLflow store yet (a configured tracking server is never missing): opening
        a client now would create one."""
        return not settings.tracking.tracking_uri and not self.mlflow_db.is_file()

    def tracking_uri(self, settings: Settings) -> str:
        if settings.tracking.tracking_uri:
            return settings.tracking.tracking_uri
        self.mlflow.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.mlflow_db}"

    def artifact_location(self) -> str:
        return (self.mlflow / "artifacts").as_uri()


def connect(workdir: Workdir, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; read-only connections never block the pipeline's writer for long."""
    if read_only and not workdir.db_path.exists():
        raise WorkdirError(f"no warehouse at {workdir.db_path}: run `churn demo` or `churn ingest`")
    try:
        con = duckdb.connect(str(workdir.db_path), read_only=read_only)
    except duckdb.IOException as exc:
        raise WorkdirError(f"cannot open warehouse {workdir.db_path}: {exc}") from exc
    if workdir.memory_limit_mb:
        con.execute(f"SET memory_limit = '{int(workdir.memory_limit_mb)}MB'")
    return con


@contextlib.contextmanager
def atomic_path(target: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temp path beside `target`; rename over it only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(target: Path, text: str, mode: int | None = None) -> None:
    with atomic_path(target, mode) as tmp:
        tmp.write_text(text, encoding="utf-8")


def audit(workdir: Workdir, line: str) -> None:
    """Append a line to the owner-only audit log (reveals, forced promotions)."""
    from datetime import datetime

    workdir.home.mkdir(parents=True, exist_ok=True)
    fd = os.open(workdir.audit_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(f"{datetime.now().isoformat(timespec='seconds')} {line}\n")


def default_as_of(settings: Settings) -> date:
    """The latest month end covered by loaded usage data: the natural as-of for a monthly cycle."""
    # Here, not in pipelines.flows: `churn score` and `churn target` need it without Prefect.
    wd = Workdir.from_settings(settings)
    if not wd.db_path.exists():
        raise InputError("no data loaded yet: run `churn simulate` and `churn ingest` first")
    con = connect(wd, read_only=True)
    try:
        row = con.execute(
            "SELECT max(usage_date) FROM raw.usage_daily WHERE usage_date = last_day(usage_date)"
        ).fetchone()
    except duckdb.CatalogException as exc:  # no raw.usage_daily yet
        raise InputError("no usage data loaded yet: run `churn ingest` first") from exc
    finally:
        con.close()
    if not row or row[0] is None:
        raise InputError("loaded usage data does not yet cover a whole month")
    return row[0]
