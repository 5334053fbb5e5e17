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
from models import blend, lgbm, metrics
from models.tabular import (
    add_family_sums,
    clean_text,
    column_families,
    infer_types,
    target_vector,
)
from pipelines.store.errors import InputError
from pipelines.store.workdir import atomic_write_text

log = logging.getLogger(__name__)

METRIC_KEYS = ("roc_auc", "pr_auc", "top_decile_lift", "brier", "ks", "empc")


@dataclass
class SnapshotResult:
    metrics: dict[str, float]
    folds: list[dict[str, float]] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    fold_params: list[dict] = field(default_factory=list)
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


def _fit_tree(x, y, cols, params, settings: Settings, seed: int) -> lgbm.TrainedModel:
    """LightGBM with early stopping and calibration on an inner 20 %, then refit on all rows."""
    inner_tr, inner_va = _split_inner(y, seed)
    return lgbm.fit(
        x[inner_tr],
        y[inner_tr],
        x[inner_va],
        y[inner_va],
        cols,
        params,
        settings.models.snapshot.num_boost_round,
        settings.models.early_stopping_rounds,
        settings.models.calibration,
        seed,
        refit=True,
    )


def _tune(x, y, cols, settings: Settings, trials: int, seed: int) -> dict:
    """Optuna on an inner split of the training rows only (never the evaluation rows)."""
    if trials <= 1:
        return {}
    tr, va = _split_inner(y, seed)
    params, _ = lgbm.tune(
        x[tr],
        y[tr],
        x[va],
        y[va],
        cols,
        settings.models.snapshot.search_space,
        trials,
        settings.models.snapshot.num_boost_round,
        settings.models.early_stopping_rounds,
        seed,
        show_progress_bar=False,
    )
    return params


def _fit_eval(x_tr, y_tr, x_te, y_te, cols, settings: Settings, task: str, trials: int, seed: int):
    """Everything that is chosen (parameters, blend weight) is chosen on the training rows."""
    params = _tune(x_tr, y_tr, cols, settings, trials, seed)
    snap = settings.models.snapshot
    if snap.blend:
        model = blend.fit_blend(
            x_tr,
            y_tr,
            cols,
            lambda xf, yf, s: _fit_tree(xf, yf, cols, params, settings, s),
            folds=snap.blend_folds,
            cs=snap.linear_c,
            seed=seed,
        )
        info = {**params, **model.info}
    else:
        model = _fit_tree(x_tr, y_tr, cols, params, settings, seed)
        info = dict(params)
    p = model.predict(x_te)
    return metrics.summary(y_te, p, task, settings.models.empc.model_dump()), info


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
    """Stratified 5-fold CV (or train on `data`, evaluate on `test`), tracked in MLflow.

    The model is LightGBM blended with a logistic regression (settings.models.snapshot); the
    blend weight is chosen by an inner CV on the training rows of each fold.
    """
    from sklearn.model_selection import StratifiedKFold

    started = time.perf_counter()
    drop = drop or []
    frame = read_table(data)
    x, y, base = prepare(frame, target, positive, id_col, drop)
    # Families come from the training file's header and types only, never from its values.
    families = column_families(x) if settings.models.snapshot.family_sums else {}
    x = add_family_sums(x, families)
    cols = x.columns
    seed = settings.seed
    params: list[dict] = []
    folds = []
    if test is not None:
        test_frame = read_table(test)
        x_te, y_te, _ = prepare(test_frame, target, positive, id_col, drop)
        missing = [c for c in base if c not in x_te.columns]
        if missing:
            raise InputError(f"test file lacks column(s): {', '.join(missing)}")
        x_te = x_te.select(base).with_columns(
            [pl.col(c).cast(x.schema[c], strict=False) for c in base]
        )
        x_te = add_family_sums(x_te, families)
        m, info = _fit_eval(x, y, x_te, y_te, cols, settings, task, trials, seed)
        folds.append(m)
        params.append(info)
    else:
        skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
        for k, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y)):
            m, info = _fit_eval(x[tr], y[tr], x[te], y[te], cols, settings, task, trials, seed + k)
            folds.append(m)
            params.append(info)
    keys = [k for k in METRIC_KEYS if task == "churn" or k != "empc"]
    result = {k: float(np.mean([f[k] for f in folds])) for k in keys}
    result["n_rows"] = float(len(y))
    result["positive_rate"] = float(y.mean())
    summary = {**_summarise(params), **({"family_sums": len(families)} if families else {})}
    seconds = round(time.perf_counter() - started, 2)
    out = SnapshotResult(result, folds, summary, params, seconds=seconds)
    if track:
        out.run_id = _track(settings, data, target, task, out)
    if metrics_out is not None:
        atomic_write_text(Path(metrics_out), json.dumps(result, indent=2))
    return out


def _summarise(fold_params: list[dict]) -> dict:
    """One value per key: the value itself if every fold agrees, else the fold values in order."""
    keys = list(dict.fromkeys(k for p in fold_params for k in p))
    out = {}
    for k in keys:
        values = [p.get(k) for p in fold_params]
        out[k] = values[0] if len(set(map(str, values))) == 1 else ",".join(map(str, values))
    return out


def _track(settings: Settings, data: Path, target: str, task: str, result: SnapshotResult) -> str:
    import mlflow

    from pipelines.store.tracking import experiment_client

    client, experiment_id = experiment_client(settings)
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"snapshot-{Path(data).stem}"
    ) as run:
        mlflow.set_tags(
            {
                "mode": "snapshot",
                "task": task,
                "data": Path(data).name,
                "target": target,
                "model": "lightgbm+logistic blend"
                if settings.models.snapshot.blend
                else "lightgbm",
            }
        )
        mlflow.log_params({k: v for k, v in result.params.items()} or {"params": "defaults"})
        mlflow.log_metrics(result.metrics)
        for i, fold in enumerate(result.folds):
            mlflow.log_metrics(
                {f"fold_{k}": v for k, v in fold.items() if k in METRIC_KEYS}, step=i
            )
        for i, info in enumerate(result.fold_params):
            # Blend components and weights per fold, so a run shows what was actually mixed.
            mlflow.log_metrics(
                {
                    f"fold_{k}": float(v)
                    for k, v in info.items()
                    if k.startswith("blend_") and isinstance(v, int | float)
                },
                step=i,
            )
    del client
    return run.info.run_id
