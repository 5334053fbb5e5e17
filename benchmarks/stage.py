"""One benchmark stage in its own process: prints a JSON line with seconds, rows and peak RSS."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")


def overrides(customers: int, months: int, trials: int) -> dict:
    """The benchmark's configuration on top of the defaults (the cycle writes it to YAML)."""
    return {
        "simulator": {"customers": customers, "months": months},
        # a 30-day horizon: eight months leave complete, matured snapshots to train and validate
        "models": {"trials": trials, "horizon_days": 30},
    }


def settings_for(home: Path, customers: int, months: int, trials: int):
    from pipelines.store.config import load_settings

    return load_settings(home=home, environ={}, overrides=overrides(customers, months, trials))


_settings = settings_for


def _count(settings, sql: str) -> int:
    from pipelines.store.warehouse import connect
    from pipelines.store.workdir import Workdir

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
    excluded = 0.0  # comparison runs inside a stage are not the stage's own time
    if stage == "simulate":
        from simulator import simulate

        summary = simulate(settings.simulator, home, seed=settings.seed)
        rows = sum(getattr(summary, "rows", {}).values()) if hasattr(summary, "rows") else 0
    elif stage == "ingest":
        from pipelines.stages.ingest import ingest_landing

        ingest_landing(settings)
        rows = _count(settings, "SELECT count(*) FROM raw.usage_daily")
    elif stage == "features":
        from pipelines.stages.features import build_snapshots
        from pipelines.store.warehouse import default_as_of

        as_of = default_as_of(settings)
        t0 = time.perf_counter()
        build_snapshots(settings, as_of, history=1)
        extra["one_snapshot_seconds"] = round(time.perf_counter() - t0, 2)
        # The floor: one plain GROUP BY pass over the same usage rows, same engine.
        from benchmarks.bench_features import part_floor

        floor = part_floor(settings, as_of)
        excluded += floor["seconds"]
        extra["floor_seconds"] = round(floor["seconds"], 2)
        extra["snapshot_vs_floor"] = round(extra["one_snapshot_seconds"] / floor["seconds"], 2)
        build_snapshots(settings, as_of, history=4)
        rows = _count(settings, "SELECT count(*) FROM feat.customer_snapshot")
    elif stage == "train":
        from pipelines.stages.train import promote, train_model
        from pipelines.store.warehouse import default_as_of

        as_of = default_as_of(settings)
        for model in ("churn", "credit"):
            train_model(settings, model, trials=trials, as_of=as_of)
            promote(settings, model)
        rows = _count(settings, "SELECT count(*) FROM feat.customer_snapshot")
    elif stage == "score":
        from pipelines.stages.score import score_customers
        from pipelines.store.warehouse import default_as_of

        as_of = default_as_of(settings)
        # Python start-up cost is fixed, not per customer: a flow's task pays it once per
        # process. Reported apart so the scaling cost is visible. (LightGBM and MLflow are
        # imported inside score_customers, alongside the snapshot read, so they count there.)
        extra["imports_seconds"] = round(time.perf_counter() - started, 2)
        score_customers(settings, as_of)
        scored = time.perf_counter()
        extra["score_customers_seconds"] = round(scored - started - extra["imports_seconds"], 2)
        scoring_seconds = scored - started
        rows = _count(settings, "SELECT count(*) FROM scores.customer_scores")
        # Against bare Booster.predict on the same rows (no calibration, credit model, reasons).
        from pipelines.stages.features import load_snapshots
        from pipelines.store.registry import load_bundle

        snap = load_snapshots(settings, [as_of])
        model, _ = load_bundle(settings, "churn", "champion")
        matrix = model.features.array(snap)  # what scoring feeds the booster
        t0 = time.perf_counter()
        model.booster.predict(matrix, num_iteration=model.best_iteration)
        extra["bare_predict_seconds"] = round(time.perf_counter() - t0, 3)
        extra["score_vs_bare_predict"] = round(scoring_seconds / extra["bare_predict_seconds"], 1)
        # Counting rows and re-loading for the comparison are not scoring's time either.
        excluded += time.perf_counter() - scored
    elif stage == "cycle":
        from benchmarks.cycle import markdown, run_cycle

        cycle = run_cycle(home, customers, months, trials)
        print(markdown(cycle), file=sys.stderr)
        # Preparing last month's state and simulating the new month are not the cycle's time.
        excluded += time.perf_counter() - started - cycle["cycle_seconds"]
        rows = customers
        extra.update({k: v for k, v in cycle.items() if k not in ("customers", "peak_rss_mb")})
        extra["cycle_peak_rss_mb"] = cycle["peak_rss_mb"]
    elif stage == "target":
        from pipelines.stages.target import build_retention_list
        from pipelines.store.warehouse import default_as_of

        report = build_retention_list(settings, default_as_of(settings))
        rows = _count(settings, "SELECT count(*) FROM scores.customer_scores")
        extra["list_rows"] = getattr(report, "rows", None)
    else:
        raise SystemExit(f"unknown stage {stage}")
    seconds = time.perf_counter() - started - excluded
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "rows": rows, "peak_rss_mb": peak, **extra}


if __name__ == "__main__":
    stage, home, customers, months, trials = sys.argv[1:6]
    result = run(stage, Path(home), int(customers), int(months), int(trials))
    print(json.dumps(result, default=str))
