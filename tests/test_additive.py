"""The explainable boosting member: main effects, text levels, screened pairs, its place in the blend."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from models.additive import Binner, fit_additive
from models.blend import choose


def _pair_table(n: int, seed: int) -> tuple[pl.DataFrame, np.ndarray]:
    """Churn rises with tenure alone, and with a plan-by-usage pair no single feature shows."""
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(0, 60, n)
    usage = rng.normal(size=n)
    plan = rng.choice(["basic", "plus", "max", "family"], n)
    noise = rng.normal(size=n)
    heavy_on_basic = np.where(plan == "basic", usage, -usage)
    logit = -0.04 * tenure + 2.0 * heavy_on_basic + 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return pl.DataFrame({"tenure": tenure, "usage": usage, "plan": plan, "noise": noise}), y


def test_pairs_find_an_interaction_the_main_effects_cannot():
    frame, y = _pair_table(3000, 1)
    test, y_test = _pair_table(2000, 2)
    mains = fit_additive(frame, y, frame.columns, seed=0, pairs=0, bags=4)
    both = fit_additive(frame, y, frame.columns, seed=0, bags=4)
    auc_mains = roc_auc_score(y_test, mains.predict(test))
    auc_both = roc_auc_score(y_test, both.predict(test))
    assert auc_both > auc_mains + 0.1, (auc_mains, auc_both)
    chosen = {frozenset((frame.columns[i], frame.columns[j])) for i, j, _ in both.pairs}
    assert frozenset(("plan", "usage")) in chosen
    assert both.info["additive_pairs"] == len(both.pairs) > 0


def test_text_levels_are_split_by_effect_not_by_spelling():
    # The levels' risk does not follow their alphabetical order: one cut in that order cannot
    # separate the risky levels, one cut in the order of their mean gradient can.
    rng = np.random.default_rng(3)
    levels = np.array(list("abcdefgh"))
    risk = np.array([2.0, -2.0, 2.0, -2.0, 2.0, -2.0, 2.0, -2.0])
    pick = rng.integers(0, 8, 4000)
    y = (rng.random(4000) < 1 / (1 + np.exp(-risk[pick]))).astype(float)
    frame = pl.DataFrame({"handset": levels[pick]})
    model = fit_additive(frame[:3000], y[:3000], ["handset"], seed=0, pairs=0, bags=4)
    assert roc_auc_score(y[3000:], model.predict(frame[3000:])) > 0.82


def test_missing_values_and_unseen_levels_score_without_error():
    frame, y = _pair_table(1000, 4)
    model = fit_additive(frame, y, frame.columns, seed=0, bags=3)
    odd = pl.DataFrame(
        {
            "tenure": [None, 12.0, float("nan")],
            "usage": [0.1, None, 5.0],
            "plan": ["never-seen", None, "basic"],
            "noise": [0.0, 0.0, None],
        }
    )
    p = model.predict(odd)
    assert p.shape == (3,) and np.all(np.isfinite(p)) and np.all((p > 0) & (p < 1))


def test_binner_codes_missing_as_zero_and_orders_numbers():
    frame = pl.DataFrame({"amount": [3.0, None, 1.0, 2.0], "plan": ["b", "a", None, "zz"]})
    binner = Binner.fit(frame[:3], ["amount", "plan"], max_bins=16)
    codes = binner.codes(frame)
    assert codes[1, 0] == 0 and codes[2, 1] == 0 and codes[3, 1] == 0  # missing, unseen
    # 1 and 3 were seen: 2 falls between their bins' cut, with the larger.
    assert codes[2, 0] == 1 and codes[0, 0] == codes[3, 0] == 2


def test_the_blend_weighs_the_additive_member_by_its_out_of_fold_rank():
    rng = np.random.default_rng(5)
    y = (rng.random(600) < 0.3).astype(float)
    tree = rng.random(600)
    linear = {0.1: rng.random(600)}
    additive = y + rng.normal(0, 0.3, 600)
    c, w, a, auc = choose(tree, linear, y, [i / 10 for i in range(11)], additive)
    assert a >= 0.5 and auc > 0.9 and w + a <= 1
    # Without the member the mix cannot do better than the noise it is given.
    _, _, a0, auc0 = choose(tree, linear, y, [i / 10 for i in range(11)])
    assert a0 == 0 and auc0 < 0.65


@pytest.mark.parametrize(("rows", "expect"), [(900, True), (1500, False)])
def test_snapshot_adds_the_member_only_to_small_training_parts(make_settings, rows, expect):
    from models.snapshot_fit import fit_eval

    frame, y = _pair_table(rows + 300, 6)
    settings = make_settings(
        models={
            "num_boost_round": 200,
            "early_stopping_rounds": 20,
            "snapshot": {"blend_folds": 2, "linear_c": [0.1], "additive_max_rows": 1000},
        }
    )
    scores, info = fit_eval(
        frame[:rows], y[:rows], frame[rows:], y[rows:], frame.columns, settings, "churn", 1, 0
    )
    assert ("blend_weight_additive" in info) is expect
    if expect:
        assert 0.5 < info["blend_oof_roc_auc_additive"] <= 1.0
    assert scores["roc_auc"] > 0.8


def test_columns_without_information_fit_and_predict_the_base_rate():
    # A fold's training part can hold a text column that is all missing, or one value only.
    rng = np.random.default_rng(7)
    n = 300
    frame = pl.DataFrame(
        {
            "t": pl.Series([None] * n, dtype=pl.Utf8),
            "c": ["x"] * n,
            "k": np.ones(n),
        }
    )
    y = (rng.random(n) < 0.3).astype(float)
    for columns in (["t"], frame.columns):
        p = fit_additive(frame, y, columns, seed=0, bags=3).predict(frame[:5])
        assert np.allclose(p, y.mean(), atol=0.02)
