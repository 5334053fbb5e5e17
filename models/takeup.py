"""Per-customer offer take-up: who accepts which offer, learned from campaign responses.

Take-up is seen on every carried-out contact (accepted or not), not only on the few churners a
campaign saves, so a response model learns from campaigns far faster than uplift does: a
retention analyst's "propensity to accept" model. One LightGBM over every contact, the offer and
the channel as categorical features, predicts P(accepted | customer, offer, channel).

The policy wants the acceptance of a reached customer before the channel's persuasion
(`accept_<offer>` columns; it multiplies by reach × persuasion itself), so the model predicts
through the channel most contacts went through and divides by that channel's reach ×
persuasion. It is used only where it beats, on customers it never saw (folds grouped by
customer), the calibrated acceptance the lists predicted: the gate a new model must pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np
import polars as pl

from models.lgbm import FeatureFrame

OFFER, CHANNEL, ACCEPTED, PRIOR = "offer", "channel", "accepted", "prior_probability"
# Shallow, large leaves and shrunk: a few thousand contacts and a 10-30 % take-up rate.
PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 7,
    "min_data_in_leaf": 40,
    # Every feature in every tree: with a column sample, a seed that leaves out the one feature
    # that matters early stops the search before it starts (seen on a four-feature table).
    "feature_fraction": 1.0,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 5.0,
    "verbose": -1,
    "num_threads": 1,
    "deterministic": True,
    "force_row_wise": True,
}
MAX_ROUNDS = 400
CLIP = 1e-4


@dataclass
class TakeupModel:
    """A fitted take-up model and how it did against the calibrated prior on unseen customers."""

    booster: lgb.Booster
    features: FeatureFrame
    channel: str  # the channel predictions are made through
    channel_factor: float  # its reach × persuasion
    rounds: int
    offers: list[str] = field(default_factory=list)  # offers it has seen contacts of
    report: dict = field(default_factory=dict)

    def accept_columns(self, frame: pl.DataFrame, offers: list[str]) -> pl.DataFrame:
        """`accept_<offer>`: acceptance of a reached customer before the channel's persuasion,
        for the offers it has seen (an offer no campaign has made keeps its configured rate)."""
        out = {}
        for offer in (o for o in offers if o in self.offers):
            rows = frame.with_columns(
                pl.lit(offer).alias(OFFER), pl.lit(self.channel).alias(CHANNEL)
            )
            p = self.booster.predict(self.features.array(rows), num_iteration=self.rounds)
            out[f"accept_{offer}"] = np.clip(p / self.channel_factor, 0.0, 1.0).round(6)
        return pl.DataFrame(out)


def _losses(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, CLIP, 1 - CLIP)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def paired_gain(
    customers: np.ndarray, model_loss: np.ndarray, prior_loss: np.ndarray
) -> tuple[float, float]:
    """Mean per-contact log-loss gain of the model over the prior, and its standard error.

    Contacts of one customer are not independent: the error comes from per-customer sums.
    """
    diff = prior_loss - model_loss
    _, group = np.unique(customers, return_inverse=True)
    per_customer = np.bincount(group, weights=diff)
    n, k = diff.size, per_customer.size
    se = float(per_customer.std(ddof=1) * np.sqrt(k) / n) if k > 1 else float("inf")
    return float(diff.mean()), se


def customer_folds(
    customers: np.ndarray, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds that keep every contact of a customer on one side."""
    from sklearn.model_selection import GroupKFold

    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(customers)), groups=customers))


def fit_takeup(
    contacts: pl.DataFrame,
    columns: list[str],
    channel_factors: dict[str, float],
    folds: int = 3,
    seed: int = 0,
) -> TakeupModel:
    """Fit on carried-out contacts: `customer_id`, the feature `columns`, `offer`, `channel`,
    `accepted` (bool) and `prior_probability` (the acceptance the list predicted, calibrated).

    The number of rounds and the out-of-fold log-loss come from folds grouped by customer; the
    prior's log-loss on the same rows is the bar (`report["beats_prior"]`, and `gain_se`: the
    gain in standard errors of the paired per-customer difference).
    """
    # Contacts through a channel the config no longer has cannot be priced: leave them out.
    contacts = contacts.filter(pl.col(CHANNEL).is_in(list(channel_factors)))
    if contacts.is_empty():
        raise ValueError("no carried-out contacts to learn take-up from")
    y = contacts[ACCEPTED].cast(pl.Float64).to_numpy()
    features = FeatureFrame.fit(contacts, [*columns, OFFER, CHANNEL])
    x = features.array(contacts)
    splits = customer_folds(contacts["customer_id"].to_numpy(), folds, seed)
    data = lgb.Dataset(
        x,
        label=y,
        feature_name=list(features.columns),
        categorical_feature=list(features.categories),
        free_raw_data=False,
    )
    cv = lgb.cv(
        {**PARAMS, "seed": seed},
        data,
        num_boost_round=MAX_ROUNDS,
        folds=splits,
        callbacks=[lgb.early_stopping(30, verbose=False)],
        return_cvbooster=True,
    )
    losses = cv["valid binary_logloss-mean"]
    rounds = int(np.argmin(losses)) + 1
    # Out-of-fold predictions at the chosen rounds: the same rows the prior is judged on.
    oof = np.zeros(len(y))
    for (_, valid), booster in zip(splits, cv["cvbooster"].boosters, strict=True):
        oof[valid] = booster.predict(x[valid], num_iteration=rounds)
    prior = contacts[PRIOR].cast(pl.Float64).to_numpy()
    model_losses, prior_losses = _losses(y, oof), _losses(y, prior)
    model_loss, prior_loss = float(model_losses.mean()), float(prior_losses.mean())
    gain, se = paired_gain(contacts["customer_id"].to_numpy(), model_losses, prior_losses)
    booster = lgb.train({**PARAMS, "seed": seed}, data, num_boost_round=rounds)
    counts = contacts[CHANNEL].value_counts(sort=True)
    channel = str(counts[CHANNEL][0])
    return TakeupModel(
        booster,
        features,
        channel,
        float(channel_factors[channel]),
        rounds,
        sorted(contacts[OFFER].unique().to_list()),
        {
            "contacts": contacts.height,
            "accepted": int(y.sum()),
            "customers": contacts["customer_id"].n_unique(),
            "rounds": rounds,
            "logloss": round(model_loss, 5),
            "prior_logloss": round(prior_loss, 5),
            "beats_prior": bool(model_loss < prior_loss),
            # The gain in standard errors: how sure the out-of-fold comparison is.
            "gain_se": round(gain / se, 2) if se > 0 else 0.0,
            "channel": channel,
        },
    )
