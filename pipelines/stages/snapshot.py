"""Snapshot mode: the same models and metrics on a customer-level table the user already has."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from configs.schema import Settings
from models import snapshot_fit
from models.tabular import (
    clean_text,
    column_families,
    derive_families,
    infer_types,
    target_vector,
)
from pipelines.store.errors import InputError
from pipelines.store.workdir import atomic_write_text

log = logging.getLogger(__name__)

METRIC_KEYS = ("roc_auc", "pr_auc", "top_decile_lift", "brier", "ks", "empc", "tree_roc_auc")


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
    repeats: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> SnapshotResult:
    """Repeated stratified CV (or train on `data`, evaluate on `test`), tracked in MLflow.

    The model is LightGBM blended with a logistic regression (settings.models.snapshot); the
    blend weight is chosen by an inner CV on the training rows of each fold. Metrics are means
    over every fold of every repeat, with `roc_auc_sd` their spread and `tree_roc_auc` the tree
    model alone. `progress(step, done, total)` is told as each fold finishes.
    """
    from sklearn.model_selection import StratifiedKFold

    started = time.perf_counter()
    snap = settings.models.snapshot
    repeats = repeats or snap.repeats
    tell = progress or (lambda step, done, total: None)
    drop = drop or []
    tell("reading", 0, 1)
    frame = read_table(data)
    x, y, base = prepare(frame, target, positive, id_col, drop)
    # Families come from the training file's header and types only, never from its values.
    families = column_families(x) if snap.family_sums else {}
    x = derive_families(x, families, snap.family_shares, snap.family_ratios)
    cols = x.columns
    seed = settings.seed
    n_rows, positive_rate = len(y), float(y.mean())
    jobs: list[tuple] = []
    if test is not None:
        test_frame = read_table(test)
        x_te, y_te, _ = prepare(test_frame, target, positive, id_col, drop)
        missing = [c for c in base if c not in x_te.columns]
        if missing:
            raise InputError(f"test file lacks column(s): {', '.join(missing)}")
        x_te = x_te.select(base).with_columns(
            [pl.col(c).cast(x.schema[c], strict=False) for c in base]
        )
        x_te = derive_families(x_te, families, snap.family_shares, snap.family_ratios)
        both = pl.concat([x, x_te], how="vertical_relaxed")
        y_all = np.concatenate([y, y_te])
        train_idx, test_idx = np.arange(len(y)), np.arange(len(y), len(y_all))
        # A fixed split has nothing to repeat but the seeds of the fitting.
        jobs = [(train_idx, test_idx, seed + 1000 * r) for r in range(repeats)]
        x, y = both, y_all
    else:
        for r in range(repeats):
            skf = StratifiedKFold(n_splits=snap.folds, shuffle=True, random_state=seed + 1000 * r)
            jobs += [
                (tr, te, seed + 1000 * r + k)
                for k, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y))
            ]
    folds, params = _run_folds(settings, x, y, cols, task, trials, jobs, tell)
    keys = [k for k in METRIC_KEYS if task == "churn" or k != "empc"]
    result = {k: float(np.mean([f[k] for f in folds])) for k in keys}
    aucs = np.array([f["roc_auc"] for f in folds])
    result["roc_auc_sd"] = float(aucs.std(ddof=1)) if len(aucs) > 1 else 0.0
    result["tree_roc_auc"] = float(np.mean([f["tree_roc_auc"] for f in folds]))
    result["folds"] = float(len(folds))
    result["repeats"] = float(repeats)
    result["n_rows"] = float(n_rows)  # the table modelled (with --test, its training rows)
    result["positive_rate"] = positive_rate
    summary = {
        **snapshot_fit.summarise_params(params),
        **({"family_sums": len(families)} if families else {}),
    }
    seconds = round(time.perf_counter() - started, 2)
    out = SnapshotResult(result, folds, summary, params, seconds=seconds)
    if track:
        tell("logging to MLflow", len(jobs), len(jobs))
        out.run_id = _track(settings, data, target, task, out)
    if metrics_out is not None:
        atomic_write_text(Path(metrics_out), json.dumps(result, indent=2))
    return out


def workers_for(settings: Settings, rows: int, jobs: int) -> int:
    """Processes for the outer folds: one for small, cheap tables (starting workers costs more
    than it saves), else one per core. Small tables that get the additive member are not cheap:
    its six fits per fold cost about 30 CPU s on German credit's 800 training rows."""
    snap = settings.models.snapshot
    member = snapshot_fit.uses_additive(settings, rows * (snap.folds - 1) // snap.folds)
    if rows < snap.parallel_min_rows and not member:
        return 1
    wanted = snap.workers or os.cpu_count() or 1
    return max(1, min(wanted, jobs))


def _run_folds(settings, x, y, cols, task, trials, jobs, tell):
    """Each outer fold in turn, or side by side in worker processes; results in fold order."""
    total = len(jobs)
    workers = workers_for(settings, len(y), total)
    args = [(x, y, tr, te, cols, settings, task, trials, s, 1) for tr, te, s in jobs]
    results: list = [None] * total
    tell(f"{total} folds on {workers} worker{'s' if workers > 1 else ''}", 0, total)
    if workers == 1:
        for i, a in enumerate(args):
            results[i] = snapshot_fit.fold_task(*a)
            tell(_said(results, i), i + 1, total)
    else:
        from joblib import Parallel, delayed

        run = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")
        finished = run(delayed(_indexed)(i, a) for i, a in enumerate(args))
        for done, (i, result) in enumerate(finished, start=1):
            results[i] = result
            tell(_said(results, i), done, total)
    return [r[0] for r in results], [r[1] for r in results]


def _indexed(i: int, args: tuple) -> tuple[int, tuple]:
    return i, snapshot_fit.fold_task(*args)


def _said(results: list, i: int) -> str:
    auc = [r[0]["roc_auc"] for r in results if r is not None]
    return f"fold {i + 1}: ROC-AUC {results[i][0]['roc_auc']:.4f} (mean so far {np.mean(auc):.4f})"


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
