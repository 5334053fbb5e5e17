"""Reliability: fuzzed landing rows and configs, a full disk, a read-only home, injection."""

from __future__ import annotations

import csv
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from pipelines.stages.ingest import ingest_landing
from pipelines.store.config import load_settings
from pipelines.store.errors import ChurnError, ConfigError

REPO = Path(__file__).resolve().parents[1]
USAGE_COLUMNS = [
    "customer_id",
    "usage_date",
    "voice_min",
    "sms_count",
    "data_mb",
    "roaming_mb",
    "offnet_share",
    "dropped_call_rate",
]


def _count(home: Path, sql: str) -> int:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


# --- fuzzed landing rows -----------------------------------------------------------------------

hostile_text = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "NULL", "nan", "'; DROP TABLE raw.usage_daily; --", '"', "\\", "é€😀"]),
)
number_text = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**12), 10**12).map(str),
    st.sampled_from(["", "1e308", "-0", "0x10", "1,5", " 3 "]),
    hostile_text,
)
date_text = st.one_of(
    st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 1, 1)).map(str),
    st.sampled_from(["", "2025-02-30", "31/01/2025", "2025-1-1"]),
    hostile_text,
)
usage_row = st.fixed_dictionaries(
    {
        "customer_id": st.one_of(st.from_regex(r"C[0-9]{8}", fullmatch=True), hostile_text),
        "usage_date": date_text,
        **{c: number_text for c in USAGE_COLUMNS[2:]},
    }
)


@pytest.mark.faults
@hyp_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(rows=st.lists(usage_row, min_size=1, max_size=30))
def test_fuzzed_landing_rows_load_or_quarantine_never_half(rows):
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        folder = home / "landing" / "usage_daily"
        folder.mkdir(parents=True)
        path = folder / "usage_daily_2025-01-01.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=USAGE_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        settings = load_settings(home=home, environ={})
        try:
            report = ingest_landing(settings)
        except ChurnError:
            return  # a clear, typed error (e.g. every row bad) is an allowed outcome
        if report.files_rejected:
            assert report.rejected, "a rejected file names its reason"
            assert _count(home, "SELECT count(*) FROM raw.usage_daily") == 0
            return
        loaded = _count(home, "SELECT count(*) FROM raw.usage_daily")
        quarantined = _count(home, "SELECT count(*) FROM meta.quarantine")
        manifest = _count(
            home, "SELECT sum(rows_loaded + rows_quarantined) FROM meta.load_manifest"
        )
        # Every row is accounted for exactly once: loaded (latest per key) or quarantined.
        distinct_keys = _count(
            home,
            "SELECT count(*) FROM (SELECT DISTINCT customer_id, usage_date FROM raw.usage_daily)",
        )
        assert loaded == distinct_keys
        assert manifest == len(rows)
        assert loaded + quarantined <= len(rows)
        assert (
            _count(home, "SELECT count(*) FROM meta.quarantine WHERE coalesce(reason, '') = ''")
            == 0
        )
        again = ingest_landing(settings)
        assert again.files_loaded == 0
        assert _count(home, "SELECT count(*) FROM raw.usage_daily") == loaded


# --- fuzzed configuration files ----------------------------------------------------------------

KEYS = ["seed", "home", "simulator", "features", "models", "retention", "monitoring", "nonsense"]
leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**9), 10**9),
    st.floats(allow_nan=True),
    st.text(max_size=20),
)
tree = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "customers",
                    "months",
                    "budget",
                    "trials",
                    "horizons_days",
                    "tiers",
                    "gate",
                    "offers",
                    "control_share",
                    "x",
                ]
            ),
            children,
            max_size=3,
        ),
    ),
    max_leaves=8,
)


@pytest.mark.faults
@hyp_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.dictionaries(st.sampled_from(KEYS), tree, max_size=4))
def test_fuzzed_config_files_load_or_fail_with_a_config_error(doc):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_text(yaml.safe_dump(doc))
        try:
            load_settings([path], home=Path(tmp) / "home", environ={})
        except ConfigError as exc:
            assert "\n" not in str(exc) and str(exc)


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"CHURN_FEATURES__TIERS__DIAMOND": "120; DROP TABLE raw.customers"}, "tiers"),
        ({"CHURN_FEATURES__HORIZONS_DAYS": '[30, "90) --"]'}, "horizons_days"),
        ({"CHURN_RETENTION__UPLIFT__HORIZON_DAYS": "60 DAY) OR 1=1 --"}, "horizon_days"),
    ],
)
def test_sql_reaching_config_values_are_validated_before_any_sql(tmp_path, env, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_settings(home=tmp_path / "home", environ=env)


def test_hostile_column_names_never_reach_sql(settings):
    from tests.test_ingest import put, usage_rows

    home = Path(settings.home)
    evil = usage_rows().with_columns(pl.lit(1).alias('x"; DROP TABLE raw.usage_daily; --'))
    put(home / "landing", "usage_daily", "2025-01-01", evil)
    ingest_landing(settings)
    # The extra column is ignored or the file rejected; the table and its rows survive.
    assert _count(home, "SELECT count(*) FROM raw.usage_daily") in (0, 5)
    assert _count(home, "SELECT count(*) FROM meta.load_manifest") == 1


# --- a full disk and a read-only work directory --------------------------------------------------

INGEST = (
    "import sys; from pipelines.cli import run; sys.argv = ['churn', '--home', sys.argv[1], "
    "'ingest']; run()"
)


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory) -> tuple[Path, int]:
    """A home with one month ingested, and a second month waiting in landing."""
    from configs.schema import SimulatorConfig
    from simulator import advance, simulate

    home = tmp_path_factory.mktemp("disk") / "home"
    simulate(SimulatorConfig(customers=600, months=1), home, seed=9)
    ingest_landing(load_settings(home=home, environ={}))
    before = _count(home, "SELECT count(*) FROM raw.usage_daily")
    advance(home, months=1)
    return home, before


def _limit_file_size(limit: int):
    def apply() -> None:
        # SIGXFSZ would kill the process; ignored, the write fails with EFBIG like a full disk.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.faults
def test_full_disk_fails_clearly_and_keeps_prior_data(loaded_home, tmp_path):
    home, before = loaded_home
    work = tmp_path / "home"
    shutil.copytree(home, work)
    proc = subprocess.run(
        [sys.executable, "-c", INGEST, str(work)],
        capture_output=True,
        text=True,
        cwd=REPO,
        preexec_fn=_limit_file_size(32 * 1024),  # noqa: PLW1509 - test only
        timeout=300,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    message = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(message) == 1, proc.stderr[-2000:]
    # Prior data intact and readable; a normal re-run then loads the new month exactly once.
    assert _count(work, "SELECT count(*) FROM raw.usage_daily") == before
    ok = subprocess.run(
        [sys.executable, "-c", INGEST, str(work)], capture_output=True, text=True, cwd=REPO
    )
    assert ok.returncode == 0, ok.stderr[-2000:]
    after = _count(work, "SELECT count(*) FROM raw.usage_daily")
    assert after > before
    assert after == _count(
        work, "SELECT count(*) FROM (SELECT DISTINCT customer_id, usage_date FROM raw.usage_daily)"
    )


def _drop_permission_override() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    for cap in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@pytest.mark.faults
def test_read_only_home_fails_clearly_and_changes_nothing(loaded_home, tmp_path):
    home, before = loaded_home
    work = tmp_path / "home"
    shutil.copytree(home, work)
    checksum = (work / "warehouse.duckdb").read_bytes()
    for p in [work, *work.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", INGEST, str(work)],
            capture_output=True,
            text=True,
            cwd=REPO,
            # root ignores permission bits unless it gives up the capabilities that do so
            preexec_fn=_drop_permission_override if os.geteuid() == 0 else None,  # noqa: PLW1509
            env={**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-ro")},
            timeout=300,
        )
    finally:
        for p in [work, *work.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and str(work) in lines[0], proc.stderr[-2000:]
    assert (work / "warehouse.duckdb").read_bytes() == checksum
    assert _count(work, "SELECT count(*) FROM raw.usage_daily") == before


@pytest.mark.faults
def test_mlflow_store_killed_while_being_created_is_built_again_whole(tmp_path):
    """A run SIGKILLed among MLflow's schema migrations (watched from outside: the scratch store
    has a revision that is not the head yet) leaves only the scratch file: the next run discards
    it and builds the store whole, instead of failing on a half-made schema."""
    import sqlite3
    import time

    from pipelines.store.repair import inspect, mlflow_versions
    from pipelines.store.tracking import experiment_client

    settings = load_settings(home=tmp_path, environ={})
    store = tmp_path / "mlflow" / "mlflow.db"
    half = store.with_name("mlflow.db.creating")
    code = (
        "import sys; from pipelines.store.config import load_settings;"
        "from pipelines.store.tracking import experiment_client;"
        "experiment_client(load_settings(home=sys.argv[1], environ={}))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline, revision = time.monotonic() + 240, None
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if half.exists():
                state = inspect(half, mlflow_versions())
                if state.current is not None and state.current != state.head:
                    revision = state.current
                    proc.kill()
                    break
        except sqlite3.Error:
            pass  # caught mid-write
        time.sleep(0.002)
    proc.wait()
    assert revision is not None, f"store creation ended (code {proc.returncode}) before the kill"
    assert half.is_file() and not store.exists()  # only the scratch file is left

    client, experiment_id = experiment_client(settings)
    assert store.is_file() and not half.exists()
    assert client.get_experiment(experiment_id).name == settings.tracking.experiment
    tables = {r[0] for r in sqlite3.connect(store).execute("SELECT name FROM sqlite_master")}
    assert {"experiments", "runs", "registered_models", "model_versions"} <= tables


def test_list_folder_killed_mid_export_keeps_the_old_files_and_leaves_nothing_behind(tmp_path):
    """SIGKILL between a list's contact file and its manifest: marketing still sees the previous
    complete folder, and the next export leaves no staging debris beside the new one."""
    folder = tmp_path / "lists" / "L1"
    folder.mkdir(parents=True)
    (folder / "retention_list.csv").write_text("old\n")
    (folder / "manifest.json").write_text("{}")
    code = (
        "import sys, time; from pathlib import Path\n"
        "from pipelines.store.workdir import atomic_folder\n"
        f"with atomic_folder(Path({str(folder)!r})) as staging:\n"
        "    (staging / 'retention_list.csv').write_text('new\\n')\n"
        "    print('written', flush=True); time.sleep(60)\n"
        "    (staging / 'manifest.json').write_text('{}')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "written"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (folder / "retention_list.csv").read_text() == "old\n"
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "retention_list.csv"]

    from pipelines.store.workdir import atomic_folder

    with pytest.raises(RuntimeError), atomic_folder(folder) as staging:
        (staging / "retention_list.csv").write_text("broken\n")
        raise RuntimeError("export failed")
    assert (folder / "retention_list.csv").read_text() == "old\n"
    with atomic_folder(folder) as staging:
        (staging / "retention_list.csv").write_text("new\n")
    assert (folder / "retention_list.csv").read_text() == "new\n"
    assert not (folder / "manifest.json").exists()  # the new folder replaces the old whole
    assert sorted(p.name for p in folder.parent.iterdir()) == ["L1"]
    assert folder.stat().st_mode & 0o777 == 0o700
