"""Uplift: how much each offer lowers churn, per customer, and the Qini measure.

Two learners share one interface (`uplift_<offer>` columns for the policy):

* `relative` (default): the control arm learns P(churn | x) with LightGBM from every customer
  left alone (control groups and customers not on a list) — plenty of rows. The treated arm
  learns only how an offer shifts that risk: a ridge logistic regression on contacted customers
  with the control model's log-odds as an offset, an intercept per offer and offer × feature
  interactions. Campaign histories are small and offers act on the churn hazard, so learning the
  shift (a few hundred parameters) instead of a second churn model needs far fewer campaigns.
* `two_model`, `solo`, `class_transformation`, `x_learner`, `dr_learner`: the binary learners
  of models/uplift_learners.py, one per offer, each on that offer's contacted customers against
  every control customer (`PerOfferUplift`).

Uplift for an offer is the drop in churn probability: P(churn | x) − P(churn | x, offer).
The same code serves `churn snapshot --treatment` on a campaign table with one treatment.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.optimize import minimize
from scipy.special import expit, logit

from models import lgbm, uplift_metrics
from models.uplift_learners import BINARY_LEARNERS, BinaryUplift, fit_binary

OFFER_COLUMN = "offer"
LEARNERS = ("relative", *BINARY_LEARNERS)


@dataclass
class Design:
    """Standardised numeric features and one-hot small categoricals, as fitted on training rows."""

    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)
    categorical: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def fit(cls, frame: pl.DataFrame, columns: list[str], max_levels: int = 8) -> Design:
        d = cls()
        for c in columns:
            col = frame[c]
            if col.dtype.is_numeric() or col.dtype == pl.Boolean:
                x = col.cast(pl.Float64).to_numpy()
                x = x[np.isfinite(x)]
                sd = float(x.std()) if x.size else 0.0
                if sd > 1e-9:
                    d.numeric[c] = (float(np.median(x)), sd)
            elif col.dtype in (pl.Utf8, pl.Categorical):
                levels = col.cast(pl.Utf8).drop_nulls().value_counts(sort=True)[c].to_list()
                if 1 < len(levels) <= max_levels:
                    d.categorical[c] = levels[1:]  # the most common level is the baseline
        return d

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(map(len, self.categorical.values()))

    def matrix(self, frame: pl.DataFrame) -> np.ndarray:
        cols = []
        for c, (centre, sd) in self.numeric.items():
            x = frame[c].cast(pl.Float64).to_numpy() if c in frame.columns else np.full(1, np.nan)
            x = np.where(np.isfinite(x), (x - centre) / sd, 0.0)
            cols.append(np.clip(x, -4.0, 4.0))
        for c, levels in self.categorical.items():
            v = frame[c].cast(pl.Utf8).to_numpy() if c in frame.columns else None
            cols.extend(
                (v == lv).astype(float) if v is not None else np.zeros(frame.height)
                for lv in levels
            )
        if not cols:
            return np.zeros((frame.height, 0))
        return np.column_stack([np.broadcast_to(c, frame.height) for c in cols])


@dataclass
class OfferShift:
    """Log-odds shift of churn by offer: intercept per offer + shared and per-offer slopes."""

    design: Design
    offers: list[str]
    intercept: np.ndarray  # (offers,)
    shared: np.ndarray  # (features,)
    per_offer: np.ndarray  # (offers, features)
    penalty: float

    def shift(self, frame: pl.DataFrame, offers: np.ndarray) -> np.ndarray:
        z = self.design.matrix(frame)
        out = np.zeros(frame.height)
        for k, o in enumerate(self.offers):
            m = offers == o
            if m.any():
                out[m] = self.intercept[k] + z[m] @ (self.shared + self.per_offer[k])
        return out


def _fit_shift(
    z: np.ndarray, offer_idx: np.ndarray, k: int, offset: np.ndarray, y: np.ndarray, penalty: float
) -> np.ndarray:
    """Ridge logistic regression with an offset.

    Returns [intercept per offer (k), shared slopes (p), per-offer slopes (k × p)]. The intercept
    is a common contact effect (free) plus a per-offer deviation (penalised), so offers with few
    churners borrow strength from the others; per-offer slopes are penalised twice as hard as
    the shared ones.
    """
    n, p = z.shape
    onehot = np.zeros((n, k))
    onehot[np.arange(n), offer_idx] = 1.0

    def unpack(w):
        return w[0], w[1 : k + 1], w[k + 1 : k + 1 + p], w[k + 1 + p :].reshape(k, p)

    def loss(w):
        b0, b, g, d = unpack(w)
        eta = offset + b0 + b[offer_idx] + z @ g + np.einsum("ij,ij->i", z, d[offer_idx])
        mu = expit(eta)
        val = np.sum(np.logaddexp(0.0, eta) - y * eta) + 0.5 * penalty * (
            g @ g + 2.0 * np.sum(d * d) + 0.1 * b @ b
        )
        r = mu - y
        gb = onehot.T @ r + 0.1 * penalty * b
        gg = z.T @ r + penalty * g
        # One-hot product rather than np.add.at: the same sums, ~100× faster on many rows.
        gd = onehot.T @ (z * r[:, None]) + 2.0 * penalty * d
        return val, np.concatenate([[r.sum()], gb, gg, gd.ravel()])

    w0 = np.zeros(1 + k + p + k * p)
    w = minimize(loss, w0, jac=True, method="L-BFGS-B", options={"maxiter": 500}).x
    return np.concatenate([w[0] + w[1 : k + 1], w[k + 1 :]])


def fit_offer_shift(
    treated: pl.DataFrame,
    y: np.ndarray,
    offset: np.ndarray,
    columns: list[str],
    seed: int = 0,
    penalties: tuple[float, ...] = (3.0, 30.0, 300.0, 3000.0),
) -> OfferShift:
    """Choose the ridge penalty by 3-fold held-out log-loss, then refit on all treated rows."""
    offers = sorted(treated[OFFER_COLUMN].drop_nulls().unique().to_list())
    design = Design.fit(treated, columns)
    z = design.matrix(treated)
    idx = np.searchsorted(np.array(offers), treated[OFFER_COLUMN].to_numpy())
    k, p = len(offers), z.shape[1]
    fold = np.random.default_rng(seed).integers(0, 3, treated.height)

    def predict(w, rows):
        b, g, d = w[:k], w[k : k + p], w[k + p :].reshape(k, p)
        zr, ir = z[rows], idx[rows]
        return offset[rows] + b[ir] + zr @ g + np.einsum("ij,ij->i", zr, d[ir])

    best, best_loss = penalties[-1], np.inf
    for lam in penalties:
        total = 0.0
        for f in range(3):
            tr, te = fold != f, fold == f
            w = _fit_shift(z[tr], idx[tr], k, offset[tr], y[tr], lam)
            eta = predict(w, te)
            total += float(np.sum(np.logaddexp(0.0, eta) - y[te] * eta))
        if total < best_loss:
            best, best_loss = lam, total
    w = _fit_shift(z, idx, k, offset, y, best)
    return OfferShift(design, offers, w[:k], w[k : k + p], w[k + p :].reshape(k, p), best)


@dataclass
class UpliftModel:
    control: lgbm.TrainedModel
    treated: lgbm.TrainedModel | OfferShift
    offers: list[str]

    @property
    def learner(self) -> str:
        return "relative" if isinstance(self.treated, OfferShift) else "two_model"

    def _treated_churn(self, frame: pl.DataFrame, offers: pl.Series, p_c: np.ndarray):
        if isinstance(self.treated, OfferShift):
            eta = logit(np.clip(p_c, 1e-6, 1 - 1e-6))
            return expit(eta + self.treated.shift(frame, offers.to_numpy()))
        return self.treated.predict(frame.with_columns(offers.alias(OFFER_COLUMN)))

    def uplift(self, frame: pl.DataFrame, offer: str | pl.Series) -> np.ndarray:
        """Estimated churn reduction if each customer in frame got `offer` (or the offers given)."""
        offers = (
            offer if isinstance(offer, pl.Series) else pl.repeat(offer, frame.height, eager=True)
        )
        p_c = self.control.predict(frame)
        return p_c - self._treated_churn(frame, offers, p_c)

    def uplift_columns(self, frame: pl.DataFrame) -> pl.DataFrame:
        """`uplift_<offer>` for every offer the model has seen (what the policy consumes)."""
        p_c = self.control.predict(frame)
        cols = {}
        for offer in self.offers:
            offers = pl.repeat(offer, frame.height, eager=True)
            cols[f"uplift_{offer}"] = p_c - self._treated_churn(frame, offers, p_c)
        return pl.DataFrame(cols)


@dataclass
class PerOfferUplift:
    """One binary learner per offer; uplift = the drop in churn probability it predicts."""

    learner: str
    models: dict[str, BinaryUplift]

    @property
    def offers(self) -> list[str]:
        return list(self.models)

    def uplift(self, frame: pl.DataFrame, offer: str | pl.Series) -> np.ndarray:
        """Estimated churn reduction if each customer got `offer` (or the offers given; 0 if none)."""
        if isinstance(offer, str):
            return -self.models[offer].effect(frame)
        given = offer.to_numpy()
        out = np.zeros(frame.height)
        for o, model in self.models.items():
            rows = given == o
            if rows.any():
                out[rows] = -model.effect(frame.filter(pl.Series(rows)))
        return out

    def uplift_columns(self, frame: pl.DataFrame) -> pl.DataFrame:
        return pl.DataFrame({f"uplift_{o}": -m.effect(frame) for o, m in self.models.items()})


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


def fit_risk(
    control: pl.DataFrame, y_control: np.ndarray, columns: list[str], seed: int = 0
) -> lgbm.TrainedModel:
    """Churn without contact from the control arm: the ranking an uplift model has to beat."""
    return _arm(control, y_control, columns, seed, 400)


def fit_uplift(
    treated: pl.DataFrame,
    y_treated: np.ndarray,
    control: pl.DataFrame,
    y_control: np.ndarray,
    columns: list[str],
    seed: int = 0,
    rounds: int = 400,
    learner: str = "relative",
    params: dict | None = None,
    randomised: bool = False,
) -> UpliftModel | PerOfferUplift:
    """Churn without contact, and how each offer changes it (see the module doc).

    `params` are LightGBM settings for the binary learners; `randomised` says the control arm
    was drawn at random from the same customers as the treated (a campaign table), so the
    propensity is the treated share rather than a function of the features.
    """
    if OFFER_COLUMN not in treated.columns:
        raise ValueError("treated rows need the offer they received")
    if learner not in LEARNERS:
        raise ValueError(f"unknown uplift learner {learner!r}; one of {LEARNERS}")
    offers = sorted(treated[OFFER_COLUMN].drop_nulls().unique().to_list())
    if learner in BINARY_LEARNERS:
        models = {}
        for o in offers:
            rows = (treated[OFFER_COLUMN] == o).fill_null(False)
            both = pl.concat(
                [treated.filter(rows).select(columns), control.select(columns)], how="vertical"
            )
            t = np.r_[np.ones(int(rows.sum())), np.zeros(control.height)]
            y = np.r_[np.asarray(y_treated)[rows.to_numpy()], np.asarray(y_control)]
            try:
                models[o] = fit_binary(learner, both, t, y, columns, params, seed, randomised)
            except ValueError as exc:
                why = f"an uplift arm has too few churners to learn from (offer {o}: {exc})"
                raise ValueError(why) from None
        return PerOfferUplift(learner, models)
    control_model = _arm(control, y_control, columns, seed, rounds)
    if y_treated.sum() == 0:
        raise ValueError("an uplift arm has too few churners to learn from")
    p_c = np.clip(control_model.predict(treated), 1e-6, 1 - 1e-6)
    treated_model = fit_offer_shift(treated, y_treated, logit(p_c), columns, seed + 1)
    return UpliftModel(control_model, treated_model, offers)


def fit_campaign_uplift(
    rows: pl.DataFrame, columns: list[str], seed: int = 0, learner: str = "relative"
) -> UpliftModel | PerOfferUplift:
    """`fit_uplift` on campaign rows that carry `treated` and `churned` (the monthly loop's shape)."""
    treated = rows.filter(pl.col("treated"))
    control = rows.filter(~pl.col("treated"))
    return fit_uplift(
        treated,
        treated["churned"].to_numpy().astype(float),
        control,
        control["churned"].to_numpy().astype(float),
        columns,
        seed=seed,
        learner=learner,
    )


def qini_coefficient(churned: np.ndarray, treated: np.ndarray, score: np.ndarray) -> float:
    """Normalised Qini of ranking by `score` for keeping customers (scikit-uplift's definition).

    1 = perfect, 0 = no better than random, negative = worse than random. The outcome is churn, so
    the good outcome the Qini counts is a customer who stayed.
    """
    return uplift_metrics.qini(churned, treated, score, goal="decrease")


def qini_gain_se(
    churned: np.ndarray,
    treated: np.ndarray,
    score: np.ndarray,
    baseline: np.ndarray,
    customers: np.ndarray,
    draws: int = 200,
    seed: int = 0,
) -> float:
    """Bootstrap standard error of Qini(score) − Qini(baseline) on the same held-out rows,
    resampling whole customers (a customer's list dates share one outcome history)."""
    _, group = np.unique(customers, return_inverse=True)
    # Each customer's rows, in row order (one sort, not a scan of all rows per customer).
    order = np.argsort(group, kind="stable")
    members = np.split(order, np.cumsum(np.bincount(group))[:-1])
    rng = np.random.default_rng(seed)
    gains = []
    for _ in range(draws):
        rows = np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))])
        t = treated[rows]
        if t.all() or not t.any():
            continue
        gains.append(
            qini_coefficient(churned[rows], t, score[rows])
            - qini_coefficient(churned[rows], t, baseline[rows])
        )
    return float(np.std(gains, ddof=1)) if len(gains) > 1 else float("inf")


def uplift_gate(
    qini: float | None,
    qini_risk: float | None,
    min_qini: float,
    gain_se: float = 0.0,
    min_gain_se: float = 0.0,
) -> tuple[bool, str]:
    """Champion only if the held-out Qini clears the bar and beats ranking by risk by at least
    `min_gain_se` standard errors of the difference (`gain_se`, from a bootstrap).

    Otherwise the policy would swap a known ranking (risk) for an unproven one: a model that wins
    by noise takes over every list (a 200k benchmark world lost 70 % of its profit so).
    """
    if qini is None:
        return False, "no control customers held out: kept as challenger only"
    if qini < min_qini:
        return False, f"held-out Qini {qini:.3f} below {min_qini}: kept as challenger only"
    if qini_risk is not None and qini - qini_risk <= min_gain_se * gain_se:
        margin = f" by {min_gain_se:g} standard errors ({min_gain_se * gain_se:.4f})"
        return False, (
            f"held-out Qini {qini:.4f} not above ranking by risk ({qini_risk:.4f})"
            f"{margin if min_gain_se > 0 else ''}: kept as challenger only"
        )
    return True, f"held-out Qini {qini:.4f} ≥ {min_qini}, above ranking by risk: ranks by uplift"
