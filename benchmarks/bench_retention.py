"""Retention benchmark: profit of random, top-risk, policy, policy + uplift and oracle targeting.

One simulated operator runs learning campaigns (a random share of eligible customers, each with a
random allowed offer, half held out as control), waits until their outcomes have matured over the
offers' effect window, trains the uplift model, then every strategy ranks the same eligible
customers at the final month under the same channel capacities.

Fair budget: every strategy's ranked list is run down until the budget is spent, with cost
counted by one rule for all — contact cost + offer cost × the customer's true acceptance
probability (its hidden response type's rate) — the same rule the profit is valued with. (A
policy budgets on its own acceptance estimate; the money actually runs out on the true one.)
Valuation: expected customers saved (the true churn reduction over the effect window of that
offer for that customer) × customer value − that cost. Expectations, not one random draw.

Reference strategies read the simulator's truth: (e) the oracle knows each customer's hidden
response type per offer; (e2) knows the true hazard and each customer's persuasion probability per
offer (from the hidden traits) but not the realised type — the ceiling of any model that sees
only customer traits.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from datetime import date, datetime, timedelta
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
    ("e2", "best achievable from observables (true hazard × persuasion probability)"),
    ("e", "oracle (true response types)"),
)
UNLIMITED = 1e12


def month_end(d: date) -> date:
    from features.split import month_end as end

    return end(d)


def run_campaign_history(
    settings,
    say,
    control_share: float,
    learning_share: float,
    learning_budget: float,
    campaigns: int,
) -> date:
    """Simulate, run learning campaigns played forward, wait until they mature; final as-of."""
    from pipelines.stages.evaluate import evaluate_list
    from pipelines.stages.features import build_snapshots
    from pipelines.stages.ingest import ingest_landing
    from pipelines.stages.score import score_customers
    from pipelines.stages.target import build_retention_list, treatments_for
    from pipelines.stages.train import promote, train_model
    from simulator import advance, simulate

    home = settings.home
    sim = settings.simulator
    horizon = settings.retention.uplift.horizon_days
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
    last = as_of
    for k in range(campaigns):
        score_customers(settings, as_of)
        if learning_share > 0:
            r = build_retention_list(
                learning, as_of, learning_budget, learning_share=learning_share
            )
        else:
            r = build_retention_list(learning, as_of)
        lists.append(r.list_id)
        last = as_of
        say(f"campaign {k + 1} at {as_of}: {r.treated} treated + {r.control} control")
        advance(home, months=1, treatments=treatments_for(learning, r.list_id))
        ingest_landing(settings)
        as_of = latest_month_end(settings)
        build_snapshots(settings, as_of, history=1)
    # Let every campaign's outcome mature over the whole horizon.
    while as_of < last + timedelta(days=horizon):
        advance(home, months=1)
        ingest_landing(settings)
        as_of = latest_month_end(settings)
    build_snapshots(settings, as_of, history=settings.orchestration.history_months)
    for list_id in lists:
        evaluate_list(settings, list_id)
    return as_of


def latest_month_end(settings) -> date:
    """The last complete month in the loaded usage (the simulator writes whole months)."""
    from pipelines.stages.features import data_end
    from pipelines.store.warehouse import connect
    from pipelines.store.workdir import Workdir

    con = connect(Workdir.from_settings(settings), read_only=True)
    try:
        end = data_end(con)
    finally:
        con.close()
    if end is None or end != month_end(end):
        raise RuntimeError(f"usage data end {end} is not a month end")
    return end


def candidates_at(settings, as_of: date) -> pl.DataFrame:
    from pipelines.stages.target import load_candidates
    from pipelines.store.warehouse import connect
    from pipelines.store.workdir import Workdir

    con = connect(Workdir.from_settings(settings), read_only=True)
    try:
        return load_candidates(con, as_of)
    finally:
        con.close()


def true_costs(chosen: pl.DataFrame, truth: pl.DataFrame) -> pl.DataFrame:
    """Chosen contacts with their true expected cost and saves (the one rule for every strategy)."""
    from simulator.world import ACCEPT

    t = chosen.join(truth, on=["customer_id", "offer"], how="left")
    accept = t["response_type"].replace_strict(ACCEPT, default=0.2, return_dtype=pl.Float64)
    return t.with_columns(
        (pl.col("contact_cost") + accept * pl.col("offer_cost")).alias("true_cost"),
        pl.col("uplift").fill_null(0.0).alias("true_saves"),
    )


def within_budget(ranked: pl.DataFrame, truth: pl.DataFrame, budget: float) -> pl.DataFrame:
    """Run down a strategy's ranked contacts, skipping any the remaining budget cannot pay for.

    Cost is the true expected cost, so every strategy is held to the same budget on the same
    basis as its valuation. A subset of a capacity-feasible list stays capacity-feasible.
    """
    costed = true_costs(ranked, truth)
    keep, spent = [], 0.0
    for cost in costed["true_cost"]:
        ok = spent + cost <= budget
        spent += cost if ok else 0.0
        keep.append(ok)
    return costed.filter(pl.Series(keep, dtype=pl.Boolean))


def value_choice(chosen: pl.DataFrame) -> dict[str, float]:
    """Expected saves, cost and profit of contacts costed by `true_costs`."""
    saves, cost = chosen["true_saves"], chosen["true_cost"]
    return {
        "contacted": chosen.height,
        "expected_saves": round(float(saves.sum()), 2),
        "cost": round(float(cost.sum()), 2),
        "profit": round(float((saves * chosen["value"] - cost).sum()), 2),
    }


def observable_ceiling(home: Path, truth: pl.DataFrame, horizon_days: int) -> pl.DataFrame:
    """(e2)'s inputs: per customer and offer, the expected uplift and acceptance over the
    response-type lottery, from the true hazard and hidden traits but not the realised type.

    Response types were drawn from the traits at sign-up (`simulator.population.response_types`);
    satisfaction has drifted since and its sign-up value is not kept. So the probability of each
    type is the share of that type among *other* customers with the same traits today: cells of
    the persuasion drivers (price sensitivity, handset age, segment — unchanged since sign-up) and
    of today's satisfaction (twentieths). Leaving the customer out keeps their own type out.
    """
    from simulator.world import ACCEPT, EFFECT, World

    world = World.load(home)
    s = world.state.filter(pl.col("active"))
    sat = s["satisfaction"].to_numpy()
    price = s["price_sensitivity"].to_numpy()
    handset = s["handset_age_months"].to_numpy()
    business = s["segment"].is_in(["enterprise", "government"]).to_numpy()
    # The drivers each offer's persuasion probability depends on (besides satisfaction).
    drivers = {
        "service_recovery_call": np.zeros(s.height),
        "plan_rightsizing": np.round(price * 20),
        "handset_upgrade": (handset > 24) * ~business,
        "loyalty_bonus": np.zeros(s.height),
        "discount": np.round(price * 20),
        "account_manager_visit": business.astype(float),
    }
    sat_bin = np.minimum((pl.Series(sat).rank("ordinal").to_numpy() - 1) * 20 // s.height, 19)
    other_accept = np.where(
        s["latent_risk"].to_numpy() > 0.9, ACCEPT["lost_cause"], ACCEPT["sure_thing"]
    )
    h = s["hazard"].to_numpy()
    months = horizon_days / 30.4
    p_c = 1 - (1 - h) ** months

    def saved(kind: str) -> np.ndarray:
        return p_c - (1 - (1 - np.clip(h * EFFECT[kind], 0, 0.95)) ** months)

    def leave_one_out_share(hit: pl.Expr, cell: list[str], frame: pl.DataFrame) -> np.ndarray:
        f = frame.with_columns(hit.cast(pl.Float64).alias("_hit"))
        f = f.with_columns(
            pl.col("_hit").sum().over(cell).alias("_sum"), pl.len().over(cell).alias("_n")
        )
        return (
            f.select(
                pl.when(pl.col("_n") > 1)
                .then((pl.col("_sum") - pl.col("_hit")) / (pl.col("_n") - 1))
                .otherwise(pl.col("_hit").mean())
            )
            .to_series()
            .to_numpy()
        )

    base = pl.DataFrame({"customer_id": s["customer_id"], "_sat": sat_bin})
    frames = []
    for offer, driver in drivers.items():
        typed = base.with_columns(pl.Series("_driver", driver, dtype=pl.Float64)).join(
            truth.filter(pl.col("offer") == offer).select("customer_id", "response_type"),
            on="customer_id",
            how="left",
            maintain_order="left",
        )
        kind = pl.col("response_type")
        persuadable = leave_one_out_share(kind == "persuadable", ["_driver", "_sat"], typed)
        dnd = leave_one_out_share(kind == "do_not_disturb", ["_sat"], typed)
        other = np.clip(1 - persuadable - dnd, 0, 1)
        frames.append(
            pl.DataFrame(
                {
                    "customer_id": s["customer_id"],
                    "offer": offer,
                    "uplift": persuadable * saved("persuadable") + dnd * saved("do_not_disturb"),
                    "accept": persuadable * ACCEPT["persuadable"]
                    + dnd * ACCEPT["do_not_disturb"]
                    + other * other_accept,
                }
            )
        )
    return pl.concat(frames)


def strategies(
    settings, as_of: date, cands: pl.DataFrame, truth: pl.DataFrame, seed: int, horizon: int
):
    """Each strategy's ranked contacts, all through the same eligibility and channel capacities.

    Strategies rank with an unlimited budget; `within_budget` then applies the one budget.
    """
    from pipelines.stages.target import offer_realisation
    from pipelines.stages.uplift import with_uplift
    from pipelines.store.warehouse import connect
    from pipelines.store.workdir import Workdir
    from retention.policy import decide

    cfg = settings.retention.model_copy(update={"control_share": 0.0})
    offers = [o.name for o in cfg.offers]
    out: dict[str, pl.DataFrame] = {}

    def ranked(frame: pl.DataFrame, key: str, realised=None, **update) -> pl.DataFrame:
        c = cfg.model_copy(update=update) if update else cfg
        return decide(frame, c, as_of, key, seed, UNLIMITED, realised).retention_list

    # (c) the policy on risk × acceptance; its unconstrained choices feed (a) and (b).
    out["c"] = ranked(cands, "c")
    unconstrained = ranked(cands, "all", min_expected_value=-1e9)
    rng = np.random.default_rng(seed)
    out["a"] = unconstrained.with_columns(pl.Series("_o", rng.random(unconstrained.height)))
    out["a"] = out["a"].sort("_o").drop("_o")
    out["b"] = unconstrained.sort("churn_probability", descending=True, maintain_order=True)
    con = connect(Workdir.from_settings(settings), read_only=True)
    try:
        realised = offer_realisation(con, settings, as_of)
    finally:
        con.close()
    print(f"campaign realisation per offer: {realised}")
    out["c2"] = ranked(cands, "c2", realised)
    # The latest uplift model, champion or not: the table shows what ranking by it is worth.
    with_est, version = with_uplift(settings, cands, as_of, alias="challenger")
    if version is None:
        raise RuntimeError("no uplift model: the campaign history was too thin")
    out["d"] = ranked(with_est, "d")

    def wide(frame: pl.DataFrame, column: str, prefix: str) -> pl.DataFrame:
        w = frame.pivot(on="offer", index="customer_id", values=column)
        return w.rename({o: f"{prefix}_{o}" for o in offers if o in w.columns})

    from simulator.world import ACCEPT

    ceiling = observable_ceiling(settings.home, truth, horizon)
    out["e2"] = ranked(
        cands.join(wide(ceiling, "uplift", "uplift"), on="customer_id", how="left").join(
            wide(ceiling, "accept", "accept"), on="customer_id", how="left"
        ),
        "e2",
    )
    oracle = truth.with_columns(
        pl.col("response_type")
        .replace_strict(ACCEPT, default=0.2, return_dtype=pl.Float64)
        .alias("accept")
    )
    out["e"] = ranked(
        cands.join(wide(oracle, "uplift", "uplift"), on="customer_id", how="left").join(
            wide(oracle, "accept", "accept"), on="customer_id", how="left"
        ),
        "e",
    )
    return out, version


def main(argv: list[str] | None = None) -> int:
    from simulator.world import EFFECT_DAYS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--budget", type=float, default=None, help="default: config budget")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--campaigns", type=int, default=2, help="learning campaigns, monthly")
    parser.add_argument(
        "--history-control-share",
        type=float,
        default=0.5,
        help="control share of the learning campaigns (routine lists use the config's)",
    )
    parser.add_argument(
        "--learning-share",
        type=float,
        default=0.3,
        help="share of eligible customers on each learning campaign, with random offers "
        "(0: the policy's own lists instead)",
    )
    parser.add_argument(
        "--learning-budget", type=float, default=60_000.0, help="budget of each learning campaign"
    )
    parser.add_argument(
        "--horizon-days",
        type=int,
        default=EFFECT_DAYS,
        help="uplift outcome window and valuation window (default: the offers' effect window)",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="keep the simulated history here and reuse it when it exists (for iterating)",
    )
    args = parser.parse_args(argv)
    from pipelines.stages.score import score_customers
    from pipelines.stages.uplift import train_uplift
    from pipelines.store.config import load_settings
    from simulator import true_uplift

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp) / "home"
        overrides = {
            "seed": args.seed,
            "simulator": {"customers": args.customers, "months": args.months},
            "retention": {"uplift": {"horizon_days": args.horizon_days}},
        }
        if args.budget is not None:
            overrides["retention"]["budget"] = args.budget
        settings = load_settings(home=home, environ={}, overrides=overrides)
        marker = home / "bench_as_of.txt"
        if args.home and marker.exists():
            as_of = date.fromisoformat(marker.read_text().strip())
            print(f"reusing the campaign history in {home} (as-of {as_of})")
        else:
            if args.home and home.exists() and any(home.iterdir()):
                raise SystemExit(f"{home} is not empty and holds no benchmark history")
            as_of = run_campaign_history(
                settings,
                print,
                args.history_control_share,
                args.learning_share,
                args.learning_budget,
                args.campaigns,
            )
            marker.write_text(str(as_of))
        up = train_uplift(settings, as_of)
        print(f"uplift: {up.explanation} (rows {up.rows})")
        score_customers(settings, as_of)
        cands = candidates_at(settings, as_of)
        truth = true_uplift(settings.home, as_of, horizon_days=args.horizon_days)
        ranked, version = strategies(settings, as_of, cands, truth, args.seed, args.horizon_days)
        budget = settings.retention.budget
        rows = []
        for key, name in STRATEGIES:
            chosen = within_budget(ranked[key], truth, budget)
            rows.append({"strategy": f"({key}) {name}", **value_choice(chosen)})
    oracle_profit = rows[-1]["profit"]
    for r in rows:
        r["share_of_oracle"] = round(r["profit"] / oracle_profit, 3) if oracle_profit else None
    result = {
        "started": datetime.now().isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "customers": args.customers,
        "as_of": str(as_of),
        "budget": budget,
        "horizon_days": args.horizon_days,
        "campaigns": args.campaigns,
        "history_control_share": args.history_control_share,
        "learning_share": args.learning_share,
        "learning_budget": args.learning_budget,
        "uplift": {
            "version": version,
            "qini": up.qini,
            "qini_rank_by_risk": up.qini_by_risk,
            "qini_two_model": up.qini_two_model,
            "rows": up.rows,
        },
        "strategies": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }

    def r3(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.3f}"

    lines = [
        f"Retention benchmark: {args.customers:,} customers, as-of {as_of}, budget {budget:,.0f} "
        f"(every strategy held to it at true expected cost), saves valued over "
        f"{args.horizon_days} days; {args.campaigns} learning campaigns "
        f"(share {args.learning_share}, control {args.history_control_share}); uplift held-out "
        f"Qini {r3(up.qini)} (two-model learner {r3(up.qini_two_model)}, risk ranking "
        f"{r3(up.qini_by_risk)})",
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
