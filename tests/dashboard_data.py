"""A tiny but real work directory for the dashboard tests: the demo pipeline on a small operator."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest

CONFIG = """
demo: {customers: 400, initial_months: 8, cycles: 1, trials: 1, drift_month: null}
models:
  horizon_days: 30
  num_boost_round: 80
  early_stopping_rounds: 15
  # The cockpit tests need a published list; 400 customers (a handful of churners) cannot train a
  # model that clears the quality floor, which tests/test_flows.py checks on its own.
  promotion: {min_roc_auc: 0.0, min_pr_auc_lift: 0.0}
orchestration: {history_months: 4}
# The cockpit tests need a list with both arms. On 400 customers with a 30-day horizon the churn
# scores are small, and under the default response prior (half a save per take-up, 4.5 % backfire)
# nobody is worth a contact: this operator values a customer over five years, and a take-up
# saves the customer outright.
retention:
  value_horizon_months: 60
  response_prior: {save_given_accept: 1.0, backfire_rate: 0.0}
# Never retrain from the drift gate: a tiny operator drifts by chance, and retraining doubles the time.
monitoring:
  gate: {drifted_share_warn: 0.9, drifted_share_retrain: 1.0, prediction_drift_retrain: 1.0, auc_drop_retrain: 1.0}
  # Nor hold the list: a model calibrated on ~80 rows (10 churners) sits 2-3x off the realised
  # rate by chance, and these tests need a published list (tests/test_market_shift.py holds one).
  calibration: {max_ratio: 10.0}
  # Evidently's time grows with the column count: watch a third of the features.
  exclude_features: [tenure_days, days_to_contract_end, handset_age_months, "days_since_*", "*_7d", "*_180d", "*_prev60", "*_90d"]
"""

_built: dict[str, Path] = {}


def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the real demo (simulate, cycles, play lists forward, evaluate) once per session."""
    if "home" in _built:
        return _built["home"]
    from prefect.testing.utilities import prefect_test_harness

    from pipelines.run.demo import run_demo
    from pipelines.store.config import load_settings

    root = tmp_path_factory.mktemp("dashboard")
    config = root / "small.yaml"
    config.write_text(CONFIG)
    home = root / "home"
    settings = load_settings([config], home=home, environ={})
    started = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=120):
        run_demo(settings, [str(config)], fresh=True, say=lambda _: None)
    print(f"dashboard demo home built in {time.perf_counter() - started:.0f} s")
    _built["home"] = home
    return home


def query(home: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    try:
        return con.sql(sql, params=params or []).fetchall()
    finally:
        con.close()
