"""Campaign evaluation statistics: treated vs control churn, a test and the interval it implies.

The p-value and the interval for the churn reduction come from one test, so they never disagree:
the interval holds every difference δ the test does not reject at level α. With all expected
counts of the 2×2 table at least 5 the test is the score (Pearson χ²) test; otherwise it is the
exact unconditional test on the same score statistic (Barnard's test at δ = 0; the interval is
Chan & Zhang's 1999 exact unconditional interval). Hence p < α exactly when the interval
excludes 0.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special, stats

MIN_EXPECTED = 5.0  # below this expected count in any cell the χ² approximation is not trusted
NUISANCE_GRID = 101  # points over which the exact test maximises the tail probability
FULL_TABLES = 400  # arms up to this size enumerate every outcome; larger ones only likely ones
BERGER_BOOS_GAMMA = 0.001  # confidence spent on restricting the nuisance rate (Berger & Boos 1994)
TOO_FEW_CONTROLS = "too few controls to tell"


def restricted_rates(
    x1: np.ndarray, n1: int, x2: np.ndarray, n2: int, delta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-likelihood rates (p1, p2) under p1 − p2 = δ (Farrington & Manning 1990, closed form)."""
    x1, x2 = np.asarray(x1, dtype=float), np.asarray(x2, dtype=float)
    theta = n2 / n1
    a = 1.0 + theta
    b = -(1.0 + theta + x1 / n1 + theta * x2 / n2 + delta * (theta + 2.0))
    c = delta**2 + delta * (2.0 * x1 / n1 + theta + 1.0) + x1 / n1 + theta * x2 / n2
    d = -(x1 / n1) * delta * (1.0 + delta)
    v = b**3 / (27 * a**3) - b * c / (6 * a**2) + d / (2 * a)
    u = np.sign(v) * np.sqrt(np.maximum(b**2 / (9 * a**2) - c / (3 * a), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(u == 0, 0.0, v / np.where(u == 0, 1.0, u**3))
    w = (math.pi + np.arccos(np.clip(ratio, -1.0, 1.0))) / 3.0
    p1 = np.clip(2.0 * u * np.cos(w) - b / (3 * a), max(0.0, delta), min(1.0, 1.0 + delta))
    return p1, p1 - delta


def score_statistic(x1, n1: int, x2, n2: int, delta: float) -> np.ndarray:
    """(p̂1 − p̂2 − δ) / its standard error at the restricted rates; at δ = 0, Z² is Pearson's χ²."""
    x1, x2 = np.asarray(x1, dtype=float), np.asarray(x2, dtype=float)
    p1, p2 = restricted_rates(x1, n1, x2, n2, delta)
    se = np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    num = x1 / n1 - x2 / n2 - delta
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, num / np.where(se > 0, se, 1.0), np.sign(num) * np.inf)
    return np.where(np.abs(num) < 1e-12, 0.0, z)


def _binomial_pmf(n: int, rates: np.ndarray) -> np.ndarray:
    """P(k of n) for k = 0..n (columns) at each rate (rows), from log-factorials: fast at any n."""
    k = np.arange(n + 1)
    log_choose = special.gammaln(n + 1) - special.gammaln(k + 1) - special.gammaln(n - k + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_p = special.xlogy(k[None, :], rates[:, None]) + special.xlog1py(
            (n - k)[None, :], -rates[:, None]
        )
    return np.exp(log_choose[None, :] + log_p)


def _exact_tail(x1: int, n1: int, x2: int, n2: int, delta: float) -> float:
    """Largest probability, over the rates with p1 − p2 = δ, of a table at least as extreme.

    Berger & Boos (1994): the supremum runs over a (1 − γ) Clopper–Pearson interval of the larger
    arm's rate, and γ is added, so the test stays exact while only tables with a probability
    above 1e-12 need their statistic; that keeps thousands of treated customers cheap.
    """
    large_first = n1 >= n2
    lo, hi = _clopper_pearson(*((x1, n1) if large_first else (x2, n2)))
    shift = 0.0 if large_first else delta  # grid over p1 = (that arm's rate) + shift
    lo, hi = max(lo + shift, delta, 0.0), min(hi + shift, 1.0 + delta, 1.0)
    if lo > hi:  # no rate pair with this difference is compatible with the larger arm
        return BERGER_BOOS_GAMMA
    grid = np.linspace(lo, hi, NUISANCE_GRID)

    def outcomes(n: int, observed: int, rate_lo: float, rate_hi: float) -> np.ndarray:
        if n <= FULL_TABLES:  # small arms: every outcome, no quantile look-ups
            return np.arange(n + 1)
        first = int(stats.binom.ppf(1e-12, n, rate_lo)) if rate_lo > 0 else 0
        last = int(stats.binom.isf(1e-12, n, rate_hi)) + 1 if rate_hi < 1 else n
        return np.arange(min(first, observed), max(min(last, n), observed) + 1)

    t1 = outcomes(n1, x1, lo, hi)
    t2 = outcomes(n2, x2, max(lo - delta, 0.0), min(hi - delta, 1.0))
    z = score_statistic(t1[:, None], n1, t2[None, :], n2, delta)
    observed = abs(float(score_statistic(x1, n1, x2, n2, delta)))
    extreme = (np.abs(z) >= observed - 1e-9).astype(float)  # tolerance: ties count as extreme

    def tail(p1: np.ndarray) -> np.ndarray:
        a = _binomial_pmf(n1, p1)[:, t1]
        b = _binomial_pmf(n2, np.clip(p1 - delta, 0.0, 1.0))[:, t2]
        return ((a @ extreme) * b).sum(axis=1)

    values = tail(grid)
    # Refine around the best grid point: the supremum is what makes the test exact.
    best = int(np.argmax(values))
    fine = np.linspace(grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)], 21)
    return float(min(max(values.max(), tail(fine).max()) + BERGER_BOOS_GAMMA, 1.0))


@functools.lru_cache(maxsize=256)
def _clopper_pearson(x: int, n: int) -> tuple[float, float]:
    """(1 − γ) interval of a rate from x of n: where the exact test looks for its supremum."""
    lo = float(stats.beta.ppf(BERGER_BOOS_GAMMA / 2, x, n - x + 1)) if x > 0 else 0.0
    hi = float(stats.beta.isf(BERGER_BOOS_GAMMA / 2, x + 1, n - x)) if x < n else 1.0
    return lo, hi


def _p_value(x1: int, n1: int, x2: int, n2: int, delta: float, exact: bool) -> float:
    if exact:
        return _exact_tail(x1, n1, x2, n2, delta)
    z = float(score_statistic(x1, n1, x2, n2, delta))
    return float(2 * stats.norm.sf(abs(z)))


def needs_exact(x1: int, n1: int, x2: int, n2: int) -> bool:
    """True when any expected count of the 2×2 table is below 5."""
    churned, stayed, total = x1 + x2, n1 + n2 - x1 - x2, n1 + n2
    return min(churned, stayed) * min(n1, n2) / total < MIN_EXPECTED


def _bound(x1: int, n1: int, x2: int, n2: int, inside: float, outside: float, alpha, exact):
    """The δ between `inside` (not rejected) and `outside` (rejected) where p crosses α."""
    # Exact: 2⁻¹³ of the search range, finer than the 0.1 point shown; the score test is cheap.
    for _ in range(13 if exact else 30):
        mid = (inside + outside) / 2
        if _p_value(x1, n1, x2, n2, mid, exact) >= alpha:
            inside = mid
        else:
            outside = mid
    return inside


def difference_test(
    x1: int, n1: int, x2: int, n2: int, alpha: float = 0.05
) -> tuple[float, float, float, str]:
    """p-value of p1 = p2 and the (1 − α) interval of p1 − p2 inverting the same test.

    The bound on 0's side is searched between the estimate and 0 when 0 is rejected and beyond
    0 otherwise, so the interval excludes 0 exactly when p < α.
    """
    exact = needs_exact(x1, n1, x2, n2)
    d = x1 / n1 - x2 / n2
    p0 = _p_value(x1, n1, x2, n2, 0.0, exact)
    bounds = []
    for edge in (-1.0, 1.0):  # lower bound, then upper bound
        zero_side = (edge < 0) == (d > 0)
        if zero_side and p0 < alpha:  # 0 rejected: the bound lies between 0 and the estimate
            bounds.append(_bound(x1, n1, x2, n2, d, 0.0, alpha, exact))
        elif _p_value(x1, n1, x2, n2, edge, exact) >= alpha:
            bounds.append(edge)
        else:  # from the estimate, or from 0 when 0 is not rejected, out to the edge
            start = 0.0 if zero_side else d
            bounds.append(_bound(x1, n1, x2, n2, start, edge, alpha, exact))
    return p0, bounds[0], bounds[1], "exact unconditional" if exact else "score (χ²)"


def compare(
    treated_n: int,
    treated_churned: int,
    control_n: int,
    control_churned: int,
    alpha: float = 0.05,
    min_control: int = 0,
) -> dict:
    """Churn rates, their difference (control − treated) with the test's (1 − α) interval, the
    p-value, incremental customers saved among the treated and a verdict in words."""
    if treated_n <= 0 or control_n <= 0:
        raise ValueError("both treated and control groups need customers")
    pt, pc = treated_churned / treated_n, control_churned / control_n
    p, low, high, method = difference_test(
        control_churned, control_n, treated_churned, treated_n, alpha
    )
    return {
        "treated": treated_n,
        "control": control_n,
        "treated_churn_rate": pt,
        "control_churn_rate": pc,
        "difference": pc - pt,
        "ci_low": low,
        "ci_high": high,
        "p_value": p,
        "test": method,
        "incremental_saves": (pc - pt) * treated_n,
        "verdict": verdict(p, pc - pt, control_n, alpha, min_control),
    }


def verdict(p_value: float, difference: float, control_n: int, alpha: float, min_control: int):
    """What a campaign showed, in words a marketer can act on."""
    if control_n < min_control:
        return TOO_FEW_CONTROLS
    if p_value >= alpha:
        return "no detectable difference"
    return "churn reduced" if difference > 0 else "churn increased"


def roi(incremental_saves: float, value_per_save: float, cost: float) -> float | None:
    """Net return per unit spent; None when nothing was spent."""
    if cost <= 0:
        return None
    return (incremental_saves * value_per_save - cost) / cost


def roi_interval(
    ci_low: float, ci_high: float, treated_n: int, value_per_save: float, cost: float
) -> tuple[float | None, float | None]:
    """ROI at the churn-reduction interval's ends: ROI rises with the reduction, so these bound it."""
    return (
        roi(ci_low * treated_n, value_per_save, cost),
        roi(ci_high * treated_n, value_per_save, cost),
    )


def realisation(
    observed_saves: float,
    predicted_saves: float,
    se: float,
    prior_sd: float,
    max_factor: float = 2.0,
) -> float:
    """Share of predicted saves that materialised, shrunk toward 1 by the campaigns' precision.

    The campaigns estimate the factor as observed / predicted with standard error se / predicted
    (`se`: standard error of the observed incremental saves). With a normal prior on the factor,
    mean 1 and sd `prior_sd`, the posterior mean is 1 + w (observed / predicted − 1) with
    w = prior_sd² / (prior_sd² + (se / predicted)²): a result within its own noise moves the
    factor little, a precise one moves it all the way. Clipped to [0, max_factor] (campaigns that
    did harm earn nothing).
    """
    if predicted_saves < 0 or se < 0 or prior_sd <= 0:
        raise ValueError("predicted saves and the standard error must not be negative")
    if predicted_saves == 0:
        return 1.0
    ratio = observed_saves / predicted_saves
    noise = (se / predicted_saves) ** 2
    weight = prior_sd**2 / (prior_sd**2 + noise)
    return min(max(1.0 + weight * (ratio - 1.0), 0.0), max_factor)


def saves_standard_error(
    treated_n: int, control_n: int, treated_rate: float, control_rate: float
) -> float:
    """Standard error of incremental saves, (control rate − treated rate) × treated customers."""
    if treated_n <= 0 or control_n <= 0:
        return float("inf")
    var = (
        control_rate * (1 - control_rate) / control_n
        + treated_rate * (1 - treated_rate) / treated_n
    )
    return treated_n * var**0.5
