"""One snapshot build, one scoring run and one list on an existing (e.g. 1M) work directory.

`make bench-1m` times every stage, training included, for about an hour; this re-times the three
stages with 1M targets on a work directory it left behind (`benchmarks.run --keep` or `--home`),
in one process each, with the champions already registered there (or copied from a smaller run:
same configuration, same feature columns).

    uv run python -m benchmarks.bench_scale --home DIR --as-of 2025-06-30
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

from benchmarks.run import RESULTS, machine_info


def stage(name: str, home: Path, as_of: date, customers: int, partition: int | None) -> dict:
    from benchmarks.stage import _settings

    settings = _settings(home, customers, 6, 3)
    if partition:
        warehouse = settings.warehouse.model_copy(update={"partition_customers": partition})
        settings = settings.model_copy(update={"warehouse": warehouse})
    started = time.perf_counter()
    out: dict = {}
    if name == "features":
        from pipelines.stages.features import build_snapshots

        out["rows"] = build_snapshots(settings, as_of, history=1).rows
    elif name == "score":
        import pipelines.stages.score as scoring
        import pipelines.store.registry  # noqa: F401 - MLflow and LightGBM, 3-4 s of imports

        # Imports are paid once per process (a cycle has paid them before it scores), not per
        # customer: timed apart. The snapshot was just built or timed: scoring must not rebuild
        # it on a config hash.
        scoring.needs_build = lambda *a, **k: False
        out["imports_seconds"] = round(time.perf_counter() - started, 2)
        out["rows"] = scoring.score_customers(settings, as_of).rows
        out["score_customers_seconds"] = round(
            time.perf_counter() - started - out["imports_seconds"], 2
        )
        seconds = time.perf_counter() - started
        out.update(score_parts(settings, as_of))
        out["ratio_to_bare_predict"] = round(
            out["score_customers_seconds"] / out["bare_predict_seconds"], 2
        )
        # The same work without reasons, at its floor: read, both models' bare predictions.
        floor = out["read_seconds"] + out["bare_predict_seconds"] + out["bare_credit_seconds"]
        out["ratio_to_floor_without_reasons"] = round(out["score_customers_seconds"] / floor, 2)
        started = time.perf_counter() - seconds  # the comparison is not the stage's time
    elif name == "target":
        from pipelines.stages.target import build_retention_list

        out["list_rows"] = getattr(build_retention_list(settings, as_of), "rows", None)
    out["seconds"] = round(time.perf_counter() - started, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def score_parts(settings, as_of: date) -> dict:
    """Scoring's parts timed alone: the snapshot read, each champion's bare `Booster.predict`
    over every customer, and the reasons for deciles ≥ `reason_code_min_decile`."""
    import numpy as np

    from configs.contracts import CHURN_MODEL, CREDIT_MODEL
    from models.scoring import explain_locally, risk_deciles
    from pipelines.stages.features import load_snapshots
    from pipelines.store.registry import load_bundle

    churn, _ = load_bundle(settings, CHURN_MODEL, "champion")
    credit, _ = load_bundle(settings, CREDIT_MODEL, "champion")
    t0 = time.perf_counter()
    snap = load_snapshots(settings, [as_of])
    out = {"read_seconds": round(time.perf_counter() - t0, 2)}
    matrix = churn.features.array(snap)
    credit_matrix = credit.features.array(snap)
    t0 = time.perf_counter()
    p = churn.booster.predict(matrix, num_iteration=churn.best_iteration)
    out["bare_predict_seconds"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    credit.booster.predict(credit_matrix, num_iteration=credit.best_iteration)
    out["bare_credit_seconds"] = round(time.perf_counter() - t0, 2)
    explain = np.flatnonzero(risk_deciles(p) >= settings.scoring.reason_code_min_decile)
    t0 = time.perf_counter()
    explain_locally(snap, churn, settings, explain, matrix)
    out["reasons_seconds"] = round(time.perf_counter() - t0, 2)
    out.update(trees=churn.best_iteration, explained=int(explain.size))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--as-of", type=date.fromisoformat, required=True)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--partition-customers", type=int)
    parser.add_argument("--stages", nargs="+", default=["features", "score", "target"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # one stage in its own process, so that its peak RSS is its own
        result = stage(args.child, args.home, args.as_of, args.customers, args.partition_customers)
        print(json.dumps(result))
        return 0
    result = {"started": datetime.now().isoformat(timespec="seconds"), "machine": machine_info()}
    result.update(home=str(args.home), as_of=str(args.as_of), stages={})
    for name in args.stages:
        cmd = [sys.executable, "-m", "benchmarks.bench_scale", "--child", name]
        cmd += ["--home", str(args.home), "--as-of", str(args.as_of)]
        cmd += ["--customers", str(args.customers)]
        if args.partition_customers:
            cmd += ["--partition-customers", str(args.partition_customers)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode:
            raise SystemExit(f"stage {name} failed:\n{done.stderr[-3000:]}")
        result["stages"][name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(name, result["stages"][name], flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"scale_{stamp}.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
