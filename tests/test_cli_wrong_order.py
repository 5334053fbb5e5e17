"""Every `churn` command on an empty or half-built work directory: one readable line, never a
traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from pipelines.cli import app

REPO = Path(__file__).resolve().parents[1]

# What a command needs on its command line so that it gets past usage checks to its own logic.
ARGS = {
    "evaluate": ["--list", "L1"],
    "cycle": ["--as-of", "2025-06-30"],
    "snapshot": ["--data", "missing.csv", "--target", "churn", "--positive", "yes"],
}
# Right on an empty work directory, and long-running there: each has its own tests.
NOT_WALKED = {
    "simulate": "the first step (tests/test_simulator.py; --defects below)",
    "demo": "runs the whole loop on an empty directory by design",
    "serve": "serves deployments until stopped",
    "dashboard": "serves the cockpit until stopped (refusals: tests/test_dashboard_auth.py)",
}
# A clean exit 0 is right for these on an empty directory (they report, or find nothing to do).
MAY_SUCCEED = {"status", "doctor", "config show", "ingest", "models"}
# Output that is a document, not a message.
MULTI_LINE = {"config show"}


def commands() -> list[str]:
    """Every command of the typer app, groups expanded ("config show")."""
    group = typer.main.get_command(app)
    out = []
    for name, cmd in sorted(group.commands.items()):
        sub = getattr(cmd, "commands", None)
        out += [f"{name} {s}" for s in sorted(sub)] if sub else [name]
    return out


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`churn ARGV` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=180,
    )


def test_every_command_is_walked_or_excused():
    assert set(commands()) >= set(NOT_WALKED), "a command in NOT_WALKED no longer exists"
    assert len(commands()) > 15


# One process imports the whole stack once (its own output must be empty: no import-time
# warning), then forks a child per command with stdout and stderr sent to files. A child is a real
# process running `churn ...` from its entry point; forking saves ~15 s of imports per command on
# a loaded 2-core machine, which keeps this walk in the default run.
WALKER = """
import importlib, json, os, sys
for module in ("pipelines.cli", "pipelines.stages.train", "pipelines.stages.uplift",
               "pipelines.run.flows", "pipelines.run.entry", "pipelines.stages.score",
               "pipelines.stages.monitor", "pipelines.stages.target", "pipelines.stages.evaluate",
               "pipelines.stages.snapshot", "pipelines.store.doctor", "pipelines.stages.features",
               "pipelines.stages.ingest"):
    importlib.import_module(module)
sys.stdout.flush(); sys.stderr.flush()
running = {}

def reap():
    pid, status = os.wait()
    print(json.dumps([running.pop(pid), os.waitstatus_to_exitcode(status)]), flush=True)

for name, argv, out in json.loads(sys.argv[1]):
    if len(running) >= 4:
        reap()
    pid = os.fork()
    if pid == 0:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1); os.dup2(fd, 2)
        sys.argv = ["churn", *argv]
        code = 0
        try:
            from pipelines.cli import run
            run()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            import traceback; traceback.print_exc(); code = 99
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    running[pid] = name
while running:
    reap()
"""


def _half_built(root: Path) -> Path:
    """A work directory that has ingested two months of a small operator and done nothing else."""
    home = root / "half-built"
    root.mkdir(parents=True, exist_ok=True)
    for argv in (["simulate", "--customers", "300", "--months", "2"], ["ingest"]):
        proc = _run(["--home", str(home), *argv], root, dict(os.environ))
        assert proc.returncode == 0, proc.stderr[-2000:]
    return home


# On a half-built directory (data ingested, nothing built from it) these may also finish: they
# build what they need from the data there.
MAY_SUCCEED_HALF_BUILT = {"features"}


@pytest.mark.faults
@pytest.mark.parametrize("state", ["empty", "half-built"])
def test_every_command_in_the_wrong_order_answers_in_one_line(tmp_path, state):
    import json
    import shutil

    walked = [c for c in commands() if c not in NOT_WALKED]
    may_succeed = MAY_SUCCEED | (MAY_SUCCEED_HALF_BUILT if state == "half-built" else set())
    start = _half_built(tmp_path / "start") if state == "half-built" else None
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    jobs = []
    for command in walked:
        home = tmp_path / command.replace(" ", "-") / "home"  # its own: commands write
        if start is not None:
            shutil.copytree(start, home)
        argv = ["--home", str(home), *command.split(), *ARGS.get(command.split()[0], [])]
        jobs.append([command, argv, str(tmp_path / f"{command.replace(' ', '-')}.out")])
    proc = subprocess.run(
        [sys.executable, "-c", WALKER, json.dumps(jobs)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not proc.stderr.strip(), f"importing the stack printed:\n{proc.stderr[-3000:]}"
    codes = dict(json.loads(line) for line in proc.stdout.splitlines())
    assert set(codes) == set(walked)
    problems = []
    for command, _, out in jobs:
        code, text = codes[command], Path(out).read_text()
        lines = text.rstrip("\n").splitlines()  # a blank line counts: it is noise in a log
        if "Traceback" in text or "Warning" in text or "Catalog Error" in text:
            problems.append(f"{command}: traceback or warning:\n{text[-1500:]}")
        elif code == 0 and command not in may_succeed:
            problems.append(f"{command}: exit 0 on an {state} work directory:\n{text[-500:]}")
        elif code != 0 and command not in MULTI_LINE and len(lines) != 1:
            problems.append(f"{command}: {len(lines)} lines (exit {code}):\n{text}")
        elif code == 0 and command not in MULTI_LINE and not lines:
            problems.append(f"{command}: exit 0 and said nothing")
        elif state == "empty" and command not in MULTI_LINE and len(lines) != 1:
            problems.append(f"{command}: {len(lines)} lines (exit {code}):\n{text}")
        elif code not in (0, 1, 2):
            problems.append(f"{command}: exit {code}")
    assert not problems, "\n\n".join(problems)


def test_simulate_with_defects_into_a_new_workdir(tmp_path):
    """A defect logged in the first month used to be written before truth/ existed."""
    home = tmp_path / "new" / "home"
    argv = ["--home", str(home), "simulate", "--customers", "200", "--months", "1"]
    proc = _run([*argv, "--defects", "0.05"], tmp_path, dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
    # A long command ends with one line: what it did and where its outputs are.
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("done: simulated") and str(home / "landing") in last, last
    import polars as pl

    defects = pl.read_parquet(home / "truth" / "defects.parquet")
    assert defects.height > 0
