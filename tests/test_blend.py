"""Snapshot mode's LightGBM + logistic blend: no leakage, sensible weights, probabilities."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from models.blend import fit_blend, fit_linear
from models.tabular import add_family_sums, column_families


def _table(n: int, seed: int, kind: str) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    plan = rng.choice(["basic", "plus", "max"], n)
    if kind == "linear":
        logit = x @ np.array([1.2, -1.0, 0.8, 0.0, 0.0]) - 0.8
    else:  # a pure interaction: invisible to any additive model
        logit = 3.0 * np.sign(x[:, 0] * x[:, 1]) - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    frame = pl.DataFrame({f"x{i}": x[:, i] for i in range(5)} | {"plan": plan})
    return frame, y


def _tree(settings):
    from models.snapshot_fit import fit_tree as _fit_tree

    def fit(frame, y, seed):
        return _fit_tree(frame, y, frame.columns, {}, settings, seed)

    return fit


@pytest.fixture
def fast_settings(make_settings):
    return make_settings(
        models={
            "num_boost_round": 300,
            "early_stopping_rounds": 20,
            "snapshot": {
                "blend_folds": 3,
                "linear_c": [0.1, 1.0],
                "repeats": 1,
                "additive_bags": 4,
            },
        }
    )


def test_linear_signal_gets_substantial_linear_weight(fast_settings):
    frame, y = _table(1500, 1, "linear")
    model = fit_blend(frame, y, frame.columns, _tree(fast_settings), folds=3, seed=0)
    assert model.weight >= 0.5
    assert model.info["blend_weight_linear"] == model.weight


def test_interaction_signal_stays_with_the_trees(fast_settings):
    frame, y = _table(1500, 2, "xor")
    model = fit_blend(frame, y, frame.columns, _tree(fast_settings), folds=3, seed=0)
    assert model.weight <= 0.3


def test_blend_output_is_a_calibrated_probability(fast_settings):
    frame, y = _table(2500, 3, "linear")
    model = fit_blend(frame[:1500], y[:1500], frame.columns, _tree(fast_settings), folds=3)
    p, y_test = model.predict(frame[1500:]), y[1500:]
    assert np.all((p >= 0) & (p <= 1))
    assert abs(p.mean() - y_test.mean()) < 0.04
    # Calibration in the large holds per risk band too, not only on average.
    high = p > np.quantile(p, 0.8)
    assert abs(p[high].mean() - y_test[high].mean()) < 0.08


def test_blend_choice_ignores_the_evaluation_fold(fast_settings):
    """Relabelling the evaluation rows changes the metrics, never what was chosen."""
    from models.snapshot_fit import fit_eval as _fit_eval

    frame, y = _table(900, 4, "linear")
    tr, te = np.arange(600), np.arange(600, 900)
    cols = frame.columns
    args = (fast_settings, "credit", 1, 7)
    m1, info1 = _fit_eval(frame[tr], y[tr], frame[te], y[te], cols, *args)
    m2, info2 = _fit_eval(frame[tr], y[tr], frame[te], 1 - y[te], cols, *args)
    assert info1 == info2 and "blend_weight_linear" in info1
    assert m1["roc_auc"] == pytest.approx(1 - m2["roc_auc"])


def test_blend_can_be_switched_off(make_settings):
    from models.snapshot_fit import fit_eval as _fit_eval

    settings = make_settings(models={"num_boost_round": 200, "snapshot": {"blend": False}})
    frame, y = _table(600, 5, "linear")
    _, info = _fit_eval(
        frame[:400], y[:400], frame[400:], y[400:], frame.columns, settings, "credit", 1, 0
    )
    assert not any(k.startswith("blend_") for k in info)


def test_linear_model_handles_unseen_and_missing_values():
    frame, y = _table(400, 6, "linear")
    model = fit_linear(frame, y, frame.columns)
    odd = frame[:3].with_columns(
        pl.Series("plan", ["unheard-of", None, "basic"]), pl.lit(None, pl.Float64).alias("x0")
    )
    p = model.predict(odd)
    assert p.shape == (3,) and np.all((p > 0) & (p < 1))


def test_column_families_come_from_names_alone():
    frame = pl.DataFrame(
        {
            "BILL_AMT1": [1.0, 2.0],
            "BILL_AMT2": [3.0, None],
            "BILL_AMT3": [5.0, 6.0],
            "Total day minutes": [1.0, 1.0],
            "Total eve minutes": [2.0, 2.0],
            "Total night minutes": [3.0, 3.0],
            "MonthlyCharges": [1.0, 2.0],
            "TotalCharges": [1.0, 2.0],
            "age": [30.0, 40.0],
            "sex": [1.0, 0.0],
            "tenure": [1.0, 2.0],
            "plan_a": ["x", "y"],
            "plan_b": ["x", "y"],
            "plan_c": ["x", "y"],
        }
    )
    families = column_families(frame)
    assert families == {
        "bill amt * (sum)": ["BILL_AMT1", "BILL_AMT2", "BILL_AMT3"],
        "total * minutes (sum)": ["Total day minutes", "Total eve minutes", "Total night minutes"],
    }
    out = add_family_sums(frame, families)
    assert out["bill amt * (sum)"].to_list() == [9.0, 8.0]
    assert out.columns[: frame.width] == frame.columns


def test_snapshot_run_records_the_blend_in_mlflow(tmp_path, fast_settings):
    from pipelines.stages.snapshot import run_snapshot
    from pipelines.store.tracking import experiment_client

    frame, y = _table(300, 7, "linear")
    path = tmp_path / "customers.csv"
    frame.with_columns(pl.Series("churned", np.where(y == 1, "Yes", "No"))).write_csv(path)
    result = run_snapshot(fast_settings, path, "churned", "Yes")
    client, _ = experiment_client(fast_settings)
    run = client.get_run(result.run_id)
    assert run.data.tags["model"] == "lightgbm+logistic blend"
    folds = int(result.metrics["folds"])
    assert folds == fast_settings.models.snapshot.folds * fast_settings.models.snapshot.repeats
    weights = [float(w) for w in run.data.params["blend_weight_linear"].split(",")]
    assert len(weights) in (1, folds) and all(0 <= w <= 1 for w in weights)
    # A table this small gets the additive member too, and its weight is recorded with the rest.
    additive = [float(w) for w in run.data.params["blend_weight_additive"].split(",")]
    assert len(additive) in (1, folds) and all(
        0 <= a + w <= 1 for a, w in zip(additive, weights, strict=False)
    )
    history = client.get_metric_history(result.run_id, "fold_blend_weight_linear")
    assert sorted(m.step for m in history) == list(range(folds))
    assert set(result.metrics) >= {"roc_auc", "roc_auc_sd", "tree_roc_auc", "empc", "n_rows"}
    assert run.data.metrics["tree_roc_auc"] == result.metrics["tree_roc_auc"]
