"""Retention benchmark: profit of random, top-risk, policy, policy + uplift and oracle targeting.

One simulated operator runs two monthly campaigns (the policy without history, played forward with
their control groups), waits for their outcomes, trains the uplift model, then every strategy
chooses from the same eligible customers under the same budget and channel capacities at the final
month. Each choice is valued with the simulator's hidden truth: expected customers saved (the true
churn reduction of that offer for that customer) × customer value − contact cost − offer cost at
the true acceptance rate. Expectations, not one random draw, so the ranking is not luck.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl

RESULTS = Path(__file__).resolve().parent / "results"
STRATEGIES = (
    ("a", "random"),
    ("b", "top risk"),
    ("c", "policy, no history"),
    ("c2", "policy + campaign realisation per offer"),
    ("d", "policy + uplift"),
    ("e", "oracle (true response types)"),
)


def month_end(d: date) -> date:
    from simulator.population import month_end as end

    return end(d)


def run_campaign_history(settings, say, control_share: float) -> date:
    """Simulate, then two policy campaigns played forward; returns the final as-of date."""
    from pipelines.evaluation import evaluate_list
    from pipelines.feature_store import build_snapshots
    from pipelines.ingest import ingest_landing
    from pipelines.scoring import score_customers
    from pipelines.targeting import build_retention_list, treatments_for
    from pipelines.training import promote, train_model
    from simulator import advance, simulate

    home = settings.home
    sim = settings.simulator
    say(f"simulating {sim.customers:,} customers over {sim.months} months")
    simulate(sim, home, seed=settings.seed)
    ingest_landing(settings)
    as_of = latest_month_end(settings)
    build_snapshots(settings, as_of, history=settings.orchestration.history_months)
    for model in ("churn", "credit"):
        train_model(settings, model, trials=1, as_of=as_of)
        promote(settings, model)
    lists = []
    # Learning campaigns: a larger randomised control group than routine lists carry.
    learning = settings.model_copy(
        update={"retention": settings.retention.model_copy(update={"control_share": control_share})}
    )
    for k in range(2):
        score_customers(settings, as_of)
        r = build_retention_list(learning, as_of)
        lists.append(r.list_id)
        say(f"campaign {k + 1} at {as_of}: {r.treated} treated + {r.control} control")
        advance(home, months=1, treatments=treatments_for(learning, r.list_id))
        ingest_landing(settings)
        as_of = latest_month_end(settings)
        build_snapshots(settings, as_of, history=1)
    # Let both campaigns' outcomes mature past the uplift horizon.
    for _ in range(2):
        advance(home, months=1)
        ingest_landing(settings)
        as_of = latest_month_end(settings)
    build_snapshots(settings, as_of, history=settings.orchestration.history_months)
    for list_id in lists:
        evaluate_list(settings, list_id)
    return as_of


def latest_month_end(settings) -> date:
    """The last complete month in the loaded usage (the simulator writes whole months)."""
    from pipelines.feature_store import data_end
    from pipelines.workdir import Workdir, connect

    con = connect(Workdir.from_settings(settings), read_only=True)
    try:
        end = data_end(con)
    finally:
        con.close()
    if end is None or end != month_end(end):
        raise RuntimeError(f"usage data end {end} is not a month end")
    return end


def candidates_at(settings, as_of: date) -> pl.DataFrame:
    from pipelines.targeting import load_candidates
    from pipelines.workdir import Workdir, connect

    con = connect(Workdir.from_settings(settings), read_only=True)
    try:
        return load_candidates(con, as_of)
    finally:
        con.close()


def value_choice(chosen: pl.DataFrame, truth: pl.DataFrame) -> dict[str, float]:
    """Expected saves and profit of a set of (customer, offer, channel) contacts under the truth."""
    from simulator.world import ACCEPT

    t = chosen.join(truth, on=["customer_id", "offer"], how="left")
    accept = t["response_type"].replace_strict(ACCEPT, default=0.2, return_dtype=pl.Float64)
    saves = t["uplift"].fill_null(0.0)
    cost = t["contact_cost"] + accept * t["offer_cost"]
    value = saves * t["value"]
    return {
        "contacted": chosen.height,
        "expected_saves": round(float(saves.sum()), 2),
        "cost": round(float(cost.sum()), 2),
        "profit": round(float((value - cost).sum()), 2),
    }


def strategies(settings, as_of: date, cands: pl.DataFrame, truth: pl.DataFrame, seed: int):
    """The five strategies' contact sets, all through the same eligibility, budget and capacity."""
    from pipelines.uplift import with_uplift
    from retention.policy import decide

    cfg = settings.retention.model_copy(update={"control_share": 0.0})
    budget = cfg.budget
    offers = [o.name for o in cfg.offers]
    out: dict[str, pl.DataFrame] = {}
    # (c) the policy on risk × acceptance; its unconstrained choices feed (a) and (b).
    out["c"] = decide(cands, cfg, as_of, "c", seed, budget).retention_list
    unconstrained = decide(
        cands, cfg.model_copy(update={"min_expected_value": -1e9}), as_of, "all", seed, 1e12
    ).retention_list
    rng = np.random.default_rng(seed)
    for key, order in (
        ("a", unconstrained.with_columns(pl.Series("_o", rng.random(unconstrained.height)))),
        ("b", unconstrained.with_columns((-pl.col("churn_probability")).alias("_o"))),
    ):
        ranked = order.sort("_o").with_columns(
            (pl.col("contact_cost") + pl.col("accept_probability") * pl.col("offer_cost"))
            .cum_sum()
            .alias("_spent")
        )
        out[key] = ranked.filter(pl.col("_spent") <= budget).drop("_o", "_spent")
    from pipelines.targeting import offer_realisation
    from pipelines.workdir import Workdir, connect

    con = connect(Workdir.from_settings(settings), read_only=True)
    try:
        realised = offer_realisation(con, settings, as_of)
    finally:
        con.close()
    print(f"campaign realisation per offer: {realised}")
    out["c2"] = decide(cands, cfg, as_of, "c2", seed, budget, realised).retention_list
    # The latest uplift model, champion or not: the table shows what ranking by it is worth.
    with_est, version = with_uplift(settings, cands, as_of, alias="challenger")
    if version is None:
        raise RuntimeError("no uplift model: the campaign history was too thin")
    out["d"] = decide(with_est, cfg, as_of, "d", seed, budget).retention_list
    oracle = truth.pivot(on="offer", index="customer_id", values="uplift")
    oracle = oracle.rename({o: f"uplift_{o}" for o in offers if o in oracle.columns})
    out["e"] = decide(
        cands.join(oracle, on="customer_id", how="left"), cfg, as_of, "e", seed, budget
    ).retention_list
    return out, version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--budget", type=float, default=None, help="default: config budget")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--history-control-share",
        type=float,
        default=0.5,
        help="control share of the two learning campaigns (routine lists use the config's)",
    )
    args = parser.parse_args(argv)
    from pipelines.config import load_settings
    from pipelines.uplift import train_uplift
    from simulator import true_uplift

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {
            "seed": args.seed,
            "simulator": {"customers": args.customers, "months": args.months},
        }
        if args.budget is not None:
            overrides["retention"] = {"budget": args.budget}
        settings = load_settings(home=Path(tmp) / "home", environ={}, overrides=overrides)
        as_of = run_campaign_history(settings, print, args.history_control_share)
        up = train_uplift(settings, as_of)
        print(f"uplift: {up.explanation} (rows {up.rows})")
        from pipelines.scoring import score_customers

        score_customers(settings, as_of)
        cands = candidates_at(settings, as_of)
        truth = true_uplift(settings.home, as_of, horizon_days=100)
        chosen, version = strategies(settings, as_of, cands, truth, args.seed)
        rows = []
        for key, name in STRATEGIES:
            rows.append({"strategy": f"({key}) {name}", **value_choice(chosen[key], truth)})
    oracle_profit = rows[-1]["profit"]
    for r in rows:
        r["share_of_oracle"] = round(r["profit"] / oracle_profit, 3) if oracle_profit else None
    result = {
        "started": datetime.now().isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "customers": args.customers,
        "as_of": str(as_of),
        "budget": settings.retention.budget,
        "history_control_share": args.history_control_share,
        "uplift": {
            "version": version,
            "qini": up.qini,
            "qini_rank_by_risk": up.qini_by_risk,
            "rows": up.rows,
        },
        "strategies": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    lines = [
        f"Retention benchmark: {args.customers:,} customers, as-of {as_of}, budget "
        f"{settings.retention.budget:,.0f}; uplift Qini {up.qini if up.qini is None else round(up.qini, 3)} "
        f"(risk ranking {up.qini_by_risk if up.qini_by_risk is None else round(up.qini_by_risk, 3)})",
        "",
        "| strategy | contacted | expected saves | cost | profit | share of oracle |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['strategy']} | {r['contacted']:,} | {r['expected_saves']:.1f} | "
            f"{r['cost']:,.0f} | {r['profit']:,.0f} | {r['share_of_oracle']:.0%} |"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"retention_{stamp}.json").write_text(json.dumps(result, indent=2, default=str))
    (RESULTS / f"retention_{stamp}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
