"""The hand-off to marketing: contact files without controls, statistics that agree, campaigns
sized to learn, exports nobody can weaponise, and config keys that do what they say."""

from __future__ import annotations

import io
import json
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np
import openpyxl
import polars as pl
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from scipy import stats

from pipelines.store.config import load_settings
from pipelines.store.errors import InputError
from retention.evaluation import TOO_FEW_CONTROLS, compare, difference_test, roi
from retention.export_safety import neutralise, safe_name
from retention.outcomes import campaign_outcomes, realised_spend
from retention.policy import decide
from retention.power import campaign_size, detectable_effect
from tests.test_retention import customers, result_cost

AS_OF = date(2025, 6, 30)
# No uplift champion can exist in these homes: skip the MLflow registry look-up it costs.
NO_UPLIFT = {"CHURN_RETENTION__UPLIFT__ENABLED": "false"}
HOSTILE = ['=HYPERLINK("http://x","y")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]


def warehouse(home: Path, frame: pl.DataFrame, contacts: pl.DataFrame | None = None) -> None:
    """Stored scores and snapshot for `frame` at AS_OF, as `churn score` leaves them."""
    from configs.contracts import TABLES, raw_table_ddl

    home.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA raw; CREATE SCHEMA scores; CREATE SCHEMA feat")
    for t in ("customers", "contacts"):
        con.execute(raw_table_ddl(TABLES[t]))
    con.register("f", frame)
    con.execute(
        "CREATE TABLE scores.customer_scores AS SELECT customer_id, DATE '2025-06-30' AS as_of,"
        " churn_probability, risk_decile, credit_pd, credit_grade, 0.0 AS credit_limit,"
        " churn_model_version, credit_model_version, reason_1, reason_2, reason_3, reason_group_1,"
        " reason_group_2, reason_group_3 FROM f"
    )
    con.execute(
        "CREATE TABLE feat.customer_snapshot AS SELECT customer_id, DATE '2025-06-30' AS as_of,"
        " segment, value_tier, lifecycle_stage, monthly_spend FROM f"
    )
    if contacts is not None:
        con.register("c", contacts)
        con.execute("INSERT INTO raw.contacts BY NAME SELECT * FROM c")
    con.close()


def scored(n: int = 600) -> pl.DataFrame:
    # No prior contacts: the contact history comes from raw.contacts, as in production.
    return customers(n).with_columns(
        pl.lit(None, dtype=pl.Date).alias("last_contact_date"),
        pl.lit(0).alias("contacts_in_period"),
    )


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    from pipelines.stages.target import build_retention_list

    home = tmp_path_factory.mktemp("handoff") / "home"
    frame = scored()
    warehouse(home, frame)
    settings = load_settings(home=home, environ=NO_UPLIFT)
    return settings, frame, build_retention_list(settings, AS_OF)


# --- 1. A clean hand-off ----------------------------------------------------------------------


def test_contact_files_hold_no_control_customer_and_control_goes_to_its_own_file(published):
    settings, frame, report = published
    con = duckdb.connect(str(settings.home / "warehouse.duckdb"), read_only=True)
    stored = con.sql(
        "SELECT customer_id, control_flag FROM retention.retention_lists WHERE list_id = ?",
        params=[report.list_id],
    ).pl()
    con.close()
    from pipelines.store.workdir import mask_salt
    from retention.masking import mask_ids

    keys = stored.with_columns(mask_ids(stored["customer_id"], mask_salt(settings)))
    control_keys = set(keys.filter(pl.col("control_flag"))["customer_key"])
    treated_keys = set(keys.filter(~pl.col("control_flag"))["customer_key"])
    assert control_keys and treated_keys
    paths = report.paths
    contact_files = [
        pl.read_parquet(paths["parquet"]),
        pl.read_csv(paths["csv"]),
        pl.read_excel(paths["xlsx"], engine="openpyxl"),
    ]
    for out in contact_files:
        assert set(out["customer_key"]) == treated_keys, "a contact file holds a control customer"
        assert "control_flag" not in out.columns and "customer_id" not in out.columns
    for control in (pl.read_parquet(paths["control_parquet"]), pl.read_csv(paths["control_csv"])):
        assert set(control["customer_key"]) == control_keys
        assert not {"offer", "channel", "offer_cost", "contact_cost", "expected_value"} & set(
            control.columns
        )
    manifest = json.loads(Path(paths["manifest"]).read_text())
    assert manifest["treated"] == report.treated == len(treated_keys)
    for counts in (manifest["by_offer"], manifest["by_tier"], manifest["by_channel"]):
        assert sum(counts.values()) == report.treated  # control customers are not counted
    group = manifest["control_group"]
    assert group["customers"] == len(control_keys) == sum(group["by_tier"].values())
    assert "random" in group["drawn"]
    assert manifest["budget_basis"] == "expected" and "expected" in manifest["budget_caps"]
    assert manifest["spend_expected"] == pytest.approx(report.budget_used, abs=0.05)
    assert manifest["spend_worst_case"] >= manifest["spend_expected"]
    power = manifest["power"]
    assert power["minimum_detectable_effect"] > power["detectable_effect_asked"]
    assert report.warning and "too small" in report.warning  # 600 customers cannot learn 0.76 pt


def test_dashboard_download_holds_only_customers_to_contact():
    from dashboards import data

    frame = pl.DataFrame(
        {
            "customer_key": ["Ka", "Kb", "Kc"],
            "offer": ["discount", "discount", "=1+1"],
            "expected_value": [-3.5, 2.0, 1.0],
            "control_flag": [False, True, False],
        }
    )
    csv = pl.read_csv(io.BytesIO(data.contacts_download(frame, "csv")))
    xlsx = pl.read_excel(io.BytesIO(data.contacts_download(frame, "xlsx")), engine="openpyxl")
    for out in (csv, xlsx):
        assert out["customer_key"].to_list() == ["Ka", "Kc"] and "control_flag" not in out.columns
        assert out["offer"].to_list() == ["discount", "'=1+1"]
        assert out["expected_value"].to_list() == [-3.5, 1.0]
    assert data.download_name("L20250630-abc", "csv") == "L20250630-abc.csv"
    with pytest.raises(data.DashboardDataError, match="not allowed"):
        data.download_name("../../etc/passwd", "csv")


def test_changing_period_days_changes_the_list(tmp_path):
    """Two contacts 50 and 60 days ago: inside a 90-day period they hit the cap of 2, outside a
    45-day one they do not."""
    from pipelines.stages.target import build_retention_list

    frame = scored(400)
    hot = frame.sort("churn_probability", descending=True)["customer_id"].head(80).to_list()
    contacts = pl.DataFrame(
        {
            "contact_id": [f"X{i}" for i in range(2 * len(hot))],
            "list_id": ["Lold"] * (2 * len(hot)),
            "customer_id": hot * 2,
            "offer": ["discount"] * (2 * len(hot)),
            "channel": ["sms"] * (2 * len(hot)),
            "contact_date": [AS_OF - timedelta(days=50)] * len(hot)
            + [AS_OF - timedelta(days=60)] * len(hot),
            "control_flag": [False] * (2 * len(hot)),
            "response": ["declined"] * (2 * len(hot)),
        }
    )
    warehouse(tmp_path / "home", frame, contacts)
    listed = {}
    for days in (90, 45):
        settings = load_settings(
            home=tmp_path / "home",
            environ={"CHURN_RETENTION__CONTACT_POLICY__PERIOD_DAYS": str(days), **NO_UPLIFT},
        )
        assert settings.retention.contact_policy.period_days == days
        build_retention_list(settings, AS_OF)
        con = duckdb.connect(str(tmp_path / "home" / "warehouse.duckdb"), read_only=True)
        listed[days] = {
            r[0]
            for r in con.execute(
                "SELECT customer_id FROM retention.retention_lists l JOIN retention.list_manifest m"
                " USING (list_id) WHERE m.created_at = (SELECT max(created_at) FROM"
                " retention.list_manifest)"
            ).fetchall()
        }
        con.close()
    assert not listed[90] & set(hot), "customers at the contact cap were listed"
    assert listed[45] & set(hot), "contacts outside the period still counted"


def test_configured_landing_folder_is_the_one_ingested(tmp_path):
    from pipelines.stages.ingest import ingest_landing

    elsewhere = tmp_path / "operator_drop"
    settings = load_settings(
        home=tmp_path / "home", environ={"CHURN_INGEST__SOURCE": str(elsewhere)}
    )
    with pytest.raises(InputError, match="operator_drop"):
        ingest_landing(settings)
    elsewhere.mkdir()
    assert ingest_landing(settings).files_seen == 0  # the configured, empty folder was read


def test_every_config_key_is_read_somewhere():
    """`mask_keys` did nothing and is gone; period_days and ingest.source are read by code."""
    from configs.schema import RetentionConfig

    assert "mask_keys" not in RetentionConfig.model_fields
    assert "mask_keys" not in Path("configs/default.yaml").read_text()
    assert "contact_policy.period_days" in Path("pipelines/stages/target.py").read_text()
    assert "settings.ingest.source" in Path("pipelines/stages/ingest.py").read_text()


def test_worst_case_budget_caps_full_offer_costs():
    cfg = load_settings(environ={}).retention
    frame = customers(3000)
    for budget in (500.0, 1000.0):  # below what every contact worth making would cost
        worst = decide(
            frame, cfg.model_copy(update={"budget_basis": "worst_case"}), AS_OF, "L", 3, budget
        ).retention_list.filter(~pl.col("control_flag"))
        full = float((worst["contact_cost"] + worst["offer_cost"]).sum())
        assert 0 < full <= budget + 1e-6
        expected = decide(frame, cfg, AS_OF, "L", 3, budget).retention_list
        # Under the expected basis the same budget buys more contacts whose full cost exceeds it.
        exp_treated = expected.filter(~pl.col("control_flag"))
        assert result_cost(exp_treated) <= budget + 1e-6
        assert float((exp_treated["contact_cost"] + exp_treated["offer_cost"]).sum()) > budget


# --- 2. Campaign statistics that agree --------------------------------------------------------


def test_small_groups_92_treated_8_control_hand_worked():
    """The issue's case: 3 of 92 treated and 2 of 8 control churned. The χ² approximation says
    p = 0.0068 (expected churners in control 0.4, far below 5); the exact unconditional test and
    its interval agree with each other."""
    chi2 = stats.chi2_contingency([[2, 6], [3, 89]], correction=False)[1]
    assert chi2 == pytest.approx(0.0068, abs=1e-4)
    r = compare(treated_n=92, treated_churned=3, control_n=8, control_churned=2)
    assert r["test"] == "exact unconditional"
    assert r["difference"] == pytest.approx(2 / 8 - 3 / 92)
    # Barnard's test (scipy, pooled score statistic, fine nuisance grid) is the same test over
    # the whole nuisance range; ours restricts it to a 99.9% interval and adds γ = 0.001.
    barnard = stats.barnard_exact([[2, 3], [6, 89]], pooled=True, n=200).pvalue
    assert r["p_value"] == pytest.approx(barnard + 0.001, abs=5e-4)
    assert r["p_value"] < 0.05 and 0 < r["ci_low"] < r["difference"] < r["ci_high"]
    # One control churner fewer: not significant, and the interval covers 0.
    r = compare(treated_n=92, treated_churned=6, control_n=8, control_churned=2)
    barnard = stats.barnard_exact([[2, 6], [6, 86]], pooled=True, n=200).pvalue
    assert r["p_value"] == pytest.approx(barnard + 0.001, abs=5e-4)
    assert r["p_value"] > 0.05 and r["ci_low"] < 0 < r["ci_high"]
    assert r["verdict"] == "no detectable difference"
    assert compare(92, 3, 8, 2, min_control=30)["verdict"] == TOO_FEW_CONTROLS


@hsettings(max_examples=40, deadline=None)
@given(
    n_control=st.integers(3, 25),
    n_treated=st.integers(20, 120),
    data=st.data(),
)
def test_p_value_below_alpha_exactly_when_the_interval_excludes_zero(n_control, n_treated, data):
    x_control = data.draw(st.integers(0, n_control))
    x_treated = data.draw(st.integers(0, n_treated))
    p, low, high, _ = difference_test(x_control, n_control, x_treated, n_treated, 0.05)
    assert low <= x_control / n_control - x_treated / n_treated <= high
    assert (p < 0.05) == (low > 0 or high < 0)


def test_outcomes_give_roi_with_its_interval_and_realised_spend():
    n_t, n_c = 92, 8
    frame = pl.DataFrame(
        {
            "control_flag": [False] * n_t + [True] * n_c,
            "offer": ["discount"] * (n_t + n_c),
            "value_tier": ["gold"] * (n_t + n_c),
            "value": [300.0] * (n_t + n_c),
            "contact_cost": [4.0] * (n_t + n_c),
            "offer_cost": [30.0] * (n_t + n_c),
            "disconnect_date": [AS_OF + timedelta(days=10)] * 3
            + [None] * (n_t - 3)
            + [AS_OF + timedelta(days=10)] * 2
            + [None] * (n_c - 2),
            "response": ["accepted"] * 20 + ["declined"] * (n_t - 20) + [None] * n_c,
        },
        schema_overrides={"disconnect_date": pl.Date},
    )
    # 92 contacts at 4 + 20 accepted offers at 30; the control costs nothing.
    assert realised_spend(frame) == pytest.approx(92 * 4 + 20 * 30)
    rows = campaign_outcomes(frame, "L1", AS_OF, AS_OF + timedelta(days=40), (30,), 0.05, 30)
    overall = next(r for r in rows if r["breakdown"] == "all")
    assert overall["cost"] == pytest.approx(968.0) and overall["matured"]
    assert overall["verdict"] == TOO_FEW_CONTROLS
    saves = (2 / 8 - 3 / 92) * 92
    assert overall["roi"] == pytest.approx(roi(saves, 300.0, 968.0))
    assert overall["roi_low"] == pytest.approx(roi(overall["ci_low"] * 92, 300.0, 968.0))
    assert overall["roi_high"] == pytest.approx(roi(overall["ci_high"] * 92, 300.0, 968.0))
    assert overall["roi_low"] < overall["roi"] < overall["roi_high"]
    assert {r["breakdown"] for r in rows} == {"all", "offer", "tier"}


# --- 3. Campaigns sized to learn --------------------------------------------------------------


def test_power_calculation_against_hand_worked_values():
    # Base 6.3 %, 0.76 points, α 0.05, power 0.8, equal arms: p̄ = 0.0592,
    # n = (1.95996·√(2·0.0592·0.9408) + 0.84162·√(0.063·0.937 + 0.0554·0.9446))² / 0.0076²
    #   = (0.65414 + 0.28086)² / 5.776e-5 ≈ 15,136 per arm: the "about 15k".
    size = campaign_size(0.063, 0.0076, 0.05, 0.8)
    assert size.control == size.treated
    assert 15_100 <= size.control <= 15_170
    # Textbook case: 50 % vs 40 %, (1.95996·√(2·0.45·0.55) + 0.84162·√(0.25 + 0.24))² / 0.01
    # = 387.3 → 388 per arm.
    assert campaign_size(0.5, 0.1).control == 388
    # A 10 % control share: the control arm needs fewer than the treated arm, more in total.
    lopsided = campaign_size(0.063, 0.0076, control_share=0.1)
    assert lopsided.total > size.total and lopsided.control < lopsided.treated
    # The minimum detectable effect at the required arms is the effect asked for.
    assert detectable_effect(0.063, size.control, size.treated) == pytest.approx(0.0076, rel=1e-3)
    assert detectable_effect(0.063, 700, 6300) > 0.02
    with pytest.raises(ValueError):
        campaign_size(0.063, 0.07)


def test_learning_campaign_is_power_sized(tmp_path):
    from pipelines.stages.target import build_retention_list

    frame = scored(3000)
    warehouse(tmp_path / "home", frame)
    # A large effect, so 3,000 customers are enough: the share follows the power calculation.
    settings = load_settings(
        home=tmp_path / "home",
        environ={
            "CHURN_RETENTION__CAMPAIGNS__DETECTABLE_EFFECT": "0.08",
            "CHURN_RETENTION__CONTROL_SHARE": "0.5",
            "CHURN_RETENTION__BUDGET": "1000000",
            **NO_UPLIFT,
        },
    )
    r = build_retention_list(settings, AS_OF, learning_share="power")
    manifest = json.loads(Path(r.paths["manifest"]).read_text())
    need = manifest["power"]["needed"]
    assert r.list_id.endswith("-learn")
    # Random draws: the arms land near what the calculation asked for, not the whole base.
    assert 0.6 * (need["control"] + need["treated"]) < r.rows < 0.9 * frame.height
    assert manifest["power"]["minimum_detectable_effect"] == pytest.approx(0.08, rel=0.35)


# --- 4. Exports nobody can weaponise ----------------------------------------------------------


def hostile_list(n: int = 12) -> pl.DataFrame:
    """A stored list with a formula in every text column and negative numbers in numeric ones."""
    h = (HOSTILE * n)[:n]
    return pl.DataFrame(
        {
            "list_id": ["L20250630-deadbeef"] * n,
            "as_of": [AS_OF] * n,
            "customer_id": [f"=C{i}" for i in range(n)],
            "customer_key": [("@" if i % 2 else "") + f"K{i}" for i in range(n)],
            "segment": h,
            "value_tier": h[::-1],
            "lifecycle_stage": h,
            "churn_probability": np.linspace(0.1, 0.9, n),
            "risk_decile": pl.Series(range(n), dtype=pl.Int32),
            "credit_grade": h,
            "value": [-100.0] * n,
            "offer": h[::-1],
            "channel": h,
            "accept_probability": [0.3] * n,
            "save_probability": [-0.01] * n,
            "expected_value": [-5.5] * n,
            "offer_cost": [30.0] * n,
            "contact_cost": [4.0] * n,
            "reasons": h,
            "control_flag": [i % 4 == 0 for i in range(n)],
            "contact_by": [AS_OF + timedelta(days=14)] * n,
        }
    )


def formula_like(value) -> bool:
    return isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r")


def test_exports_neutralise_formulas_in_every_text_column_and_keep_numbers(tmp_path):
    from pipelines.stages.target import export_list

    settings = load_settings(home=tmp_path / "home", environ={})
    rl = hostile_list()
    manifest = {"list_id": "L20250630-deadbeef"}
    for reveal in (None, "fraud investigation #12"):
        paths = export_list(settings, rl, manifest, reveal)
        for key in ("csv", "control_csv"):
            text = Path(paths[key]).read_text()
            out = pl.read_csv(io.StringIO(text), infer_schema_length=0)  # every cell as text
            text_columns = [c for c in out.columns if rl.schema[c] == pl.Utf8]
            assert {"reasons", "segment", "customer_key"} <= set(text_columns)
            for column in text_columns:
                assert not any(formula_like(v) for v in out[column].drop_nulls()), column
            typed = pl.read_csv(paths[key])
            assert typed["churn_probability"].dtype == pl.Float64
            if "expected_value" in typed.columns:
                assert typed["expected_value"].to_list() == [-5.5] * typed.height
            assert (typed["value"] == -100.0).all()
        book = openpyxl.load_workbook(paths["xlsx"])
        sheet = book.active
        header = [c.value for c in sheet[1]]
        for row in sheet.iter_rows(min_row=2):
            for name, cell in zip(header, row, strict=True):
                assert cell.data_type != "f", f"{name} is a formula"
                assert not formula_like(cell.value), name
                if name in ("value", "expected_value", "save_probability"):
                    assert cell.data_type == "n" and cell.value < 0
        if reveal is not None:
            revealed = pl.read_csv(paths["csv"])
            assert revealed["customer_id"].str.starts_with("'=C").all()
            log = (settings.home / "audit.log").read_text()
            assert "reveal list L20250630-deadbeef: fraud investigation #12" in log
    # Parquet is not run by spreadsheets: values stay as stored.
    assert (
        pl.read_parquet(paths["parquet"])["reasons"].to_list()
        == rl.filter(~pl.col("control_flag"))["reasons"].to_list()
    )


def test_neutralise_touches_text_only():
    frame = pl.DataFrame(
        {"t": ["=1", "-x", "ok", None, "a=b"], "n": [-1, 2, -3, 4, 5], "f": [-0.5] * 5}
    )
    out = neutralise(frame)
    assert out["t"].to_list() == ["'=1", "'-x", "ok", None, "a=b"]
    assert out["n"].dtype == pl.Int64 and out["n"].to_list() == [-1, 2, -3, 4, 5]
    assert out["f"].to_list() == [-0.5] * 5


@pytest.mark.parametrize(
    "bad", ["../x", "..", ".", "/etc/passwd", "a/b", "a\\b", "a\x00b", "", "C:\\x", "L1/../../x"]
)
def test_list_ids_and_file_names_cannot_leave_their_folder(bad, tmp_path):
    from pipelines.stages.evaluate import evaluate_list
    from pipelines.stages.target import export_list

    with pytest.raises(ValueError, match="not allowed"):
        safe_name(bad, "list id")
    settings = load_settings(home=tmp_path / "home", environ={})
    with pytest.raises(InputError, match="not allowed") as err:
        export_list(settings, hostile_list(4), {"list_id": bad}, None)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="not allowed"):
        evaluate_list(settings, bad)
    assert not list(tmp_path.rglob("retention_list.*"))
    assert safe_name("L20250630-abc12345-learn") == "L20250630-abc12345-learn"


def test_cli_refuses_a_traversing_list_id_in_one_line(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "pipelines", "--home", str(tmp_path / "home")]
        + ["evaluate", "--list", "../../x"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "not allowed" in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


# ~35 s on 2 shared cores, most of it a new MLflow store's migrations in the CLI process; the
# dashboard tests cover stored results from a real cycle in the default run.
@pytest.mark.slow
def test_evaluate_reports_the_test_verdict_roi_interval_and_spend_against_budget(tmp_path):
    """Through `churn evaluate`: results stored with test, verdict and ROI interval; one line of
    realised spend against the budget and what it capped."""
    import os
    import subprocess
    import sys

    from configs.contracts import TABLES, raw_table_ddl
    from pipelines.stages.target import build_retention_list

    home = tmp_path / "home"
    warehouse(home, scored(800))
    settings = load_settings(home=home, environ=NO_UPLIFT)
    report = build_retention_list(settings, AS_OF)
    con = duckdb.connect(str(home / "warehouse.duckdb"))
    for t in ("disconnects", "usage_daily"):
        con.execute(raw_table_ddl(TABLES[t]))
    con.execute(
        "INSERT INTO raw.usage_daily (customer_id, usage_date) VALUES ('C00000', DATE '2025-12-31')"
    )
    # Every fifth listed customer churns 20 days after the list; treated customers all accepted.
    con.execute(
        "INSERT INTO raw.disconnects (customer_id, disconnect_date, disconnect_type)"
        " SELECT customer_id, DATE '2025-07-20', 'voluntary' FROM retention.retention_lists"
        " WHERE list_id = ? AND hash(customer_id) % 5 = 0",
        [report.list_id],
    )
    con.execute(
        "INSERT INTO raw.contacts (contact_id, list_id, customer_id, offer, channel, contact_date,"
        " control_flag, response) SELECT customer_id, list_id, customer_id, offer, channel,"
        " DATE '2025-07-01', false, 'accepted' FROM retention.retention_lists"
        " WHERE list_id = ? AND NOT control_flag",
        [report.list_id],
    )
    expected_spend = con.execute(
        "SELECT sum(contact_cost + offer_cost) FROM retention.retention_lists"
        " WHERE list_id = ? AND NOT control_flag",
        [report.list_id],
    ).fetchone()[0]
    con.close()
    out = subprocess.run(
        [sys.executable, "-m", "pipelines", "--home", str(home), "evaluate", "--list"]
        + [report.list_id],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **NO_UPLIFT},
    )
    assert out.returncode == 0, out.stderr
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    stored = con.execute(
        "SELECT count(*), count(verdict), count(test), count(roi_low),"
        " max(matured::INT), max(p_value) FILTER (breakdown = 'all' AND window_days = 30),"
        " max(ci_low) FILTER (breakdown = 'all' AND window_days = 30),"
        " max(ci_high) FILTER (breakdown = 'all' AND window_days = 30)"
        " FROM eval.campaign_results WHERE list_id = ?",
        [report.list_id],
    ).fetchone()
    con.close()
    assert stored[0] == stored[1] == stored[2] == stored[3] > 0
    assert stored[4] and (stored[5] < 0.05) == (stored[6] > 0 or stored[7] < 0)
    spend = [line for line in out.stdout.splitlines() if line.startswith("spend:")]
    assert len(spend) == 1 and "capping expected spend" in spend[0], out.stdout
    assert f"realised {expected_spend:,.2f} against a budget of 20,000" in spend[0]
    assert any(
        "all" in line and " p=" in line and "ROI" in line for line in out.stdout.splitlines()
    )
