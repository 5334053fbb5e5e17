"""Uplift metrics through scikit-uplift: normalised Qini, uplift@k, Qini curve, uplift by decile.

Every function takes the outcome `y` (1 = the target happened), the arm `treated` and a `score`
where higher means "contact first". `goal` says what the treatment is for: "increase" (a visit)
or "decrease" (churn). For "decrease" the good outcome is y = 0, so the metrics see 1 − y and
every figure reads as improvement: positive means the treatment helped those ranked first.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np
import polars as pl

GOALS = ("increase", "decrease")


def _arrays(y, treated, score, goal: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # scikit-uplift indexes positionally: plain numpy arrays, never a pandas Series.
    if goal not in GOALS:
        raise ValueError(f"goal must be one of {GOALS}, not {goal!r}")
    y = np.asarray(y, dtype=float)
    t = np.asarray(treated).astype(int)
    s = np.asarray(score, dtype=float)
    if not (len(y) == len(t) == len(s)):
        raise ValueError("outcome, treatment and score need the same length")
    if t.min() == t.max():
        raise ValueError("uplift metrics need both treated and control customers")
    return (y if goal == "increase" else 1.0 - y), t, s


@contextmanager
def _quiet():
    # scikit-uplift 0.5.1 calls a scikit-learn helper deprecated in 1.8; the result is the same.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


def qini(y, treated, score, goal: str = "increase") -> float:
    """Normalised Qini coefficient (scikit-uplift `qini_auc_score`): random 0, perfect 1."""
    from sklift.metrics import qini_auc_score

    yy, t, s = _arrays(y, treated, score, goal)
    with _quiet():
        return float(qini_auc_score(yy, s, t))


def uplift_at(y, treated, score, k: float = 0.3, goal: str = "increase") -> float:
    """Treated minus control good-outcome rate among the top k of all rows ranked together."""
    from sklift.metrics import uplift_at_k

    yy, t, s = _arrays(y, treated, score, goal)
    return float(uplift_at_k(yy, s, t, strategy="overall", k=k))


def average_effect(y, treated, goal: str = "increase") -> float:
    """Treated minus control good-outcome rate over all rows (what random ranking gets)."""
    yy, t, _ = _arrays(y, treated, np.zeros(len(y)), goal)
    return float(yy[t == 1].mean() - yy[t == 0].mean())


def qini_points(y, treated, score, goal: str = "increase", points: int = 101) -> pl.DataFrame:
    """The Qini curve of the score, of a perfect ranking and of random ranking, on a share grid.

    `incremental` is scikit-uplift's `qini_curve`: extra good outcomes among the top share,
    treated minus control scaled to the treated count.
    """
    from sklift.metrics import perfect_qini_curve, qini_curve

    yy, t, s = _arrays(y, treated, score, goal)
    n = len(yy)
    grid = np.linspace(0.0, 1.0, points)
    with _quiet():
        x_m, q_m = qini_curve(yy, s, t)
        x_p, q_p = perfect_qini_curve(yy, t, negative_effect=True)
    model = np.interp(grid * n, x_m, q_m)
    perfect = np.interp(grid * n, x_p, q_p)
    return pl.DataFrame(
        {
            "share": grid,
            "model": model,
            "perfect": perfect,
            "random": grid * q_m[-1],
        }
    )


def uplift_by_decile(y, treated, score, goal: str = "increase", bins: int = 10) -> pl.DataFrame:
    """Per decile of the score (1 = highest): treated and control rates and their difference."""
    from sklift.metrics import uplift_by_percentile

    yy, t, s = _arrays(y, treated, score, goal)
    table = uplift_by_percentile(yy, s, t, strategy="overall", bins=bins, total=False)
    return pl.DataFrame(
        {
            "decile": np.arange(1, len(table) + 1),
            "n_treated": table["n_treatment"].to_numpy(),
            "n_control": table["n_control"].to_numpy(),
            "rate_treated": table["response_rate_treatment"].to_numpy().astype(float),
            "rate_control": table["response_rate_control"].to_numpy().astype(float),
            "uplift": table["uplift"].to_numpy().astype(float),
        }
    )
