"""Drift and realised-performance monitoring with Evidently; results feed the drift gate."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import polars as pl
from scipy.stats import wasserstein_distance

from configs.contracts import CHURN_MODEL
from configs.schema import MonitoringConfig, Settings
from models import metrics
from models.drift import excluded, feature_drift, reference_dates
from models.drift_gate import DriftMetrics, decide
from pipelines.stages.features import load_snapshots
from pipelines.store.errors import InputError
from pipelines.store.registry import load_bundle
from pipelines.store.tracking import experiment_client
from pipelines.store.warehouse import MONITOR_DDL, connect
from pipelines.store.workdir import Workdir, atomic_path

log = logging.getLogger(__name__)


@dataclass
class MonitorReport:
    as_of: date
    reference: list[date]
    drifted_share: float
    drifted_features: list[str]
    prediction_drift: float | None
    realised_auc: float | None
    realised_lift: float | None
    decision: str
    reasons: list[str]
    report_paths: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rows_compared: dict[str, int] = field(default_factory=dict)


def _evidently(
    reference: pl.DataFrame, current: pl.DataFrame, folder, as_of: date, cfg: MonitoringConfig
):
    from evidently import Report
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    ref, cur = reference.to_pandas(), current.to_pandas()
    preset = DataDriftPreset(
        num_method=cfg.drift_method_numeric, cat_method=cfg.drift_method_categorical
    )
    drift = Report([preset]).run(cur, ref)
    quality = Report([DataSummaryPreset()]).run(cur, ref)
    paths = []
    for name, snap in (("drift", drift), ("quality", quality)):
        target = folder / f"{name}_{as_of}.html"
        with atomic_path(target) as tmp:
            snap.save_html(str(tmp))
        paths.append(str(target))
    return drift.dict(), paths


def monitor(
    settings: Settings, as_of: date, reference_as_of: list[date] | None = None
) -> MonitorReport:
    """Compare the champion's reference snapshot with the one at as_of; decide ok / warn / retrain."""
    started = time.perf_counter()
    wd = Workdir.from_settings(settings).ensure()
    model, version = load_bundle(settings, CHURN_MODEL, "champion")
    client, experiment_id = experiment_client(settings)
    mv = client.get_model_version_by_alias("churn", "champion")
    run = client.get_run(mv.run_id)
    if reference_as_of is None:
        reference_as_of = reference_dates(run.data.params, settings.monitoring.reference)
    if not reference_as_of:
        raise InputError("no reference period: pass --reference DATE")
    reference_auc = run.data.metrics.get("roc_auc")
    features = model.features.columns
    ref = load_snapshots(settings, reference_as_of)
    if ref.height > settings.monitoring.max_reference_rows:
        ref = ref.sample(settings.monitoring.max_reference_rows, seed=settings.seed)
    cur = load_snapshots(settings, [as_of])
    if cur.is_empty():
        raise InputError(f"no snapshot for {as_of}: run `churn features --as-of {as_of}`")
    if cur.height > settings.monitoring.max_current_rows:
        cur = cur.sample(settings.monitoring.max_current_rows, seed=settings.seed)
    # Columns empty on either side carry no distribution to compare; calendar-driven ones
    # (tenure, days to contract end) move every month by construction and are not drift.
    usable = [
        c
        for c in features
        if ref[c].null_count() < ref.height
        and cur[c].null_count() < cur.height
        and not excluded(c, settings.monitoring.exclude_features)
    ]
    result, paths = _evidently(
        ref.select(usable), cur.select(usable), wd.reports, as_of, settings.monitoring
    )
    share, per_feature = feature_drift(result)
    # The validation reference is out-of-sample for the champion, like the current month;
    # in-sample training predictions are sharper and would read as drift on their own.
    p_ref, p_cur = model.predict(ref), model.predict(cur)
    prediction_drift = float(wasserstein_distance(p_ref, p_cur) / max(np.std(p_ref), 1e-9))

    # Realised performance of scores actually used, once their labels have matured.
    realised_auc = realised_lift = None
    con = connect(wd)
    try:
        con.execute(MONITOR_DDL)
        label = f"churn_{settings.features.horizons_days[0]}d"
        scored = con.execute(
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema = 'scores' AND table_name = 'customer_scores'"
        ).fetchall()[0][0]  # fetchall: an unconsumed result would block the con.sql below
        matured = (
            pl.DataFrame()
            if not scored
            else con.sql(
                f"""SELECT s.churn_probability AS p, f.{label} AS y FROM scores.customer_scores s
                JOIN feat.customer_snapshot f USING (customer_id, as_of)
                WHERE f.{label} IS NOT NULL AND s.as_of = (
                    SELECT max(s2.as_of) FROM scores.customer_scores s2
                    JOIN feat.customer_snapshot f2 USING (customer_id, as_of)
                    WHERE f2.{label} IS NOT NULL AND s2.as_of < $as_of)""",  # noqa: S608 - label from validated config
                params={"as_of": as_of},
            ).pl()
        )
        if matured.height and matured["y"].n_unique() == 2:
            y, p = matured["y"].to_numpy(), matured["p"].to_numpy()
            realised_auc = metrics.summary(y, p, "credit")["roc_auc"]
            realised_lift = metrics.top_decile_lift(y, p)
        decision = decide(
            DriftMetrics(share, prediction_drift, realised_auc, reference_auc),
            settings.monitoring.gate,
        )
        drifted = [r["feature"] for r in per_feature if r["drifted"]]
        con.execute("BEGIN")
        con.execute("DELETE FROM monitor.drift_runs WHERE as_of = ?", [as_of])
        con.execute("DELETE FROM monitor.feature_drift WHERE as_of = ?", [as_of])
        con.execute(
            "INSERT INTO monitor.drift_runs VALUES (now()::TIMESTAMP, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                as_of,
                ",".join(map(str, reference_as_of)),
                share,
                len(drifted),
                prediction_drift,
                realised_auc,
                realised_lift,
                reference_auc,
                decision.status,
                json.dumps(decision.reasons),
                paths[0],
            ],
        )
        if per_feature:
            con.register("_fd", pl.DataFrame(per_feature))
            con.execute(
                "INSERT INTO monitor.feature_drift SELECT now()::TIMESTAMP, ?, feature, method, drift_score, drifted FROM _fd",
                [as_of],
            )
        con.execute("COMMIT")
    finally:
        con.close()
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id, run_name=f"monitor-{as_of}"):
        mlflow.set_tags(
            {"stage": "monitor", "decision": decision.status, "champion_version": version}
        )
        mlflow.log_params({"reference_rows": ref.height, "current_rows": cur.height})
        mlflow.log_metrics(
            {
                k: v
                for k, v in {
                    "drifted_share": share,
                    "prediction_drift": prediction_drift,
                    "realised_auc": realised_auc,
                    "realised_lift": realised_lift,
                }.items()
                if v is not None
            }
        )
    return MonitorReport(
        as_of,
        reference_as_of,
        share,
        drifted,
        prediction_drift,
        realised_auc,
        realised_lift,
        decision.status,
        decision.reasons,
        paths,
        round(time.perf_counter() - started, 2),
        {"reference": ref.height, "current": cur.height},
    )
