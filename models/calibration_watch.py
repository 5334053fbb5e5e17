"""Calibration in the large, every cycle: expected churners against what recently happened.

A shift that moves the whole base (a competitor launch moving everyone's usage mix) can move a
model's scores for everyone although few more customers churn. Two yardsticks catch it before a
list is built: the trailing realised churn rate over the same horizon (matured snapshots), and
the champion's mean score in its own out-of-time validation month.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from configs.schema import CalibrationWatchConfig


@dataclass(frozen=True)
class CalibrationCheck:
    expected_rate: float
    trailing_rate: float | None
    validation_score: float | None
    ratio: float  # the largest departure from either yardstick (≥ 1, either direction)
    action: str  # publish, hold or recalibrate
    reason: str
    logit_shift: float = 0.0


def _departure(a: float, b: float | None) -> float:
    if b is None or b <= 0 or a <= 0:
        return 1.0
    return max(a / b, b / a)


def check_calibration(
    p: np.ndarray,
    trailing_rate: float | None,
    validation_score: float | None,
    rule: CalibrationWatchConfig,
) -> CalibrationCheck:
    """Publish when mean score sits within `max_ratio` of both yardsticks; else hold or
    recalibrate as configured. Recalibration needs the trailing rate (the prior it restores)."""
    expected = float(np.mean(p))
    ratio = max(_departure(expected, trailing_rate), _departure(expected, validation_score))
    said = (
        f"mean churn score {expected:.3f} vs trailing realised rate "
        f"{_fmt(trailing_rate)} and the champion's validation-month mean score "
        f"{_fmt(validation_score)}: {ratio:.2f}x apart (limit {rule.max_ratio}x)"
    )
    if ratio <= rule.max_ratio:
        return CalibrationCheck(expected, trailing_rate, validation_score, ratio, "publish", said)
    if rule.action == "recalibrate" and trailing_rate:
        shift = prior_shift(p, trailing_rate)
        return CalibrationCheck(
            expected,
            trailing_rate,
            validation_score,
            ratio,
            "recalibrate",
            f"recalibrated to the trailing rate (logit shift {shift:+.3f}): {said}",
            shift,
        )
    return CalibrationCheck(
        expected,
        trailing_rate,
        validation_score,
        ratio,
        "hold",
        f"list held for review: {said}",
    )


def _fmt(x: float | None) -> str:
    return "unknown" if x is None else f"{x:.3f}"


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def prior_shift(p: np.ndarray, target_rate: float) -> float:
    """The logit shift that brings the mean score to `target_rate` (Saerens et al. 2002: a change
    of class prior moves every log-odds by the same amount); ranking is unchanged."""
    z = _logit(np.asarray(p, dtype=float))
    lo, hi = -20.0, 20.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(z + mid)))) < target_rate:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def apply_shift(p: np.ndarray, shift: float) -> np.ndarray:
    return 1 / (1 + np.exp(-(_logit(np.asarray(p, dtype=float)) + shift)))
