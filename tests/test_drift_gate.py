"""The drift gate decides ok / warn / retrain from drift and realised-performance figures."""

from __future__ import annotations

import pytest

from configs.schema import DriftGate
from models.drift_gate import DriftMetrics, decide

GATE = DriftGate(
    drifted_share_warn=0.2,
    drifted_share_retrain=0.4,
    prediction_drift_retrain=0.1,
    auc_drop_retrain=0.05,
)


@pytest.mark.parametrize(
    ("m", "status"),
    [
        (DriftMetrics(0.05, 0.01, 0.80, 0.80), "ok"),
        (DriftMetrics(0.25, 0.01), "warn"),
        (DriftMetrics(0.45, 0.01), "retrain"),
        (DriftMetrics(0.05, 0.30), "retrain"),
        (DriftMetrics(0.05, 0.01, 0.70, 0.80), "retrain"),
        (DriftMetrics(0.05, 0.01, 0.78, 0.80), "ok"),
        (DriftMetrics(0.25, None, None, None), "warn"),
    ],
)
def test_gate_branches(m, status):
    decision = decide(m, GATE)
    assert decision.status == status
    assert decision.reasons


def test_retrain_reasons_name_every_trigger():
    decision = decide(DriftMetrics(0.5, 0.2, 0.6, 0.8), GATE)
    text = " ".join(decision.reasons)
    assert "features drifted" in text and "prediction drift" in text and "realised AUC" in text


def test_monitoring_evidently_parsing_flags_a_shifted_feature(tmp_path):
    import warnings

    import numpy as np
    import polars as pl

    from configs.schema import MonitoringConfig
    from models.drift import feature_drift as _feature_drift
    from pipelines.stages.monitor import _evidently

    cfg = MonitoringConfig()
    rng = np.random.default_rng(0)
    ref = pl.DataFrame({f"f{i}": rng.normal(0, 1, 600) for i in range(6)}).with_columns(
        pl.Series("segment", rng.choice(["a", "b"], 600)),
        # A count with few values, as complaints or open tickets are.
        pl.Series("tickets", rng.poisson(0.3, 600).clip(0, 2)),
    )
    cur = ref.sample(600, seed=1, with_replacement=True).with_columns(
        pl.col("f0") + 2.0, pl.col("f1") * 3
    )
    # A count value the reference never saw: chi-square (Evidently's pick for a few-valued
    # column under 1,000 rows) divided by zero and printed scipy's warning to the user.
    cur = cur.with_columns(
        pl.when(pl.int_range(600) < 5).then(7).otherwise("tickets").alias("tickets")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result, paths = _evidently(ref, cur, tmp_path, "2025-01-31", cfg)
    share, rows = _feature_drift(result)
    assert {r["method"] for r in rows} == {"wasserstein", "jensenshannon"}
    drifted = {r["feature"] for r in rows if r["drifted"]}
    assert {"f0", "f1"} <= drifted and "f3" not in drifted
    assert share == pytest.approx(len(drifted) / 8)
    assert all(p.endswith(".html") for p in paths)
    same, _ = _feature_drift(
        _evidently(ref, ref.sample(600, seed=2, with_replacement=True), tmp_path, "x", cfg)[0]
    )
    assert same < 0.3


def _monitored_world(root, drift_month, current_rows: int = 100_000):
    """A small operator: champion trained before month 8, monitored at the end of month 10."""
    from datetime import date

    from pipelines.stages.features import build_snapshots
    from pipelines.stages.ingest import ingest_landing
    from pipelines.stages.monitor import monitor
    from pipelines.stages.train import promote, train_model
    from pipelines.store.config import load_settings
    from simulator import simulate

    settings = load_settings(
        home=root,
        environ={},
        overrides={
            "simulator": {"customers": 1500, "months": 10, "drift_month": drift_month},
            "models": {"trials": 1, "horizon_days": 30, "num_boost_round": 120},
            "monitoring": {"max_current_rows": current_rows},
        },
    )
    simulate(settings.simulator, root, seed=settings.seed)
    ingest_landing(settings)
    build_snapshots(settings, date(2025, 10, 31), history=6)
    train_model(settings, "churn", trials=1, as_of=date(2025, 7, 31))
    promote(settings, "churn")
    return monitor(settings, date(2025, 10, 31))


@pytest.mark.integration
def test_gate_fires_on_an_injected_competitor_launch_and_stays_quiet_without(tmp_path):
    quiet = _monitored_world(tmp_path / "quiet", None)
    # The launch month is compared on a sample of its customers, as a large base would be.
    launch = _monitored_world(tmp_path / "launch", 9, current_rows=1000)
    assert launch.rows_compared["current"] == 1000 < quiet.rows_compared["current"]
    assert quiet.decision == "ok", quiet.reasons
    # The launch moves the whole base: the gate must speak. Since the segment-relative trend
    # features (issue 17) the champion's inputs move less under a market-wide shift, so
    # "warn" is as right as "retrain" here; silence is not.
    assert launch.decision in ("warn", "retrain"), launch.reasons
    assert launch.drifted_share > quiet.drifted_share + 0.1
    # Scores do not balloon: the robustness issue 17 asked for. (Whether they move more or less
    # than in a quiet month is noise on 1,500 customers: 0.13 against 0.17 with the champion
    # trained on customer-grouped splits.)
    assert launch.prediction_drift < 2 * max(quiet.prediction_drift, 0.1)
    assert any(f.startswith("data_") for f in launch.drifted_features)
