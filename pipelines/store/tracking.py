"""MLflow plumbing: the tracking store under the work directory, experiments, quiet logging."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from configs.schema import Settings
from pipelines.store.workdir import Workdir

log = logging.getLogger(__name__)


def experiment_client(settings: Settings):
    """Point MLflow at this work directory's store and return (client, experiment id)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    import mlflow

    # MLflow's own notices (pickling advice, "created version N") would drown the CLI output.
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    wd = Workdir.from_settings(settings)
    uri = wd.tracking_uri(settings)
    if wd.no_mlflow_store(settings):
        _create_store_whole(wd.mlflow_db)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = settings.tracking.experiment
    exp = client.get_experiment_by_name(name)
    if exp is None:
        artifacts = None if settings.tracking.tracking_uri else wd.artifact_location()
        experiment_id = client.create_experiment(name, artifact_location=artifacts)
    else:
        experiment_id = exp.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return client, experiment_id


def _create_store_whole(db: Path) -> None:
    """Create the local MLflow store under another name and rename it into place when ready.

    MLflow builds its SQLite schema in dozens of migrations; a run killed among them leaves a
    store that every later run fails to open ("table ... already exists"). Built aside, a kill
    leaves only a scratch file, discarded by the next run.
    """
    import mlflow

    scratch = db.with_name(db.name + ".creating")
    scratch.unlink(missing_ok=True)
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{scratch}").search_experiments(max_results=1)
    os.replace(scratch, db)


def git_commit() -> str:
    """The code version, or 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
