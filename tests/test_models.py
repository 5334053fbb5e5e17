"""Models: metrics against hand-computed values, behaviour of the trained model, the promotion gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats

from configs.schema import PromotionConfig
from features.dictionary import FeatureSpec
from models import lgbm, metrics
from models.promotion import decide
from models.reasons import reason_columns


def test_lift_gains_ks_on_a_hand_computed_case():
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0])
    p = np.linspace(1.0, 0.1, 10)  # ranked exactly as listed
    assert metrics.top_decile_lift(y, p) == pytest.approx(1 / 0.3)
    gains = metrics.gains_table(y, p, bins=5)
    assert [g["cumulative_gain"] for g in gains] == pytest.approx([2 / 3, 1.0, 1.0, 1.0, 1.0])
    # KS: after the top four, TPR = 1 and FPR = 1/7
    assert metrics.ks_statistic(y, p) == pytest.approx(1 - 1 / 7)


def test_empc_of_a_perfect_model_matches_the_closed_form():
    y = np.array([1] * 25 + [0] * 75)
    p = y.astype(float)
    value, fraction = metrics.empc(
        y, p, clv=200, incentive_cost=10, contact_cost=1, alpha=6, beta=14
    )
    # Target exactly the churners: profit = CLV (γ(1-δ) - φ) π0, positive for γ > φ/(1-δ).
    delta, phi, pi0 = 10 / 200, 1 / 200, 0.25
    cut = phi / (1 - delta)
    ev = stats.beta.expect(
        lambda g: 200 * (g * (1 - delta) - phi) * pi0, args=(6, 14), lb=cut, ub=1
    )
    assert value == pytest.approx(ev, rel=2e-3)
    assert fraction == pytest.approx(0.25 * (1 - stats.beta.cdf(cut, 6, 14)), rel=2e-3)


def test_empc_of_a_random_model_is_what_targeting_everyone_or_nobody_earns():
    rng = np.random.default_rng(0)
    y = (rng.random(50_000) < 0.2).astype(int)
    value, _ = metrics.empc(y, rng.random(50_000))
    delta, phi, pi0 = 10 / 200, 1 / 200, y.mean()
    # With no ranking power the best choice for each γ is all or nothing.
    closed = stats.beta.expect(
        lambda g: max(0.0, 200 * ((g * (1 - delta) - phi) * pi0 - (delta + phi) * (1 - pi0))),
        args=(6, 14),
    )
    assert value == pytest.approx(closed, abs=0.35)
    good, _ = metrics.empc(y, y + rng.random(50_000) * 0.5)
    assert good > value + 5


def test_metrics_refuse_a_single_class():
    with pytest.raises(ValueError, match="both classes"):
        metrics.summary(np.zeros(10), np.linspace(0, 1, 10))


def _toy(n: int, seed: int) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    complaints = rng.poisson(0.5, n).astype(float)
    trend = rng.normal(0, 0.3, n)
    seg = rng.choice(["individual", "family", "enterprise"], n)
    logit = -3 + 0.9 * complaints - 2.5 * trend + (seg == "individual") * 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    frame = pl.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "complaints_90d": complaints,
            "data_trend_30v60": trend,
            "segment": seg,
        }
    )
    return frame, y


COLS = ["complaints_90d", "data_trend_30v60", "segment"]


@pytest.fixture(scope="module")
def toy_model():
    train, y_train = _toy(6000, 1)
    valid, y_valid = _toy(2000, 2)
    return lgbm.fit(train, y_train, valid, y_valid, COLS, num_boost_round=300, calibration="auto")


def test_more_complaints_and_falling_usage_score_higher(toy_model):
    base = pl.DataFrame(
        {
            "customer_id": ["A"],
            "complaints_90d": [0.0],
            "data_trend_30v60": [0.0],
            "segment": ["family"],
        }
    )
    worse = base.with_columns(
        pl.lit(3.0).alias("complaints_90d"), pl.lit(-0.6).alias("data_trend_30v60")
    )
    assert toy_model.predict(worse)[0] > toy_model.predict(base)[0]


def test_float_array_predicts_exactly_as_the_pandas_matrix(toy_model):
    """Scoring's float array (category codes, no pandas) gives the pandas matrix's predictions."""
    frame, _ = _toy(3000, 7)
    frame = frame.with_columns(
        # Unseen and missing categories, and missing numbers, take the missing branch in both.
        pl.when(pl.int_range(pl.len()) % 7 == 0)
        .then(pl.lit("wholesale"))
        .when(pl.int_range(pl.len()) % 11 == 0)
        .then(None)
        .otherwise(pl.col("segment"))
        .alias("segment"),
        pl.when(pl.int_range(pl.len()) % 5 == 0)
        .then(None)
        .otherwise(pl.col("complaints_90d"))
        .alias("complaints_90d"),
    )
    booster, it = toy_model.booster, toy_model.best_iteration
    by_pandas = booster.predict(toy_model.features.matrix(frame), num_iteration=it)
    array = toy_model.features.array(frame)
    assert array.dtype == np.float64 and array.shape == (3000, 3)
    assert np.array_equal(booster.predict(array, num_iteration=it), by_pandas)
    assert np.array_equal(toy_model.predict(frame), toy_model.calibrator(by_pandas))
    # The model does read the segment, so a wrong code mapping would change predictions.
    flipped = frame.with_columns(pl.lit("individual").alias("segment"))
    assert not np.array_equal(
        booster.predict(toy_model.features.matrix(flipped), num_iteration=it), by_pandas
    )
    path_np = toy_model.contributions(array)
    assert np.allclose(path_np, toy_model.contributions(toy_model.features.matrix(frame)))


def test_customer_id_does_not_matter(toy_model):
    frame, _ = _toy(300, 5)
    renamed = frame.with_columns(pl.format("X{}", pl.int_range(pl.len())).alias("customer_id"))
    assert np.array_equal(toy_model.predict(frame), toy_model.predict(renamed))


def test_unseen_category_is_scored_not_crashed(toy_model):
    frame = pl.DataFrame(
        {
            "customer_id": ["A"],
            "complaints_90d": [1.0],
            "data_trend_30v60": [0.0],
            "segment": ["martian"],
        }
    )
    assert 0 <= toy_model.predict(frame)[0] <= 1


def test_reason_codes_name_the_drivers(toy_model):
    frame = pl.DataFrame(
        {
            "customer_id": ["A"],
            "complaints_90d": [4.0],
            "data_trend_30v60": [-0.5],
            "segment": ["family"],
        }
    )
    specs = {
        "complaints_90d": FeatureSpec(
            "complaints_90d",
            "tickets",
            "INTEGER",
            ("tickets",),
            90,
            "complaints",
            "{value:.0f} complaints in 90 days",
        ),
        "data_trend_30v60": FeatureSpec(
            "data_trend_30v60",
            "trend",
            "DOUBLE",
            ("usage_daily",),
            90,
            "usage_down",
            "data usage {value:+.0%} vs previous 60 days",
        ),
    }
    phrases, groups = reason_columns(
        toy_model.contributions(frame), {c: frame[c].to_numpy() for c in COLS}, COLS, specs, k=2
    )
    assert {col[0] for col in phrases} == {
        "4 complaints in 90 days",
        "data usage -50% vs previous 60 days",
    }
    assert {col[0] for col in groups} == {"complaints", "usage_down"}


def _m(pr_auc, brier=0.05, roc_auc=0.8, positive_rate=0.06):
    return {"pr_auc": pr_auc, "brier": brier, "roc_auc": roc_auc, "positive_rate": positive_rate}


@pytest.mark.parametrize(
    ("challenger", "champion", "promote"),
    [
        (_m(0.50), None, True),
        (_m(0.50), _m(0.52), False),
        (_m(0.55), _m(0.52), True),
        (_m(0.521), _m(0.52), False),  # below margin
        (_m(0.52), _m(0.52), False),  # a tie keeps the champion
        (_m(0.60, brier=0.09), _m(0.52), False),  # calibration worse
    ],
)
def test_gate_never_promotes_a_worse_model(challenger, champion, promote):
    rule = PromotionConfig(primary_metric="pr_auc", margin=0.01, brier_tolerance=0.005)
    assert decide(challenger, champion, rule).promote is promote
    # With no margin too: the same model again is no improvement.
    if champion is not None and challenger["pr_auc"] == champion["pr_auc"]:
        assert not decide(challenger, champion, rule.model_copy(update={"margin": 0.0})).promote


@pytest.mark.parametrize(
    ("scores", "why"),
    [
        # The 100k short-history cycle's churn model (issue 20): random, yet made champion.
        (_m(0.060, roc_auc=0.538, positive_rate=0.055), "ROC-AUC 0.538 is below the floor 0.6"),
        # A fair AUC but a PR-AUC no better than a random ranking's.
        (_m(0.070, roc_auc=0.65, positive_rate=0.06), "PR-AUC 0.070 is below 1.5×"),
    ],
)
def test_gate_floor_holds_without_a_champion(scores, why):
    decision = decide(scores, None, PromotionConfig())
    assert not decision.promote and why in decision.explanation
    # ... and with a weaker champion: a floor is not relative.
    assert not decide(scores, _m(0.01, roc_auc=0.5), PromotionConfig()).promote


def test_gate_does_not_compare_models_for_different_horizons():
    rule = PromotionConfig(primary_metric="pr_auc", margin=0.01)
    # The 30-day champion's PR-AUC on its own label would block a good 90-day challenger.
    decision = decide(_m(0.30), _m(0.60), rule, challenger_horizon=90, champion_horizon=30)
    assert decision.promote and "not compared" in decision.explanation
    assert not decide(_m(0.30), _m(0.60), rule, 90, 90).promote
    weak = decide(_m(0.07, roc_auc=0.52), _m(0.60), rule, 90, 30)
    assert not weak.promote and "floor" in weak.explanation


def test_snapshot_mode_on_ibm_telco(shared_data, make_settings, tmp_path):
    from pipelines.stages.snapshot import run_snapshot

    out = tmp_path / "metrics.json"
    # A lighter inner search than the benchmark's: this checks the command, not the last 0.01 AUC.
    settings = make_settings(
        models={"snapshot": {"blend_folds": 2, "linear_c": [0.1], "repeats": 1}}
    )
    result = run_snapshot(
        settings,
        shared_data / "ibm_telco.csv",
        "Churn",
        "Yes",
        id_col="customerID",
        metrics_out=out,
    )
    saved = json.loads(out.read_text())
    assert set(saved) >= {
        "roc_auc",
        "pr_auc",
        "top_decile_lift",
        "brier",
        "ks",
        "empc",
        "n_rows",
        "positive_rate",
    }
    assert saved["n_rows"] == 7043 and saved["positive_rate"] == pytest.approx(0.2654, abs=1e-3)
    assert saved["roc_auc"] > 0.83
    # The tree alone, out of fold: a broken LightGBM fails here even if the linear side holds.
    assert saved["tree_roc_auc"] > 0.83 and 0 < saved["roc_auc_sd"] < 0.05
    assert result.run_id


@pytest.mark.parametrize(
    ("target", "positive", "message"),
    [("Churnx", "Yes", "column 'Churnx' not found"), ("Churn", "Maybe", "single class")],
)
def test_snapshot_mode_bad_target_is_a_clear_error(
    shared_data, make_settings, target, positive, message
):
    from pipelines.stages.snapshot import run_snapshot
    from pipelines.store.errors import InputError

    with pytest.raises(InputError, match=message):
        run_snapshot(make_settings(), shared_data / "ibm_telco.csv", target, positive, track=False)


def test_snapshot_mode_reads_hostile_csv(tmp_path: Path, make_settings):
    from pipelines.stages.snapshot import run_snapshot

    rng = np.random.default_rng(0)
    rows = ["id,amount,flag,junk,target"]
    for i in range(400):
        amount = "?" if i % 17 == 0 else f" {rng.normal(100, 30):.1f} "
        label = "Yes" if rng.random() < 0.3 + 0.002 * (i % 100) else "No"
        rows.append(f"{i},{amount},{'True' if i % 3 else 'False'},,{label}")
    path = tmp_path / "hostile.csv"
    path.write_text("\n".join(rows) + "\n")
    # Default models (the additive member too) on hostile values; one repeat keeps it quick.
    settings = make_settings(models={"snapshot": {"repeats": 1}})
    result = run_snapshot(settings, path, "target", "Yes", id_col="id", track=False)
    assert 0 <= result.metrics["roc_auc"] <= 1 and result.metrics["n_rows"] == 400
    assert "blend_weight_additive" in result.params


def test_path_attribution_adds_up_to_the_log_odds_and_agrees_with_treeshap(toy_model):
    """Path attribution is exact in sum (like TreeSHAP) and names mostly the same top reason."""
    from models.attribution import agreement

    frame, _ = _toy(2000, 3)
    path = toy_model.contributions(frame)
    exact = toy_model.contributions(frame, "treeshap")
    matrix = toy_model.features.matrix(frame)
    raw = toy_model.booster.predict(matrix, num_iteration=toy_model.best_iteration, raw_score=True)
    assert np.allclose(path.sum(axis=1), raw) and np.allclose(exact.sum(axis=1), raw)
    assert not np.allclose(path, exact)  # a different method, not TreeSHAP under another name
    found = agreement(path, exact, k=2)
    assert found["top1"] > 0.7
    # Rows with more complaints get more credit to complaints from both methods.
    many = frame["complaints_90d"].to_numpy() >= 2
    assert path[many, 0].mean() > path[~many, 0].mean()
    with pytest.raises(ValueError, match="unknown contribution method"):
        toy_model.contributions(frame, "lime")


def test_path_attribution_by_tree_equals_the_leaf_by_feature_product(toy_model):
    """The tree-by-tree lookups give each customer the sum of its leaves' rows of the table,
    across chunk and block edges (2,000 customers in chunks of 700 and blocks of 300)."""
    from scipy import sparse

    from models.attribution import path_contributions

    frame, _ = _toy(2000, 5)
    matrix = toy_model.features.array(frame)
    table = toy_model.path_table()
    leaves = toy_model.booster.predict(
        matrix, num_iteration=toy_model.best_iteration, pred_leaf=True
    )
    ids = (leaves + table.offsets).ravel()
    n, trees = leaves.shape
    reached = sparse.csr_matrix(
        (np.ones(ids.size), ids, np.arange(0, ids.size + 1, trees)),
        shape=(n, table.leaf_features.shape[0]),
    )
    expected = (reached @ table.leaf_features).toarray()
    expected[:, -1] = table.bias
    got = path_contributions(
        toy_model.booster, matrix, table, toy_model.best_iteration, chunk=700, block=300
    )
    assert np.abs(expected[:, :-1]).max() > 0.1  # the table is not empty
    assert np.allclose(got, expected, rtol=0, atol=1e-12)


def test_reason_agreement_is_measured_against_treeshap(toy_model, make_settings):
    from pipelines.stages.train import reason_agreement

    valid, _ = _toy(2000, 2)
    found = reason_agreement(make_settings(), toy_model, valid)
    assert set(found) == {"reasons_top1_vs_treeshap", "reasons_topk_vs_treeshap"}
    assert 0.5 < found["reasons_top1_vs_treeshap"] <= 1.0


def test_scoring_explains_side_by_side_parts_as_one_whole(toy_model, make_settings, monkeypatch):
    """Local scoring splits the explained customers into one part per core; the reasons are those
    of explaining them all at once, and customers below the reason decile get none."""
    from datetime import date

    from models import scoring

    frame, _ = _toy(3000, 9)
    frame = frame.with_columns(
        pl.lit(date(2025, 6, 30)).alias("as_of"), pl.lit(50.0).alias("monthly_spend")
    )
    settings = make_settings()
    monkeypatch.setattr(scoring, "_cores", lambda: 3)
    scored = scoring.score_frame(frame, toy_model, toy_model, settings)
    explained = scored["risk_decile"].to_numpy() >= settings.scoring.reason_code_min_decile
    phrases, groups = scoring.explain_part(frame, toy_model, settings, np.flatnonzero(explained))
    assert phrases and phrases[0].size == explained.sum() > 0
    for j, (ph, gr) in enumerate(zip(phrases, groups, strict=True)):
        assert scored[f"reason_{j + 1}"].to_numpy()[explained].tolist() == ph.tolist()
        assert scored[f"reason_group_{j + 1}"].to_numpy()[explained].tolist() == gr.tolist()
    assert scored.filter(~explained)["reason_1"].null_count() == (~explained).sum()


@pytest.mark.parametrize(
    "template",
    [
        None,
        "{value:.0f} complaints",
        "usage {value:+.0%} vs before",
        "{value:.1f} x",
        "{value:g} y",
    ],
)
def test_reasons_worded_once_per_shown_value_read_as_worded_one_by_one(template):
    """Values that read the same are worded once; the words equal phrase() value by value,
    at signed zeros, halves (0.015, 2.675) and missing values too."""
    from models.reasons import phrase, phrases_for

    rng = np.random.default_rng(0)
    values = np.concatenate(
        [
            rng.normal(0, 1, 5000),
            rng.exponential(50, 5000),
            np.round(rng.normal(0, 1, 2000), 3),  # many exact halves at 2 decimals
            [np.nan, 0.0, -0.0, 0.125, 2.675, -0.005, 0.005, -0.35, 1e9],
        ]
    )
    spec = FeatureSpec("f", "feature f", "DOUBLE", ("t",), 90, "g", template)
    for v in (values, rng.integers(-5, 50, 3000), np.array([True, False, True])):
        assert phrases_for("f", v, spec).tolist() == [phrase("f", x, spec) for x in v.tolist()]


def test_risk_deciles_put_the_riskiest_tenth_in_decile_10():
    from models.scoring import risk_deciles

    p = np.random.default_rng(3).permutation(np.linspace(0, 1, 1000))
    deciles = risk_deciles(p)
    assert np.bincount(deciles, minlength=11)[1:].tolist() == [100] * 10
    assert (deciles[p >= np.sort(p)[900]] == 10).all() and (deciles[p < np.sort(p)[100]] == 1).all()
    # Ties are ranked by position (stable), so equal scores may straddle a decile boundary.
    assert risk_deciles(np.zeros(20)).tolist() == np.repeat(np.arange(1, 11), 2).tolist()
    assert risk_deciles(np.array([])).size == 0


def test_calibration_watch_holds_or_recalibrates_a_shifted_base():
    from configs.schema import CalibrationWatchConfig
    from models.calibration_watch import apply_shift, check_calibration

    rng = np.random.default_rng(3)
    calm = rng.beta(1, 15, 5000)  # mean about 0.06
    shifted = apply_shift(calm, 2.0)  # a market shift pushes everyone up (about 5x)
    rule = CalibrationWatchConfig()
    ok = check_calibration(calm, 0.062, 0.063, rule)
    assert ok.action == "publish" and ok.logit_shift == 0.0
    held = check_calibration(shifted, 0.062, 0.063, rule)
    assert held.action == "hold" and held.reason.startswith(
        "list held for review: mean churn score"
    )
    assert held.ratio > 3 and "\n" not in held.reason
    # Either yardstick alone trips it; an unknown yardstick does not.
    assert check_calibration(shifted, None, 0.063, rule).action == "hold"
    assert check_calibration(calm, None, None, rule).action == "publish"
    fixed = check_calibration(
        shifted, 0.062, 0.063, rule.model_copy(update={"action": "recalibrate"})
    )
    assert fixed.action == "recalibrate" and fixed.logit_shift < -1.5
    after = apply_shift(shifted, fixed.logit_shift)
    assert after.mean() == pytest.approx(0.062, rel=1e-3)
    assert (np.argsort(after) == np.argsort(shifted)).all()  # the ranking is untouched
    # Without a trailing rate there is nothing to recalibrate to: hold.
    rule_r = rule.model_copy(update={"action": "recalibrate"})
    assert check_calibration(shifted, None, 0.063, rule_r).action == "hold"


def test_champion_parameters_become_one_trial_inside_the_search_space():
    from configs.schema import SearchSpace

    space = SearchSpace(num_leaves=(7, 31), learning_rate=(0.08, 0.3), max_depth=(4, 6))
    # As MLflow returns them: text, one out of range, one missing, one unknown.
    logged = {"num_leaves": "63", "learning_rate": "0.1", "min_child_samples": "40", "x": "1"}
    trial = lgbm.within_space(logged, space)
    assert trial["num_leaves"] == 31 and isinstance(trial["num_leaves"], int)
    assert trial["learning_rate"] == pytest.approx(0.1)
    assert trial["min_child_samples"] == 40 and "x" not in trial
    assert trial["lambda_l2"] == lgbm.first_trial(space)["lambda_l2"]
