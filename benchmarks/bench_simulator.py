"""Simulator benchmark: customers × months → rows, seconds and peak memory, in a child process."""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

from benchmarks.progress import steps

RESULTS = Path(__file__).resolve().parent / "results"

CHILD = """
import json, resource, sys, time
from pathlib import Path
from configs.schema import SimulatorConfig
from simulator import simulate
t = time.perf_counter()
s = simulate(SimulatorConfig(customers=int(sys.argv[2]), months=int(sys.argv[3])), Path(sys.argv[1]), seed=1)
print(json.dumps({"seconds": time.perf_counter() - t, "rows": s.rows, "files": s.files_written,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "churn": s.churn_rate}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000])
    parser.add_argument("--months", type=int, default=12)
    args = parser.parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "started": datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "runs": [],
    }
    for n in steps(args.customers, "simulating", lambda n: f"{n:,} customers"):
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, tmp, str(n), str(args.months)],
                capture_output=True,
                text=True,
            )
            if proc.returncode:
                print(proc.stderr[-2000:])
                return 1
            r = json.loads(proc.stdout.strip().splitlines()[-1])
        r.update(customers=n, months=args.months, total_rows=sum(r["rows"].values()))
        out["runs"].append(r)
        print(
            f"{n:,} customers × {args.months} months: {r['total_rows']:,} rows "
            f"({r['rows'].get('usage_daily', 0):,} usage) in {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB"
        )
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"simulator_{stamp}.json").write_text(json.dumps(out, indent=2))
    lines = [
        "| customers | months | rows | usage rows | seconds | peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in out["runs"]:
        lines.append(
            f"| {r['customers']:,} | {r['months']} | {r['total_rows']:,} | {r['rows'].get('usage_daily', 0):,} | "
            f"{r['seconds']:.1f} | {r['peak_rss_mb']:.0f} |"
        )
    (RESULTS / f"simulator_{stamp}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
