"""Probability calibration: isotonic or Platt, whichever scores better on held-out data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss


@dataclass
class Calibrator:
    """Maps raw model scores to calibrated probabilities."""

    method: str
    model: object | None = None

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, dtype=float)
        if self.method == "none" or self.model is None:
            return raw
        if self.method == "isotonic":
            # A vanishing share of the raw score breaks isotonic ties, so ranking (AUC) survives.
            return np.clip(self.model.predict(raw) * (1 - 1e-6) + 1e-6 * raw, 1e-6, 1 - 1e-6)
        logit = np.log(np.clip(raw, 1e-9, 1 - 1e-9) / np.clip(1 - raw, 1e-9, 1))
        return self.model.predict_proba(logit.reshape(-1, 1))[:, 1]


def _fit(method: str, raw: np.ndarray, y: np.ndarray) -> Calibrator:
    if method == "isotonic":
        return Calibrator("isotonic", IsotonicRegression(out_of_bounds="clip").fit(raw, y))
    if method == "platt":
        logit = np.log(np.clip(raw, 1e-9, 1 - 1e-9) / np.clip(1 - raw, 1e-9, 1))
        return Calibrator("platt", LogisticRegression(C=1e6).fit(logit.reshape(-1, 1), y))
    return Calibrator("none")


def fit_calibrator(raw, y, method: str = "auto", seed: int = 0) -> Calibrator:
    """Fit the requested calibrator; 'auto' picks by Brier score on a held-out half."""
    raw = np.asarray(raw, dtype=float)
    y = np.asarray(y, dtype=float)
    if method != "auto":
        return _fit(method, raw, y)
    rng = np.random.default_rng(seed)
    mask = rng.random(len(y)) < 0.5
    if len(np.unique(y[mask])) < 2 or len(np.unique(y[~mask])) < 2:
        return _fit("platt", raw, y)
    scores = {}
    for m in ("isotonic", "platt", "none"):
        cal = _fit(m, raw[mask], y[mask])
        scores[m] = brier_score_loss(y[~mask], cal(raw[~mask]))
    return _fit(min(scores, key=scores.get), raw, y)
