"""The model benchmark's yardsticks: the oracle measured from chance, the operator-shaped table."""

from __future__ import annotations

import pytest

from benchmarks.bench_models import from_chance, wide


def test_oracle_share_is_measured_from_chance():
    # A model at chance has none of the oracle's lead, whatever the oracle's AUC.
    assert from_chance(0.5, 0.9) == 0.0
    assert from_chance(0.7, 0.9) == pytest.approx(0.5)
    assert from_chance(0.9, 0.9) == 1.0


def test_operator_shaped_table_has_60_columns_and_a_wide_category():
    frame = wide(2000, 0)
    features = [c for c in frame.columns if c != "churned"]
    assert len(features) == 60
    assert frame["handset_model"].n_unique() > 300
    assert 0.1 < (frame["churned"] == "Yes").mean() < 0.4


@pytest.mark.slow
def test_oracle_of_drawn_intents_bounds_the_model_and_the_hazard():
    from benchmarks.bench_models import oracle

    out = oracle(customers=3000, months=8, seed=5)
    assert out["matched_rows"] > 0.9 * out["validation_rows"]
    # Knowing the drawn intents beats knowing the hazard; neither is beaten by the model.
    assert out["oracle_auc"] > out["hazard_auc"] and out["oracle_auc"] > out["model_auc"]
    assert out["share_of_oracle"] == pytest.approx(
        from_chance(out["model_auc"], out["oracle_auc"]), abs=1e-3
    )


@pytest.mark.parametrize(
    ("item", "message"),
    [("models.snapshot.nope=3", "models.snapshot.nope: unknown key"), ("nope", "KEY=VALUE")],
)
def test_a_bad_set_is_one_clear_line_and_runs_nothing(item, message, capsys):
    from benchmarks.bench_models import main

    with pytest.raises(SystemExit) as stop:
        main(["--set", item, "--skip-speed", "--skip-oracle"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)
