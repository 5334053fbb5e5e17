"""Blend of a tree model with a regularised logistic regression, weights chosen by inner CV."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
import polars as pl
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    SplineTransformer,
    StandardScaler,
)
from threadpoolctl import threadpool_limits

from models.calibration import Calibrator, fit_calibrator

MISSING = "__missing__"


class Predictor(Protocol):
    def predict(self, frame: pl.DataFrame) -> np.ndarray: ...


@dataclass
class LinearModel:
    """One-hot categories; numbers standardised, log-scaled and as splines, with missing flags."""

    numeric: list[str]
    categorical: list[str]
    pipeline: Pipeline

    def _frame(self, frame: pl.DataFrame) -> pd.DataFrame:
        exprs = [pl.col(c).cast(pl.Float64, strict=False) for c in self.numeric]
        exprs += [pl.col(c).cast(pl.Utf8).fill_null(MISSING) for c in self.categorical]
        return frame.select(exprs).to_pandas()

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        with threadpool_limits(1, user_api="blas"):
            return self.pipeline.predict_proba(self._frame(frame))[:, 1]


def _signed_log(a: np.ndarray) -> np.ndarray:
    return np.sign(a) * np.log1p(np.abs(a))


def _preprocessor(frame: pl.DataFrame, columns: Sequence[str], knots: int):
    numeric = [c_ for c_ in columns if frame.schema[c_] not in (pl.Utf8, pl.Categorical)]
    categorical = [c_ for c_ in columns if c_ not in numeric]
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        impute = SimpleImputer(strategy="median", add_indicator=True)
        parts.append(("num", make_pipeline(impute, StandardScaler()), numeric))
        # Money and counts are skewed: their log often carries the signal linearly.
        log = FunctionTransformer(_signed_log)
        parts.append(
            ("log", make_pipeline(SimpleImputer(strategy="median"), log, StandardScaler()), numeric)
        )
        if knots > 1:
            # Splines on quantile knots let the linear model follow smooth non-linear effects.
            spline = SplineTransformer(n_knots=knots, degree=3, knots="quantile")
            parts.append(
                ("spline", make_pipeline(SimpleImputer(strategy="median"), spline), numeric)
            )
    if categorical:
        onehot = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5)
        parts.append(("cat", onehot, categorical))
    return numeric, categorical, ColumnTransformer(parts)


def fit_linear_path(
    frame: pl.DataFrame,
    y: np.ndarray,
    columns: Sequence[str],
    cs: Sequence[float] = (0.1,),
    knots: int = 5,
) -> dict[float, LinearModel]:
    """One linear model per inverse L2 strength `c`, sharing one fitted preprocessing.

    The columns are prepared once and the regressions run from the strongest penalty up, each
    starting from the last one's coefficients (a regularisation path: far fewer iterations).
    """
    numeric, categorical, prep = _preprocessor(frame, columns, knots)
    out: dict[float, LinearModel] = {}
    # Threaded BLAS only costs on matrices this small, and stalls badly on a busy machine.
    with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
        # A column with a few distinct values gets repeated spline knots: expected, harmless.
        warnings.simplefilter("ignore", UserWarning)
        shell = LinearModel(numeric, categorical, Pipeline([("prep", prep)]))
        design = prep.fit_transform(shell._frame(frame), y)
        lr = LogisticRegression(max_iter=3000, warm_start=True)
        for c in sorted(cs):
            lr.set_params(C=c)
            lr.fit(design, y)
            fitted = copy.deepcopy(lr)
            out[c] = LinearModel(numeric, categorical, Pipeline([("prep", prep), ("lr", fitted)]))
    return out


def fit_linear(
    frame: pl.DataFrame,
    y: np.ndarray,
    columns: Sequence[str],
    c: float = 0.1,
    knots: int = 5,
) -> LinearModel:
    """Fit the linear side of the blend; `c` is the inverse L2 strength, `knots` of the splines."""
    return fit_linear_path(frame, y, columns, (c,), knots)[c]


@dataclass
class BlendModel:
    """Calibrated mix of the tree model's and the linear model's probabilities."""

    tree: Predictor
    linear: LinearModel | None
    weight: float
    calibrator: Calibrator
    info: dict[str, Any] = field(default_factory=dict)
    # Puts the tree's scores on the probability scale before mixing (Platt on its out-of-fold
    # scores): a tree trained with weighted positives would otherwise outweigh its share.
    tree_scale: Calibrator | None = None

    def tree_probability(self, frame: pl.DataFrame) -> np.ndarray:
        p = self.tree.predict(frame)
        return self.tree_scale(p) if self.tree_scale is not None else p

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        p = self.tree_probability(frame)
        if self.linear is not None and self.weight > 0:
            p = (1 - self.weight) * p + self.weight * self.linear.predict(frame)
        return np.clip(self.calibrator(p), 0.0, 1.0)


def choose(
    tree_oof: np.ndarray,
    linear_oof: dict[float, np.ndarray],
    y: np.ndarray,
    weights: Sequence[float],
) -> tuple[float, float, float]:
    """(C, linear weight, ROC-AUC) with the best out-of-fold ROC-AUC; ties go to less linear.

    Ranking picks the mix; the calibrator fitted afterwards turns the mix into probabilities.
    """
    best = (0.0, 0.0, -1.0)
    for c, lin in sorted(linear_oof.items()):
        for w in sorted(weights):
            auc = float(roc_auc_score(y, (1 - w) * tree_oof + w * lin))
            if auc > best[2] + 1e-6 or (w < best[1] and auc > best[2] - 1e-9):
                best = (c, w, auc)
    return best


def fit_blend(
    frame: pl.DataFrame,
    y: np.ndarray,
    columns: Sequence[str],
    fit_tree: Callable[[pl.DataFrame, np.ndarray, int], Predictor],
    folds: int = 5,
    weights: Sequence[float] = tuple(i / 10 for i in range(11)),
    cs: Sequence[float] = (0.03, 0.1, 0.3, 1.0),
    knots: int = 5,
    seed: int = 0,
) -> BlendModel:
    """Pick C and the linear weight on out-of-fold predictions of `frame` only, then refit on all.

    `fit_tree(frame, y, seed)` returns a tree model (its scores need only rank: the blend is
    recalibrated on its out-of-fold predictions); it is called once per inner fold and once on
    all rows, so a cheap one (a fixed number of trees, no early stopping) keeps this affordable.
    """
    y = np.asarray(y, dtype=float)
    tree_oof = np.zeros(len(y))
    linear_oof = {c: np.zeros(len(y)) for c in cs}
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for k, (tr, va) in enumerate(skf.split(np.zeros(len(y)), y)):
        tree_oof[va] = fit_tree(frame[tr], y[tr], seed + 101 * (k + 1)).predict(frame[va])
        for c, lin in fit_linear_path(frame[tr], y[tr], columns, cs, knots).items():
            linear_oof[c][va] = lin.predict(frame[va])
    tree_scale = fit_calibrator(tree_oof, y, "platt", seed=seed)
    tree_oof = tree_scale(tree_oof)
    c, w, auc = choose(tree_oof, linear_oof, y, weights)
    calibrator = fit_calibrator((1 - w) * tree_oof + w * linear_oof[c], y, "auto", seed=seed)
    tree = fit_tree(frame, y, seed)
    linear = fit_linear(frame, y, columns, c, knots) if w > 0 else None
    info = {
        "blend_weight_linear": w,
        "blend_linear_c": c,
        "blend_oof_roc_auc": round(auc, 5),
        "blend_oof_roc_auc_tree": round(float(roc_auc_score(y, tree_oof)), 5),
        "blend_oof_roc_auc_linear": round(float(roc_auc_score(y, linear_oof[c])), 5),
        "blend_calibration": calibrator.method,
    }
    return BlendModel(tree, linear, w, calibrator, info, tree_scale)
