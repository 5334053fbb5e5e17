"""Uplift benchmark: every learner on Hillstrom (Womens E-Mail vs No E-Mail, visit), against random.

    uv run --frozen python -m benchmarks.bench_uplift [--seeds 5] [--learners solo,auto]

Each learner is evaluated like `churn snapshot --treatment`: K stratified 70/30 splits, seeds
0..K−1, Qini (scikit-uplift's normalisation) and uplift@30 % on the test part. `auto` chooses
among all learners by inner CV on each training part and scores with its inner fold models.
Results go to benchmarks/results/uplift.json and uplift.md (rewritten after each learner).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.progress import steps
from models.uplift import LEARNERS

RESULTS = Path(__file__).resolve().parent / "results"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hillstrom.csv"
AIM = {"qini": 0.075, "uplift_at_30": 0.080}


def hillstrom():
    from models.uplift_eval import Campaign
    from pipelines.stages.snapshot import read_table
    from pipelines.stages.snapshot_uplift import campaign_table

    frame = read_table(DATA)
    data, left_out = campaign_table(
        frame,
        target="visit",
        positive="1",
        treatment="segment",
        treated="Womens E-Mail",
        control="No E-Mail",
        drop=["conversion", "spend"],
        goal="increase",
    )
    assert isinstance(data, Campaign)
    return data, left_out


def table(rows: dict[str, dict]) -> str:
    lines = [
        "| learner | Qini | uplift@30 % | random Qini | random uplift@30 % | chosen | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in rows.items():
        chosen = ",".join(sorted(set(m["learner_by_seed"]))) if name == "auto" else ""
        lines.append(
            f"| {name} | {m['qini']:.4f} ± {m['qini_sd']:.4f} | "
            f"{m['uplift_at_30']:.4f} ± {m['uplift_at_30_sd']:.4f} | "
            f"{m['random_qini']:.4f} ± {m['random_qini_sd']:.4f} | "
            f"{m['random_uplift_at_30']:.4f} | {chosen} | {m['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    from models.uplift_eval import evaluate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--learners", default=",".join([*LEARNERS, "auto"]))
    ap.add_argument("--out", default="uplift")
    args = ap.parse_args()
    data, left_out = hillstrom()
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {}
    head = (
        f"Hillstrom, Womens E-Mail vs No E-Mail, target visit: {len(data.y):,} rows "
        f"({left_out:,} Mens E-Mail rows left out), treated share {data.treated.mean():.3f}, "
        f"average effect {data.y[data.treated == 1].mean() - data.y[data.treated == 0].mean():.4f}; "
        f"{args.seeds} stratified 70/30 splits (seeds 0..{args.seeds - 1}), mean ± sd."
    )
    for name in steps(args.learners.split(","), "uplift learners"):
        started = time.perf_counter()
        ev = evaluate(data, name, seeds=args.seeds, bag=name == "auto")
        m = ev.metrics()
        m["seconds"] = time.perf_counter() - started
        rows[name] = m
        print(
            f"{name}: Qini {m['qini']:.4f} ± {m['qini_sd']:.4f}, "
            f"uplift@30 {m['uplift_at_30']:.4f} ± {m['uplift_at_30_sd']:.4f} "
            f"({m['seconds']:.0f} s)",
            flush=True,
        )
        doc = {"data": head, "aim": AIM, "learners": rows}
        (RESULTS / f"{args.out}.json").write_text(json.dumps(doc, indent=2, default=float))
        (RESULTS / f"{args.out}.md").write_text(f"{head}\n\n{table(rows)}\n")
    print(table(rows))
    best = rows.get("auto")
    if best is not None:
        met = best["qini"] >= AIM["qini"] and best["uplift_at_30"] >= AIM["uplift_at_30"]
        print(
            f"aim (Qini ≥ {AIM['qini']}, uplift@30 ≥ {AIM['uplift_at_30']}): "
            f"{'met' if met else 'not met'} by auto"
        )


if __name__ == "__main__":
    main()
