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
    "landing/collections": "df3fb57de18f8843",
    "landing/contacts": "cd01d921cfcee979",
    "landing/customers": "a7c7d6cee32ae004",
    "landing/disconnects": "c8f3392a3e908ba7",
    "landing/events": "2566b58bef87728c",
    "landing/invoices": "b98648592656762a",
    "landing/payments": "cff9ab5b74220ca7",
    "landing/plans": "189863d396fed289",
    "landing/products": "15d5cd1ca6daa908",
    "landing/tickets": "93bcbae024166e58",
    "landing/topups": "df540c4a46488f99",
    "landing/usage_daily": "c65a393e5612feb4",
    "rng": "c2313c5bef28deee",
    "truth/customers.parquet": "e29e8ae4c15f6fc2",
    "truth/defects.parquet": "e6b4300dc382fe2f",
    "truth/monthly.parquet": "b23a2a5dbb48dc9d",
    "truth/responses.parquet": "ae359f796d9821bd",
    "truth/state/customers.parquet": "6b68d1f324f1f835",
    "truth/state/late/usage_daily_2025-04-25.parquet.parquet": "8efe0cbdd495cea3",
    "truth/state/late/usage_daily_2025-05-02.parquet.parquet": "09fe54823f8c2055",
    "truth/state/pending_payments.parquet": "95aa6e8bbabad1c8",
}


def test_small_world_equals_the_golden_digests(tmp_path: Path):
    assert world_digests(tmp_path / "w") == GOLDEN


if __name__ == "__main__":
    import pprint
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        pprint.pprint(world_digests(Path(tmp) / "w"), sort_dicts=True, width=100)
