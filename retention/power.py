"""Power of a campaign: customers needed to detect a churn reduction, and what a campaign can detect.

Two-proportion z-test, two-sided (Fleiss, Levin & Paik, "Statistical Methods for Rates and
Proportions", 3rd ed., eq. 4.14, without continuity correction), with control churn `base` and
treated churn `base − effect`, a share `control_share` of the campaign in control:

    N = (z₁₋α/₂ √(p̄q̄ (1/c + 1/t)) + z₁₋β √(p₁q₁/c + p₂q₂/t))² / effect²

where c and t = 1 − c are the arm shares and p̄ = c·p₁ + t·p₂. Equal arms (c = ½) give N = 2n.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class CampaignSize:
    control: int
    treated: int

    @property
    def total(self) -> int:
        return self.control + self.treated


def _standard_errors(base: float, effect: float, control_n: float, treated_n: float):
    p1, p2 = base, base - effect
    pooled = (control_n * p1 + treated_n * p2) / (control_n + treated_n)
    null = math.sqrt(pooled * (1 - pooled) * (1 / control_n + 1 / treated_n))
    alt = math.sqrt(p1 * (1 - p1) / control_n + p2 * (1 - p2) / treated_n)
    return null, alt


def _check(base: float, effect: float, alpha: float, power: float) -> None:
    if not 0.0 < base < 1.0:
        raise ValueError("the base churn rate must lie strictly between 0 and 1")
    if not 0.0 < effect <= base:
        raise ValueError("the churn reduction must be positive and at most the base rate")
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise ValueError("alpha and power must lie strictly between 0 and 1")


def campaign_size(
    base: float, effect: float, alpha: float = 0.05, power: float = 0.8, control_share: float = 0.5
) -> CampaignSize:
    """Customers per arm to detect an absolute churn reduction `effect` from `base`."""
    _check(base, effect, alpha, power)
    if not 0.0 < control_share < 1.0:
        raise ValueError("the control share must lie strictly between 0 and 1")
    za, zb = stats.norm.isf(alpha / 2), stats.norm.isf(1 - power)
    null, alt = _standard_errors(base, effect, control_share, 1 - control_share)
    total = (za * null + zb * alt) ** 2 / effect**2
    return CampaignSize(
        control=math.ceil(total * control_share - 1e-9),
        treated=math.ceil(total * (1 - control_share) - 1e-9),
    )


def detectable_effect(
    base: float, control_n: int, treated_n: int, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest absolute churn reduction a campaign of these arms detects with this power.

    The reduction can at most remove all churn; returns `base` when even that is not detectable.
    """
    if control_n <= 0 or treated_n <= 0:
        return float("nan")
    _check(base, base, alpha, power)
    za, zb = stats.norm.isf(alpha / 2), stats.norm.isf(1 - power)

    def reach(effect: float) -> float:  # > 0 when the effect is detectable
        null, alt = _standard_errors(base, effect, control_n, treated_n)
        return effect - (za * null + zb * alt)

    if reach(base) <= 0:
        return base
    lo, hi = 0.0, base
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if reach(mid) > 0 else (mid, hi)
    return hi
