"""The work directory: where every output lives, atomic file writes and the DuckDB connection."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from configs.schema import Settings
from pipelines.store.errors import WorkdirError


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


@contextlib.contextmanager
def atomic_folder(target: Path, mode: int = 0o700) -> Iterator[Path]:
    """Yield a fresh staging folder beside `target`; swap it in only if the block succeeds.

    A reader sees the old folder or the whole new one, never some files of each. Leftovers of
    a run killed mid-write (a staging or set-aside folder) are removed on the next attempt.
    """
    staging = target.with_name(f".{target.name}.staging")
    aside = target.with_name(f".{target.name}.old")
    for leftover in (staging, aside):
        shutil.rmtree(leftover, ignore_errors=True)
    staging.mkdir(parents=True, mode=mode)
    os.chmod(staging, mode)  # mkdir's mode is masked by the umask
    try:
        yield staging
        if target.exists():
            os.replace(target, aside)
        os.replace(staging, target)
        shutil.rmtree(aside, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if aside.exists() and not target.exists():
            os.replace(aside, target)
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


def prepare_prefect_env(settings: Settings) -> None:
    """Point Prefect at the work directory before it is imported (local ephemeral mode)."""
    wd = Workdir.from_settings(settings)
    # Prefect creates its home at import without parents and warns when it cannot.
    wd.prefect_home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(wd.prefect_home))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


OWNER_ONLY = 0o600


def mask_salt(settings: Settings) -> str:
    """The configured salt, or one created once per work directory (owner-only file)."""
    if settings.security.mask_salt:
        return settings.security.mask_salt
    wd = Workdir.from_settings(settings).ensure()
    path = wd.home / ".mask_salt"
    if not path.exists():
        atomic_write_text(path, secrets.token_hex(16), mode=OWNER_ONLY)
    return path.read_text().strip()
