"""Snapshot mode measured honestly: repeated CV, the tree alone, wide categories, family shares."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from models.encoding import fit_encoder, high_cardinality
from models.tabular import add_family_shares, add_family_sums, column_families

LIGHT = {
    "models": {
        "num_boost_round": 300,
        "early_stopping_rounds": 20,
        # The additive member has tests of its own (test_additive.py); these check the CV.
        "snapshot": {
            "blend_folds": 3,
            "linear_c": [0.1],
            "folds": 3,
            "repeats": 2,
            "additive": False,
        },
    }
}


def _interaction_csv(path, n: int = 900, seed: int = 0):
    """A label only a tree can see (sign of x0 × x1), plus a weak linear part."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    logit = 2.5 * np.sign(x[:, 0] * x[:, 1]) + 0.4 * x[:, 2] - 0.5
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    frame = pl.DataFrame({f"x{i}": x[:, i] for i in range(4)}).with_columns(
        pl.Series("left", np.where(y, "Yes", "No"))
    )
    frame.write_csv(path)
    return path


def _wide_category(n: int, seed: int) -> tuple[pl.DataFrame, np.ndarray]:
    """300 handset models, each with its own churn rate: the signal lives in a wide category."""
    rng = np.random.default_rng(seed)
    level = rng.integers(0, 300, n)
    effect = rng.normal(0, 1.5, 300)
    x1 = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(effect[level] + 0.5 * x1 - 1)))).astype(float)
    frame = pl.DataFrame(
        {"handset": [f"h{i}" for i in level], "x1": x1, "plan": rng.choice(["a", "b"], n)}
    )
    return frame, y


def test_repeated_cv_reports_spread_and_the_tree_alone(tmp_path, make_settings):
    from pipelines.stages.snapshot import run_snapshot

    told = []
    result = run_snapshot(
        make_settings(**LIGHT),
        _interaction_csv(tmp_path / "t.csv"),
        "left",
        "Yes",
        track=False,
        progress=lambda step, done, total: told.append((done, total)),
    )
    m = result.metrics
    assert m["folds"] == 6 and m["repeats"] == 2 and len(result.folds) == 6
    aucs = [f["roc_auc"] for f in result.folds]
    assert m["roc_auc"] == pytest.approx(np.mean(aucs))
    assert m["roc_auc_sd"] == pytest.approx(np.std(aucs, ddof=1)) and m["roc_auc_sd"] > 0
    # Only the tree can see an interaction: a broken tree model cannot pass on the linear side.
    assert m["tree_roc_auc"] > 0.75 and m["roc_auc"] > 0.75
    assert (6, 6) in told  # the progress callback heard every fold


def test_folds_in_worker_processes_match_folds_in_turn(tmp_path, make_settings):
    from pipelines.stages.snapshot import run_snapshot

    path = _interaction_csv(tmp_path / "t.csv", n=500, seed=1)
    runs = []
    for workers in (1, 2):
        cfg = {**LIGHT["models"]["snapshot"], "workers": workers, "parallel_min_rows": 0}
        settings = make_settings(models={**LIGHT["models"], "snapshot": cfg})
        runs.append(run_snapshot(settings, path, "left", "Yes", track=False))
    assert runs[0].metrics == runs[1].metrics

    def chosen(run):
        return [{k: v for k, v in p.items() if k != "cpu_seconds"} for p in run.fold_params]

    assert chosen(runs[0]) == chosen(runs[1])
    assert all(p["cpu_seconds"] > 0 for p in runs[1].fold_params)


def test_wide_categories_are_found_by_type_and_level_count():
    frame, _ = _wide_category(2000, 0)
    frame = frame.with_columns(pl.Series("id_like_number", np.arange(2000.0)))
    assert high_cardinality(frame, frame.columns, 30) == ["handset"]


def test_target_means_of_training_rows_are_out_of_fold():
    """Flipping one row's label never changes that row's own encoding."""
    frame, y = _wide_category(1200, 1)
    _, encoded = fit_encoder(frame, y, ["handset"], "target", seed=3)
    flipped = y.copy()
    flipped[10] = 1 - flipped[10]
    _, again = fit_encoder(frame, flipped, ["handset"], "target", seed=3)
    assert encoded["handset"][10] == again["handset"][10]
    assert encoded["handset"].dtype == pl.Float64


def test_a_signal_carrying_wide_category_is_encoded_and_pays(make_settings):
    from models.snapshot_fit import fit_eval

    frame, y = _wide_category(3000, 2)
    args = (frame[:2000], y[:2000], frame[2000:], y[2000:], frame.columns)
    on, off = (
        fit_eval(
            *args,
            make_settings(models={**LIGHT["models"], "snapshot": {"encode_high_cardinality": e}}),
            "churn",
            1,
            0,
        )
        for e in (True, False)
    )
    assert on[1]["encoding"] in ("target", "count") and "encoding" not in off[1]
    assert on[0]["tree_roc_auc"] > off[0]["tree_roc_auc"] + 0.05


def test_family_shares_and_parallel_family_ratios_come_from_names_alone():
    frame = pl.DataFrame(
        {
            "BILL_AMT1": [1.0, 2.0],
            "BILL_AMT2": [3.0, 0.0],
            "BILL_AMT3": [4.0, 0.0],
            "PAY_AMT1": [1.0, 0.0],
            "PAY_AMT2": [1.0, 0.0],
            "PAY_AMT3": [2.0, 0.0],
            "Total day minutes": [1.0, 0.0],
            "Total eve minutes": [1.0, 0.0],
            "Total night minutes": [2.0, 0.0],
        }
    )
    families = column_families(frame)
    out = add_family_shares(add_family_sums(frame, families), families)
    assert out["BILL_AMT3 (share of bill amt *)"].to_list() == [0.5, 0.0]
    # A zero total has no shares (missing, never infinite).
    assert out["Total day minutes (share of total * minutes)"].to_list() == [0.25, None]
    # Bills and payments vary in the same numbers: their totals' ratio; minutes vary in words.
    assert out["bill amt * / pay amt *"].to_list() == [2.0, None]
    assert not [c for c in out.columns if " / " in c and "minutes" in c]


@pytest.mark.slow  # MLflow's store set-up dominates: about a minute on a busy machine
def test_snapshot_command_ends_with_one_summary_line(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app

    path = _interaction_csv(tmp_path / "t.csv", n=300, seed=2)
    out = tmp_path / "m.json"
    argv = ["--home", str(tmp_path / "home"), "snapshot", "--data", str(path)]
    argv += ["--target", "left", "--positive", "Yes", "--repeats", "1", "--metrics-out", str(out)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("done: 5 folds") and "tree alone" in last and str(out) in last
