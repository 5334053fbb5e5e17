"""Snapshot mode's model: tuned LightGBM, optionally blended with a logistic regression."""

from __future__ import annotations

import numpy as np

from configs.schema import Settings
from models import blend, lgbm, metrics


def split_inner(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    return train_test_split(idx, test_size=0.2, stratify=y, random_state=seed)


def fit_tree(x, y, cols, params, settings: Settings, seed: int) -> lgbm.TrainedModel:
    """LightGBM with early stopping and calibration on an inner 20 %, then refit on all rows."""
    inner_tr, inner_va = split_inner(y, seed)
    return lgbm.fit(
        x[inner_tr],
        y[inner_tr],
        x[inner_va],
        y[inner_va],
        cols,
        params,
        settings.models.snapshot.num_boost_round,
        settings.models.early_stopping_rounds,
        settings.models.calibration,
        seed,
        refit=True,
    )


def tune_params(x, y, cols, settings: Settings, trials: int, seed: int) -> dict:
    """Optuna on an inner split of the training rows only (never the evaluation rows)."""
    if trials <= 1:
        return {}
    tr, va = split_inner(y, seed)
    params, _ = lgbm.tune(
        x[tr],
        y[tr],
        x[va],
        y[va],
        cols,
        settings.models.snapshot.search_space,
        trials,
        settings.models.snapshot.num_boost_round,
        settings.models.early_stopping_rounds,
        seed,
        show_progress_bar=False,
    )
    return params


def fit_eval(x_tr, y_tr, x_te, y_te, cols, settings: Settings, task: str, trials: int, seed: int):
    """Everything that is chosen (parameters, blend weight) is chosen on the training rows."""
    params = tune_params(x_tr, y_tr, cols, settings, trials, seed)
    snap = settings.models.snapshot
    if snap.blend:
        model = blend.fit_blend(
            x_tr,
            y_tr,
            cols,
            lambda xf, yf, s: fit_tree(xf, yf, cols, params, settings, s),
            folds=snap.blend_folds,
            cs=snap.linear_c,
            seed=seed,
        )
        info = {**params, **model.info}
    else:
        model = fit_tree(x_tr, y_tr, cols, params, settings, seed)
        info = dict(params)
    p = model.predict(x_te)
    return metrics.summary(y_te, p, task, settings.models.empc.model_dump()), info


def summarise_params(fold_params: list[dict]) -> dict:
    """One value per key: the value itself if every fold agrees, else the fold values in order."""
    keys = list(dict.fromkeys(k for p in fold_params for k in p))
    out = {}
    for k in keys:
        values = [p.get(k) for p in fold_params]
        out[k] = values[0] if len(set(map(str, values))) == 1 else ",".join(map(str, values))
    return out
