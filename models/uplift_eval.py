"""Uplift on a one-treatment campaign table: learner choice by inner CV, repeated 70/30 evaluation.

The learners are models/uplift.py's (`fit_uplift`), the same code the campaign loop uses; here
the treatment is a single offer and the control arm a random hold-out, so `randomised=True`.
Nothing measured on a split's test part chooses anything: `auto` picks the learner by Qini over
an inner cross-validation of the training part only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from models import uplift_metrics as um
from models.uplift import LEARNERS, OFFER_COLUMN, fit_campaign_uplift, fit_uplift

TREATMENT = "treatment"  # the one offer of a campaign table
TOP_SHARE = 0.3


@dataclass
class Campaign:
    """Customers' features, arm (1 treated, 0 control) and outcome (1 = the target happened)."""

    features: pl.DataFrame
    treated: np.ndarray
    y: np.ndarray
    columns: list[str]
    goal: str = "increase"

    def rows(self, idx: np.ndarray) -> Campaign:
        return Campaign(self.features[idx], self.treated[idx], self.y[idx], self.columns, self.goal)

    @property
    def strata(self) -> np.ndarray:
        return self.treated.astype(int) * 2 + self.y.astype(int)


@dataclass
class Scorer:
    """A fitted learner that ranks customers: higher score = more good done by the treatment."""

    learner: str
    models: list = field(default_factory=list)
    sign: float = 1.0

    def score(self, frame: pl.DataFrame) -> np.ndarray:
        # uplift() is the drop in the outcome; for `increase` the score is its negative.
        return self.sign * np.mean([m.uplift(frame, TREATMENT) for m in self.models], axis=0)


def fit_scorer(learner: str, data: Campaign, seed: int = 0, params: dict | None = None) -> Scorer:
    """One learner on every row of `data`."""
    t = data.treated.astype(bool)
    arm = data.features.with_columns(pl.lit(TREATMENT).alias(OFFER_COLUMN))
    model = fit_uplift(
        arm.filter(pl.Series(t)),
        data.y[t],
        arm.filter(pl.Series(~t)),
        data.y[~t],
        data.columns,
        seed=seed,
        learner=learner,
        params=params,
        randomised=True,
    )
    return Scorer(learner, [model], sign=1.0 if data.goal == "decrease" else -1.0)


def choose_learner(
    data: Campaign,
    candidates: tuple[str, ...] = LEARNERS,
    folds: int = 3,
    seed: int = 0,
    on_step: Callable[[str], None] | None = None,
) -> tuple[str, dict[str, float], Scorer]:
    """The learner with the best mean Qini over an inner stratified CV of `data`.

    Returns its name, every candidate's mean inner Qini, and the chosen learner's fold models
    as one bagged scorer (each fold model saw (folds − 1) / folds of the rows).
    """
    from sklearn.model_selection import StratifiedKFold

    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(skf.split(np.zeros(len(data.y)), data.strata))
    scores: dict[str, float] = {}
    bags: dict[str, Scorer] = {}
    for learner in candidates:
        if on_step:
            on_step(f"inner CV: {learner}")
        qs, bag = [], Scorer(learner, sign=1.0 if data.goal == "decrease" else -1.0)
        for k, (tr, va) in enumerate(splits):
            fold = fit_scorer(learner, data.rows(tr), seed + k)
            valid = data.rows(va)
            qs.append(um.qini(valid.y, valid.treated, fold.score(valid.features), data.goal))
            bag.models.extend(fold.models)
        scores[learner] = float(np.mean(qs))
        bags[learner] = bag
    best = max(scores, key=scores.get)
    return best, scores, bags[best]


@dataclass
class SplitResult:
    seed: int
    learner: str
    qini: float
    uplift_at_30: float
    random_qini: float
    random_uplift_at_30: float
    inner_qini: dict[str, float] = field(default_factory=dict)


@dataclass
class UpliftEvaluation:
    splits: list[SplitResult]
    curve: pl.DataFrame  # Qini curve of the first split's test part
    deciles: pl.DataFrame  # uplift by decile, mean over splits
    ate: float
    n_rows: int
    treated_share: float
    goal: str

    def metrics(self) -> dict:
        """Mean and sd over splits, and whether the Qini interval (mean ± 2 sd) excludes 0."""

        def stat(key: str) -> tuple[float, float]:
            v = np.array([getattr(s, key) for s in self.splits])
            return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0

        q, q_sd = stat("qini")
        u, u_sd = stat("uplift_at_30")
        rq, rq_sd = stat("random_qini")
        ru, ru_sd = stat("random_uplift_at_30")
        learners = [s.learner for s in self.splits]
        low, high = q - 2 * q_sd, q + 2 * q_sd
        return {
            "qini": q,
            "qini_sd": q_sd,
            "qini_interval": [low, high],
            "uplift_signal": bool(low > 0),
            "uplift_at_30": u,
            "uplift_at_30_sd": u_sd,
            "random_qini": rq,
            "random_qini_sd": rq_sd,
            "random_uplift_at_30": ru,
            "random_uplift_at_30_sd": ru_sd,
            "ate": self.ate,
            "n_rows": self.n_rows,
            "treated_share": self.treated_share,
            "goal": self.goal,
            "learner": max(set(learners), key=learners.count),
            "learner_by_seed": learners,
            "seeds": [s.seed for s in self.splits],
            "qini_by_seed": [s.qini for s in self.splits],
            "uplift_at_30_by_seed": [s.uplift_at_30 for s in self.splits],
            "inner_qini_by_seed": [s.inner_qini for s in self.splits],
        }


def evaluate(
    data: Campaign,
    learner: str = "auto",
    seeds: int = 5,
    test_share: float = 0.3,
    bag: bool = False,
    on_step: Callable[[str], None] | None = None,
    candidates: tuple[str, ...] = LEARNERS,
) -> UpliftEvaluation:
    """K stratified (treatment × outcome) splits, seeds 0..K−1: fit on 70 %, measure on 30 %.

    `auto` chooses among all learners by inner CV on each split's training part; with `bag`
    the chosen learner's inner fold models score the test part (else it is refitted on all of
    the training part).
    """
    from sklearn.model_selection import train_test_split

    if learner != "auto" and learner not in LEARNERS:
        raise ValueError(f"unknown uplift learner {learner!r}; auto or one of {LEARNERS}")
    splits, deciles, curve = [], [], None
    for seed in range(seeds):
        tr, te = train_test_split(
            np.arange(len(data.y)), test_size=test_share, stratify=data.strata, random_state=seed
        )
        train, test = data.rows(tr), data.rows(te)
        inner: dict[str, float] = {}
        if learner == "auto":
            name, inner, scorer = choose_learner(
                train,
                candidates,
                seed=seed,
                on_step=lambda m, s=seed: on_step and on_step(f"seed {s}: {m}"),
            )
            if not bag:
                scorer = fit_scorer(name, train, seed)
        else:
            if on_step:
                on_step(f"seed {seed}: fit {learner}")
            scorer = fit_scorer(learner, train, seed)
        score = scorer.score(test.features)
        noise = np.random.default_rng(seed).random(len(te))
        args = (test.y, test.treated)
        splits.append(
            SplitResult(
                seed,
                scorer.learner,
                um.qini(*args, score, data.goal),
                um.uplift_at(*args, score, TOP_SHARE, data.goal),
                um.qini(*args, noise, data.goal),
                um.uplift_at(*args, noise, TOP_SHARE, data.goal),
                inner,
            )
        )
        deciles.append(um.uplift_by_decile(*args, score, data.goal))
        if curve is None:
            curve = um.qini_points(*args, score, data.goal)
    mean_deciles = pl.concat(deciles).group_by("decile", maintain_order=True).mean()
    return UpliftEvaluation(
        splits,
        curve,
        mean_deciles,
        um.average_effect(data.y, data.treated, data.goal),
        len(data.y),
        float(data.treated.mean()),
        data.goal,
    )


def choose_campaign_learner(
    train: pl.DataFrame,
    columns: list[str],
    candidates: tuple[str, ...] = LEARNERS,
    folds: int = 3,
    seed: int = 0,
) -> tuple[str, dict[str, float]]:
    """The campaign loop's learner: best mean Qini over inner folds grouped by customer.

    `train` holds campaign_rows' training customers (`customer_id`, `treated`, `offer`,
    `listed`, `churned`); a fold's Qini is measured on its list rows, as the hold-out is.
    Learners that cannot be fitted on a fold (an arm without churners) score −inf.
    """
    from sklearn.model_selection import GroupKFold

    from models.uplift import qini_coefficient

    groups = train["customer_id"].to_numpy()
    splits = list(
        GroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(
            np.zeros(train.height), groups=groups
        )
    )
    scores: dict[str, float] = {}
    for learner in candidates:
        qs = []
        for k, (tr, va) in enumerate(splits):
            fit_rows = train[tr]
            valid = train[va].filter(pl.col("listed"))
            t = valid["treated"].to_numpy()
            if t.all() or not t.any():
                continue
            try:
                model = fit_campaign_uplift(fit_rows, columns, seed=seed + k, learner=learner)
            except ValueError:
                qs.append(-np.inf)
                continue
            score = model.uplift(valid, valid[OFFER_COLUMN])
            qs.append(qini_coefficient(valid["churned"].to_numpy(), t, score))
        scores[learner] = float(np.mean(qs)) if qs else float("-inf")
    return max(scores, key=scores.get), scores


def outcome_like(frame: pl.DataFrame, y: np.ndarray, min_rows: int = 20) -> list[str]:
    """Columns that look measured after the outcome: off their usual value, the outcome is fixed.

    E.g. a campaign table's `spend` or `conversion` beside `visit`: every customer who spent
    visited. Such a column cannot be known when customers are chosen for contact, so ranking by
    it is leakage; the caller warns (it does not drop columns behind the user's back).
    """
    found = []
    for c in frame.columns:
        col = frame[c]
        mode = col.drop_nulls().mode()
        if mode.len() != 1:
            continue
        off = (col != mode[0]).fill_null(False).to_numpy()
        if off.sum() >= min_rows and off.sum() < len(y) and np.ptp(y[off]) == 0:
            found.append(c)
    return found


def uplift_verdict(metrics: dict) -> str:
    """One plain sentence: is there a reliable uplift signal or not."""
    low, high = metrics["qini_interval"]
    span = (
        f"Qini {metrics['qini']:.3f} ± {metrics['qini_sd']:.3f} (interval {low:.3f} to {high:.3f})"
    )
    if metrics["uplift_signal"]:
        return (
            f"{span} excludes 0: ranking by predicted uplift beats random targeting "
            f"(uplift@30 % {metrics['uplift_at_30']:.3f} against {metrics['random_uplift_at_30']:.3f} at random)."
        )
    return (
        f"{span} includes 0: this data shows no reliable uplift signal; "
        "do not rank customers by this model's uplift."
    )
