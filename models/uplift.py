"""Uplift: a two-model (T-learner) estimate of how much each offer lowers churn, and the Qini measure.

The control arm learns P(churn | x) from customers left alone (control groups and customers not
on a list); the treated arm learns P(churn | x, offer) from contacted customers with the offer as
a feature, so offers share strength on small campaign histories. Uplift for an offer is the drop
in churn probability: P(churn | x) − P(churn | x, offer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from models import lgbm

OFFER_COLUMN = "offer"


@dataclass
class UpliftModel:
    control: lgbm.TrainedModel
    treated: lgbm.TrainedModel
    offers: list[str]

    def uplift(self, frame: pl.DataFrame, offer: str | pl.Series) -> np.ndarray:
        """Estimated churn reduction if each customer in frame got `offer` (or the offers given)."""
        offers = (
            offer if isinstance(offer, pl.Series) else pl.repeat(offer, frame.height, eager=True)
        )
        p_c = self.control.predict(frame)
        p_t = self.treated.predict(frame.with_columns(offers.alias(OFFER_COLUMN)))
        return p_c - p_t

    def uplift_columns(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`uplift_<offer>` for every offer the model has seen (what the policy consumes)."""
        p_c = self.control.predict(frame)
        cols = {}
        for offer in self.offers:
            p_t = self.treated.predict(frame.with_columns(pl.lit(offer).alias(OFFER_COLUMN)))
            cols[f"uplift_{offer}"] = p_c - p_t
        return pl.DataFrame(cols)


def _arm(
    frame: pl.DataFrame, y: np.ndarray, columns: list[str], seed: int, rounds: int
) -> lgbm.TrainedModel:
    # A random fifth finds the number of trees and the calibration; then refit on all rows.
    rng = np.random.default_rng(seed)
    inner = rng.random(frame.height) < 0.2
    if y[inner].sum() == 0 or y[~inner].sum() == 0:
        raise ValueError("an uplift arm has too few churners to learn from")
    return lgbm.fit(
        frame.filter(pl.Series(~inner)),
        y[~inner],
        frame.filter(pl.Series(inner)),
        y[inner],
        columns,
        {"num_leaves": 7, "min_child_samples": 30, "learning_rate": 0.05},
        num_boost_round=rounds,
        early_stopping_rounds=30,
        calibration="platt",
        seed=seed,
        refit=True,
    )


def fit_uplift(
    treated: pl.DataFrame,
    y_treated: np.ndarray,
    control: pl.DataFrame,
    y_control: np.ndarray,
    columns: list[str],
    seed: int = 0,
    rounds: int = 400,
) -> UpliftModel:
    """Two LightGBM models: churn without contact, and churn with contact and a given offer."""
    if OFFER_COLUMN not in treated.columns:
        raise ValueError("treated rows need the offer they received")
    offers = sorted(treated[OFFER_COLUMN].drop_nulls().unique().to_list())
    control_model = _arm(control, y_control, columns, seed, rounds)
    treated_model = _arm(treated, y_treated, [*columns, OFFER_COLUMN], seed + 1, rounds)
    return UpliftModel(control_model, treated_model, offers)


def qini_curve(
    churned: np.ndarray, treated: np.ndarray, score: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Incremental customers retained among the top-k by score, for k = 0..n.

    Q(k) = retained_T(k) − retained_C(k) × n_T(k) / n_C(k) (Radcliffe), with retained = not churned.
    """
    churned, treated, score = map(np.asarray, (churned, treated, score))
    order = np.argsort(-score, kind="stable")
    kept = 1.0 - churned[order].astype(float)
    t = treated[order].astype(bool)
    n_t, n_c = np.cumsum(t), np.cumsum(~t)
    r_t, r_c = np.cumsum(kept * t), np.cumsum(kept * ~t)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(n_c > 0, r_t - r_c * n_t / np.maximum(n_c, 1), r_t)
    return np.arange(len(q) + 1), np.concatenate([[0.0], q])


def qini_coefficient(churned: np.ndarray, treated: np.ndarray, score: np.ndarray) -> float:
    """Area between the model's Qini curve and random targeting, over that of a perfect ranking.

    1 = perfect, 0 = no better than random, negative = worse than random. The perfect ranking puts
    treated customers who stayed first and control customers who stayed last.
    """
    churned, treated = np.asarray(churned), np.asarray(treated).astype(bool)
    if treated.all() or (~treated).all():
        raise ValueError("the Qini coefficient needs both treated and control customers")
    kept = 1.0 - churned.astype(float)
    perfect_score = kept * treated - kept * ~treated

    def area(s: np.ndarray) -> float:
        x, q = qini_curve(churned, treated, s)
        return float(np.trapezoid(q, x))

    _, q = qini_curve(churned, treated, score)
    random_area = q[-1] * len(churned) / 2.0
    best = area(perfect_score) - random_area
    if best <= 0:
        return 0.0
    return (area(score) - random_area) / best
