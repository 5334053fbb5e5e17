"""Each stage's one way in: the run lock where it writes, then the configured executor.

The `churn` commands and the Prefect flows both call these functions, so a stage takes the
same lock and runs on the same executor however it is started. Locks re-enter within one
process, so a cycle that holds the lock calls its stages freely.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

from configs.schema import Settings
from pipelines.run.lock import run_lock
from pipelines.store.workdir import Workdir, prepare_prefect_env


def locked(settings: Settings, purpose: str):
    """The work directory's run lock, waiting up to the configured timeout."""
    wd = Workdir.from_settings(settings).ensure()
    return run_lock(wd.lock_path, purpose, settings.orchestration.lock_timeout_seconds)


def on_dask(settings: Settings) -> bool:
    return settings.executor.kind == "dask"


def ingest(settings: Settings, source: Path | str | None = None) -> Any:
    from pipelines.stages.ingest import ingest_landing

    with locked(settings, "ingest"):
        return ingest_landing(settings, Path(source) if source else None)


def features(settings: Settings, as_of: date, history: int = 1) -> Any:
    with locked(settings, "features"):
        if on_dask(settings):
            return _features_on_dask(settings, as_of, history)
        from pipelines.stages.features import build_snapshots

        return build_snapshots(settings, as_of, history=history)


def train(
    settings: Settings, model: str, trials: int | None = None, as_of: date | None = None
) -> Any:
    # The final refit goes to the cluster inside train_model when executor.kind is dask.
    from pipelines.stages.train import train_model

    with locked(settings, f"train {model}"):
        return train_model(settings, model, trials=trials, as_of=as_of)


def promote(settings: Settings, model: str, force: bool = False, reason: str | None = None) -> Any:
    from pipelines.stages.train import promote as promote_model

    with locked(settings, f"promote {model}"):
        return promote_model(settings, model, force=force, reason=reason)


def score(settings: Settings, as_of: date) -> Any:
    with locked(settings, "score"):
        if on_dask(settings):
            return _score_on_dask(settings, as_of)
        from pipelines.stages.score import score_customers

        return score_customers(settings, as_of)


def target(
    settings: Settings,
    as_of: date,
    budget: float | None = None,
    reveal_reason: str | None = None,
    learning_share: float | Literal["power"] | None = None,
) -> Any:
    from pipelines.stages.target import build_retention_list

    with locked(settings, "target"):
        return build_retention_list(settings, as_of, budget, reveal_reason, learning_share)


def uplift(settings: Settings, as_of: date | None = None) -> Any:
    from pipelines.stages.uplift import train_uplift

    with locked(settings, "uplift"):
        return train_uplift(settings, as_of)


def evaluate(settings: Settings, list_id: str) -> Any:
    from pipelines.stages.evaluate import evaluate_list

    with locked(settings, "evaluate"):
        return evaluate_list(settings, list_id)


def monitor(settings: Settings, as_of: date, reference_as_of: list[date] | None = None) -> Any:
    from pipelines.stages.monitor import monitor as monitor_stage

    with locked(settings, "monitor"):
        return monitor_stage(settings, as_of, reference_as_of)


# --- Dask: each customer-hash partition is a Prefect task on the cluster --------------------
# Prefect is imported only here, so `churn score` on the local executor starts without it.


def _features_on_dask(settings: Settings, as_of: date, history: int):
    prepare_prefect_env(settings)
    from prefect import flow

    from pipelines.stages.features import build_snapshots_partitioned
    from pipelines.store import cluster

    @flow(name="features-on-dask", validate_parameters=False)
    def features_on_dask(settings: Settings, as_of: date, history: int):
        return build_snapshots_partitioned(settings, as_of, history, cluster.submit_parts)

    runner = cluster.task_runner(settings)
    return features_on_dask.with_options(task_runner=runner)(settings, as_of, history)


def _score_on_dask(settings: Settings, as_of: date):
    prepare_prefect_env(settings)
    from prefect import flow

    from pipelines.stages.score import score_customers
    from pipelines.store import cluster

    @flow(name="score-on-dask", validate_parameters=False)
    def score_on_dask(settings: Settings, as_of: date):
        return score_customers(settings, as_of, cluster.submit_parts)

    report = score_on_dask.with_options(task_runner=cluster.task_runner(settings))(settings, as_of)
    report.executor = "dask"
    return report
