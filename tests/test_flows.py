"""Prefect flows end to end on a small simulated operator: cycle, resume, lock, artifact, serve."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipelines.store.config import load_settings
from pipelines.store.errors import WorkdirError
from pipelines.store.workdir import Workdir

pytestmark = pytest.mark.integration

CONFIG = """
simulator: {customers: 900, months: 10}
models: {trials: 1, horizon_days: 30, num_boost_round: 100, early_stopping_rounds: 20}
orchestration: {history_months: 4}
# These tests are about running, resuming and repeating a cycle, and need a list with both arms.
# On 900 customers with a 30-day horizon the calibrated EV rule lists only a handful (too few for
# a 10 % control group): this operator values customers over five years, a take-up is a save.
retention:
  value_horizon_months: 60
  response_prior: {save_given_accept: 1.0, backfire_rate: 0.0}
"""


@pytest.fixture(scope="module")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, Path]:
    """A simulated operator's landing files and the config for small, quick cycles."""
    from simulator import simulate

    root = tmp_path_factory.mktemp("world")
    config = root / "small.yaml"
    config.write_text(CONFIG)
    settings = load_settings([config], home=root / "template", environ={})
    simulate(settings.simulator, root / "template", seed=settings.seed)
    return root / "template", config


def _fresh_home(world: tuple[Path, Path], tmp_path: Path) -> tuple[str, list[str]]:
    template, config = world
    home = tmp_path / "home"
    shutil.copytree(template, home)
    return str(home), [str(config)]


def _list_rows(home: str) -> list[tuple]:
    con = duckdb.connect(str(Path(home) / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT list_id, customer_id, offer, channel, control_flag"
            " FROM retention.retention_lists ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def completed_cycle(world, prefect_harness, tmp_path_factory):
    """One uninterrupted cycle: the reference for resume and idempotence tests."""
    from pipelines.run.flows import retention_cycle

    home, config = _fresh_home(world, tmp_path_factory.mktemp("reference"))
    summary = retention_cycle(home=home, config=config)
    return home, config, summary


def test_cycle_runs_every_stage_and_publishes_a_list(completed_cycle):
    home, _, summary = completed_cycle
    for stage in ("features", "train", "score", "target", "monitor", "evaluate"):
        assert stage in summary, stage
    rows = _list_rows(home)
    assert rows, "the cycle published no retention list"
    assert any(r[4] for r in rows), "no control group on the list"
    list_dir = Path(home) / "lists" / rows[0][0]
    assert (list_dir / "manifest.json").exists()


def test_rerun_skips_completed_stages_and_duplicates_nothing(completed_cycle, prefect_harness):
    from pipelines.run.flows import retention_cycle

    home, config, _ = completed_cycle
    before = _list_rows(home)
    summary = retention_cycle(home=home, config=config)
    for stage in ("features", "train", "score", "target", "monitor"):
        assert summary[stage].get("skipped"), f"{stage} ran again"
    assert _list_rows(home) == before


def test_resume_after_failure_gives_the_same_list(
    world, completed_cycle, prefect_harness, tmp_path, monkeypatch
):
    import pipelines.stages.target as targeting
    from pipelines.run.flows import retention_cycle
    from pipelines.run.ledger import ledger

    home, config = _fresh_home(world, tmp_path)
    real = targeting.build_retention_list

    def broken(*args, **kwargs):
        raise OSError("disk went away mid-cycle")

    monkeypatch.setattr(targeting, "build_retention_list", broken)
    with pytest.raises(Exception, match="disk went away"):
        retention_cycle(home=home, config=config)
    settings = load_settings([Path(c) for c in config], home=home, environ={})
    done = ledger(settings, _as_of(home))
    assert {"features", "train", "score"} <= set(done) and "target" not in done

    monkeypatch.setattr(targeting, "build_retention_list", real)
    summary = retention_cycle(home=home, config=config)
    assert summary["features"].get("skipped") and summary["score"].get("skipped")
    reference_home = completed_cycle[0]
    strip = lambda rows: [r[1:] for r in rows]  # noqa: E731 - list ids embed the same as-of
    assert strip(_list_rows(home)) == strip(_list_rows(reference_home))


def _as_of(home: str):
    con = duckdb.connect(str(Path(home) / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute("SELECT max(as_of) FROM feat.customer_snapshot").fetchone()[0]
    finally:
        con.close()


def test_second_concurrent_cycle_is_refused(completed_cycle, prefect_harness):
    from pipelines.run.flows import retention_cycle

    home, config, _ = completed_cycle
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from pathlib import Path; from pipelines.run.lock import run_lock\n"
            "with run_lock(Path(sys.argv[1]), 'retention cycle'):\n"
            "    print('locked', flush=True); time.sleep(60)",
            str(Workdir(Path(home)).lock_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WorkdirError, match="another run holds the lock"):
            retention_cycle(home=home, config=config)
    finally:
        holder.kill()
        holder.wait()


def test_cycle_publishes_a_markdown_artifact(completed_cycle, prefect_harness):
    import asyncio

    from prefect.client.orchestration import get_client

    _, _, summary = completed_cycle
    key = f"retention-cycle-{summary['as_of']}"

    async def read():
        async with get_client() as client:
            body = {
                "artifacts": {"key": {"any_": [key]}},
                "limit": 5,
                "offset": 0,
                "sort": "CREATED_DESC",
            }
            response = await client._client.post("/artifacts/filter", json=body)
            response.raise_for_status()
            return response.json()

    artifacts = asyncio.run(read())
    assert artifacts, "no cycle artifact"
    data = artifacts[0]["data"]
    assert "Retention cycle" in data and "list id" in data
    assert summary["target"]["list_id"] in data


def test_serve_once_runs_each_deployment(completed_cycle, tmp_path):
    home, config, _ = completed_cycle
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines", "--home", home, "-c", config[0], "serve", "--once"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("daily-ingest", "monthly-cycle", "monthly-evaluation"):
        assert f"{name}: Completed" in proc.stdout


def test_doctor_passes_a_healthy_home_and_names_each_problem(completed_cycle, tmp_path):
    import mlflow

    from pipelines.store.doctor import healthy, run_checks

    home = tmp_path / "home"
    shutil.copytree(completed_cycle[0], home)
    settings = load_settings([Path(completed_cycle[1][0])], home=home, environ={})
    assert healthy(run_checks(settings)), run_checks(settings)

    (home / "lists" / "half-written.csv.part").write_text("x")
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("DELETE FROM meta.load_manifest WHERE table_name = 'usage_daily'")
    con.close()
    client = mlflow.MlflowClient(
        tracking_uri=Workdir.from_settings(settings).tracking_uri(settings)
    )
    champion = client.get_model_version_by_alias("churn", "champion")
    client.delete_model_version("churn", champion.version)
    shutil.rmtree(next(p for p in (home / "lists").iterdir() if p.is_dir()))

    problems = {f.check: f for f in run_checks(settings) if not f.ok}
    assert {"partial files", "raw.usage_daily lineage", "churn@champion"} <= set(problems), problems
    # MLflow drops the alias with the version: the model is left without a champion.
    assert "champion" in problems["churn@champion"].detail
    assert any("scores" in c or "list" in c for c in problems if c not in ("partial files",)), (
        problems
    )
    assert all(f.fix for f in problems.values())
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "--home",
            str(home),
            "-c",
            completed_cycle[1][0],
            "doctor",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


def test_no_raw_customer_id_leaves_in_artifacts_reports_or_exports(completed_cycle):
    home = Path(completed_cycle[0])
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    ids = {r[0] for r in con.execute("SELECT customer_id FROM raw.customers").fetchall()}
    con.close()
    scanned = 0
    for folder in (home / "mlflow", home / "reports", home / "lists"):
        for path in folder.rglob("*"):
            if not path.is_file() or path.suffix in (".db", ".parquet", ".xlsx", ".pkl", ".ubj"):
                continue
            text = path.read_bytes().decode("utf-8", "ignore")
            tokens = set(text.replace(",", " ").replace('"', " ").split())
            leaked = ids & tokens
            assert not leaked, f"{path} holds customer ids such as {sorted(leaked)[:3]}"
            scanned += 1
    assert scanned > 5
    for path in (home / "lists").rglob("retention_list.parquet"):
        import polars as pl

        assert "customer_id" not in pl.read_parquet(path).columns


# Slow and timing-sensitive: a kill that lands while Prefect's ephemeral server is still
# migrating its own database leaves that database unusable (seen once on CI), which is Prefect's
# state, not ours. Runs in `make test-all`; the injected-failure resume test covers the default run.
@pytest.mark.slow
@pytest.mark.faults
def test_killed_cycle_resumes_to_the_same_list(world, completed_cycle, tmp_path):
    import os
    import signal
    import time

    home, config = _fresh_home(world, tmp_path)
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    cmd = [sys.executable, "-m", "pipelines", "--home", home, "-c", config[0], "cycle"]
    # Its own process group: the kill takes the cycle and its Prefect server down together,
    # as a crash of the machine would.
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    # Kill mid-training: the MLflow store appears when training starts, after features are
    # stored (a file check, so the probe never competes with the cycle for the warehouse).
    store = Path(home) / "mlflow" / "mlflow.db"
    deadline = time.time() + 300
    while not store.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    if proc.poll() is not None:
        pytest.fail(f"the cycle ended (code {proc.returncode}) before it could be killed")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    from pipelines.run.ledger import ledger

    settings = load_settings([Path(config[0])], home=home, environ={})
    done = ledger(settings, _as_of(home))
    assert "features" in done and "target" not in done, done
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    strip = lambda rows: [r[1:] for r in rows]  # noqa: E731 - list ids embed the same as-of
    assert strip(_list_rows(home)) == strip(_list_rows(completed_cycle[0]))


def test_flows_run_against_a_prefect_server(completed_cycle, tmp_path):
    """PREFECT_API_URL pointing at a real `prefect server`: the flow run is recorded there."""
    import json
    import os
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "server-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the server's uvicorn child goes down with it
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{api}/health", timeout=2) as r:  # noqa: S310 - localhost
                    if r.status == 200:
                        break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise AssertionError("prefect server did not start") from None
                time.sleep(1)
        home, config, _ = completed_cycle
        code = (
            "import sys; from pipelines.run.flows import evaluate_flow;"
            "print(evaluate_flow(home=sys.argv[1], config=[sys.argv[2]]))"
        )
        run = subprocess.run(
            [sys.executable, "-c", code, home, config[0]],
            env={**env, "PREFECT_API_URL": api, "PREFECT_HOME": str(tmp_path / "client-home")},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr[-2000:]
        request = urllib.request.Request(
            f"{api}/flow_runs/filter",
            data=json.dumps({"limit": 10}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as r:  # noqa: S310 - localhost
            runs = json.loads(r.read())
        assert any(fr["state_type"] == "COMPLETED" for fr in runs), runs
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


# --- short history: never a random champion, never a list from one (issue 20) ----------------


def _champions(home: str, config: list[str]) -> list[str]:
    from pipelines.run.flows import _without_champion

    settings = load_settings([Path(c) for c in config], home=home, environ={})
    return sorted({"churn", "credit_risk"} - set(_without_champion(settings)))


def test_short_history_refuses_to_train_and_publishes_nothing(prefect_harness, tmp_path):
    """Seven months with a 90-day horizon: every matured snapshot has partial feature windows."""
    from pipelines.run.flows import retention_cycle
    from pipelines.store.errors import ShortHistoryError
    from simulator import simulate

    home = tmp_path / "home"
    config = tmp_path / "short.yaml"
    config.write_text(
        "simulator: {customers: 300, months: 7}\n"
        "models: {trials: 1, num_boost_round: 60, early_stopping_rounds: 10}\n"
    )
    settings = load_settings([config], home=home, environ={})
    assert settings.models.horizon_days == 90 and settings.orchestration.history_months == 8
    simulate(settings.simulator, home, seed=3)
    with pytest.raises(ShortHistoryError) as refused:
        retention_cycle(home=str(home), config=[str(config)])
    line = str(refused.value)
    assert "\n" not in line
    assert "need 1 complete snapshot with matured 90-day labels" in line
    assert "have 0 (data starts 2025-01-01" in line
    assert "needs data through 2025-12-29" in line
    assert _champions(str(home), [str(config)]) == []
    assert not (home / "lists").exists() or not any((home / "lists").iterdir())
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        flags = dict(con.execute("SELECT as_of, complete FROM feat.build_log").fetchall())
        lists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'retention'"
        ).fetchone()[0]
    finally:
        con.close()
    # The snapshot of the day before the data starts up to May: windows reach before January.
    assert [d.isoformat() for d, ok in sorted(flags.items()) if ok] == ["2025-06-30", "2025-07-31"]
    assert lists == 0


def test_models_below_the_floor_hold_the_first_list(world, prefect_harness, tmp_path):
    """Without a champion, a challenger under the quality floor publishes nothing, and says why."""
    from pipelines.run.flows import cycle_markdown, retention_cycle

    home, config = _fresh_home(world, tmp_path)
    strict = tmp_path / "strict.yaml"
    strict.write_text("models: {promotion: {min_roc_auc: 0.999}}\n")
    config = [*config, str(strict)]
    summary = retention_cycle(home=home, config=config)
    held = summary["held"]
    assert held.startswith("no list published: churn has no champion (not promoted: out-of-time")
    assert "below the floor 0.999" in held and "\n" not in held
    assert held in cycle_markdown(summary)
    assert "score" not in summary and "target" not in summary
    assert _champions(home, config) == []
    assert not (Path(home) / "lists").exists() or not any((Path(home) / "lists").iterdir())
