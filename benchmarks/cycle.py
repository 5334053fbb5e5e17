"""The whole monthly cycle on an existing work directory: one new month arrives, `churn cycle` runs.

Prepared first (not timed as the cycle): the snapshots of `orchestration.history_months` and
champions, as last month's cycle would have left them. Then the world advances one month (the
operator's files land) and the cycle runs in this process with every stage timed and its peak
RSS sampled: ingest, features, train and promote, score, uplift, target, monitor, evaluate.

    python -m benchmarks.cycle --home DIR --customers N [--months M --trials T]

The work directory needs eight months or more before the new one: with 180-day feature windows
and the benchmark's 30-day horizon, fewer leave no complete, matured snapshot to train on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_CYCLE_SECONDS = 600.0
# What the flows call, one function per stage (pipelines.run.entry): each is timed.
STAGES = (
    "ingest",
    "features",
    "train",
    "promote",
    "score",
    "uplift",
    "target",
    "monitor",
    "evaluate",
)


class RssSampler:
    """Peak resident memory of this process, overall and per labelled stretch (sampled)."""

    def __init__(self, every: float = 0.2) -> None:
        import psutil

        self._proc = psutil.Process()
        self._every = every
        self._label: str | None = None
        self.peaks: dict[str, float] = {}
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._every)

    def sample(self) -> None:
        mb = self._proc.memory_info().rss / 2**20
        self.peak = max(self.peak, mb)
        if self._label:
            self.peaks[self._label] = max(self.peaks.get(self._label, 0.0), mb)

    @contextmanager
    def stretch(self, label: str):
        outer, self._label = self._label, label
        self.sample()
        try:
            yield
        finally:
            self.sample()
            self._label = outer

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def config_file(home: Path, customers: int, months: int, trials: int) -> Path:
    """The benchmark's settings as a YAML file, so `churn cycle` resolves the same config hash
    (and so reuses the snapshots built under it)."""
    import yaml

    from benchmarks.stage import overrides

    path = home / "bench_config.yaml"
    path.write_text(yaml.safe_dump(overrides(customers, months, trials)))
    return path


def prepare(settings) -> dict:
    """Snapshots and champions as the previous month's cycle leaves them (built only if missing)."""
    from pipelines.stages.features import build_snapshots
    from pipelines.stages.train import promote, train_model
    from pipelines.store.registry import has_champions
    from pipelines.store.warehouse import default_as_of

    out: dict = {}
    as_of = default_as_of(settings)
    t0 = time.perf_counter()
    report = build_snapshots(settings, as_of, history=settings.orchestration.history_months)
    out["features_seconds"] = round(time.perf_counter() - t0, 1)
    out["features_built"] = [str(d) for d in report.as_of_dates if d not in report.reused]
    if not has_champions(settings):
        t0 = time.perf_counter()
        for model in ("churn", "credit"):
            train_model(settings, model, as_of=as_of)
            promote(settings, model)
        out["train_seconds"] = round(time.perf_counter() - t0, 1)
    out["as_of"] = str(as_of)
    return out


def run_cycle(home: Path, customers: int, months: int, trials: int) -> dict:
    from benchmarks.stage import settings_for
    from pipelines.store.workdir import prepare_prefect_env

    settings = settings_for(home, customers, months, trials)
    config = config_file(home, customers, months, trials)
    prep = prepare(settings)

    from simulator import advance

    t0 = time.perf_counter()
    advance(home, months=1)
    advance_seconds = time.perf_counter() - t0

    prepare_prefect_env(settings)
    from pipelines.run import entry
    from pipelines.run.flows import retention_cycle

    stages: list[dict] = []
    with RssSampler() as rss:

        def timed(name, fn):
            def wrapper(*args, **kwargs):
                label = name + (f" {args[1]}" if name in ("train", "promote") else "")
                started = time.perf_counter()
                with rss.stretch(label):
                    result = fn(*args, **kwargs)
                rec = {"stage": label, "seconds": round(time.perf_counter() - started, 2)}
                if name == "features":
                    rec["built"] = [str(d) for d in result.as_of_dates if d not in result.reused]
                    rec["reused"] = [str(d) for d in result.reused]
                stages.append(rec)
                # As it happens, so a cycle stopped part-way still says where its time went.
                print(json.dumps(rec), file=sys.stderr, flush=True)
                return result

            return wrapper

        for name in STAGES:
            setattr(entry, name, timed(name, getattr(entry, name)))
        started = time.perf_counter()
        with rss.stretch("cycle"):
            summary = retention_cycle(home=str(home), config=[str(config)])
        total = time.perf_counter() - started
    for rec in stages:
        rec["peak_rss_mb"] = round(rss.peaks.get(rec["stage"], 0.0), 1)
    train = summary.get("train") or {}
    quality = {
        m: {k: (rec.get("train") or {}).get("metrics", {}).get(k) for k in ("roc_auc", "pr_auc")}
        for m, rec in train.items()
        if isinstance(rec, dict)
    }
    return {
        "customers": customers,
        "as_of": summary.get("as_of"),
        "prepared": prep,
        "advance_seconds": round(advance_seconds, 1),
        "cycle_seconds": round(total, 1),
        "stages_seconds": round(sum(r["seconds"] for r in stages), 1),
        "peak_rss_mb": round(rss.peak, 1),
        "stages": stages,
        "held": summary.get("held"),
        "list_rows": (summary.get("target") or {}).get("treated"),
        "validation": quality,
    }


def markdown(r: dict) -> str:
    lines = [
        f"# Monthly cycle at {r['customers']:,} customers, as-of {r['as_of']}",
        "",
        f"prepared (not the cycle): {r['prepared']}; the new month simulated in {r['advance_seconds']} s",
        "",
        "| stage | seconds | peak RSS MB | detail |",
        "|---|---:|---:|---|",
    ]
    for s in r["stages"]:
        detail = f"built {s['built']}, reused {len(s['reused'])}" if "built" in s else ""
        lines.append(f"| {s['stage']} | {s['seconds']:.1f} | {s['peak_rss_mb']:,.0f} | {detail} |")
    ok = r["cycle_seconds"] <= TARGET_CYCLE_SECONDS
    lines += [
        f"| **whole cycle** (Prefect included) | **{r['cycle_seconds']:.1f}** | "
        f"**{r['peak_rss_mb']:,.0f}** | target ≤ {TARGET_CYCLE_SECONDS:.0f} s: "
        f"{'PASS' if ok else 'FAIL'} |",
        "",
        f"held: {r['held']}; treated on the list: {r['list_rows']}; validation: {r['validation']}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--customers", type=int, required=True)
    parser.add_argument("--months", type=int, default=8)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args(argv)
    result = run_cycle(args.home, args.customers, args.months, args.trials)
    result["started"] = datetime.now().isoformat(timespec="seconds")
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"cycle_{stamp}.json").write_text(json.dumps(result, indent=2, default=str))
    (RESULTS / f"cycle_{stamp}.md").write_text(markdown(result))
    print(markdown(result))
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
