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
    "landing/collections": "198213b53e543902",
    "landing/contacts": "bdd4faa2c17491bb",
    "landing/customers": "bca3e93f1fe74b3f",
    "landing/disconnects": "25a48f5c93e5b787",
    "landing/events": "1a8048c95130f0be",
    "landing/invoices": "a3f1e3280514d760",
    "landing/payments": "cbb39b60136c834f",
    "landing/plans": "189863d396fed289",
    "landing/products": "510f10ca74a27b50",
    "landing/tickets": "19d862a7530f43cb",
    "landing/topups": "45a9017295aa9f33",
    "landing/usage_daily": "e3e7f2b0f3f3218c",
    "rng": "3801e5c548b9a7d6",
    "truth/customers.parquet": "ebe5adfce6c26b54",
    "truth/defects.parquet": "26f0406cdbd29ce4",
    "truth/monthly.parquet": "faa23a9b46db6c41",
    "truth/responses.parquet": "bf7a13f6a35c9eb5",
    "truth/state/customers.parquet": "14e00ccaafd9194d",
    "truth/state/late/usage_daily_2025-04-22.parquet.parquet": "19e2cda7694a5c5c",
    "truth/state/pending_payments.parquet": "7813077fc0b9e2e7",
}


def test_small_world_equals_the_golden_digests(tmp_path: Path):
    assert world_digests(tmp_path / "w") == GOLDEN


if __name__ == "__main__":
    import pprint
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        pprint.pprint(world_digests(Path(tmp) / "w"), sort_dicts=True, width=100)
