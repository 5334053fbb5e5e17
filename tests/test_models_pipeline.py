"""Training, registry, promotion and scoring on a synthetic feature table, checked via MLflow."""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import polars as pl
import pytest

from pipelines.store.workdir import Workdir

AS_OF = [date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 31), date(2025, 4, 30)]
SMALL = {
    "models": {
        "horizon_days": 30,
        "trials": 2,
        "num_boost_round": 120,
        "early_stopping_rounds": 15,
        "promotion": {"margin": 0.01},
    },
    "tracking": {"experiment": "test-models"},
}


def synthetic_snapshots(n: int = 1500, seed: int = 0) -> pl.DataFrame:
    """feat.customer_snapshot-shaped rows: meta columns, two features, churn/default labels."""
    rng = np.random.default_rng(seed)
    frames = []
    for as_of in AS_OF:
        complaints = rng.poisson(0.6, n).astype(float)
        trend = rng.normal(0, 0.3, n)
        arrears = rng.poisson(0.3, n).astype(float)
        payment = rng.choice(["prepaid", "postpaid"], n, p=[0.3, 0.7])
        churn = rng.random(n) < 1 / (1 + np.exp(-(-3 + 1.0 * complaints - 3 * trend)))
        default = rng.random(n) < 1 / (1 + np.exp(-(-3.5 + 1.2 * arrears)))
        # Some customers are already seriously past due at as-of: they would all "default".
        past_due = np.where(arrears >= 2, rng.choice([30, 60, 90], n), 0)
        default = default | (past_due >= 60)
        frames.append(
            pl.DataFrame(
                {
                    "customer_id": [f"C{i:05d}" for i in range(n)],
                    "as_of": [as_of] * n,
                    "segment": rng.choice(["individual", "family", "enterprise"], n),
                    "payment_type": payment,
                    "region": rng.choice(["north", "south"], n),
                    "plan_id": rng.choice(["P1", "P2", "P3"], n),
                    "enterprise_grade": [None] * n,
                    "value_tier": rng.choice(["diamond", "gold", "silver", "basic"], n),
                    "lifecycle_stage": rng.choice(["growth", "maturity"], n),
                    "monthly_spend": rng.gamma(4, 10, n),
                    "complaints_30d": complaints,
                    "data_trend_30v60": trend,
                    "unpaid_due_bills": arrears,
                    "days_past_due_last": past_due,
                    "churn_30d": churn.astype(np.int32),
                    "default_30d": default.astype(np.int32),
                },
                schema_overrides={"enterprise_grade": pl.Utf8},
            ).with_columns(
                # Default labels are not applicable to prepaid customers.
                pl.when(pl.col("payment_type") == "prepaid")
                .then(None)
                .otherwise(pl.col("default_30d"))
                .alias("default_30d")
            )
        )
    return pl.concat(frames)


def write_snapshots(settings, frame: pl.DataFrame) -> None:
    from pipelines.store.config import features_hash

    wd = Workdir.from_settings(settings)
    wd.home.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(wd.db_path))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS feat")
        con.register("_f", frame)
        con.execute("CREATE OR REPLACE TABLE feat.customer_snapshot AS SELECT * FROM _f")
        con.execute(
            "CREATE TABLE IF NOT EXISTS feat.build_log"
            " (as_of DATE, config_hash VARCHAR, built_at TIMESTAMP, rows BIGINT, stale BOOLEAN)"
        )
        con.execute("DELETE FROM feat.build_log")
        for d in AS_OF:
            con.execute(
                "INSERT INTO feat.build_log VALUES (?, ?, now()::TIMESTAMP, ?, false)",
                [d, features_hash(settings), frame.filter(pl.col("as_of") == d).height],
            )
    finally:
        con.close()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Both models trained once and promoted (first champion), on a shared temp home."""
    from pipelines.stages.train import promote, train_model
    from pipelines.store.config import load_settings

    home = tmp_path_factory.mktemp("models-home")
    settings = load_settings(home=home, environ={}, overrides=SMALL)
    write_snapshots(settings, synthetic_snapshots())
    churn = train_model(settings, "churn", trials=2)
    credit = train_model(settings, "credit", trials=2)
    first = {m: promote(settings, m) for m in ("churn", "credit")}
    return settings, churn, credit, first


def _client(settings):
    from pipelines.store.tracking import experiment_client

    return experiment_client(settings)


def test_training_run_is_tracked_with_nested_trials(trained):
    settings, churn, _, _ = trained
    client, experiment_id = _client(settings)
    run = client.get_run(churn.run_id)
    assert Workdir.from_settings(settings).tracking_uri(settings).startswith("sqlite:")
    assert run.data.tags["model"] == "churn" and run.data.tags["git_commit"]
    params = run.data.params
    assert params["validation_as_of"] == "2025-04-30"
    assert params["train_as_of"] == "2025-01-31,2025-02-28,2025-03-31"
    assert len(params["data_fingerprint"]) == 16
    for key in ("roc_auc", "pr_auc", "top_decile_lift", "brier", "empc", "empc_fraction"):
        assert key in run.data.metrics
    assert run.data.metrics["roc_auc"] > 0.75
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{churn.run_id}'"
    )
    assert len(children) == 2 and all("inner_pr_auc" in c.data.metrics for c in children)
    artifacts = {a.path for a in client.list_artifacts(churn.run_id, "evaluation")}
    assert {"evaluation/gains_lift.png", "evaluation/calibration.png"} <= artifacts
    assert "evaluation/features.json" in artifacts


def test_registry_has_versions_with_aliases(trained):
    settings, churn, credit, first = trained
    client, _ = _client(settings)
    for name, result in (("churn", churn), ("credit_risk", credit)):
        aliases = client.get_registered_model(name).aliases
        assert str(aliases["challenger"]) == result.version == str(aliases["champion"])
    assert all(r.promoted and "no champion yet" in r.explanation for r in first.values())
    assert "ks" in credit.metrics and "empc" not in credit.metrics


def test_gate_keeps_the_champion_against_a_worse_challenger(trained):
    from pipelines.stages.train import list_models, promote, train_model
    from pipelines.store.errors import InputError

    settings, churn, _, _ = trained
    # A challenger trained on shuffled labels (validation month untouched) is worse.
    good = synthetic_snapshots()
    rng = np.random.default_rng(1)
    shuffled = good.with_columns(
        pl.when(pl.col("as_of") < AS_OF[-1])
        .then(pl.Series(rng.permutation(good["churn_30d"].to_numpy())))
        .otherwise(pl.col("churn_30d"))
        .alias("churn_30d")
    )
    write_snapshots(settings, shuffled)
    try:
        bad = train_model(settings, "churn", trials=1)
    finally:
        write_snapshots(settings, good)
    result = promote(settings, "churn")
    client, experiment_id = _client(settings)
    # A champion existed: tuning started from its parameters (its one trial is theirs).
    bad_run = client.get_run(bad.run_id)
    assert bad_run.data.tags["warm_start_from"] == churn.version
    (trial,) = client.search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{bad.run_id}'"
    )
    champion_params = client.get_run(churn.run_id).data.params
    for key in ("num_leaves", "learning_rate", "min_child_samples", "lambda_l2"):
        assert float(trial.data.params[key]) == pytest.approx(float(champion_params[key]))
    aliases = client.get_registered_model("churn").aliases
    assert not result.promoted and str(aliases["champion"]) == churn.version
    assert str(aliases["challenger"]) == bad.version
    # Shuffled labels give a random ranking: the quality floor stops it before any comparison.
    assert "below the floor" in client.get_model_version("churn", bad.version).tags["gate"]
    with pytest.raises(InputError, match="--reason"):
        promote(settings, "churn", force=True)
    forced = promote(settings, "churn", force=True, reason="test override")
    assert forced.promoted and forced.explanation.startswith("FORCED")
    assert "force-promote churn" in Workdir.from_settings(settings).audit_log.read_text()
    rows = list_models(settings)
    assert {str(r["version"]) for r in rows if r["model"] == "churn"} >= {
        churn.version,
        bad.version,
    }
    # Back to the good model so later tests score with it.
    client.set_registered_model_alias("churn", "champion", churn.version)


def test_scoring_writes_every_customer_once_and_is_idempotent(trained):
    from pipelines.stages.score import score_customers

    settings, churn, credit, _ = trained
    first = score_customers(settings, AS_OF[-1])
    second = score_customers(settings, AS_OF[-1])
    assert first.rows == second.rows == 1500
    assert second.model_versions == {"churn": churn.version, "credit_risk": credit.version}
    con = duckdb.connect(str(Workdir.from_settings(settings).db_path), read_only=True)
    try:
        scores = con.sql("SELECT * FROM scores.customer_scores").pl()
    finally:
        con.close()
    assert scores.height == 1500 and scores["customer_id"].n_unique() == 1500
    assert scores["risk_decile"].min() == 1 and scores["risk_decile"].max() == 10
    assert set(scores["credit_grade"].unique()) <= set("ABCDE")
    top = scores.filter(pl.col("risk_decile") == 10)
    assert top["reason_1"].null_count() == 0
    assert set(top["reason_group_1"].drop_nulls().unique()) <= {
        "complaints",
        "usage_down",
        "payment",
    }
    # Riskier deciles churn more on average: the probabilities follow the deciles.
    by = scores.group_by("risk_decile").agg(pl.col("churn_probability").mean()).sort("risk_decile")
    assert by["churn_probability"].is_sorted()


def test_training_without_matured_labels_is_a_clear_error(make_settings):
    from pipelines.stages.train import train_model
    from pipelines.store.errors import InputError

    settings = make_settings(**SMALL)
    frame = synthetic_snapshots(300).with_columns(pl.lit(None, dtype=pl.Int32).alias("churn_30d"))
    write_snapshots(settings, frame)
    with pytest.raises(InputError, match="matured"):
        train_model(settings, "churn", trials=1)


def test_training_with_a_single_snapshot_is_a_clear_error(make_settings):
    from pipelines.stages.train import train_model
    from pipelines.store.errors import InputError

    settings = make_settings(**SMALL)
    write_snapshots(settings, synthetic_snapshots(300).filter(pl.col("as_of") == AS_OF[0]))
    with pytest.raises(InputError, match="need 1 complete snapshot with matured 30-day labels"):
        train_model(settings, "churn", trials=1)


def test_large_training_sets_are_a_stable_customer_sample(make_settings):
    """Above models.max_train_rows, training reads a hash sample of whole customers, reproducibly."""
    from pipelines.stages.train import training_frames

    settings = make_settings(**{"models": {**SMALL["models"], "max_train_rows": 1000}})
    write_snapshots(settings, synthetic_snapshots())
    train, valid, _, train_dates, _ = training_frames(settings, "churn", None)
    full_train = 1500 * len(train_dates)
    assert 600 < train.height < 1400 < full_train  # about max_train_rows, far below the full set
    assert valid.height == 1500  # under max_valid_rows: the whole validation month
    # whole customers: a sampled customer is present in every training month
    months = train.group_by("customer_id").agg(pl.col("as_of").n_unique())["as_of"]
    assert months.min() == len(train_dates)
    again, *_ = training_frames(settings, "churn", None)
    assert again.equals(train)


def test_credit_model_never_sees_customers_already_in_serious_arrears(make_settings):
    """Their label restates today's arrears: they are outside the credit population."""
    from pipelines.stages.train import training_frames

    settings = make_settings(**SMALL)
    frame = synthetic_snapshots()
    write_snapshots(settings, frame)
    serious = settings.features.serious_arrears_days
    assert frame.filter(
        (pl.col("days_past_due_last") >= serious) & pl.col("default_30d").is_not_null()
    ).height
    train, valid, label, *_ = training_frames(settings, "credit", None)
    for part in (train, valid):
        assert part.height and part["days_past_due_last"].max() < serious
        assert part[label].null_count() == 0
    # The churn model keeps everyone: arrears are a reason to leave, not a restated label.
    churn_train, *_ = training_frames(settings, "churn", None)
    assert churn_train["days_past_due_last"].max() >= serious


def test_scoring_grades_serious_arrears_worst_by_rule(trained):
    from pipelines.stages.score import score_customers

    settings, *_ = trained
    score_customers(settings, AS_OF[-1])
    con = duckdb.connect(str(Workdir.from_settings(settings).db_path), read_only=True)
    try:
        scores = con.sql(
            "SELECT s.*, f.days_past_due_last FROM scores.customer_scores s"
            " JOIN feat.customer_snapshot f USING (customer_id, as_of)"
        ).pl()
    finally:
        con.close()
    serious = pl.col("days_past_due_last") >= settings.features.serious_arrears_days
    ruled, modelled = scores.filter(serious), scores.filter(~serious)
    assert ruled.height and modelled.height
    assert set(ruled["credit_grade"]) == {"E"} and ruled["credit_pd"].min() == 1.0
    assert ruled["credit_limit"].max() == 0.0
    assert ruled["credit_rule"].str.contains("serious arrears").all()
    assert modelled["credit_rule"].null_count() == modelled.height
    assert modelled["credit_pd"].max() < 1.0


def test_inner_splits_hold_out_whole_customers(make_settings, monkeypatch):
    """Early stopping, tuning and calibration never see one customer on both sides."""
    from models import lgbm
    from pipelines.stages.train import train_model

    seen = {}
    real_tune, real_fit = lgbm.tune, lgbm.fit

    def tune(train, y_train, valid, *args, **kwargs):
        seen["tune"] = (set(train["customer_id"]), set(valid["customer_id"]))
        return real_tune(train, y_train, valid, *args, **kwargs)

    def fit(train, y_train, valid, *args, **kwargs):
        seen["fit"] = (set(train["customer_id"]), set(valid["customer_id"]))
        return real_fit(train, y_train, valid, *args, **kwargs)

    monkeypatch.setattr(lgbm, "tune", tune)
    monkeypatch.setattr(lgbm, "fit", fit)
    settings = make_settings(**SMALL)
    write_snapshots(settings, synthetic_snapshots(600))
    train_model(settings, "churn", trials=1)
    for inner, held_out in seen.values():
        assert inner and held_out and not inner & held_out
        assert 0.1 < len(held_out) / (len(inner) + len(held_out)) < 0.3
