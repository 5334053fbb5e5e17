"""LightGBM training with categorical handling, class imbalance, early stopping and Optuna tuning."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import polars as pl

from configs.schema import SearchSpace
from models.attribution import PathTable, path_contributions, path_table
from models.calibration import Calibrator, fit_calibrator

log = logging.getLogger(__name__)

BASE_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "metric": "average_precision",
    "verbosity": -1,
    "num_threads": 2,
    "bagging_freq": 1,
    "max_cat_to_onehot": 8,
    "cat_smooth": 20.0,
    # Same data and seed must give the same model: resumed cycles reproduce their lists.
    "deterministic": True,
    "force_row_wise": True,
}
# Well-regularised defaults: good out of the box on small tables, a sane start for tuning.
DEFAULT_PARAMS: dict[str, Any] = {
    "num_leaves": 15,
    "learning_rate": 0.03,
    "min_child_samples": 40,
    "feature_fraction": 0.7,
    "bagging_fraction": 0.8,
    "lambda_l2": 5.0,
}


@dataclass
class FeatureFrame:
    """A model matrix: numeric columns as floats, text columns as pandas categoricals."""

    columns: list[str]
    categories: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pl.DataFrame, columns: list[str]) -> FeatureFrame:
        cats = {
            c: sorted(v for v in frame[c].drop_nulls().unique().to_list())
            for c in columns
            if frame.schema[c] in (pl.Utf8, pl.Categorical)
        }
        return cls(list(columns), cats)

    def _select(self, frame: pl.DataFrame, codes: bool) -> pl.DataFrame:
        """The model's columns: numbers as floats, text as text or as its category code."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"input lacks model feature(s): {', '.join(missing[:5])}")
        exprs = []
        for c in self.columns:
            if c not in self.categories:
                exprs.append(pl.col(c).cast(pl.Float64, strict=False))
                continue
            text = pl.col(c).cast(pl.Utf8)
            if codes:
                cats = self.categories[c]
                text = text.replace_strict(
                    cats, list(range(len(cats))), default=None, return_dtype=pl.Float64
                )
            exprs.append(text)
        return frame.select(exprs)

    def array(self, frame: pl.DataFrame) -> np.ndarray:
        """The matrix as one float array for prediction: each text value as its category code.

        LightGBM reads a categorical column of a float array as codes, so this predicts exactly
        as matrix() does, without the polars → pandas → numpy round trip (5 s of scoring 1M).
        """
        return self._select(frame, codes=True).to_numpy()

    def matrix(self, frame: pl.DataFrame) -> pd.DataFrame:
        """Same columns, same category codes as at training time (unseen values → missing)."""
        pdf = self._select(frame, codes=False).to_pandas()
        for c, cats in self.categories.items():
            pdf[c] = pd.Categorical(pdf[c], categories=cats)
        return pdf


Matrix = pl.DataFrame | pd.DataFrame | np.ndarray


@dataclass
class TrainedModel:
    """Booster + calibrator + the feature frame that feeds them: everything scoring needs."""

    booster: lgb.Booster
    calibrator: Calibrator
    features: FeatureFrame
    params: dict[str, Any]
    best_iteration: int

    def _matrix(self, frame: Matrix) -> pd.DataFrame | np.ndarray:
        # A matrix made by features.matrix or features.array passes through: scoring builds it once.
        return frame if isinstance(frame, pd.DataFrame | np.ndarray) else self.features.array(frame)

    def raw(self, frame: Matrix) -> np.ndarray:
        return self.booster.predict(self._matrix(frame), num_iteration=self.best_iteration)

    def predict(self, frame: Matrix) -> np.ndarray:
        return self.calibrator(self.raw(frame))

    def contributions(
        self, frame: Matrix, method: str = "path", threads: int | None = None
    ) -> np.ndarray:
        """Per-feature contributions to the log-odds (last column is the bias).

        "path": path attribution, at about the cost of a prediction (models/attribution.py);
        "treeshap": LightGBM's exact TreeSHAP, costlier by leaves × depth per tree.
        """
        matrix = self._matrix(frame)
        if method == "treeshap":
            caps = {"num_threads": threads} if threads else {}
            return self.booster.predict(
                matrix, num_iteration=self.best_iteration, pred_contrib=True, **caps
            )
        if method != "path":
            raise ValueError(f"unknown contribution method {method!r}: path or treeshap")
        return path_contributions(
            self.booster, matrix, self.path_table(), self.best_iteration, threads=threads
        )

    def path_table(self) -> PathTable:
        """The leaf-by-feature table of path attribution, built on first use."""
        table = self.__dict__.get("_paths")
        if table is None:
            table = self.__dict__["_paths"] = path_table(self.booster, self.best_iteration)
            table.per_tree()  # before parts running side by side share it
        return table

    def importance(self) -> dict[str, float]:
        gain = self.booster.feature_importance(importance_type="gain")
        return dict(zip(self.features.columns, map(float, gain), strict=True))


def _dataset(ff: FeatureFrame, x: np.ndarray, y: np.ndarray, reference=None) -> lgb.Dataset:
    """A Dataset over the float matrix of ff.array (text as category codes, as pandas
    categoricals would give LightGBM): the same bins as from ff.matrix, without the pandas
    copy and LightGBM's own float copy of it (two training-sized copies at 1M rows)."""
    return lgb.Dataset(
        x,
        label=y,
        feature_name=list(ff.columns),
        categorical_feature=list(ff.categories) or "auto",
        reference=reference,
        free_raw_data=True,
    )


def fit(
    train: pl.DataFrame,
    y_train: np.ndarray,
    valid: pl.DataFrame,
    y_valid: np.ndarray,
    columns: list[str],
    params: dict[str, Any] | None = None,
    num_boost_round: int = 1000,
    early_stopping_rounds: int = 50,
    calibration: str = "auto",
    seed: int = 0,
    callbacks: list[Callable] | None = None,
    refit: bool = False,
) -> TrainedModel:
    """Train with early stopping on `valid`, calibrate on `valid`; optionally refit on both."""
    ff = FeatureFrame.fit(train, columns)
    pos = max(float(y_train.sum()), 1.0)
    neg = float(len(y_train) - y_train.sum())
    full = {
        **BASE_PARAMS,
        **DEFAULT_PARAMS,
        **(params or {}),
        "seed": seed,
        # Imbalance: weight positives up, but only by the square root so probabilities stay sane
        # before calibration.
        "scale_pos_weight": float(np.sqrt(neg / pos)),
    }
    x_train, x_valid = ff.array(train), ff.array(valid)
    dtrain = _dataset(ff, x_train, y_train)
    dvalid = _dataset(ff, x_valid, y_valid, reference=dtrain)
    booster = lgb.train(
        full,
        dtrain,
        num_boost_round=num_boost_round,
        valid_sets=[dvalid],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False), *(callbacks or [])],
    )
    best = booster.best_iteration or booster.current_iteration()
    raw_valid = booster.predict(x_valid, num_iteration=best)
    calibrator = fit_calibrator(raw_valid, y_valid, calibration, seed=seed)
    if refit:
        # Early stopping found the number of trees; the final model learns from all rows
        # (the calibrator, fitted on held-out scores of the same recipe, carries over).
        del dtrain, dvalid
        both = np.concatenate([x_train, x_valid])
        del x_train, x_valid
        rounds = refit_rounds(best)
        booster = lgb.train(full, _dataset(ff, both, np.concatenate([y_train, y_valid])), rounds)
        best = rounds
    return TrainedModel(booster, calibrator, ff, full, best)


def suggest(trial, space: SearchSpace) -> dict[str, Any]:
    """Optuna suggestions over the configured search space."""
    return {
        "num_leaves": trial.suggest_int("num_leaves", *space.num_leaves, log=True),
        "learning_rate": trial.suggest_float("learning_rate", *space.learning_rate, log=True),
        "min_child_samples": trial.suggest_int(
            "min_child_samples", *space.min_child_samples, log=True
        ),
        "feature_fraction": trial.suggest_float("feature_fraction", *space.feature_fraction),
        "bagging_fraction": trial.suggest_float("bagging_fraction", *space.bagging_fraction),
        "lambda_l2": trial.suggest_float("lambda_l2", *space.lambda_l2, log=True),
        **(
            {"max_depth": trial.suggest_int("max_depth", *space.max_depth)}
            if bounded(space)
            else {}
        ),
    }


def bounded(space: SearchSpace) -> bool:
    return space.max_depth[0] > 0


def first_trial(space: SearchSpace) -> dict[str, Any]:
    """The default parameters, moved inside the search space (the first trial Optuna runs)."""
    out = {}
    for name, value in DEFAULT_PARAMS.items():
        low, high = getattr(space, name)
        out[name] = type(value)(min(max(value, low), high))
    if bounded(space):
        out["max_depth"] = space.max_depth[1]
    return out


def within_space(params: dict[str, Any], space: SearchSpace) -> dict[str, Any]:
    """Known parameters (e.g. a champion's, logged as text) as one trial of the search space:
    each cast to its type and moved inside its range; any missing one at its default."""
    out = first_trial(space)
    for name, default in out.items():
        if name not in params:
            continue
        low, high = getattr(space, name)
        value = type(default)(float(params[name]))
        out[name] = min(max(value, type(default)(low)), type(default)(high))
    return out


def tune(
    train: pl.DataFrame,
    y_train: np.ndarray,
    valid: pl.DataFrame,
    y_valid: np.ndarray,
    columns: list[str],
    space: SearchSpace,
    trials: int,
    num_boost_round: int = 1000,
    early_stopping_rounds: int = 50,
    seed: int = 0,
    on_trial: Callable[[Any, dict[str, Any], float], None] | None = None,
    timeout: int | None = None,
    show_progress_bar: bool = True,
    fixed: dict[str, Any] | None = None,
    warm: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], float]:
    """TPE search with median pruning; the first trial is the default parameters, or with
    `warm` (e.g. the champion's) those, then the defaults.

    `fixed` parameters (e.g. threads) join every trial's but are not searched or returned.
    """
    import optuna
    from optuna_integration import LightGBMPruningCallback
    from sklearn.metrics import average_precision_score

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial) -> float:
        params = suggest(trial, space)
        model = fit(
            train,
            y_train,
            valid,
            y_valid,
            columns,
            {**params, **(fixed or {})},
            num_boost_round,
            early_stopping_rounds,
            calibration="none",
            seed=seed,
            callbacks=[LightGBMPruningCallback(trial, "average_precision")],
        )
        score = float(average_precision_score(y_valid, model.raw(valid)))
        trial.set_user_attr("best_iteration", model.best_iteration)
        if on_trial:
            on_trial(trial, params, score)
        return score

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=20),
    )
    defaults = first_trial(space)
    start = within_space(warm, space) if warm is not None else defaults
    study.enqueue_trial(start)
    if start != defaults:
        study.enqueue_trial(defaults)
    study.optimize(objective, n_trials=trials, timeout=timeout, show_progress_bar=show_progress_bar)
    return dict(study.best_params), float(study.best_value)


def refit_rounds(best_iteration: int) -> int:
    """Trees for the refit on all rows: a tenth more than early stopping found on four fifths."""
    return max(int(best_iteration * 1.1), 10)
