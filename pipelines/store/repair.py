"""Half-migrated SQLite stores (Prefect's home database, the MLflow store): found and repaired.

Prefect and MLflow build and upgrade their SQLite schemas with alembic. SQLite's Python driver
commits each CREATE TABLE by itself, so a process killed inside a migration leaves that
migration's tables behind while `alembic_version` still names the revision before it; every
later start then fails on "table ... already exists". The leftovers are found by reading the
migration scripts that ship with the installed package: the tables that migrations after the
recorded revision create, and alembic's batch-mode scratch tables.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

_REVISION = re.compile(r"^revision\s*(?::\s*str\s*)?=\s*['\"](\w+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision\s*(?::[^=]+)?=\s*(.+)$", re.M)
_CREATES = re.compile(r"create_table\(\s*['\"](\w+)['\"]")
_QUOTED = re.compile(r"['\"](\w+)['\"]")


@dataclass
class MigrationState:
    """Where a store's schema stands against the migrations of the installed package."""

    db: Path
    current: str | None
    head: str
    leftovers: list[str] = field(default_factory=list)

    @property
    def half_migrated(self) -> bool:
        return bool(self.leftovers)


def migration_chain(versions: Path) -> list[tuple[str, set[str]]]:
    """(revision, tables it creates) from the first migration to the head."""
    down: dict[str, list[str]] = {}
    creates: dict[str, set[str]] = {}
    for script in versions.glob("*.py"):
        text = script.read_text(encoding="utf-8")
        rev = _REVISION.search(text)
        if not rev:
            continue
        parent = _DOWN.search(text)
        down[rev.group(1)] = _QUOTED.findall(parent.group(1)) if parent else []
        creates[rev.group(1)] = set(_CREATES.findall(text))
    parents = {p for ps in down.values() for p in ps}
    heads = [r for r in down if r not in parents]
    if len(heads) != 1:
        raise ValueError(f"{versions}: expected one migration head, found {len(heads)}")
    chain, todo, seen = [], [heads[0]], set()
    while todo:  # depth-first from the head; merges contribute both branches
        rev = todo.pop()
        if rev in seen or rev not in down:
            continue
        seen.add(rev)
        chain.append((rev, creates[rev]))
        todo.extend(down[rev])
    return chain[::-1]


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def inspect(db: Path, versions: Path) -> MigrationState:
    """Compare the store's recorded revision and tables with the installed migrations."""
    chain = migration_chain(versions)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = _tables(con)
        current = None
        if "alembic_version" in tables:
            row = con.execute("SELECT version_num FROM alembic_version").fetchone()
            current = row[0] if row else None
    finally:
        con.close()
    revisions = [rev for rev, _ in chain]
    after = revisions.index(current) + 1 if current in revisions else 0
    if current is not None and current not in revisions:
        after = len(chain)  # a newer package wrote it: nothing here is known to be pending
    pending = {t for _, created in chain[after:] for t in created}
    leftovers = sorted((pending & tables) | {t for t in tables if t.startswith("_alembic_tmp_")})
    return MigrationState(db, current, revisions[-1], leftovers)


def heals_itself(
    state: MigrationState, migrate: list[str], env: dict[str, str] | None = None
) -> str | None:
    """Run the package's migrations on a copy of the store as it is: None if they reach the
    head (the next start finishes the killed migration by itself), else their last error line."""
    trial = state.db.with_name(state.db.name + ".doctor-trial")
    shutil.copy2(state.db, trial)
    try:
        ran = _migrate(migrate, trial, env)
    finally:
        trial.unlink(missing_ok=True)
    return None if ran.returncode == 0 else _last_line(ran.stderr)


def _migrate(migrate: list[str], db: Path, env: dict[str, str] | None):
    """Run the package's own migration command (`{db}` in it is the store's path) on `db`."""
    return subprocess.run(
        [part.replace("{db}", str(db)) for part in migrate],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=600,
    )


def repair(state: MigrationState, migrate: list[str], env: dict[str, str] | None = None) -> str:
    """Repair a half-migrated store; the original is first copied to `<db>.before-repair`.

    On a trial copy the leftover tables are dropped and the package's own migrations run
    (`migrate`, a command with `{db}` for the trial's path). If they reach the head, the trial
    replaces the store. If not (a killed migration had also altered a table in place), the store
    is moved aside and the next start builds a new one. Returns what was done.
    """
    backup = state.db.with_name(state.db.name + ".before-repair")
    trial = state.db.with_name(state.db.name + ".repair-trial")
    shutil.copy2(state.db, backup)
    shutil.copy2(state.db, trial)
    con = sqlite3.connect(trial)
    try:
        con.execute("PRAGMA foreign_keys = OFF")
        for table in state.leftovers:
            con.execute(f'DROP TABLE IF EXISTS "{table}"')  # names read from the store itself
        con.commit()
    finally:
        con.close()
    ran = _migrate(migrate, trial, env)
    if ran.returncode == 0:
        os.replace(trial, state.db)
        return (
            f"dropped leftover table(s) {', '.join(state.leftovers)} and ran the migrations to "
            f"the head; the store as it was is kept at {backup}"
        )
    trial.unlink(missing_ok=True)
    state.db.unlink()
    return (
        f"the migrations could not finish on it ({_last_line(ran.stderr)}); moved it to {backup}, "
        "and the next start builds a new, empty store"
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


MLFLOW_MIGRATE = [
    sys.executable,
    "-c",
    "import sys, mlflow; mlflow.MlflowClient(tracking_uri='sqlite:///' + sys.argv[1])"
    ".search_experiments(max_results=1)",
    "{db}",
]
# Prefect's own first-start path (create_db runs its alembic migrations) on the trial copy.
PREFECT_MIGRATE = [
    sys.executable,
    "-c",
    "import os, sys; os.environ['PREFECT_SERVER_DATABASE_CONNECTION_URL'] = "
    "'sqlite+aiosqlite:///' + sys.argv[1]; import asyncio; "
    "from prefect.server.database import provide_database_interface; "
    "asyncio.run(provide_database_interface().create_db())",
    "{db}",
]


def _package_dir(name: str) -> Path:
    # Located, not imported: importing Prefect would create a Prefect home as a side effect.
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(name)
    return Path(spec.origin).parent


def prefect_versions() -> Path:
    return _package_dir("prefect") / "server" / "database" / "_migrations" / "versions" / "sqlite"


def mlflow_versions() -> Path:
    return _package_dir("mlflow") / "store" / "db_migrations" / "versions"
