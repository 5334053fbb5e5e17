"""Uplift on a campaign table: Qini by hand, every learner, no test-part leakage, the hold-out by
customer, and `churn snapshot --treatment` on a sample of the real Hillstrom test."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest

from models import uplift_metrics as um
from models.uplift import LEARNERS, qini_coefficient
from models.uplift_eval import Campaign, evaluate, fit_scorer
from models.uplift_holdout import mark_held_out, split_held_out
from pipelines.store.errors import InputError


def test_qini_against_a_hand_worked_table():
    # Rows in score order (t = treated, y = visited):
    #   k  t y | n_t y_t n_c y_c | Q(k) = y_t − y_c · n_t / n_c
    #   1  1 1 |  1   1   0   0  |  1
    #   2  0 1 |  1   1   1   1  |  0
    #   3  1 0 |  2   1   1   1  | −1
    #   4  1 1 |  3   2   1   1  | −1
    #   5  0 0 |  3   2   2   1  |  0.5
    #   6  0 1 |  3   2   3   2  |  0
    # Area (unit trapezoids) = 0.5 + 0.5 − 0.5 − 1 − 0.25 + 0.25 = −0.5; random ends at 0 → 0.
    # Perfect ranking (score t·y − (1−t)·y, ties as groups): Q = 2 at k = 2 and 4, 0 at k = 6:
    # area 2 + 4 + 2 = 8. Normalised Qini = −0.5 / 8.
    t = np.array([1, 0, 1, 1, 0, 0])
    y = np.array([1, 1, 0, 1, 0, 1])
    score = np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    assert um.qini(y, t, score) == pytest.approx(-0.0625)
    # Top half: treated rows 1 and 3 visit at 1/2, control row 2 at 1 → −0.5.
    assert um.uplift_at(y, t, score, k=0.5) == pytest.approx(-0.5)
    # For a treatment meant to lower the outcome, the good outcome is y = 0.
    assert um.qini(y, t, score, goal="decrease") == pytest.approx(um.qini(1 - y, t, score))
    assert qini_coefficient(y, t, score) == um.qini(y, t, score, goal="decrease")
    curve = um.qini_points(y, t, score, points=7)
    assert curve["model"].to_list() == pytest.approx([0, 1, 0, -1, -1, 0.5, 0])
    assert um.average_effect(y, t) == pytest.approx(2 / 3 - 2 / 3)


def _campaign(n: int, seed: int, goal: str = "increase") -> Campaign:
    """A randomised test where only customers with `engaged` > 0.5 respond (+25 points)."""
    rng = np.random.default_rng(seed)
    engaged, noise = rng.random(n), rng.normal(size=n)
    channel = rng.choice(["web", "phone", "multi"], n)
    t = (rng.random(n) < 0.5).astype(int)
    p = 0.15 + 0.1 * (channel == "web") + 0.25 * t * (engaged > 0.5)
    y = (rng.random(n) < p).astype(float)
    if goal == "decrease":
        y = 1.0 - y
    x = pl.DataFrame({"engaged": engaged, "noise": noise, "channel": channel})
    return Campaign(x, t, y, list(x.columns), goal)


@pytest.mark.parametrize("learner", LEARNERS)
def test_every_learner_finds_the_responders(learner):
    train, probe = _campaign(4000, 1), _campaign(3000, 2)
    scorer = fit_scorer(learner, train, seed=0, params={"n_estimators": 60})
    score = scorer.score(probe.features)
    responders = probe.features["engaged"].to_numpy() > 0.5
    assert score[responders].mean() - score[~responders].mean() > 0.08
    truth = responders + 1e-9 * np.arange(len(score))
    q = um.qini(probe.y, probe.treated, score)
    assert q > 0.6 * um.qini(probe.y, probe.treated, truth)


def test_goal_decrease_ranks_the_same_customers_first():
    up, down = _campaign(4000, 3), _campaign(4000, 3, goal="decrease")
    a = fit_scorer("solo", up, seed=0).score(up.features)
    b = fit_scorer("solo", down, seed=0).score(down.features)
    # Same customers, outcome flipped and goal flipped: the same ranking, up to the model's noise.
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_auto_chooses_on_training_rows_only():
    """Shuffling the features of a split's test part changes neither the choice nor inner scores."""
    from sklearn.model_selection import train_test_split

    data = _campaign(1500, 4)
    idx = np.arange(len(data.y))
    # The split depends on treatment × outcome only, so the scrambled table splits the same way.
    _, te = train_test_split(idx, test_size=0.3, stratify=data.strata, random_state=0)
    mixed = idx.copy()
    mixed[te] = te[np.random.default_rng(0).permutation(len(te))]
    scrambled = Campaign(data.features[mixed], data.treated, data.y, data.columns)
    some = ("solo", "two_model", "x_learner")  # every learner is chosen the same way
    a = evaluate(data, "auto", seeds=1, candidates=some)
    b = evaluate(scrambled, "auto", seeds=1, candidates=some)
    assert set(a.splits[0].inner_qini) == set(some)
    assert a.splits[0].inner_qini == b.splits[0].inner_qini
    assert a.splits[0].learner == b.splits[0].learner
    assert a.splits[0].qini > b.splits[0].qini + 0.05  # the test part itself did change


def _list_rows(customers: int) -> pl.DataFrame:
    """Monthly lists with 60-day outcome windows: each customer has a row at three list dates,
    on a list at some and left alone at others; one churn event labels overlapping rows."""
    rng = np.random.default_rng(0)
    dates = [date(2025, 1, 31), date(2025, 2, 28), date(2025, 3, 31)]
    rows = []
    for i in range(customers):
        gone = date(2025, 3, 15) if rng.random() < 0.2 else None
        for d in dates:
            churned = gone is not None and d < gone <= d + timedelta(days=60)
            listed = bool(rng.random() < 0.5)
            rows.append(
                {
                    "customer_id": f"C{i:05d}",
                    "as_of": d,
                    "listed": listed,
                    "treated": listed and bool(rng.random() < 0.8),
                    "churned": int(churned),
                }
            )
    return pl.DataFrame(rows)


def test_holdout_keeps_every_row_of_a_held_out_customer_out_of_training():
    frame = mark_held_out(_list_rows(600), share=0.25, seed=7)
    train, hold = split_held_out(frame)
    assert hold.height > 100 and train.height > 1000
    # Overlapping windows are planted: one churn event labels two list dates of a customer.
    twice = frame.group_by("customer_id").agg(pl.col("churned").sum()).filter(pl.col("churned") > 1)
    assert twice.height > 10
    both = set(train["customer_id"]) & set(hold["customer_id"])
    assert both == set()
    # Held-out customers with rows off a list exist, and those rows are in neither side.
    held_ids = set(frame.filter(pl.col("held_out"))["customer_id"])
    assert frame.filter(pl.col("held_out") & ~pl.col("listed")).height > 0
    assert held_ids.isdisjoint(train["customer_id"])
    # The same customer lands on the same side whatever else is in the frame.
    again = mark_held_out(
        frame.drop("held_out").filter(pl.col("as_of") == date(2025, 2, 28)), 0.25, 7
    )
    assert set(again.filter(pl.col("held_out"))["customer_id"]) == held_ids


@pytest.fixture
def hillstrom_sample(tmp_path, shared_data):
    """6,000 rows of the real Hillstrom test, all three arms (the men's arm is left out)."""
    frame = pl.read_csv(shared_data / "hillstrom.csv", infer_schema=False)
    path = tmp_path / "hillstrom_sample.csv"
    frame.sample(6000, seed=1).write_csv(path)
    return path


def _cli(home, *args):
    from typer.testing import CliRunner

    import pipelines.cli as cli

    return CliRunner().invoke(cli.app, ["--home", str(home), "snapshot", *args])


ARMS = ["--treatment", "segment", "--treated", "Womens E-Mail", "--control", "No E-Mail"]


def test_snapshot_treatment_writes_metrics_and_charts(tmp_path, hillstrom_sample):
    out = tmp_path / "m.json"
    args = ["--data", str(hillstrom_sample), "--target", "visit", "--positive", "1", *ARMS]
    args += ["--drop", "conversion", "--drop", "spend", "--learner", "two_model", "--seeds", "2"]
    result = _cli(tmp_path / "h", *args, "--goal", "increase", "--metrics-out", str(out))
    assert result.exit_code == 0, result.output
    m = json.loads(out.read_text())
    for key in (
        "qini",
        "qini_sd",
        "uplift_at_30",
        "uplift_at_30_sd",
        "ate",
        "n_rows",
        "treated_share",
        "learner",
        "seeds",
        "random_qini",
        "random_uplift_at_30",
    ):
        assert key in m, key
    left = 6000 - m["n_rows"]
    assert 1500 < left < 2500  # about a third of the sample is the men's arm
    assert f"left out {left:,} row(s)" in result.output
    assert m["learner"] == "two_model" and m["seeds"] == [0, 1]
    assert 0.3 < m["treated_share"] < 0.7
    assert 0.0 < m["ate"] < 0.1  # the women's e-mail raised visits by about 4.5 points
    assert m["suspect_outcome_columns"] == []
    for chart in ("m_qini.html", "m_deciles.html"):
        assert (tmp_path / chart).stat().st_size > 1000
    assert ("includes 0" in m["verdict"]) is (not m["uplift_signal"])


def test_snapshot_treatment_says_so_when_there_is_no_signal(tmp_path, hillstrom_sample):
    # Treatment assigned by a coin after the fact: no customer responds to it.
    frame = pl.read_csv(hillstrom_sample, infer_schema=False)
    coin = np.random.default_rng(3).random(frame.height) < 0.5
    frame = frame.with_columns(pl.Series("arm", np.where(coin, "mail", "none")))
    path = tmp_path / "coin.csv"
    frame.write_csv(path)
    out = tmp_path / "coin.json"
    args = ["--data", str(path), "--target", "visit", "--positive", "1", "--treatment", "arm"]
    args += ["--treated", "mail", "--control", "none", "--drop", "segment", "--drop", "spend"]
    args += ["--drop", "conversion", "--learner", "solo", "--seeds", "3"]
    result = _cli(tmp_path / "h", *args, "--metrics-out", str(out))
    assert result.exit_code == 0, result.output
    m = json.loads(out.read_text())
    assert m["uplift_signal"] is False
    assert "no reliable uplift signal" in result.output
    assert "beats random" not in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--treatment", "arm", "--treated", "a", "--control", "b"], "treatment column 'arm'"),
        (["--treatment", "segment", "--treated", "Womens", "--control", "No E-Mail"], "no row has"),
        (["--treatment", "segment", "--treated", "Womens E-Mail"], "--control"),
    ],
)
def test_snapshot_treatment_refuses_bad_arms_in_one_line(
    tmp_path, hillstrom_sample, extra, message
):
    out = tmp_path / "m.json"
    args = ["--data", str(hillstrom_sample), "--target", "visit", "--positive", "1", *extra]
    result = _cli(tmp_path / "h", *args, "--metrics-out", str(out))
    # The entry point (pipelines.cli.run) prints a ChurnError as one line and exits non-zero.
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError)
    assert message in str(result.exception) and "\n" not in str(result.exception)
    assert not out.exists()


def test_outcome_columns_are_named(shared_data):
    """Hillstrom's conversion and spend are outcomes: every converter or spender visited."""
    from models.uplift_eval import outcome_like
    from pipelines.stages.snapshot import read_table
    from pipelines.stages.snapshot_uplift import campaign_table

    frame = read_table(shared_data / "hillstrom.csv")
    data, left = campaign_table(frame, "visit", "1", "segment", "Womens E-Mail", "No E-Mail")
    assert left == 21307  # the men's e-mail arm
    assert sorted(outcome_like(data.features, data.y)) == ["conversion", "spend"]
