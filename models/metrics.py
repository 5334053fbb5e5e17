"""Model quality metrics: ranking, calibration, lift/gains, KS and the expected maximum profit (EMPC)."""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve


def _check(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError("labels and scores must be 1-d arrays of the same length")
    if len(np.unique(y)) < 2:
        raise ValueError("metrics need both classes among the labels")
    return y, p


def top_decile_lift(y, p, fraction: float = 0.1) -> float:
    """Positive rate among the top `fraction` by score, relative to the overall rate."""
    y, p = _check(y, p)
    k = max(1, int(round(len(y) * fraction)))
    top = np.argsort(-p, kind="stable")[:k]
    return float(y[top].mean() / y.mean())


def gains_table(y, p, bins: int = 10) -> list[dict[str, float]]:
    """Cumulative gains and lift by score decile (decile 1 = highest scores)."""
    y, p = _check(y, p)
    order = np.argsort(-p, kind="stable")
    ys = y[order]
    edges = np.linspace(0, len(y), bins + 1).round().astype(int)
    total = ys.sum()
    rows, cum = [], 0.0
    for i in range(bins):
        part = ys[edges[i] : edges[i + 1]]
        cum += part.sum()
        share = edges[i + 1] / len(y)
        rows.append(
            {
                "decile": i + 1,
                "customers": int(len(part)),
                "positives": float(part.sum()),
                "rate": float(part.mean()) if len(part) else 0.0,
                "cumulative_gain": float(cum / total),
                "cumulative_lift": float((cum / total) / share),
            }
        )
    return rows


def calibration_curve(y, p, bins: int = 10) -> list[dict[str, float]]:
    """Mean predicted vs observed rate in equal-count bins."""
    y, p = _check(y, p)
    order = np.argsort(p, kind="stable")
    out = []
    for chunk in np.array_split(order, bins):
        if len(chunk):
            out.append(
                {
                    "predicted": float(p[chunk].mean()),
                    "observed": float(y[chunk].mean()),
                    "customers": int(len(chunk)),
                }
            )
    return out


def ks_statistic(y, p) -> float:
    """Kolmogorov–Smirnov: the largest gap between the score distributions of the two classes."""
    y, p = _check(y, p)
    fpr, tpr, _ = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def empc(
    y,
    p,
    clv: float = 200.0,
    incentive_cost: float = 10.0,
    contact_cost: float = 1.0,
    alpha: float = 6.0,
    beta: float = 14.0,
    grid: int = 2000,
) -> tuple[float, float]:
    """Expected maximum profit for churn (Verbraken et al. 2013) and the targeted fraction.

    Profit per customer when targeting the top fraction with acceptance rate γ:
        P(t) = CLV (γ(1 − δ) − φ) π₀ F₀(t) − CLV (δ + φ) π₁ F₁(t)
    with δ = incentive/CLV, φ = contact/CLV, π₀ the churn rate, F₀/F₁ the shares of churners /
    non-churners targeted. For each γ the best cut-off is chosen; EMPC averages that maximum over
    γ ~ Beta(α, β). Returns (EMPC per customer, expected profit-maximising targeted fraction).
    """
    y, p = _check(y, p)
    delta, phi = incentive_cost / clv, contact_cost / clv
    pi0 = y.mean()
    pi1 = 1 - pi0
    fpr, tpr, _ = roc_curve(y, p)  # starts at (0, 0): targeting nobody is always an option
    eta = pi0 * tpr + pi1 * fpr
    gammas = (np.arange(grid) + 0.5) / grid
    weights = stats.beta.pdf(gammas, alpha, beta)
    weights /= weights.sum()
    benefit = clv * (gammas[:, None] * (1 - delta) - phi) * pi0 * tpr[None, :]
    cost = clv * (delta + phi) * pi1 * fpr[None, :]
    profit = benefit - cost
    best = profit.argmax(axis=1)
    value = float((profit[np.arange(grid), best] * weights).sum())
    fraction = float((eta[best] * weights).sum())
    return value, fraction


def summary(y, p, task: str = "churn", empc_params: dict | None = None) -> dict[str, float]:
    """The headline metrics logged for every model."""
    y, p = _check(y, p)
    out = {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "top_decile_lift": top_decile_lift(y, p),
        "brier": float(brier_score_loss(y, p)),
        "ks": ks_statistic(y, p),
        "n_rows": float(len(y)),
        "positive_rate": float(y.mean()),
        # Calibration in the large: later cycles compare their mean score with this month's.
        "mean_score": float(p.mean()),
    }
    if task == "churn":
        value, fraction = empc(y, p, **(empc_params or {}))
        out["empc"] = value
        out["empc_fraction"] = fraction
    return out
