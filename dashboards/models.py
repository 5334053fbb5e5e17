"""MLflow reads for the Models page: registered versions, aliases, metrics, evaluation artifacts."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from configs.contracts import CHURN_MODEL, CREDIT_MODEL
from dashboards.data import EMPTY_HINT, DashboardDataError, NoData

MODELS = (CHURN_MODEL, CREDIT_MODEL)
METRICS = ("roc_auc", "pr_auc", "top_decile_lift", "brier", "ks", "empc", "n_rows", "positive_rate")
ARTIFACTS = {
    "importance": "feature_importance.json",
    "gains": "gains.json",
    "calibration": "calibration.json",
}


def tracking_uri(home: str | Path, config_files: Sequence[str | Path] = ()) -> str:
    """The work directory's MLflow store, resolved exactly as the pipeline resolves it."""
    from pipelines.store.config import load_settings
    from pipelines.store.errors import ChurnError
    from pipelines.store.workdir import Workdir

    try:
        settings = load_settings([Path(f) for f in config_files], home=home)
    except ChurnError as exc:
        raise DashboardDataError(f"Cannot read the configuration: {exc}") from exc
    wd = Workdir.from_settings(settings)
    # Workdir.tracking_uri creates the store folder; a dashboard must not create state.
    if wd.no_mlflow_store(settings):
        raise NoData(f"{EMPTY_HINT} (no MLflow store under {wd.mlflow})")
    return wd.tracking_uri(settings)


@dataclass
class ModelView:
    name: str
    experiment_id: str
    versions: pl.DataFrame  # one row per registered version, newest first
    aliases: dict[str, str]  # alias -> version
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # version -> kind -> data


def registry(home: str | Path, config_files: Sequence[str | Path] = ()) -> list[ModelView]:
    """Champion, challenger and every other version of each registered model."""
    uri = tracking_uri(home, config_files)
    # A progress bar per artifact download would flood the server log.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow
    from mlflow.exceptions import MlflowException

    # MLflow's notices (migrations, deprecations) are noise in the dashboard's log.
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    views = []
    for name in MODELS:
        try:
            registered = client.get_registered_model(name)
            versions = client.search_model_versions(f"name='{name}'")
        except MlflowException:
            continue
        aliases = {alias: str(v) for alias, v in (registered.aliases or {}).items()}
        by_version: dict[str, list[str]] = {}
        for alias, v in aliases.items():
            by_version.setdefault(v, []).append(alias)
        rows, experiment_id = [], ""
        for mv in sorted(versions, key=lambda m: int(m.version), reverse=True):
            run = client.get_run(mv.run_id)
            experiment_id = experiment_id or run.info.experiment_id
            m = run.data.metrics
            rows.append(
                {
                    "version": str(mv.version),
                    "aliases": ", ".join(sorted(by_version.get(str(mv.version), []))),
                    "validation_as_of": mv.tags.get("validation_as_of", ""),
                    **{k: m.get(k) for k in METRICS},
                    "trained_at": run.info.start_time,
                    "run_id": mv.run_id,
                    "gate": mv.tags.get("gate", ""),
                }
            )
        frame = pl.DataFrame(rows, infer_schema_length=None)
        if frame.height:
            frame = frame.with_columns(pl.from_epoch("trained_at", time_unit="ms"))
        view = ModelView(name, experiment_id, frame, aliases)
        run_ids = dict(zip(frame["version"], frame["run_id"], strict=True)) if frame.height else {}
        for version in dict.fromkeys(aliases.values()):
            if version in run_ids:
                view.artifacts[version] = _evaluation(client, run_ids[version])
        views.append(view)
    if not views:
        raise NoData(f"{EMPTY_HINT} (no registered models in MLflow)")
    return views


def _evaluation(client: Any, run_id: str) -> dict[str, Any]:
    """The JSON twins of the evaluation plots a training run logged (missing ones skipped)."""
    from mlflow.exceptions import MlflowException

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            folder = Path(client.download_artifacts(run_id, "evaluation", tmp))
        except (MlflowException, OSError):
            return out
        for kind, filename in ARTIFACTS.items():
            path = folder / filename
            if path.is_file():
                out[kind] = json.loads(path.read_text(encoding="utf-8"))
    return out
