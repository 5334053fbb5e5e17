"""Snapshot mode's model: tuned LightGBM, optionally blended with a logistic regression.

Everything that is chosen (category encoding, parameters, number of trees, blend weight,
calibration) is chosen on the training part of an outer fold; its evaluation rows are only
ever predicted. Within a fold, work is shared: the tuning's best trial fixes the number of
trees, so the blend's inner folds and the final fit train once each, without early stopping.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
from sklearn.metrics import roc_auc_score

from configs.schema import Settings
from models import additive, blend, encoding, lgbm, metrics


def split_inner(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A stratified 80/20 split of the training rows (each row is one customer here)."""
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


def fit_rounds(x, y, cols, params: dict, rounds: int, seed: int) -> lgbm.TrainedModel:
    """LightGBM with a known number of trees on all rows: one training, no held-out part."""
    from models.calibration import Calibrator

    ff = lgbm.FeatureFrame.fit(x, cols)
    pos = max(float(y.sum()), 1.0)
    full = {
        **lgbm.BASE_PARAMS,
        **lgbm.DEFAULT_PARAMS,
        **params,
        "seed": seed,
        "scale_pos_weight": float(np.sqrt((len(y) - y.sum()) / pos)),
    }
    booster = lgb.train(full, lgbm._dataset(ff, ff.array(x), y), rounds)
    return lgbm.TrainedModel(booster, Calibrator("none"), ff, full, rounds)


@dataclass
class Tuned:
    params: dict[str, Any]
    rounds: int


def tune_params(x, y, cols, settings: Settings, trials: int, seed: int, threads: int) -> Tuned:
    """Optuna on an inner split of the training rows only (never the evaluation rows).

    With one trial, the defaults are fitted once with early stopping: either way the number of
    trees comes from the inner split and carries over (a tenth more) to fits on all rows.
    """
    snap = settings.models.snapshot
    tr, va = split_inner(y, seed)
    fixed = {"num_threads": threads}
    if trials <= 1:
        model = lgbm.fit(
            x[tr],
            y[tr],
            x[va],
            y[va],
            cols,
            fixed,
            snap.num_boost_round,
            settings.models.early_stopping_rounds,
            calibration="none",
            seed=seed,
        )
        return Tuned(fixed, lgbm.refit_rounds(model.best_iteration))
    best = {"score": -1.0, "iteration": 0}

    def on_trial(trial, params, score):  # noqa: ARG001 - tune's callback signature
        # The first of equal scores, as Optuna's best trial.
        if score > best["score"]:
            best.update(score=score, iteration=trial.user_attrs["best_iteration"])

    params, _ = lgbm.tune(
        x[tr],
        y[tr],
        x[va],
        y[va],
        cols,
        snap.search_space,
        trials,
        snap.num_boost_round,
        settings.models.early_stopping_rounds,
        seed,
        on_trial=on_trial,
        show_progress_bar=False,
        fixed=fixed,
    )
    return Tuned({**params, **fixed}, lgbm.refit_rounds(best["iteration"]))


def choose_encoding(x, y, cols, settings: Settings, seed: int, threads: int) -> list[str]:
    """The high-cardinality text columns and how to encode them, by inner CV on these rows.

    Each candidate (LightGBM's own categories, out-of-fold target means, level counts) trains
    the default model on the same inner split. One split's ROC-AUC is noisy, so an encoding
    must beat LightGBM's own categories by `encoding_margin` to replace them.
    """
    snap = settings.models.snapshot
    wide = encoding.high_cardinality(x, cols, snap.high_cardinality_levels)
    if not wide or not snap.encode_high_cardinality:
        return ["native"]
    tr, va = split_inner(y, seed + 7)
    scores = {}
    for method in encoding.METHODS:
        enc, x_tr = encoding.fit_encoder(x[tr], y[tr], wide, method, seed=seed)
        x_va = enc.transform(x[va])
        model = lgbm.fit(
            x_tr,
            y[tr],
            x_va,
            y[va],
            cols,
            {"num_threads": threads},
            snap.num_boost_round,
            settings.models.early_stopping_rounds,
            calibration="none",
            seed=seed,
        )
        scores[method] = float(roc_auc_score(y[va], model.raw(x_va)))
    margin = snap.encoding_margin
    best = max(encoding.METHODS, key=lambda m: (scores[m] - margin * (m != "native"), m))
    return [best, *wide]


def uses_additive(settings: Settings, train_rows: int) -> bool:
    """Whether a fold with this many training rows blends in the additive member."""
    snap = settings.models.snapshot
    return snap.blend and snap.additive and train_rows <= snap.additive_max_rows


def fit_eval(
    x_tr,
    y_tr,
    x_te,
    y_te,
    cols,
    settings: Settings,
    task: str,
    trials: int,
    seed: int,
    threads: int = 1,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Fit on the training part, evaluate on the test part: (metrics, what was chosen).

    The metrics carry `tree_roc_auc` (the tree model alone) beside the blend's, so a broken
    tree cannot hide behind the linear side.
    """
    snap = settings.models.snapshot
    method, *wide = choose_encoding(x_tr, y_tr, cols, settings, seed, threads)
    info: dict[str, Any] = {}
    if wide:
        enc, x_tr = encoding.fit_encoder(x_tr, y_tr, wide, method, seed=seed)
        x_te = enc.transform(x_te)
        info["encoding"] = method
        info["encoded_columns"] = len(wide)
    tuned = tune_params(x_tr, y_tr, cols, settings, trials, seed, threads)
    info.update({k: v for k, v in tuned.params.items() if k != "num_threads"})
    info["trees"] = tuned.rounds
    if snap.blend:
        small = uses_additive(settings, len(y_tr))
        model = blend.fit_blend(
            x_tr,
            y_tr,
            cols,
            lambda xf, yf, s: fit_rounds(xf, yf, cols, tuned.params, tuned.rounds, s),
            folds=snap.blend_folds,
            cs=snap.linear_c,
            seed=seed,
            fit_additive=(
                lambda xf, yf, s: additive.fit_additive(
                    xf, yf, cols, seed=s, bags=snap.additive_bags
                )
            )
            if small
            else None,
        )
        info.update(model.info)
        tree_p = model.tree.predict(x_te)
    else:
        model = fit_tree(x_tr, y_tr, cols, tuned.params, settings, seed)
        tree_p = model.raw(x_te)
    p = model.predict(x_te)
    scores = metrics.summary(y_te, p, task, settings.models.empc.model_dump())
    scores["tree_roc_auc"] = float(roc_auc_score(y_te, tree_p))
    return scores, info


def summarise_params(fold_params: list[dict]) -> dict:
    """One value per key: the value itself if every fold agrees, else the fold values in order."""
    keys = list(dict.fromkeys(k for p in fold_params for k in p))
    out = {}
    for k in keys:
        values = [p.get(k) for p in fold_params]
        out[k] = values[0] if len(set(map(str, values))) == 1 else ",".join(map(str, values))
    return out


def fold_task(
    x: pl.DataFrame,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    cols: list[str],
    settings: Settings,
    task: str,
    trials: int,
    seed: int,
    threads: int,
) -> tuple[dict[str, float], dict[str, Any]]:
    """One outer fold as a self-contained job (a worker process runs it with its own threads).

    Its CPU time joins what was chosen: on a shared machine the wall clock says little.
    """
    started = time.process_time()
    scores, info = fit_eval(
        x[train], y[train], x[test], y[test], cols, settings, task, trials, seed, threads
    )
    return scores, {**info, "cpu_seconds": round(time.process_time() - started, 1)}
