"""Binary uplift learners on LightGBM: solo, two-model, class transformation, X- and DR-learner.

Each estimates the effect E[y | x, treated] − E[y | x, control] for one treatment against its
control. Solo model, two-model and class transformation are scikit-uplift's own (`SoloModel`,
`TwoModels`, `ClassTransformation`); the X-learner (Künzel et al. 2019) and the DR-learner
(Kennedy 2020) are not in scikit-uplift and are written here with the same base estimator.

Propensity: in a randomised test (a campaign table with a random hold-out) the treated share is
the propensity everywhere. In the pipeline's own campaign loop the control arm also holds
customers no list picked, so the propensity depends on the features; `randomised=False` then
learns it (a small LightGBM, clipped away from 0 and 1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from models.lgbm import FeatureFrame

BINARY_LEARNERS = ("two_model", "solo", "class_transformation", "x_learner", "dr_learner")

# Strongly regularised: the effect is a small difference of two noisy rates, so shallow trees
# with large leaves and few rounds rank better than a well-fitted outcome model (Hillstrom,
# seeds 0-4: a default LightGBM's solo model reaches Qini 0.058 ± 0.016, this one 0.062-0.066).
BASE_PARAMS: dict[str, Any] = {
    "n_estimators": 100,
    "learning_rate": 0.05,
    "num_leaves": 7,
    "min_child_samples": 200,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 5.0,
    "verbose": -1,
    "n_jobs": 1,
    "deterministic": True,
    "force_row_wise": True,
}
PROPENSITY_CLIP = 0.02


def _estimator(params: dict[str, Any], seed: int, regression: bool = False):
    from lightgbm import LGBMClassifier, LGBMRegressor

    cls = LGBMRegressor if regression else LGBMClassifier
    return cls(**{**BASE_PARAMS, **params, "random_state": seed})


def _p1(model, x: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(x)[:, 1]


@dataclass
class BinaryUplift:
    """A fitted learner: `effect(frame)` = predicted treated minus control outcome probability."""

    learner: str
    features: FeatureFrame
    parts: dict[str, Any] = field(default_factory=dict)
    treated_share: float = 0.5

    def effect(self, frame: pl.DataFrame) -> np.ndarray:
        x = self.features.matrix(frame)
        p = self.parts
        if self.learner in ("solo", "two_model", "class_transformation"):
            return np.asarray(p["model"].predict(x), dtype=float)
        if self.learner == "x_learner":
            g = self._propensity(x)
            # Weight each arm's effect model by how well the other arm covers this customer.
            return g * p["tau_control"].predict(x) + (1.0 - g) * p["tau_treated"].predict(x)
        return np.asarray(p["final"].predict(x), dtype=float)  # dr_learner

    def _propensity(self, x: pd.DataFrame) -> np.ndarray:
        model = self.parts.get("propensity")
        if model is None:
            return np.full(len(x), self.treated_share)
        return np.clip(_p1(model, x), PROPENSITY_CLIP, 1 - PROPENSITY_CLIP)


def fit_binary(
    learner: str,
    frame: pl.DataFrame,
    treated: np.ndarray,
    y: np.ndarray,
    columns: list[str],
    params: dict[str, Any] | None = None,
    seed: int = 0,
    randomised: bool = True,
) -> BinaryUplift:
    """Fit one learner on rows of both arms (`treated` 1/0, outcome `y` 1/0)."""
    from sklift.models import ClassTransformation, SoloModel, TwoModels

    if learner not in BINARY_LEARNERS:
        raise ValueError(f"unknown binary uplift learner {learner!r}; one of {BINARY_LEARNERS}")
    t = np.asarray(treated).astype(int)
    y = np.asarray(y).astype(int)
    for arm, name in ((1, "treated"), (0, "control")):
        ya = y[t == arm]
        if ya.size < 20 or ya.min() == ya.max():
            raise ValueError(f"the {name} arm has too few rows of each outcome to learn from")
    params = params or {}
    features = FeatureFrame.fit(frame, columns)
    x = features.matrix(frame)
    est = lambda s=seed, reg=False: _estimator(params, s, reg)  # noqa: E731 - local shorthand
    out = BinaryUplift(learner, features, treated_share=float(t.mean()))
    if not randomised:
        out.parts["propensity"] = _estimator({"n_estimators": 60, "num_leaves": 5}, seed + 7).fit(
            x, t
        )
    e = out._propensity(x)
    if learner == "solo":
        out.parts["model"] = SoloModel(est()).fit(x, y, t)
    elif learner == "two_model":
        out.parts["model"] = TwoModels(est(), est(seed + 1), method="vanilla").fit(x, y, t)
    elif learner == "class_transformation":
        # Inverse-propensity weights make the arms count equally, which the transformation's
        # 2·P(z = 1) − 1 = effect identity needs when the treated share is not one half.
        w = np.where(t == 1, 0.5 / e, 0.5 / (1.0 - e))
        model = ClassTransformation(est()).fit(x, y, t, estimator_fit_params={"sample_weight": w})
        out.parts["model"] = model
    elif learner == "x_learner":
        tr, co = t == 1, t == 0
        mu1 = est().fit(x[tr], y[tr])
        mu0 = est(seed + 1).fit(x[co], y[co])
        d1 = y[tr] - _p1(mu0, x[tr])  # treated: observed minus predicted control outcome
        d0 = _p1(mu1, x[co]) - y[co]  # control: predicted treated outcome minus observed
        out.parts["tau_treated"] = est(seed + 2, True).fit(x[tr], d1)
        out.parts["tau_control"] = est(seed + 3, True).fit(x[co], d0)
    else:
        out.parts["final"] = est(seed + 4, True).fit(x, _dr_pseudo(x, y, t, e, est, seed))
    return out


def _dr_pseudo(x: pd.DataFrame, y, t, e, est, seed: int, folds: int = 2) -> np.ndarray:
    """Doubly robust pseudo-outcomes with cross-fitting: outcome models never see their row."""
    fold = np.random.default_rng(seed).integers(0, folds, len(y))
    mu1, mu0 = np.zeros(len(y)), np.zeros(len(y))
    for f in range(folds):
        fit_rows, here = fold != f, fold == f
        tr, co = fit_rows & (t == 1), fit_rows & (t == 0)
        mu1[here] = _p1(est(seed + 10 + f).fit(x[tr], y[tr]), x[here])
        mu0[here] = _p1(est(seed + 20 + f).fit(x[co], y[co]), x[here])
    return mu1 - mu0 + t * (y - mu1) / e - (1 - t) * (y - mu0) / (1 - e)
