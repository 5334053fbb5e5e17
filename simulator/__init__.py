"""The synthetic operator: a generative model of customers and their behaviour, written as landing files."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from configs.schema import SimulatorConfig
from simulator.landing import LandingWriter, conform, write_month
from simulator.population import plans_frame
from simulator.world import EFFECT, SimulationSummary, World

log = logging.getLogger(__name__)

__all__ = ["SimulationSummary", "advance", "simulate", "true_uplift"]


def _run(
    world: World,
    out: Path,
    months: int,
    defect_rate: float,
    file_format: str,
    treatments: pl.DataFrame | None = None,
    progress: Callable[[str], None] | None = None,
) -> SimulationSummary:
    writer = LandingWriter(
        out, file_format, defect_rate, np.random.default_rng(world.rng.integers(2**63))
    )
    if not (out / "landing" / "plans").exists():
        writer.write("plans", "", plans_frame())
        # static table: plans/plans.<ext>
        static = writer.path("plans", "")
        static.rename(static.with_name(f"plans.{file_format}"))
    writer.deliver_late_files()
    first = world.next_month
    summary = SimulationSummary(customers=0, months=months, first_date=first, last_date=first)
    contacts = None
    if treatments is not None and treatments.height:
        contacts = world.apply_treatments(treatments, world.next_month)
    arrears = []
    for i in range(months):
        tables = world.step(contacts if i == 0 else None)
        write_month(writer, tables)
        stats = tables.stats
        summary.churn_rate[stats["month"]] = round(stats["churn_rate"], 4)
        arrears.append(stats["serious_arrears"])
        if progress:
            progress(
                f"simulated {stats['month']}: {stats['active']:,} active, churn {stats['churn_rate']:.2%}"
            )
    summary.last_date = world.next_month
    summary.customers = world.state.height
    summary.rows = dict(writer.rows)
    summary.files_written = writer.files
    summary.serious_arrears_rate = float(np.mean(arrears)) if arrears else 0.0
    writer.flush_defect_log()
    world.save(out)
    return summary


def simulate(
    cfg: SimulatorConfig,
    out: Path,
    *,
    seed: int,
    months: int | None = None,
    defect_rate: float | None = None,
    file_format: str | None = None,
    fresh: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SimulationSummary:
    """Create a new world and simulate `months` months into out/landing and out/truth.

    Refuses to overwrite an existing world unless fresh=True, which removes its landing and
    truth folders first (never anything else in `out`).
    """
    out = Path(out)
    state = World.state_dir(out)
    if state.exists():
        if not fresh:
            raise ValueError(
                f"{out} already holds a simulated world: continue it with advance "
                "(`churn simulate --advance K`) or start over with fresh=True (`--fresh`)"
            )
        for sub in ("landing", "truth"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    cfg = cfg.model_copy(
        update={
            "months": months or cfg.months,
            "defect_rate": cfg.defect_rate if defect_rate is None else defect_rate,
            "file_format": file_format or cfg.file_format,
        }
    )
    world = World.create(cfg, seed)
    return _run(world, out, cfg.months, cfg.defect_rate, cfg.file_format, progress=progress)


def advance(
    out: Path,
    *,
    months: int = 1,
    treatments: pl.DataFrame | None = None,
    progress: Callable[[str], None] | None = None,
) -> SimulationSummary:
    """Continue a saved world by `months`; treatments (a published list) act on the first month."""
    world = World.load(Path(out))
    if treatments is not None:
        required = {"customer_id", "offer", "channel", "contact_date", "control_flag", "list_id"}
        missing = required - set(treatments.columns)
        if missing:
            raise ValueError(f"treatments lack columns: {sorted(missing)}")
    return _run(
        world,
        Path(out),
        months,
        world.cfg.defect_rate,
        world.cfg.file_format,
        treatments=treatments,
        progress=progress,
    )


def true_uplift(out: Path, as_of: date, horizon_days: int = 100) -> pl.DataFrame:
    """The oracle: churn probability over the horizon with and without each offer, per customer.

    Uses the world's current hazards (the state after the last simulated month, which should be
    the month ending at `as_of`) and each customer's hidden response type.
    """
    world = World.load(Path(out))
    if world.next_month <= as_of:
        raise ValueError(f"the world has not been simulated up to {as_of}")
    s = world.state.filter(pl.col("active")).select("customer_id", "hazard")
    months = horizon_days / 30.4
    frames = []
    responses = world.responses
    for col in [c for c in responses.columns if c.startswith("response_")]:
        offer = col.removeprefix("response_")
        r = s.join(responses.select("customer_id", pl.col(col).alias("kind")), on="customer_id")
        mult = r["kind"].replace_strict(EFFECT, default=1.0, return_dtype=pl.Float64)
        h = r["hazard"]
        p_c = 1 - (1 - h) ** months
        p_t = 1 - (1 - (h * mult).clip(0, 0.95)) ** months
        frames.append(
            pl.DataFrame(
                {
                    "customer_id": r["customer_id"],
                    "offer": offer,
                    "response_type": r["kind"],
                    "p_churn_control": p_c,
                    "p_churn_treated": p_t,
                }
            ).with_columns((pl.col("p_churn_control") - pl.col("p_churn_treated")).alias("uplift"))
        )
    return pl.concat(frames)


# re-exported for tests that validate written files
conform = conform
