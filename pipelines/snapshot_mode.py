"""Snapshot mode: the same models and metrics on a customer-level table the user already has."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from configs.schema import Settings
from models import lgbm, metrics
from models.tabular import clean_text, infer_types, target_vector
from pipelines.errors import InputError
from pipelines.workdir import atomic_write_text

log = logging.getLogger(__name__)

METRIC_KEYS = ("roc_auc", "pr_auc", "top_decile_lift", "brier", "ks", "empc")


@dataclass
class SnapshotResult:
    metrics: dict[str, float]
    folds: list[dict[str, float]] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    run_id: str | None = None
    seconds: float = 0.0


def read_table(path: Path) -> pl.DataFrame:
    """Read a CSV with every column as text; clear errors for a missing or malformed file."""
    if not path.is_file():
        raise InputError(f"file not found: {path}")
    try:
        frame = pl.read_csv(
            path, infer_schema=False, truncate_ragged_lines=False, encoding="utf8-lossy"
        )
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, OSError) as exc:
        raise InputError(f"cannot read {path} as CSV: {str(exc).splitlines()[0][:200]}") from None
    if frame.height < 20 or frame.width < 2:
        raise InputError(
            f"{path} has {frame.height} rows and {frame.width} columns: too small to model"
        )
    return frame.rename({c: c.strip() for c in frame.columns})


def prepare(
    frame: pl.DataFrame, target: str, positive: str, id_col: str | None, drop: list[str]
) -> tuple[pl.DataFrame, np.ndarray, list[str]]:
    for col in [c for c in [target, id_col, *drop] if c]:
        if col not in frame.columns:
            raise InputError(
                f"column {col!r} not found; columns are: {', '.join(frame.columns[:30])}"
            )
    try:
        y = target_vector(clean_text(frame.select(target)), target, positive).to_numpy()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    features = [c for c in frame.columns if c not in {target, id_col, *drop}]
    x = infer_types(clean_text(frame.select(features)))
    # Columns that carry nothing (all null or a single value) only add noise.
    keep = [c for c in x.columns if x[c].n_unique() > 1 and x[c].null_count() < x.height]
    return x.select(keep), y.astype(float), keep


def _split_inner(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    return train_test_split(idx, test_size=0.2, stratify=y, random_state=seed)


def _fit_eval(x_tr, y_tr, x_te, y_te, cols, params, settings: Settings, task: str, seed: int):
    inner_tr, inner_va = _split_inner(y_tr, seed)
    model = lgbm.fit(
        x_tr[inner_tr],
        y_tr[inner_tr],
        x_tr[inner_va],
        y_tr[inner_va],
        cols,
        params,
        settings.models.num_boost_round,
        settings.models.early_stopping_rounds,
        settings.models.calibration,
        seed,
        refit=True,
    )
    p = model.predict(x_te)
    return metrics.summary(y_te, p, task, settings.models.empc.model_dump()), model


def run_snapshot(
    settings: Settings,
    data: Path,
    target: str,
    positive: str,
    id_col: str | None = None,
    drop: list[str] | None = None,
    test: Path | None = None,
    task: str = "churn",
    trials: int = 1,
    metrics_out: Path | None = None,
    track: bool = True,
) -> SnapshotResult:
    """Stratified 5-fold CV (or train on `data`, evaluate on `test`), tracked in MLflow."""
    from sklearn.model_selection import StratifiedKFold

    started = time.perf_counter()
    drop = drop or []
    frame = read_table(data)
    x, y, cols = prepare(frame, target, positive, id_col, drop)
    seed = settings.seed
    params: dict = {}
    if trials > 1:
        tr, va = _split_inner(y, seed)
        params, _ = lgbm.tune(
            x[tr],
            y[tr],
            x[va],
            y[va],
            cols,
            settings.models.search_space,
            trials,
            settings.models.num_boost_round,
            settings.models.early_stopping_rounds,
            seed,
            show_progress_bar=False,
        )
    folds = []
    if test is not None:
        test_frame = read_table(test)
        x_te, y_te, _ = prepare(test_frame, target, positive, id_col, drop)
        missing = [c for c in cols if c not in x_te.columns]
        if missing:
            raise InputError(f"test file lacks column(s): {', '.join(missing)}")
        x_te = x_te.select(cols).with_columns(
            [pl.col(c).cast(x.schema[c], strict=False) for c in cols]
        )
        m, _ = _fit_eval(x, y, x_te, y_te, cols, params, settings, task, seed)
        folds.append(m)
    else:
        skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        for k, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y)):
            m, _ = _fit_eval(x[tr], y[tr], x[te], y[te], cols, params, settings, task, seed + k)
            folds.append(m)
    keys = [k for k in METRIC_KEYS if task == "churn" or k != "empc"]
    result = {k: float(np.mean([f[k] for f in folds])) for k in keys}
    result["n_rows"] = float(len(y))
    result["positive_rate"] = float(y.mean())
    out = SnapshotResult(result, folds, params, seconds=round(time.perf_counter() - started, 2))
    if track:
        out.run_id = _track(settings, data, target, task, out)
    if metrics_out is not None:
        atomic_write_text(Path(metrics_out), json.dumps(result, indent=2))
    return out


def _track(settings: Settings, data: Path, target: str, task: str, result: SnapshotResult) -> str:
    import mlflow

    from pipelines.tracking import experiment_client

    client, experiment_id = experiment_client(settings)
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"snapshot-{Path(data).stem}"
    ) as run:
        mlflow.set_tags(
            {"mode": "snapshot", "task": task, "data": Path(data).name, "target": target}
        )
        mlflow.log_params({k: v for k, v in result.params.items()} or {"params": "defaults"})
        mlflow.log_metrics(result.metrics)
        for i, fold in enumerate(result.folds):
            mlflow.log_metrics(
                {f"fold_{k}": v for k, v in fold.items() if k in METRIC_KEYS}, step=i
            )
    del client
    return run.info.run_id
