"""Golden test: a small world's landing files and truth, hashed, equal the recorded digests.

It guards refactors of `simulator.world` (the month split into per-table steps): every random
draw must stay where it was. When the simulator's behaviour changes on purpose, regenerate the
digests with `python -m tests.test_simulator_golden` and say why in the commit.
"""

from __future__ import annotations

import hashlib
import io
import json
from datetime import date
from pathlib import Path

import polars as pl

from configs.schema import SimulatorConfig
from simulator import advance, simulate

# Drift, defects and a campaign, so every branch of the month draws from the generator.
CFG = SimulatorConfig(customers=400, months=3, defect_rate=0.05, drift_month=3)
SEED = 13


def _digest(frame: pl.DataFrame) -> str:
    buf = io.BytesIO()
    frame.write_csv(buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()[:16]


def world_digests(out: Path) -> dict[str, str]:
    """One digest per landing table and per truth file (contents, not file bytes)."""
    simulate(CFG, out, seed=SEED)
    cust = pl.read_parquet(sorted((out / "landing" / "customers").glob("*.parquet")))
    treat = (
        cust.head(120)
        .select("customer_id")
        .with_columns(
            pl.lit("discount").alias("offer"),
            pl.lit("sms").alias("channel"),
            pl.lit(date(2025, 4, 1)).alias("contact_date"),
            (pl.int_range(pl.len()) % 3 == 0).alias("control_flag"),
            pl.lit("L1").alias("list_id"),
        )
    )
    advance(out, months=2, treatments=treat)
    digests = {}
    for folder in sorted(p for p in (out / "landing").iterdir() if p.is_dir()):
        h = hashlib.sha256()
        for f in sorted(folder.iterdir()):
            h.update(f.name.encode())
            h.update(_digest(pl.read_parquet(f)).encode())
        digests[f"landing/{folder.name}"] = h.hexdigest()[:16]
    for f in sorted((out / "truth").rglob("*.parquet")):
        digests[str(f.relative_to(out))] = _digest(pl.read_parquet(f))
    meta = json.loads((out / "truth" / "state" / "meta.json").read_text())
    # The generator's final state: a draw added or dropped anywhere shows here.
    digests["rng"] = hashlib.sha256(json.dumps(meta["rng"]).encode()).hexdigest()[:16]
    return digests


GOLDEN = {
    "landing/collections": "1f60b5de1bb7176e",
    "landing/contacts": "5f74e11954aa9056",
    "landing/customers": "a06c54963e23b7f7",
    "landing/disconnects": "988c652166f61b71",
    "landing/events": "f4f4d3f61a18ba27",
    "landing/invoices": "63c7dd61d5932d37",
    "landing/payments": "30f1cb2630c666eb",
    "landing/plans": "189863d396fed289",
    "landing/products": "b93943c8edeb72bf",
    "landing/tickets": "29fa67331fa0a7d8",
    "landing/topups": "d3205f8d71123327",
    "landing/usage_daily": "c9aaee53bdaa29ee",
    "rng": "da6543fff8bd7447",
    "truth/customers.parquet": "ef3c07e85f133825",
    "truth/defects.parquet": "89209ecfe59a566d",
    "truth/monthly.parquet": "7b1f782d7e144c21",
    "truth/responses.parquet": "4a2bf24941c6b418",
    "truth/state/customers.parquet": "0d3123d3719de33f",
    "truth/state/late/usage_daily_2025-04-26.parquet.parquet": "c1efad5a88ae1f88",
    "truth/state/late/usage_daily_2025-05-05.parquet.parquet": "d7ced82e13c5411d",
    "truth/state/late/usage_daily_2025-05-19.parquet.parquet": "9f4f97f693dcb62f",
    "truth/state/pending_payments.parquet": "b463ad95ff6e7d53",
}


def test_small_world_equals_the_golden_digests(tmp_path: Path):
    assert world_digests(tmp_path / "w") == GOLDEN


if __name__ == "__main__":
    import pprint
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        pprint.pprint(world_digests(Path(tmp) / "w"), sort_dicts=True, width=100)
