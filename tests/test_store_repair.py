"""Prefect's home and the MLflow store killed inside a schema migration: doctor finds and fixes it."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.stages.ingest import ingest_landing
from pipelines.store.config import load_settings
from pipelines.store.repair import MigrationState, inspect, mlflow_versions, prefect_versions

# Each test starts Prefect or MLflow in five to seven processes (the killed one, doctor, the
# trial migrations, the restart): 40-100 s on the shared 2-core machine, so `slow`.
pytestmark = [pytest.mark.faults, pytest.mark.slow]


def kill_when_half_migrated(
    code: str, db: Path, versions: Path, env: dict[str, str], attempts: int = 4
) -> MigrationState:
    """Run `code` (which migrates `db` from nothing), watch the store from outside, and SIGKILL
    the process the moment a migration has left its tables without its version. Retried when
    the process got past that window before the kill landed."""
    for _ in range(attempts):
        for stale in db.parent.glob(db.name + "*"):
            stale.unlink()
        proc = subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if db.exists() and inspect(db, versions).half_migrated:
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
            except sqlite3.Error:
                pass  # caught mid-write: look again
            time.sleep(0.002)
        else:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        state = inspect(db, versions)
        if proc.returncode == -signal.SIGKILL and state.half_migrated:
            return state
    pytest.fail(f"no kill landed inside a migration in {attempts} attempts")


def doctor(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", "--home", str(home), "doctor", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def home(tmp_path) -> Path:
    """A work directory with an (empty) warehouse, so doctor checks everything else."""
    home = tmp_path / "home"
    (home / "landing").mkdir(parents=True)
    ingest_landing(load_settings(home=home, environ={}))
    return home


def test_mlflow_store_killed_mid_migration_is_found_and_fixed(home):
    db = home / "mlflow" / "mlflow.db"
    db.parent.mkdir(parents=True)
    code = (
        "import mlflow; mlflow.MlflowClient(tracking_uri='sqlite:///"
        f"{db}').search_experiments(max_results=1)"
    )
    state = kill_when_half_migrated(code, db, mlflow_versions(), dict(os.environ))
    # The real failure: MLflow cannot open the store any more.
    opened = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert opened.returncode != 0, opened.stderr[-800:]
    assert "already exists" in opened.stderr or "duplicate column" in opened.stderr

    found = doctor(home)
    assert found.returncode == 1 and "Traceback" not in found.stderr
    assert "MLflow store" in found.stdout and "half-migrated" in found.stdout
    assert state.leftovers[0] in found.stdout
    fixed = doctor(home, "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr[-1500:]
    assert "fixed MLflow store" in fixed.stdout
    assert db.with_name("mlflow.db.before-repair").is_file()
    # MLflow now finishes its migrations and works.
    reopened = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert reopened.returncode == 0, reopened.stderr[-1500:]
    assert not inspect(db, mlflow_versions()).half_migrated
    assert inspect(db, mlflow_versions()).current == inspect(db, mlflow_versions()).head


def test_prefect_home_killed_during_first_start_is_no_false_alarm(home):
    """Prefect 3.8 finishes a first start killed among its migrations by itself (seen here every
    time); doctor must see the leftovers, try Prefect's migrations on a copy, and not cry wolf.
    (The "table mcp_servers already exists" of issue 19 is MLflow's migration a8b9c0d1e2f3.)"""
    prefect_home = home / "prefect"
    prefect_home.mkdir()
    db = prefect_home / "prefect.db"
    env = {**os.environ, "PREFECT_HOME": str(prefect_home)}
    env.pop("PREFECT_API_URL", None)
    code = (
        "import asyncio; from prefect.server.database import provide_database_interface;"
        "asyncio.run(provide_database_interface().create_db())"
    )
    killed = kill_when_half_migrated(code, db, prefect_versions(), env)
    found = doctor(home)
    assert found.returncode == 0, found.stdout + found.stderr[-1500:]
    assert "Prefect home database: a killed migration left tables" in found.stdout
    assert inspect(db, prefect_versions()).current == killed.current  # doctor changed nothing
    started = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert started.returncode == 0, started.stderr[-1500:]
    state = inspect(db, prefect_versions())
    assert state.current == state.head and not state.half_migrated
