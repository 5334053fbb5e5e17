"""Lists that survive a market shift (issue 17 item 4): after the simulator's competitor launch,
a pre-launch champion's list is held with a reason, or recalibrated near the true churn."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.store.config import load_settings

pytestmark = pytest.mark.slow  # a 13-month world, two models, four lists: minutes on 2 cores

BEFORE, AFTER = date(2025, 12, 31), date(2026, 1, 31)  # the competitor launches in January
HORIZON = 90
OVERRIDES = {
    "simulator": {"customers": 1500, "months": 13, "drift_month": 13},
    "models": {"trials": 1, "num_boost_round": 120, "early_stopping_rounds": 15},
    "tracking": {"experiment": "market-shift"},
}


def true_expected_churners(home: Path, as_of: date, scored: pl.DataFrame) -> float:
    """The simulator's hazards for the month ending at as_of, over the horizon (its oracle's rule)."""
    truth = pl.read_parquet(home / "truth" / "monthly.parquet")
    h = truth.filter(pl.col("month") == as_of.replace(day=1)).join(scored, on="customer_id")
    return float((1 - (1 - h["churn_hazard"]) ** (HORIZON / 30.4)).sum())


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    from pipelines.stages.features import build_snapshots
    from pipelines.stages.ingest import ingest_landing
    from pipelines.stages.score import score_customers
    from pipelines.stages.train import promote, train_model
    from simulator import simulate

    home = tmp_path_factory.mktemp("shift") / "home"
    settings = load_settings(home=home, environ={}, overrides=OVERRIDES)
    simulate(settings.simulator, home, seed=settings.seed)
    ingest_landing(settings)
    build_snapshots(settings, AFTER, history=8)
    for model in ("churn", "credit"):
        trained = train_model(settings, model)
        assert trained.train_as_of[-1] < date(2025, 11, 1)  # pre-launch labels only
        assert promote(settings, model).promoted
    truth = {}
    for as_of in (BEFORE, AFTER):
        score_customers(settings, as_of)
        con = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
        scored = con.sql(
            "SELECT customer_id FROM scores.customer_scores WHERE as_of = $d", params={"d": as_of}
        ).pl()
        con.close()
        truth[as_of] = true_expected_churners(home, as_of, scored)
    return home, truth


def _list(home: Path, as_of: date, action: str):
    from pipelines.stages.target import build_retention_list

    over = {**OVERRIDES, "monitoring": {"calibration": {"action": action}}}
    report = build_retention_list(load_settings(home=home, environ={}, overrides=over), as_of)
    manifest = json.loads(Path(report.paths["manifest"]).read_text())
    return report, manifest


def test_a_pre_launch_champion_never_publishes_a_ballooned_list(shifted):
    home, truth = shifted
    before, _ = _list(home, BEFORE, "hold")
    assert before.held is None and "csv" in before.paths  # calm month: published as usual

    held, manifest = _list(home, AFTER, "hold")
    # The shift moves every score: far more expected churners than the simulator's truth ...
    assert manifest["expected_churners"] > 2 * truth[AFTER]
    # ... so the default holds the list, says why in one line, and exports nothing to marketing.
    assert held.held and held.held.startswith("list held for review: mean churn score")
    assert "\n" not in held.held and manifest["held"] == held.held
    assert set(held.paths) == {"manifest"}
    assert not list((Path(held.paths["manifest"]).parent).glob("retention_list.*"))

    fixed, manifest = _list(home, AFTER, "recalibrate")
    assert fixed.held is None and manifest["calibration"]["logit_shift"] < 0
    ratio = manifest["expected_churners"] / truth[AFTER]
    assert 1 / 1.5 <= ratio <= 1.5, (manifest["expected_churners"], truth[AFTER])
    assert fixed.treated <= 1.5 * before.treated  # the list does not balloon
