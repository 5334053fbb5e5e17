"""Prefect flows: one per stage, and the retention cycle that runs them in order and resumes.

Flow parameters are plain JSON values (work directory, extra config files, dates) so that every
flow can be deployed and scheduled; settings are resolved inside the flow.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from configs.schema import Settings
from pipelines.run import entry
from pipelines.run.ledger import as_record, ledger, mark_stage
from pipelines.store.config import config_hash, load_settings
from pipelines.store.registry import has_champions
from pipelines.store.warehouse import connect, default_as_of
from pipelines.store.workdir import Workdir

log = logging.getLogger(__name__)


def resolve_settings(home: str | None = None, config: list[str] | None = None) -> Settings:
    return load_settings([Path(c) for c in config or []], home=home)


# --- tasks: retries only where I/O can fail transiently --------------------------------------


@task(retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def ingest_task(settings: Settings, source: str | None = None) -> Any:
    return entry.ingest(settings, source)


@task(cache_policy=NO_CACHE)
def features_task(settings: Settings, as_of: date, history: int) -> Any:
    return entry.features(settings, as_of, history)


@task(cache_policy=NO_CACHE)
def train_task(settings: Settings, model: str, trials: int | None, as_of: date | None) -> Any:
    return entry.train(settings, model, trials, as_of)


@task(cache_policy=NO_CACHE)
def promote_task(settings: Settings, model: str) -> Any:
    return entry.promote(settings, model)


@task(cache_policy=NO_CACHE)
def score_task(settings: Settings, as_of: date) -> Any:
    return entry.score(settings, as_of)


@task(cache_policy=NO_CACHE)
def target_task(settings: Settings, as_of: date, budget: float | None) -> Any:
    return entry.target(settings, as_of, budget)


@task(cache_policy=NO_CACHE)
def monitor_task(settings: Settings, as_of: date) -> Any:
    return entry.monitor(settings, as_of)


@task(cache_policy=NO_CACHE)
def uplift_task(settings: Settings, as_of: date | None) -> Any:
    return entry.uplift(settings, as_of)


@task(cache_policy=NO_CACHE)
def evaluate_task(settings: Settings, list_id: str) -> Any:
    return entry.evaluate(settings, list_id)


# --- stage flows ----------------------------------------------------------------------------


@flow(name="ingest")
def ingest_flow(
    home: str | None = None, config: list[str] | None = None, source: str | None = None
):
    """Load new landing files into DuckDB raw tables."""
    settings = resolve_settings(home, config)
    with entry.locked(settings, "ingest"):
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
    with entry.locked(settings, "features"):
        as_of = as_of or default_as_of(settings)
        k = history or settings.orchestration.history_months
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
    with entry.locked(settings, "train"):
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
    with entry.locked(settings, "score"):
        as_of = as_of or default_as_of(settings)
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
    with entry.locked(settings, "target"):
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
    with entry.locked(settings, "monitor"):
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
    except Exception:  # no lists or no contacts yet
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
    with entry.locked(settings, "evaluate"):
        ids = [list_id] if list_id else lists_to_evaluate(settings)
        results = {}
        for i in ids:
            report = evaluate_task(settings, i)
            windows = settings.retention.evaluation_windows_days
            results[i] = {f"{w}d": as_record(report.overall(w)) for w in windows}
        return {"lists": results}


@flow(name="uplift")
def uplift_flow(
    home: str | None = None, config: list[str] | None = None, as_of: date | None = None
):
    """Train the uplift model on played-out, matured campaigns (skipped until enough exist)."""
    settings = resolve_settings(home, config)
    with entry.locked(settings, "uplift"):
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
    with entry.locked(settings, "retention cycle"):
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

        if settings.orchestration.retrain == "every_cycle" or not has_champions(settings):
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
    except Exception:  # no build log yet
        return False
    finally:
        con.close()
    return bool(row and row[0])


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
