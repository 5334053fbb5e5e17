"""Train churn and credit-risk models out of time, track them in MLflow, register and promote."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import duckdb
import mlflow
import numpy as np
import pandas as pd
import polars as pl
import polars.selectors as cs

from configs.contracts import REGISTERED
from configs.schema import Settings
from features.columns import feature_columns
from features.history import ShortHistory, lookback_days, plan_training
from features.split import credit_population, customer_holdout
from models import lgbm, metrics
from models.attribution import agreement
from models.promotion import decide
from pipelines.stages.features import data_span, load_snapshots
from pipelines.store.errors import ConfigError, InputError, ShortHistoryError
from pipelines.store.registry import as_polars, load_bundle
from pipelines.store.tracking import alias_missing, experiment_client, git_commit, register_version
from pipelines.store.warehouse import connect
from pipelines.store.workdir import Workdir, audit

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    model: str
    run_id: str
    version: str
    metrics: dict[str, float]
    validation_as_of: date
    train_as_of: list[date] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class PromotionResult:
    model: str
    promoted: bool
    champion_version: str | None
    explanation: str


class BundleModel(mlflow.pyfunc.PythonModel):
    """MLflow wrapper: calibrated probabilities from a snapshot-shaped frame."""

    def __init__(self, trained: lgbm.TrainedModel, label: str) -> None:
        self.trained = trained
        self.label = label

    # Typed so MLflow knows the input is a frame (pandas when served; polars when scoring calls
    # it directly): a DataFrame hint needs no schema inference and raises no "add type hints".
    def predict(
        self,
        context: Any,  # noqa: ARG002 - MLflow's signature
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,  # noqa: ARG002
    ) -> np.ndarray:
        return self.trained.predict(as_polars(model_input))


def label_for(settings: Settings, model: str) -> str:
    h = settings.models.horizon_days
    if h not in settings.features.horizons_days:
        raise ConfigError(
            f"models.horizon_days {h} must be one of features.horizons_days {settings.features.horizons_days}"
        )
    return f"{'churn' if model == 'churn' else 'default'}_{h}d"


def population_sql(settings: Settings, model: str, label: str | None = None) -> str:
    """Rows a model learns and is validated on: matured labels; for credit, customers not
    already in serious arrears at as-of (scoring grades those by rule)."""
    label = label or label_for(settings, model)
    if model == "churn":
        return f"{label} IS NOT NULL"
    return f"{label} IS NOT NULL AND {credit_population(settings.features.serious_arrears_days)}"


def fingerprint(frame: pl.DataFrame, label: str) -> str:
    """A short hash of which customers, dates and labels a model saw."""
    digest = hashlib.sha256()
    keyed = frame.select("customer_id", "as_of", label).sort(["as_of", "customer_id"])
    digest.update(keyed.hash_rows(seed=0).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def training_frames(
    settings: Settings, model: str, as_of: date | None
) -> tuple[pl.DataFrame, pl.DataFrame, str, list[date], date]:
    label = label_for(settings, model)
    cfg = settings.models
    population = population_sql(settings, model)
    matured = f"{population} AND as_of <= $as_of" if as_of else population
    con = connect(Workdir.from_settings(settings), read_only=True)
    try:
        try:
            counts = dict(
                con.execute(
                    f"SELECT as_of, count(*) FROM feat.customer_snapshot WHERE {matured} GROUP BY 1",  # noqa: S608 - label is a config-validated column name
                    {"as_of": as_of} if as_of else {},
                ).fetchall()
            )
        except duckdb.CatalogException:
            raise InputError(
                "no feature snapshots yet: run `churn features --as-of DATE`"
            ) from None
        if not counts:
            raise ShortHistoryError(
                f"no snapshot has a matured {label} label yet: build more history with "
                "`churn features --as-of DATE --history K`"
            )
        start, end = data_span(con)
        try:
            plan = plan_training(
                sorted(counts),
                start,
                end,
                lookback_days(settings.features),
                cfg.horizon_days,
                cfg.min_train_snapshots,
            )
        except ShortHistory as exc:
            raise ShortHistoryError(f"cannot train {label}: {exc}") from None
        train_dates, valid_date = plan.train, plan.validation
        n_train = sum(counts[d] for d in train_dates)
        train = load_snapshots(
            settings,
            train_dates,
            con,
            population,
            min(1.0, cfg.max_train_rows / n_train),
        )
        valid = load_snapshots(
            settings,
            [valid_date],
            con,
            population,
            min(1.0, cfg.max_valid_rows / counts[valid_date]),
        )
    finally:
        con.close()
    if train.height < n_train:
        log.info("training on a %d-row customer sample of %d rows", train.height, n_train)
    for name, part in (("training", train), ("validation", valid)):
        if part[label].n_unique() < 2:
            raise InputError(
                f"the {name} data has a single class for {label}: simulate more customers or months"
            )
    return train, valid, label, train_dates, valid_date


def _plots(y: np.ndarray, p: np.ndarray, importance: dict[str, float], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gains = metrics.gains_table(y, p)
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    share = [g["decile"] / 10 for g in gains]
    ax[0].plot([0, *share], [0, *[g["cumulative_gain"] for g in gains]], marker="o", label="model")
    ax[0].plot([0, 1], [0, 1], "--", color="grey", label="random")
    ax[0].set(
        title="cumulative gains", xlabel="share of customers targeted", ylabel="share of positives"
    )
    ax[0].legend()
    ax[1].bar([g["decile"] for g in gains], [g["cumulative_lift"] for g in gains])
    ax[1].set(title="cumulative lift by decile", xlabel="decile", ylabel="lift")
    fig.tight_layout()
    fig.savefig(folder / "gains_lift.png", dpi=90)
    plt.close(fig)
    cal = metrics.calibration_curve(y, p)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot([c["predicted"] for c in cal], [c["observed"] for c in cal], marker="o")
    top = max(max(c["predicted"] for c in cal), max(c["observed"] for c in cal))
    ax.plot([0, top], [0, top], "--", color="grey")
    ax.set(title="calibration", xlabel="predicted", ylabel="observed")
    fig.tight_layout()
    fig.savefig(folder / "calibration.png", dpi=90)
    plt.close(fig)
    top_imp = sorted(importance.items(), key=lambda kv: kv[1], reverse=True)[:20]
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.barh([k for k, _ in reversed(top_imp)], [v for _, v in reversed(top_imp)])
    ax.set(title="feature importance (gain)")
    fig.tight_layout()
    fig.savefig(folder / "feature_importance.png", dpi=90)
    plt.close(fig)
    (folder / "gains.json").write_text(json.dumps(gains, indent=2))
    (folder / "calibration.json").write_text(json.dumps(cal, indent=2))
    (folder / "feature_importance.json").write_text(json.dumps(dict(top_imp), indent=2))


def reason_agreement(
    settings: Settings, trained: lgbm.TrainedModel, valid: pl.DataFrame
) -> dict[str, float]:
    """How often path attribution names the same top reasons as exact TreeSHAP (validation sample)."""
    check = valid if valid.height <= 3000 else valid.sample(3000, seed=settings.seed)
    matrix = trained.features.matrix(check)
    found = agreement(
        trained.contributions(matrix, "path"),
        trained.contributions(matrix, "treeshap"),
        settings.models.reason_codes,
    )
    return {f"reasons_{k}_vs_treeshap": v for k, v in found.items()}


def champion_params(settings: Settings, client, name: str) -> tuple[dict[str, str], str] | None:
    """The champion's tuned parameters and version, when it predicts the configured horizon."""
    try:
        mv = client.get_model_version_by_alias(name, "champion")
    except mlflow.exceptions.MlflowException as exc:
        if not alias_missing(exc):
            raise
        return None
    if horizon_of(client, name, mv.version) != settings.models.horizon_days:
        return None
    return client.get_run(mv.run_id).data.params, str(mv.version)


def train_model(
    settings: Settings,
    model: Literal["churn", "credit"],
    trials: int | None = None,
    as_of: date | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> TrainResult:
    """Tune, train and calibrate; log everything to MLflow; register as `challenger`.

    `progress(step, done, total)` is told each step: the trials, then the final fit, evaluation
    and logging (the CLI draws it as a bar).
    """
    if model not in REGISTERED:
        raise InputError(f"unknown model {model!r}: choose churn or credit")
    started = time.perf_counter()
    cfg = settings.models
    client, experiment_id = experiment_client(settings)
    name = REGISTERED[model]
    # Each month's data differ a little from the last: start from what won then, search less.
    warm = champion_params(settings, client, name) if cfg.warm_start else None
    trials = trials or (min(cfg.warm_start_trials, cfg.trials) if warm else cfg.trials)
    total = trials + 4  # loading, the trials, final fit, evaluation, logging
    tell = progress or (lambda step, done, total: None)
    tell("loading snapshots", 0, total)
    train, valid, label, train_dates, valid_date = training_frames(settings, model, as_of)
    tell(f"tuning ({trials} trial{'s' if trials != 1 else ''})", 1, total)
    columns = feature_columns(train.columns)
    # Early stopping, tuning and calibration hold out a fifth of the training customers (all
    # of each one's months); the out-of-time validation date is only ever used for the
    # reported metrics and the promotion gate.
    inner = customer_holdout(train["customer_id"], 0.2, settings.seed)
    tr, va = train.filter(pl.Series(~inner)), train.filter(pl.Series(inner))
    # The split copied the rows: keep only what is logged of the whole frame (at 1M rows the
    # frame is a gigabyte that would otherwise live through tuning and the refit).
    train_rows = train.height
    keys = ["customer_id", "as_of", label]
    data_fingerprint = fingerprint(pl.concat([train.select(keys), valid.select(keys)]), label)
    del train
    y_tr, y_va = tr[label].to_numpy().astype(float), va[label].to_numpy().astype(float)
    task = "churn" if model == "churn" else "credit"
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=f"train-{name}-{valid_date}"
    ) as run:
        mlflow.set_tags(
            {"model": name, "git_commit": git_commit(), "stage": "train", "label": label}
        )
        if warm:
            mlflow.set_tag("warm_start_from", warm[1])

        def on_trial(trial, params, score):
            with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True):
                mlflow.log_params(params)
                mlflow.log_metric("inner_pr_auc", score)
            tell(
                f"trial {trial.number + 1}/{trials}: inner PR-AUC {score:.3f}",
                2 + trial.number,
                total,
            )

        best_params, best_inner = lgbm.tune(
            tr,
            y_tr,
            va,
            y_va,
            columns,
            cfg.search_space,
            trials,
            cfg.num_boost_round,
            cfg.early_stopping_rounds,
            settings.seed,
            on_trial=on_trial,
            timeout=cfg.timeout_seconds,
            # The CLI draws its own bar; in a log or a pipe, a bar is noise.
            show_progress_bar=progress is None and sys.stderr.isatty(),
            warm=warm[0] if warm else None,
        )
        if settings.executor.kind == "dask" and settings.executor.dask_training:
            from pipelines.stages.train_dask import fit_on_dask

            trained, on_dask = fit_on_dask(settings, tr, y_tr, va, y_va, columns, best_params)
            mlflow.set_tags(on_dask)
        else:
            tell("final fit and calibration", total - 3, total)
            trained = lgbm.fit(
                tr,
                y_tr,
                va,
                y_va,
                columns,
                best_params,
                cfg.num_boost_round,
                cfg.early_stopping_rounds,
                cfg.calibration,
                settings.seed,
                refit=True,
            )
        tell(f"evaluating on {valid_date}", total - 2, total)
        reason_metrics = reason_agreement(settings, trained, valid)
        y_val = valid[label].to_numpy().astype(float)
        p_val = trained.predict(valid)
        scores = metrics.summary(y_val, p_val, task, cfg.empc.model_dump())
        mlflow.log_params(
            {
                **best_params,
                "trials": trials,
                "best_iteration": trained.best_iteration,
                "calibration": trained.calibrator.method,
                "label": label,
                "train_as_of": ",".join(map(str, train_dates)),
                "validation_as_of": str(valid_date),
                "train_rows": train_rows,
                "validation_rows": valid.height,
                "data_fingerprint": data_fingerprint,
            }
        )
        mlflow.log_metrics({**scores, **reason_metrics, "inner_pr_auc": best_inner})
        tell("logging to MLflow and registering", total - 1, total)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "features.json").write_text(json.dumps(columns, indent=2))
            _plots(y_val, p_val, trained.importance(), folder)
            mlflow.log_artifacts(str(folder), artifact_path="evaluation")
        # The model takes snapshot rows as they are stored (text categories, numbers). Integer
        # columns are declared doubles: a missing value at scoring time is then no schema error
        # (and MLflow has no reason to warn about integer columns).
        example = (
            valid.select(columns).head(5).with_columns(cs.integer().cast(pl.Float64)).to_pandas()
        )
        signature = mlflow.models.infer_signature(example, trained.predict(valid.head(5)))
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=BundleModel(trained, label),
            signature=signature,
            input_example=example,
        )
        version = register_version(client, name, info)
        client.set_registered_model_alias(name, "challenger", version.version)
        client.set_model_version_tag(name, version.version, "validation_as_of", str(valid_date))
        # The gate compares only models for the same horizon.
        client.set_model_version_tag(name, version.version, "label", label)
        client.set_model_version_tag(name, version.version, "horizon_days", str(cfg.horizon_days))
    tell("done", total, total)
    return TrainResult(
        model=model,
        run_id=run.info.run_id,
        version=str(version.version),
        metrics=scores,
        validation_as_of=valid_date,
        train_as_of=train_dates,
        seconds=round(time.perf_counter() - started, 2),
    )


def promote(
    settings: Settings,
    model: Literal["churn", "credit"],
    force: bool = False,
    reason: str | None = None,
) -> PromotionResult:
    """Apply the champion/challenger gate on the challenger's out-of-time validation data."""
    name = REGISTERED.get(model, model)
    client, _ = experiment_client(settings)
    challenger, c_version = load_bundle(settings, name, "challenger")
    try:
        champion, ch_version = load_bundle(settings, name, "champion")
    except InputError:
        champion, ch_version = None, None
    if ch_version == c_version:
        return PromotionResult(model, False, ch_version, f"version {c_version} is already champion")
    c_tags = client.get_model_version(name, c_version).tags
    valid_as_of = date.fromisoformat(c_tags["validation_as_of"])
    task = "churn" if name == "churn" else "credit"
    label = c_tags.get("label") or label_for(settings, task)
    valid = load_snapshots(settings, [valid_as_of], where=population_sql(settings, task, label))
    y = valid[label].to_numpy().astype(float)
    new = metrics.summary(y, challenger.predict(valid), task, settings.models.empc.model_dump())
    c_horizon = horizon_of(client, name, c_version)
    ch_horizon = horizon_of(client, name, ch_version) if ch_version else None
    old = None
    if champion is not None and ch_horizon == c_horizon:
        old = metrics.summary(y, champion.predict(valid), task, settings.models.empc.model_dump())
    decision = decide(new, old, settings.models.promotion, c_horizon, ch_horizon)
    promoted = decision.promote or force
    explanation = decision.explanation
    if force and not decision.promote:
        if not reason:
            raise InputError("--force needs --reason: overriding the gate is audited")
        explanation = f"FORCED ({reason}) despite: {decision.explanation}"
        audit(
            Workdir.from_settings(settings),
            f"force-promote {name} v{c_version}: {reason}; gate said: {decision.explanation}",
        )
    client.set_model_version_tag(name, c_version, "gate", explanation)
    if promoted:
        client.set_registered_model_alias(name, "champion", c_version)
        log.info("%s v%s promoted: %s", name, c_version, explanation)
        return PromotionResult(model, True, c_version, explanation)
    log.warning("%s v%s not promoted: %s", name, c_version, explanation)
    return PromotionResult(model, False, ch_version, explanation)


def horizon_of(client, name: str, version: str) -> int | None:
    """The horizon a registered version was trained for: its tag, else its run's label."""
    mv = client.get_model_version(name, version)
    if mv.tags.get("horizon_days"):
        return int(mv.tags["horizon_days"])
    label = client.get_run(mv.run_id).data.params.get("label", "")
    digits = label.rsplit("_", 1)[-1].removesuffix("d")
    return int(digits) if digits.isdigit() else None


def list_models(settings: Settings) -> list[dict]:
    """Registered versions with their aliases and key validation metrics."""
    client, _ = experiment_client(settings)
    rows = []
    for name in REGISTERED.values():
        try:
            versions = client.search_model_versions(f"name='{name}'")
            aliases = client.get_registered_model(name).aliases
        except mlflow.exceptions.MlflowException as exc:
            if not alias_missing(exc):
                raise
            continue
        by_version: dict[str, list[str]] = {}
        for alias, v in aliases.items():
            by_version.setdefault(str(v), []).append(alias)
        for v in sorted(versions, key=lambda mv: int(mv.version)):
            m = client.get_run(v.run_id).data.metrics
            rows.append(
                {
                    "model": name,
                    "version": v.version,
                    "aliases": ",".join(sorted(by_version.get(str(v.version), []))),
                    "validation_as_of": v.tags.get("validation_as_of", ""),
                    "roc_auc": m.get("roc_auc"),
                    "pr_auc": m.get("pr_auc"),
                    "brier": m.get("brier"),
                    "lift": m.get("top_decile_lift"),
                    "run_id": v.run_id,
                    "gate": v.tags.get("gate", ""),
                }
            )
    return rows
