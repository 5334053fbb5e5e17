"""Prefect flows: one per stage, and the retention cycle that runs them in order and resumes.

Flow parameters are plain JSON values (work directory, extra config files, dates) so that every
flow can be deployed and scheduled; settings are resolved inside the flow.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from configs.schema import Settings
from pipelines.config import config_hash, load_settings
from pipelines.lock import run_lock
from pipelines.workdir import Workdir, connect, default_as_of

log = logging.getLogger(__name__)

STAGES = ("ingest", "features", "train", "score", "target", "monitor", "evaluate")


def resolve_settings(home: str | None = None, config: list[str] | None = None) -> Settings:
    return load_settings([Path(c) for c in config or []], home=home)


def as_record(obj: Any) -> Any:
    """A JSON-friendly view of a stage report (dataclasses, dates, paths)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: as_record(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): as_record(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [as_record(v) for v in obj]
    if isinstance(obj, date | datetime | Path):
        return str(obj)
    if isinstance(obj, float | int | str | bool) or obj is None:
        return obj
    return str(obj)


# --- the cycle ledger: which stages finished for an as-of date and config ------------------

LEDGER_DDL = """
CREATE SCHEMA IF NOT EXISTS meta;
CREATE TABLE IF NOT EXISTS meta.cycle_ledger (
    as_of DATE, config_hash VARCHAR, stage VARCHAR, completed_at TIMESTAMP, detail VARCHAR
)
"""


def stage_done(settings: Settings, as_of: date, stage: str) -> bool:
    wd = Workdir.from_settings(settings)
    if not wd.db_path.exists():
        return False
    con = connect(wd)
    try:
        con.execute(LEDGER_DDL)
        row = con.execute(
            "SELECT count(*) FROM meta.cycle_ledger WHERE as_of = ? AND config_hash = ? AND stage = ?",
            [as_of, config_hash(settings), stage],
        ).fetchone()
        return bool(row and row[0])
    finally:
        con.close()


def mark_stage(settings: Settings, as_of: date, stage: str, detail: Any) -> None:
    import json

    con = connect(Workdir.from_settings(settings))
    try:
        con.execute(LEDGER_DDL)
        con.execute("BEGIN")
        con.execute(
            "DELETE FROM meta.cycle_ledger WHERE as_of = ? AND config_hash = ? AND stage = ?",
            [as_of, config_hash(settings), stage],
        )
        con.execute(
            "INSERT INTO meta.cycle_ledger VALUES (?, ?, ?, now()::TIMESTAMP, ?)",
            [as_of, config_hash(settings), stage, json.dumps(as_record(detail), default=str)],
        )
        con.execute("COMMIT")
    finally:
        con.close()


def ledger(settings: Settings, as_of: date) -> dict[str, dict[str, Any]]:
    """Completed stages for an as-of date under the current config, with their details."""
    import json

    wd = Workdir.from_settings(settings)
    if not wd.db_path.exists():
        return {}
    con = connect(wd)
    try:
        con.execute(LEDGER_DDL)
        rows = con.execute(
            "SELECT stage, detail FROM meta.cycle_ledger WHERE as_of = ? AND config_hash = ?",
            [as_of, config_hash(settings)],
        ).fetchall()
    finally:
        con.close()
    return {stage: json.loads(detail) for stage, detail in rows}


# --- tasks: retries only where I/O can fail transiently --------------------------------------


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def ingest_task(settings: Settings, source: str | None = None) -> Any:
    from pipelines.ingest import ingest_landing

    return ingest_landing(settings, Path(source) if source else None)


@task(cache_policy=NO_CACHE)
def features_task(settings: Settings, as_of: date, history: int) -> Any:
    from pipelines.feature_store import build_snapshots

    return build_snapshots(settings, as_of, history=history)


@task(cache_policy=NO_CACHE)
def train_task(settings: Settings, model: str, trials: int | None, as_of: date | None) -> Any:
    from pipelines.training import train_model

    return train_model(settings, model, trials=trials, as_of=as_of)


@task(cache_policy=NO_CACHE)
def promote_task(settings: Settings, model: str) -> Any:
    from pipelines.training import promote

    return promote(settings, model)


@task(cache_policy=NO_CACHE)
def score_task(settings: Settings, as_of: date) -> Any:
    from pipelines.scoring import score_customers

    return score_customers(settings, as_of)


@task(cache_policy=NO_CACHE)
def target_task(settings: Settings, as_of: date, budget: float | None) -> Any:
    from pipelines.targeting import build_retention_list

    return build_retention_list(settings, as_of, budget=budget)


@task(cache_policy=NO_CACHE)
def monitor_task(settings: Settings, as_of: date) -> Any:
    from pipelines.monitoring import monitor

    return monitor(settings, as_of)


@task(cache_policy=NO_CACHE)
def uplift_task(settings: Settings, as_of: date | None) -> Any:
    from pipelines.uplift import train_uplift

    return train_uplift(settings, as_of)


@task(cache_policy=NO_CACHE)
def evaluate_task(settings: Settings, list_id: str) -> Any:
    from pipelines.evaluation import evaluate_list

    return evaluate_list(settings, list_id)


# --- stage flows ----------------------------------------------------------------------------


def _locked(settings: Settings, purpose: str):
    wd = Workdir.from_settings(settings).ensure()
    return run_lock(wd.lock_path, purpose, settings.orchestration.lock_timeout_seconds)


@flow(name="ingest")
def ingest_flow(
    home: str | None = None, config: list[str] | None = None, source: str | None = None
):
    """Load new landing files into DuckDB raw tables."""
    settings = resolve_settings(home, config)
    with _locked(settings, "ingest"):
        return as_record(ingest_task(settings, source))


@flow(name="features")
def features_flow(
    home: str | None = None,
    config: list[str] | None = None,
    as_of: date | None = None,
    history: int | None = None,
):
    """Build point-in-time customer snapshots for as_of and the months before it."""
    settings = resolve_settings(home, config)
    with _locked(settings, "features"):
        as_of = as_of or default_as_of(settings)
        k = history or settings.orchestration.history_months
        if settings.executor.kind == "dask":
            from pipelines.executor import build_features_on_dask

            return as_record(build_features_on_dask(settings, as_of, k))
        return as_record(features_task(settings, as_of, k))


@flow(name="train")
def train_flow(
    home: str | None = None,
    config: list[str] | None = None,
    as_of: date | None = None,
    models: list[str] | None = None,
    trials: int | None = None,
    promote: bool = True,
):
    """Train challengers (Optuna + MLflow) and apply the promotion gate."""
    settings = resolve_settings(home, config)
    out: dict[str, Any] = {}
    with _locked(settings, "train"):
        for model in models or ["churn", "credit"]:
            trained = train_task(settings, model, trials, as_of)
            out[model] = {"train": as_record(trained)}
            if promote:
                out[model]["promotion"] = as_record(promote_task(settings, model))
    return out


@flow(name="score")
def score_flow(home: str | None = None, config: list[str] | None = None, as_of: date | None = None):
    """Score every active customer with the champion churn and credit models."""
    settings = resolve_settings(home, config)
    with _locked(settings, "score"):
        as_of = as_of or default_as_of(settings)
        if settings.executor.kind == "dask":
            from pipelines.executor import score_on_dask

            return as_record(score_on_dask(settings, as_of))
        return as_record(score_task(settings, as_of))


@flow(name="target")
def target_flow(
    home: str | None = None,
    config: list[str] | None = None,
    as_of: date | None = None,
    budget: float | None = None,
):
    """Build and publish the retention target list with its control group."""
    settings = resolve_settings(home, config)
    with _locked(settings, "target"):
        return as_record(target_task(settings, as_of or default_as_of(settings), budget))


@flow(name="monitor")
def monitor_flow(
    home: str | None = None,
    config: list[str] | None = None,
    as_of: date | None = None,
    retrain_on_gate: bool = True,
):
    """Drift and realised-performance reports; a 'retrain' decision triggers training."""
    settings = resolve_settings(home, config)
    with _locked(settings, "monitor"):
        as_of = as_of or default_as_of(settings)
        report = monitor_task(settings, as_of)
        record = as_record(report)
        if retrain_on_gate and getattr(report, "decision", None) == "retrain":
            get_run_logger().warning("drift gate says retrain: training challengers now")
            record["retrain"] = train_flow(
                home=str(settings.home), config=config, as_of=as_of, trials=None
            )
        return record


def lists_to_evaluate(settings: Settings) -> list[str]:
    wd = Workdir.from_settings(settings)
    if not wd.db_path.exists():
        return []
    con = connect(wd)
    try:
        rows = con.execute(
            "SELECT DISTINCT l.list_id FROM retention.list_manifest l"
            " WHERE EXISTS (SELECT 1 FROM raw.contacts c WHERE c.list_id = l.list_id)"
            " ORDER BY 1"
        ).fetchall()
    except duckdb.CatalogException:  # no lists or no contacts yet
        return []
    finally:
        con.close()
    return [r[0] for r in rows]


@flow(name="evaluate")
def evaluate_flow(
    home: str | None = None, config: list[str] | None = None, list_id: str | None = None
):
    """Evaluate played-out campaigns against their control groups."""
    settings = resolve_settings(home, config)
    with _locked(settings, "evaluate"):
        ids = [list_id] if list_id else lists_to_evaluate(settings)
        results = {}
        for i in ids:
            report = evaluate_task(settings, i)
            results[i] = {f"{w}d": as_record(report.overall(w)) for w in (30, 100)}
        return {"lists": results}


@flow(name="uplift")
def uplift_flow(
    home: str | None = None, config: list[str] | None = None, as_of: date | None = None
):
    """Train the uplift model on played-out, matured campaigns (skipped until enough exist)."""
    settings = resolve_settings(home, config)
    with _locked(settings, "uplift"):
        return as_record(uplift_task(settings, as_of))


# --- the monthly retention cycle ------------------------------------------------------------


@flow(name="retention-cycle")
def retention_cycle(
    home: str | None = None,
    config: list[str] | None = None,
    as_of: date | None = None,
    trials: int | None = None,
    budget: float | None = None,
) -> dict[str, Any]:
    """Ingest → features → train → score → uplift → target → monitor → evaluate for one as-of date.

    Each stage is recorded in meta.cycle_ledger when it completes; a re-run after a failure skips
    the completed stages (their outputs are already in place) and resumes at the failed one.
    """
    logger = get_run_logger()
    settings = resolve_settings(home, config)
    home_s = str(settings.home)
    wd = Workdir.from_settings(settings).ensure()
    with run_lock(wd.lock_path, "retention cycle", settings.orchestration.lock_timeout_seconds):
        ingest_flow(home=home_s, config=config)
        as_of = as_of or default_as_of(settings)
        done = ledger(settings, as_of)
        summary: dict[str, Any] = {"as_of": str(as_of), "config_hash": config_hash(settings)}

        def run_stage(stage: str, fn, *args, **kwargs) -> Any:
            if stage in done:
                logger.info("stage %s already done for %s: skipped", stage, as_of)
                summary[stage] = {"skipped": True, **done[stage]}
                return done[stage]
            result = fn(*args, **kwargs)
            mark_stage(settings, as_of, stage, result)
            summary[stage] = as_record(result)
            return result

        history = settings.orchestration.history_months
        if "features" in done and _snapshots_stale(settings, as_of):
            done.pop("features")  # late data arrived after the build: rebuild
            logger.info("snapshots up to %s are stale after late data: rebuilding", as_of)
        run_stage(
            "features", features_flow, home=home_s, config=config, as_of=as_of, history=history
        )

        if settings.orchestration.retrain == "every_cycle" or not _has_champions(settings):
            run_stage("train", train_flow, home=home_s, config=config, as_of=as_of, trials=trials)
        run_stage("score", score_flow, home=home_s, config=config, as_of=as_of)
        if settings.retention.uplift.enabled:
            run_stage("uplift", uplift_flow, home=home_s, config=config, as_of=as_of)
        run_stage("target", target_flow, home=home_s, config=config, as_of=as_of, budget=budget)
        run_stage("monitor", monitor_flow, home=home_s, config=config, as_of=as_of)
        # Evaluation always runs: outcomes of earlier lists keep maturing.
        summary["evaluate"] = evaluate_flow(home=home_s, config=config)
        publish_cycle_artifact(summary)
        return summary


def _snapshots_stale(settings: Settings, as_of: date) -> bool:
    """True when ingestion marked a snapshot up to as_of stale (a late file arrived)."""
    con = connect(Workdir.from_settings(settings))
    try:
        row = con.execute(
            "SELECT count(*) FROM feat.build_log WHERE stale AND as_of <= ?", [as_of]
        ).fetchone()
    except duckdb.CatalogException:  # no build log yet
        return False
    finally:
        con.close()
    return bool(row and row[0])


def _has_champions(settings: Settings) -> bool:
    import mlflow

    from pipelines.tracking import alias_missing

    wd = Workdir.from_settings(settings)
    if wd.no_mlflow_store(settings):
        return False  # a client would create the store here, outside experiment_client
    client = mlflow.MlflowClient(tracking_uri=wd.tracking_uri(settings))
    for name in ("churn", "credit_risk"):
        try:
            client.get_model_version_by_alias(name, "champion")
        except mlflow.exceptions.MlflowException as exc:
            if not alias_missing(exc):
                raise  # a broken or locked store is not "no champion": retraining would hide it
            return False
    return True


def cycle_markdown(summary: dict[str, Any]) -> str:
    """The cycle's report for people: list size, expected saves, models, drift, paths."""
    target = summary.get("target") or {}
    monitor = summary.get("monitor") or {}
    score = summary.get("score") or {}
    train = summary.get("train") or {}
    lines = [
        f"# Retention cycle {summary.get('as_of')}",
        "",
        f"config `{summary.get('config_hash')}`",
        "",
        "| item | value |",
        "|---|---|",
        f"| list id | {target.get('list_id', '—')} |",
        f"| customers on list (treated / control) | {target.get('treated', '—')} / {target.get('control', '—')} |",
        f"| budget used | {target.get('budget_used', '—')} |",
        f"| expected saves | {target.get('expected_saves', '—')} |",
        f"| expected profit | {target.get('expected_profit', '—')} |",
        f"| model versions | {score.get('model_versions', '—')} |",
        f"| uplift model | {(summary.get('uplift') or {}).get('explanation', '—')} |",
        f"| drift decision | {monitor.get('decision', '—')} ({monitor.get('drifted_share', '—')} drifted) |",
    ]
    for model, rec in train.items() if isinstance(train, dict) else []:
        if isinstance(rec, dict) and "promotion" in rec:
            lines.append(f"| {model} promotion | {rec['promotion'].get('explanation', '')} |")
    paths = target.get("paths") or {}
    for kind, path in paths.items() if isinstance(paths, dict) else []:
        lines.append(f"| list {kind} | `{path}` |")
    for path in monitor.get("report_paths", []) or []:
        lines.append(f"| report | `{path}` |")
    return "\n".join(lines) + "\n"


def publish_cycle_artifact(summary: dict[str, Any]) -> None:
    key = f"retention-cycle-{summary.get('as_of', 'unknown')}".replace("_", "-")
    create_markdown_artifact(
        markdown=cycle_markdown(summary), key=key, description="Retention cycle summary"
    )
