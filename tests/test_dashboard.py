"""The Streamlit cockpit under AppTest: every page on a small real work directory, empty and busy."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from dashboard_data import demo_home, query
from streamlit.testing.v1 import AppTest

from dashboards import data

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[1] / "dashboards" / "app.py"
PAGES = ("overview", "retention-list", "customer", "models", "monitoring", "campaigns")


@pytest.fixture(autouse=True)
def _main_module_restored():
    """AppTest runs the page as sys.modules["__main__"] and leaves it there. Every process spawned
    later in the session (a Dask LocalCluster's workers) would then re-run the dashboard as its
    main module on start-up: seen in CI as Streamlit warnings from the workers of the Dask
    training test, in the runs where that test trained on one machine instead of two."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="module")
def dash_home(tmp_path_factory) -> Path:
    return demo_home(tmp_path_factory)


def open_page(home: Path, slug: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    from streamlit import config

    monkeypatch.setenv("CHURN_HOME", str(home))
    # As `churn dashboard` serves it: on loopback, where no password is required.
    config.set_option("server.address", "127.0.0.1")
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["start_page"] = slug  # the app's hook for opening a page directly
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def charts(at: AppTest) -> list:
    return list(at.get("vega_lite_chart"))


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


@pytest.mark.parametrize("slug", PAGES)
def test_empty_home_shows_how_to_get_data(tmp_path, monkeypatch, slug):
    at = open_page(tmp_path / "nothing-here", slug, monkeypatch)
    assert at.title[0].value
    assert any("No data yet" in i.value and "churn demo" in i.value for i in at.info)


def test_busy_warehouse_is_explained_not_raised(dash_home, tmp_path, monkeypatch):
    home = tmp_path / "busy"
    home.mkdir()
    shutil.copy(dash_home / "warehouse.duckdb", home / "warehouse.duckdb")
    # A writer in another process holds DuckDB's lock, as a running pipeline would.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('locked', flush=True);"
            " sys.stdin.read()",
            str(home / "warehouse.duckdb"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        at = open_page(home, "overview", monkeypatch)
        assert any("pipeline is writing" in w.value for w in at.warning)
    finally:
        holder.communicate("", timeout=30)
    # Once the writer is gone the page recovers (errors are never cached).
    at = open_page(home, "overview", monkeypatch)
    assert not at.warning and at.metric


def test_overview_matches_the_warehouse(dash_home, monkeypatch):
    at = open_page(dash_home, "overview", monkeypatch)
    (active,) = query(
        dash_home,
        "SELECT count(*) FROM scores.customer_scores"
        " WHERE as_of = (SELECT max(as_of) FROM scores.customer_scores)",
    )[0]
    (high,) = query(
        dash_home,
        "SELECT count(*) FROM scores.customer_scores WHERE risk_decile >= 9"
        " AND as_of = (SELECT max(as_of) FROM scores.customer_scores)",
    )[0]
    (list_size,) = query(
        dash_home,
        "SELECT count(*) FROM retention.retention_lists WHERE list_id ="
        " (SELECT list_id FROM retention.list_manifest ORDER BY as_of DESC LIMIT 1)",
    )[0]
    assert metric(at, "Active customers") == f"{active:,}"
    assert metric(at, "High-risk customers") == f"{high:,}"
    assert metric(at, "Latest list size") == f"{list_size:,}"
    (manifest,) = query(
        dash_home, "SELECT manifest_json FROM retention.list_manifest ORDER BY as_of DESC LIMIT 1"
    )[0]
    budget = json.loads(manifest)["budget"]
    assert metric(at, "Budget used").endswith(f"/ {budget:,.0f}")
    assert len(charts(at)) == 4  # churn trend, risk histogram, tier and segment
    tiers = at.dataframe[0].value
    assert tiers["customers"].sum() == active


def test_retention_list_filters_masks_and_downloads(dash_home, monkeypatch):
    at = open_page(dash_home, "retention-list", monkeypatch)
    latest, size = query(
        dash_home,
        "SELECT list_id, count(*) FROM retention.retention_lists"
        " GROUP BY list_id, as_of ORDER BY as_of DESC LIMIT 1",
    )[0]
    assert at.selectbox(key="list_id").value == latest
    shown = at.dataframe[0].value
    assert len(shown) == size
    assert "customer_id" not in shown.columns and "customer_key" in shown.columns
    ids = {r[0] for r in query(dash_home, "SELECT customer_id FROM retention.retention_lists")}
    assert not ids & set(shown.astype(str).to_numpy().ravel()), "an internal id is on the page"
    assert [b.label for b in at.download_button] == ["Download CSV", "Download XLSX"]

    tier = shown["value_tier"].mode()[0]
    at.multiselect(key="f_value_tier").set_value([tier]).run()
    (n_tier,) = query(
        dash_home,
        "SELECT count(*) FROM retention.retention_lists WHERE list_id = ? AND value_tier = ?",
        [latest, tier],
    )[0]
    assert len(at.dataframe[0].value) == n_tier < size
    assert metric(at, "Customers shown") == f"{n_tier:,}"

    at.multiselect(key="f_value_tier").set_value([]).run()
    at.radio(key="f_group").set_value("control").run()
    (n_control,) = query(
        dash_home,
        "SELECT count(*) FROM retention.retention_lists WHERE list_id = ? AND control_flag",
        [latest],
    )[0]
    assert len(at.dataframe[0].value) == n_control
    at.radio(key="f_group").set_value("all").run()
    at.slider(key="f_deciles").set_value((10, 10)).run()
    assert set(at.dataframe[0].value["risk_decile"]) <= {10}
    assert not at.exception


def test_list_exports_hold_only_masked_keys(dash_home):
    (latest,) = query(
        dash_home, "SELECT list_id FROM retention.list_manifest ORDER BY as_of DESC LIMIT 1"
    )[0]
    frame = data.retention_list(dash_home, latest)
    csv = pl.read_csv(io.BytesIO(data.to_csv(frame)))
    xlsx = pl.read_excel(io.BytesIO(data.to_xlsx(frame)), engine="openpyxl")
    for out in (csv, xlsx):
        assert out.height == frame.height
        assert "customer_id" not in out.columns
        assert out["customer_key"].to_list() == frame["customer_key"].to_list()
    # What the download buttons hand out: customers to contact only.
    contacts = pl.read_csv(io.BytesIO(data.contacts_download(frame, "csv")))
    treated = frame.filter(~pl.col("control_flag"))
    assert contacts["customer_key"].to_list() == treated["customer_key"].to_list()
    assert "control_flag" not in contacts.columns


def test_customer_page_profile_history_and_offers(dash_home, monkeypatch):
    at = open_page(dash_home, "customer", monkeypatch)
    assert at.subheader[0].value == at.selectbox(key="customer_pick").value
    assert len(charts(at)) >= 2  # risk history and at least one monthly series
    # Pick someone who was on a list, through the free-text box.
    cid, n_offers = query(
        dash_home,
        "SELECT customer_id, count(*) FROM retention.retention_lists GROUP BY 1 ORDER BY 2 DESC, 1"
        " LIMIT 1",
    )[0]
    segment, tier = query(
        dash_home,
        "SELECT segment, value_tier FROM feat.customer_snapshot WHERE customer_id = ?"
        " ORDER BY as_of DESC LIMIT 1",
        [cid],
    )[0]
    at.text_input(key="customer_id").set_value(cid).run()
    assert not at.exception
    assert at.subheader[0].value == cid
    assert metric(at, "Segment") == segment and metric(at, "Value tier") == tier
    offers = at.dataframe[1].value
    assert len(offers) == n_offers and set(offers["list_id"]) <= {
        r[0] for r in query(dash_home, "SELECT list_id FROM retention.list_manifest")
    }
    at.text_input(key="customer_id").set_value("NOBODY").run()
    assert any("No customer 'NOBODY'" in i.value for i in at.info)


def test_models_page_shows_champion_and_evaluation_charts(dash_home, monkeypatch):
    from mlflow import MlflowClient

    from dashboards.models import tracking_uri

    at = open_page(dash_home, "models", monkeypatch)
    assert [t.label for t in at.tabs] == ["churn", "credit_risk"]
    uri = tracking_uri(dash_home)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for tab, name in zip(at.tabs, ("churn", "credit_risk"), strict=True):
        champion = client.get_model_version_by_alias(name, "champion")
        champ = next(m.value for m in tab.metric if m.label == "Champion")
        assert champ == f"v{champion.version}"
        versions = tab.dataframe[0].value
        assert champion.run_id in set(versions["run_id"])
        assert len(tab.get("vega_lite_chart")) == 3  # gains, calibration, importance


def test_monitoring_page_summarises_drift_and_embeds_the_report(dash_home, monkeypatch):
    at = open_page(dash_home, "monitoring", monkeypatch)
    decision, n_runs = query(
        dash_home,
        "SELECT first(decision ORDER BY run_at DESC), count(*) FROM monitor.drift_runs",
    )[0]
    assert metric(at, "Latest decision") == decision.upper()
    assert len(at.dataframe[0].value) == n_runs
    features = at.dataframe[1].value
    assert 0 < len(features) <= 20 and {"feature", "method", "drifted"} <= set(features.columns)
    assert at.selectbox(key="report").value.name.startswith("drift_")
    assert len(at.get("iframe")) == 1


def test_campaigns_page_compares_treated_and_control(dash_home, monkeypatch):
    at = open_page(dash_home, "campaigns", monkeypatch)
    list_id = at.selectbox(key="campaign_list").value
    window = at.radio(key="campaign_window").value
    treated, control = query(
        dash_home,
        "SELECT treated_churn_rate, control_churn_rate FROM eval.campaign_results"
        " WHERE list_id = ? AND window_days = ? AND breakdown = 'all'",
        [list_id, window],
    )[0]
    assert metric(at, "Treated churn") == f"{treated:.1%}"
    assert metric(at, "Control churn") == f"{control:.1%}"
    # One test and the interval it implies, its name, the verdict and the ROI interval.
    p_value, low, high, test, verdict, roi_low = query(
        dash_home,
        "SELECT p_value, ci_low, ci_high, test, verdict, roi_low FROM eval.campaign_results"
        " WHERE list_id = ? AND window_days = ? AND breakdown = 'all'",
        [list_id, window],
    )[0]
    assert test in ("score (χ²)", "exact unconditional") and verdict and roi_low is not None
    assert (p_value < 0.05) == (low > 0 or high < 0)
    shown = [e.value for e in (*at.info, *at.warning)]
    assert any(verdict.lower() in v.lower() for v in shown), shown
    assert len(charts(at)) >= 2
    table = at.dataframe[0].value
    assert {"offer", "tier"} & set(table["breakdown"]) and (table["window_days"] == window).all()


def test_filter_list_and_month_filling_are_pure():
    frame = pl.DataFrame(
        {
            "risk_decile": [10, 9, 3],
            "value_tier": ["gold", "basic", "gold"],
            "segment": ["family"] * 3,
            "offer": ["a", "b", "a"],
            "channel": ["sms"] * 3,
            "control_flag": [False, True, False],
        }
    )
    assert data.filter_list(frame).height == 3
    assert data.filter_list(frame, value_tier=["gold"], deciles=(5, 10)).height == 1
    assert data.filter_list(frame, group="control")["value_tier"].to_list() == ["basic"]
    from datetime import date

    timeline = pl.DataFrame(
        {
            "month": [date(2025, 1, 1), date(2025, 3, 1), date(2025, 1, 1)],
            "metric": ["complaints", "complaints", "dropped call rate"],
            "value": [2.0, 1.0, 0.1],
        }
    )
    filled = data.fill_months(timeline, ["complaints"])
    assert filled.filter(pl.col("metric") == "complaints")["value"].to_list() == [2.0, 0.0, 1.0]
    assert filled.filter(pl.col("metric") == "dropped call rate").height == 1


def test_cli_dashboard_runs_streamlit_on_the_work_directory(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import pipelines.cli as cli

    calls = []

    def fake_run(cmd, check=False):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    result = CliRunner().invoke(
        cli.app, ["--home", str(tmp_path / "h"), "dashboard", "--port", "8765"]
    )
    assert result.exit_code == 0, result.output
    (cmd,) = calls
    assert cmd[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(cmd[4]) == APP
    assert cmd[cmd.index("--server.port") + 1] == "8765"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert cmd[-2:] == ["--home", str((tmp_path / "h").resolve())]
    assert "empty state" in result.output


def test_held_list_shows_its_reason_and_offers_no_download(dash_home, tmp_path, monkeypatch):
    """A list held by the calibration watch reaches marketing neither from files nor the cockpit."""
    import duckdb

    home = tmp_path / "held"
    shutil.copytree(dash_home, home)
    reason = "list held for review: mean churn score 0.40 is 6.7× the trailing realised rate 0.06"
    ((latest,),) = query(
        home, "SELECT list_id FROM retention.retention_lists ORDER BY as_of DESC LIMIT 1"
    )
    with duckdb.connect(str(data.warehouse_path(home))) as con:
        con.execute(
            "UPDATE retention.list_manifest SET manifest_json ="
            " json_merge_patch(manifest_json, json_object('held', ?)) WHERE list_id = ?",
            [reason, latest],
        )
    at = open_page(home, "retention-list", monkeypatch)
    assert at.selectbox(key="list_id").value == latest
    assert any(reason in w.value for w in at.warning)
    assert not list(at.download_button)
    at = open_page(home, "overview", monkeypatch)
    assert any(reason in w.value for w in at.warning)
