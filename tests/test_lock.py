"""The run lock: a second cycle is refused with a clear message; a killed holder frees it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.run.lock import run_lock
from pipelines.store.errors import WorkdirError

HOLDER = """
import sys, time
from pathlib import Path
from pipelines.run.lock import run_lock
with run_lock(Path(sys.argv[1]), "retention cycle"):
    print("locked", flush=True)
    time.sleep(60)
"""


def _start_holder(lock: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_holder_is_refused_with_who_holds_it(tmp_path: Path):
    lock = tmp_path / "cycle.lock"
    proc = _start_holder(lock)
    try:
        with pytest.raises(WorkdirError) as info, run_lock(lock, "another cycle"):
            pass
        message = str(info.value)
        assert "another run holds the lock" in message
        assert f"pid {proc.pid}" in message and "retention cycle" in message
    finally:
        proc.kill()
        proc.wait()


def test_killed_holder_releases_the_lock(tmp_path: Path):
    lock = tmp_path / "cycle.lock"
    proc = _start_holder(lock)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with run_lock(lock, "next cycle", timeout_seconds=5):
        assert lock.exists()


def test_lock_is_reentrant_within_one_process(tmp_path: Path):
    lock = tmp_path / "cycle.lock"
    with run_lock(lock, "cycle"), run_lock(lock, "stage inside the cycle"):
        pass
    # released afterwards: another process can take it
    proc = _start_holder(lock)
    proc.kill()
    proc.wait()


def test_waits_up_to_timeout(tmp_path: Path):
    lock = tmp_path / "cycle.lock"
    proc = _start_holder(lock)
    started = time.monotonic()
    try:
        with pytest.raises(WorkdirError), run_lock(lock, "waiting", timeout_seconds=1.0):
            pass
    finally:
        proc.kill()
        proc.wait()
    assert time.monotonic() - started >= 1.0


@pytest.mark.parametrize(
    "command",
    [
        ["ingest"],
        ["features", "--as-of", "2025-06-30"],
        ["train", "--model", "churn"],
        ["promote", "--model", "churn"],
        ["score", "--as-of", "2025-06-30"],
        ["uplift"],
        ["target", "--as-of", "2025-06-30"],
        ["monitor", "--as-of", "2025-06-30"],
        ["evaluate", "--list", "L1"],
    ],
)
def test_every_writing_command_takes_the_run_lock(tmp_path: Path, command: list[str]):
    """The CLI takes the same way into a stage as the flows: a held lock refuses it."""
    from typer.testing import CliRunner

    from pipelines.cli import app

    home = tmp_path / "home"
    home.mkdir()
    proc = _start_holder(home / "cycle.lock")
    try:
        out = CliRunner().invoke(app, ["--home", str(home), *command])
    finally:
        proc.kill()
        proc.wait()
    assert out.exit_code != 0
    assert isinstance(out.exception, WorkdirError), out.output
    assert "another run holds the lock" in str(out.exception)
