"""Campaign evaluation statistics: treated vs control churn, interval, χ² test, saves and ROI."""

from __future__ import annotations

import math

from scipy import stats


def compare(
    treated_n: int, treated_churned: int, control_n: int, control_churned: int, z: float = 1.96
) -> dict:
    """Churn rates, their difference (control − treated) with a normal-approximation interval,
    the χ² p-value of the 2×2 table, and incremental customers saved among the treated."""
    if treated_n <= 0 or control_n <= 0:
        raise ValueError("both treated and control groups need customers")
    pt, pc = treated_churned / treated_n, control_churned / control_n
    diff = pc - pt
    se = math.sqrt(pt * (1 - pt) / treated_n + pc * (1 - pc) / control_n)
    table = [
        [treated_churned, treated_n - treated_churned],
        [control_churned, control_n - control_churned],
    ]
    if (
        min(sum(r) for r in table) == 0
        or min(table[0][0] + table[1][0], table[0][1] + table[1][1]) == 0
    ):
        p_value = 1.0
    else:
        p_value = float(stats.chi2_contingency(table, correction=False)[1])
    return {
        "treated": treated_n,
        "control": control_n,
        "treated_churn_rate": pt,
        "control_churn_rate": pc,
        "difference": diff,
        "ci_low": diff - z * se,
        "ci_high": diff + z * se,
        "p_value": p_value,
        "incremental_saves": diff * treated_n,
    }


def roi(incremental_saves: float, value_per_save: float, cost: float) -> float | None:
    """Net return per unit spent; None when nothing was spent."""
    if cost <= 0:
        return None
    return (incremental_saves * value_per_save - cost) / cost


def realisation(observed_saves: float, predicted_saves: float, prior_strength: float) -> float:
    """Share of predicted saves that materialised, shrunk toward 1 by `prior_strength` saves.

    0 when campaigns saved nobody (or did harm); 1 when they saved what was predicted.
    """
    if predicted_saves < 0 or prior_strength < 0:
        raise ValueError("predicted saves and prior strength must not be negative")
    if predicted_saves + prior_strength == 0:
        return 1.0
    return min(
        max((observed_saves + prior_strength) / (predicted_saves + prior_strength), 0.0), 1.0
    )
