"""One benchmark stage in its own process: prints a JSON line with seconds, rows and peak RSS."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")


def _settings(home: Path, customers: int, months: int, trials: int):
    from pipelines.config import load_settings

    return load_settings(
        home=home,
        environ={},
        overrides={
            "simulator": {"customers": customers, "months": months},
            # six months of history: a 30-day horizon leaves matured labels to train on
            "models": {"trials": trials, "horizon_days": 30},
        },
    )


def _count(settings, sql: str) -> int:
    from pipelines.workdir import Workdir, connect

    con = connect(Workdir.from_settings(settings), read_only=True)
    try:
        return int(con.execute(sql).fetchone()[0])
    finally:
        con.close()


def run(stage: str, home: Path, customers: int, months: int, trials: int) -> dict:
    settings = _settings(home, customers, months, trials)
    started = time.perf_counter()
    rows: float = 0
    extra: dict = {}
    if stage == "simulate":
        from simulator import simulate

        summary = simulate(settings.simulator, home, seed=settings.seed)
        rows = sum(getattr(summary, "rows", {}).values()) if hasattr(summary, "rows") else 0
    elif stage == "ingest":
        from pipelines.ingest import ingest_landing

        ingest_landing(settings)
        rows = _count(settings, "SELECT count(*) FROM raw.usage_daily")
    elif stage == "features":
        from pipelines.feature_store import build_snapshots
        from pipelines.flows import default_as_of

        as_of = default_as_of(settings)
        t0 = time.perf_counter()
        build_snapshots(settings, as_of, history=1)
        extra["one_snapshot_seconds"] = round(time.perf_counter() - t0, 2)
        build_snapshots(settings, as_of, history=4)
        rows = _count(settings, "SELECT count(*) FROM feat.customer_snapshot")
    elif stage == "train":
        from pipelines.flows import default_as_of
        from pipelines.training import promote, train_model

        as_of = default_as_of(settings)
        for model in ("churn", "credit"):
            train_model(settings, model, trials=trials, as_of=as_of)
            promote(settings, model)
        rows = _count(settings, "SELECT count(*) FROM feat.customer_snapshot")
    elif stage == "score":
        from pipelines.flows import default_as_of
        from pipelines.scoring import score_customers

        score_customers(settings, default_as_of(settings))
        rows = _count(settings, "SELECT count(*) FROM scores.customer_scores")
    elif stage == "target":
        from pipelines.flows import default_as_of
        from pipelines.targeting import build_retention_list

        report = build_retention_list(settings, default_as_of(settings))
        rows = _count(settings, "SELECT count(*) FROM scores.customer_scores")
        extra["list_rows"] = getattr(report, "rows", None)
    else:
        raise SystemExit(f"unknown stage {stage}")
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "rows": rows, "peak_rss_mb": peak, **extra}


if __name__ == "__main__":
    stage, home, customers, months, trials = sys.argv[1:6]
    result = run(stage, Path(home), int(customers), int(months), int(trials))
    print(json.dumps(result, default=str))
