"""Retention benchmark: profit of random, top-risk, policy, policy + uplift, ceilings and oracle.

One simulated operator runs learning campaigns (a random share of eligible customers, each with a
random allowed offer through the reference channel, half held out as control), waits until
their outcomes have matured, trains the uplift model, then every strategy chooses offers and
channels for the same eligible customers at the final month under the same channel capacities.

Counterfactual truth (`simulator.counterfactual`): every contact is valued by the exact
expectation of what the simulator would do with and without it over the horizon, including the
churn intents already drawn for the contact month (a treatment cancels a drawn intent with
probability 1 − effect) and each customer's latent responsiveness. Cost is the contact's cost plus
the offer's cost times the true probability that it is accepted. Every strategy's list is run down
until the budget is spent at that true cost: the same rule the profit is valued with.

What each strategy knows:
- random, top_risk: the policy's own choice of offer and channel; random order / churn score order,
  contacting as many customers as the policy does (cheap channels make the budget alone no limit:
  without a volume both would contact every eligible customer and tie);
- policy: the churn score × configured acceptance (calibrated by the campaigns' observed take-up),
  channel reach and persuasion, and the configured response prior (share of risk a take-up
  removes, backfire);
- policy_realisation: the same, scaled per offer by what evaluated campaigns' controls showed;
- policy_uplift: what the product does with the uplift model (`churn target`): rank by its
  estimates, scaled to each channel, when it passed the champion gate (held-out Qini above risk
  ranking's), otherwise policy_realisation;
- uplift_challenger: rank by the uplift model's estimates whether or not it passed the gate;
- ceiling_observable: the exact Bayes policy from the customer's true hazard and contact-time
  state (not their latent responsiveness, not the drawn intents);
- ceiling_intents: the same, knowing which customers have already decided to leave this month;
- oracle: everything the simulator knows (latent responsiveness and drawn intents).
The ceilings and the oracle choose by exact expected value through the policy's own allocation
(capacities, fallback channels, budget), so they differ from the policy only in what they know.

`--seeds K` repeats everything on K worlds and reports mean and sd per strategy.
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
    ("random", "random order, the policy's offer and channel"),
    ("top_risk", "churn score order, the policy's offer and channel"),
    ("policy", "policy: churn score × configured acceptance and channel factors"),
    ("policy_takeup", "policy + per-customer take-up model where it passed its gate"),
    ("policy_realisation", "policy + take-up model + campaign realisation per offer"),
    ("policy_uplift", "policy + uplift model where it is champion (the product)"),
    ("uplift_challenger", "policy + uplift model, gate or not"),
    ("ceiling_observable", "exact Bayes from true hazard and state (no latent, no intents)"),
    ("ceiling_intents", "exact Bayes from true hazard, state and drawn intents (no latent)"),
    ("oracle", "knows latent responsiveness and drawn intents"),
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
    learning_capacity: int | None = None,
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
    # A test cell through the reference channel, which may be staffed beyond its routine
    # capacity, as an operator does for a planned experiment.
    ret = settings.retention
    channel = ret.uplift.reference_channel
    channels = dict(ret.channels)
    if learning_capacity is not None:
        channels[channel] = channels[channel].model_copy(update={"capacity": learning_capacity})
    learning = settings.model_copy(
        update={
            "retention": ret.model_copy(
                update={
                    "control_share": control_share,
                    "channels": channels,
                }
            )
        }
    )
    last = as_of
    for k in range(campaigns):
        score_customers(settings, as_of)
        if learning_share == "power" or learning_share > 0:
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
    """Chosen contacts with their true expected cost and saves (the one rule for every strategy).

    `truth` is the oracle's counterfactual per customer × offer × channel (uplift, accept).
    """
    t = chosen.join(truth, on=["customer_id", "offer", "channel"], how="left")
    return t.with_columns(
        (pl.col("contact_cost") + pl.col("accept").fill_null(0.0) * pl.col("offer_cost")).alias(
            "true_cost"
        ),
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


def wide(frame: pl.DataFrame, offers: list[str], channels: list[str]) -> pl.DataFrame:
    """uplift_<offer>__<channel> and accept_<offer>__<channel> columns per customer."""
    keyed = frame.with_columns(pl.format("{}__{}", "offer", "channel").alias("_k"))
    out = None
    for column in ("uplift", "accept"):
        w = keyed.pivot(on="_k", index="customer_id", values=column)
        w = w.rename({c: f"{column}_{c}" for c in w.columns if c != "customer_id"})
        out = w if out is None else out.join(w, on="customer_id")
    return out


def strategies(settings, as_of: date, cands: pl.DataFrame, truths: dict, seed: int, champion: bool):
    """Each strategy's ranked contacts, all through the same eligibility and channel capacities.

    Strategies rank with an unlimited budget; `within_budget` then applies the one budget.
    """
    from pipelines.stages.target import offer_realisation, offer_takeup, with_takeup
    from pipelines.stages.uplift import with_uplift
    from pipelines.store.warehouse import connect
    from pipelines.store.workdir import Workdir
    from retention.policy import decide, offer_options

    cfg = settings.retention.model_copy(update={"control_share": 0.0})
    offers = [o.name for o in cfg.offers]
    channels = list(cfg.channels)
    out: dict[str, pl.DataFrame] = {}

    con = connect(Workdir.from_settings(settings), read_only=True)
    try:
        realised = offer_realisation(con, settings, as_of)
        takeup = offer_takeup(con, settings, as_of)
        learned, learned_factors, takeup_report = with_takeup(settings, con, cands, as_of, takeup)
    finally:
        con.close()
    print(f"campaign realisation per offer: {realised}")
    print(f"campaign take-up per offer × channel: {takeup}")
    print(f"take-up model: {takeup_report}")

    def ranked(
        frame: pl.DataFrame, key: str, realised=None, factors=takeup, **update
    ) -> pl.DataFrame:
        c = cfg.model_copy(update=update) if update else cfg
        return decide(frame, c, as_of, key, seed, UNLIMITED, realised, factors).retention_list

    out["policy"] = ranked(cands, "policy")
    unconstrained = ranked(cands, "all", min_expected_value=-1e9)
    rng = np.random.default_rng(seed)
    out["random"] = unconstrained.with_columns(pl.Series("_o", rng.random(unconstrained.height)))
    out["random"] = out["random"].sort("_o").drop("_o")
    out["top_risk"] = unconstrained.sort("churn_probability", descending=True, maintain_order=True)
    # What `churn target` does: the take-up model where it passed its gate (then no factors).
    out["policy_takeup"] = ranked(learned, "policy_takeup", factors=learned_factors)
    out["policy_realisation"] = ranked(
        learned, "policy_realisation", realised, factors=learned_factors
    )
    # The latest uplift model, champion or not: the table shows what ranking by it is worth.
    with_est, version = with_uplift(settings, learned, as_of, alias="challenger")
    if version is None:
        raise RuntimeError("no uplift model: the campaign history was too thin")
    out["uplift_challenger"] = ranked(with_est, "uplift_challenger", factors=learned_factors)
    out["policy_uplift"] = (
        ranked(with_est, "policy_uplift", factors=learned_factors)
        if champion
        else out["policy_realisation"]
    )
    # The product's own per-customer effect estimate through the reference channel (churn ×
    # take-up × response prior, or the uplift model's where it is champion): what lists rank by.
    ref = cfg.uplift.reference_channel
    est_source = with_est if champion else learned
    # save_probability does not depend on the customer's value (only the gain does).
    options = offer_options(
        est_source.with_columns(pl.lit(0.0).alias("value")),
        cfg,
        None if champion else realised,
        [ref],
        learned_factors,
    )
    product_est = options.pivot(on="offer", index="customer_id", values="save_probability")
    product_est = product_est.rename(
        {c: f"uplift_{c}" for c in product_est.columns if c != "customer_id"}
    )
    for key, knows in (
        ("ceiling_observable", "observable"),
        ("ceiling_intents", "intents"),
        ("oracle", "oracle"),
    ):
        exact = cands.join(wide(truths[knows], offers, channels), on="customer_id", how="left")
        out[key] = ranked(exact, key)
    return out, version, with_est, takeup_report, product_est


def qini_on_truth(score: np.ndarray, effect: np.ndarray) -> float:
    """Area between the cumulative true effect of ranking by `score` and of a random order."""
    order = np.argsort(-score, kind="stable")
    cum = np.cumsum(effect[order])
    n = effect.size
    return float(np.mean(cum - np.arange(1, n + 1) / n * effect.sum()) / n)


def qini_report(with_est: pl.DataFrame, truths: dict, held_out: set[str], channel: str) -> dict:
    """Per offer: Qini of the uplift model's ranking on the true per-customer effect (through the
    reference channel, on customers never in a learning campaign), against ranking by the exact
    expected effect from observables and by the oracle's."""
    rows = {}
    for offer in [c.removeprefix("uplift_") for c in with_est.columns if c.startswith("uplift_")]:
        frame = with_est.select("customer_id", f"uplift_{offer}").filter(
            pl.col("customer_id").is_in(list(held_out))
        )
        for knows in ("oracle", "observable"):
            t = truths[knows].filter((pl.col("offer") == offer) & (pl.col("channel") == channel))
            frame = frame.join(
                t.select("customer_id", pl.col("uplift").alias(f"_{knows}")), on="customer_id"
            )
        frame = frame.drop_nulls()
        if frame.height < 100:
            continue
        effect = frame["_oracle"].to_numpy()
        model = qini_on_truth(frame[f"uplift_{offer}"].to_numpy(), effect)
        exact = qini_on_truth(frame["_observable"].to_numpy(), effect)
        best = qini_on_truth(effect, effect)
        rows[offer] = {
            "model": model,
            "exact_observable": exact,
            "oracle": best,
            "share_of_exact": model / exact if exact > 0 else None,
        }
    return rows


def one_world(args, seed: int, home: Path) -> dict:
    """The whole benchmark on one world; per strategy: contacts, saves, spend, profit."""
    from pipelines.stages.score import score_customers
    from pipelines.stages.uplift import train_uplift
    from pipelines.store.config import load_settings
    from pipelines.store.warehouse import connect
    from pipelines.store.workdir import Workdir
    from simulator import true_uplift

    overrides = {
        "seed": seed,
        "simulator": {"customers": args.customers, "months": args.months},
        "retention": {"uplift": {"horizon_days": args.horizon_days}},
    }
    if args.budget is not None:
        overrides["retention"]["budget"] = args.budget
    if args.learning_channel is not None:  # the uplift estimates then refer to it
        overrides["retention"]["uplift"]["reference_channel"] = args.learning_channel
    if args.uplift_learner is not None:
        overrides["retention"]["uplift"]["learner"] = args.uplift_learner
    settings = load_settings(home=home, environ={}, overrides=overrides)
    marker = home / "bench_as_of.txt"
    if marker.exists():
        as_of = date.fromisoformat(marker.read_text().strip())
        print(f"reusing the campaign history in {home} (as-of {as_of})")
    else:
        if home.exists() and any(home.iterdir()):
            raise SystemExit(f"{home} is not empty and holds no benchmark history")
        as_of = run_campaign_history(
            settings,
            print,
            args.history_control_share,
            args.learning_share,
            args.learning_budget,
            args.campaigns,
            args.learning_capacity,
        )
        marker.write_text(str(as_of))
    up = train_uplift(settings, as_of)
    print(f"uplift: {up.explanation} (rows {up.rows})")
    score_customers(settings, as_of)
    cands = candidates_at(settings, as_of)
    truths = {
        k: true_uplift(settings.home, as_of, horizon_days=args.horizon_days, knows=k)
        for k in ("oracle", "intents", "observable")
    }
    ranked, version, with_est, takeup_report, product_est = strategies(
        settings, as_of, cands, truths, seed, up.champion
    )
    con = connect(Workdir.from_settings(settings), read_only=True)
    try:
        listed = set(
            con.sql("SELECT DISTINCT customer_id FROM retention.retention_lists").pl()[
                "customer_id"
            ]
        )
    finally:
        con.close()
    held_out = set(cands["customer_id"]) - listed
    channel = settings.retention.uplift.reference_channel
    qini = qini_report(with_est, truths, held_out, channel)
    qini_product = qini_report(product_est, truths, held_out, channel)
    budget = settings.retention.budget
    rows = {}
    volume = within_budget(ranked["policy"], truths["oracle"], budget).height
    for key, _ in STRATEGIES:
        chosen = within_budget(ranked[key], truths["oracle"], budget)
        if key in ("random", "top_risk"):
            chosen = chosen.head(volume)  # the policy's volume, in this strategy's order
        rows[key] = value_choice(chosen)
        rows[key]["channels"] = dict(chosen["channel"].value_counts().iter_rows())
    return {
        "seed": seed,
        "as_of": str(as_of),
        "budget": budget,
        "uplift": {
            "version": version,
            "champion": up.champion,
            "learner": up.learner,
            "qini": up.qini,
            "qini_rank_by_risk": up.qini_by_risk,
            "rows": up.rows,
            "qini_on_true_effect": qini,
            "product_qini_on_true_effect": qini_product,
        },
        "takeup_model": takeup_report,
        "strategies": rows,
    }


def summarise(worlds: list[dict]) -> dict:
    """Mean and sd over worlds per strategy, and the share of the observable ceiling's profit."""
    out = {}
    for key, label in STRATEGIES:
        rows = [w["strategies"][key] for w in worlds]
        share = [
            r["profit"] / w["strategies"]["ceiling_observable"]["profit"]
            if w["strategies"]["ceiling_observable"]["profit"] > 0
            else float("nan")
            for r, w in zip(rows, worlds, strict=True)
        ]
        arr = lambda k, rows=rows: np.array([r[k] for r in rows], dtype=float)  # noqa: E731
        sd = lambda a: float(a.std(ddof=1)) if a.size > 1 else 0.0  # noqa: E731
        out[key] = {
            "knows": label,
            "profit_mean": round(float(arr("profit").mean()), 2),
            "profit_sd": round(sd(arr("profit")), 2),
            "saves_mean": round(float(arr("expected_saves").mean()), 2),
            "saves_sd": round(sd(arr("expected_saves")), 2),
            "contacts_mean": round(float(arr("contacted").mean()), 1),
            "spend_mean": round(float(arr("cost").mean()), 2),
            "share_of_ceiling": round(float(np.nanmean(share)), 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    from simulator.response import EFFECT_DAYS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--budget", type=float, default=None, help="default: config budget")
    parser.add_argument("--seed", type=int, default=42, help="first seed")
    parser.add_argument("--seeds", type=int, default=1, help="worlds (seed, seed + 1, ...)")
    parser.add_argument("--campaigns", type=int, default=2, help="learning campaigns, monthly")
    parser.add_argument(
        "--history-control-share",
        type=float,
        default=0.5,
        help="control share of the learning campaigns (routine lists use the config's)",
    )
    parser.add_argument(
        "--learning-share",
        type=lambda v: v if v == "power" else float(v),
        default=0.3,
        help="share of eligible customers on each learning campaign, with random offers "
        "(0: the policy's own lists instead; power: sized by the power calculation)",
    )
    parser.add_argument(
        "--learning-channel",
        default=None,
        help="channel of the learning campaigns (default: retention.uplift.reference_channel)",
    )
    parser.add_argument(
        "--learning-capacity",
        type=int,
        default=None,
        help="capacity of the learning channel in learning campaigns (default: the config's)",
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
        help="keep each world's history under here (seed_<n>) and reuse it when it exists",
    )
    parser.add_argument(
        "--uplift-learner",
        default=None,
        help="retention.uplift.learner for this run (default: the config's, auto = inner CV over "
        "every learner, the slowest)",
    )
    parser.add_argument("--json-out", type=Path, default=None, help="also write the summary here")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    seeds = [args.seed + k for k in range(args.seeds)]
    worlds = []
    with tempfile.TemporaryDirectory() as tmp:
        root = args.home or Path(tmp)
        for seed in seeds:
            print(f"--- world seed {seed}")
            worlds.append(one_world(args, seed, root / f"seed_{seed}"))
            if args.json_out:  # each finished world at once: a long run can be read as it goes
                partial = {"customers": args.customers, "seeds": [w["seed"] for w in worlds]}
                partial["strategies"] = summarise(worlds)
                partial["worlds"] = worlds
                args.json_out.parent.mkdir(parents=True, exist_ok=True)
                args.json_out.write_text(json.dumps(partial, indent=2, default=str))
    summary = summarise(worlds)
    budget = worlds[0]["budget"]
    result = {
        "customers": args.customers,
        "seeds": seeds,
        "strategies": summary,
        "started": datetime.now().isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "budget": budget,
        "horizon_days": args.horizon_days,
        "campaigns": args.campaigns,
        "history_control_share": args.history_control_share,
        "learning_share": args.learning_share,
        "learning_budget": args.learning_budget,
        "learning_channel": args.learning_channel,
        "learning_capacity": args.learning_capacity,
        "uplift_learner": args.uplift_learner,
        "worlds": worlds,
        "seconds": round(time.perf_counter() - started, 1),
    }
    lines = [
        f"Retention benchmark: {args.customers:,} customers, seeds {seeds}, budget {budget:,.0f} "
        f"(every strategy held to it at true expected cost), saves valued over "
        f"{args.horizon_days} days by the counterfactual truth; {args.campaigns} learning "
        f"campaigns (share {args.learning_share}, control {args.history_control_share})",
        "",
        "| strategy | knows | contacts | saves | spend | profit (mean ± sd) | share of ceiling |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, r in summary.items():
        lines.append(
            f"| {key} | {r['knows']} | {r['contacts_mean']:,.0f} | {r['saves_mean']:.1f} | "
            f"{r['spend_mean']:,.0f} | {r['profit_mean']:,.0f} ± {r['profit_sd']:,.0f} | "
            f"{r['share_of_ceiling']:.0%} |"
        )
    for w in worlds:
        shares = {
            k: ", ".join(
                f"{o} {v['share_of_exact']:.2f}" if v["share_of_exact"] is not None else f"{o} n/a"
                for o, v in w["uplift"].get(k, {}).items()
            )
            for k in ("qini_on_true_effect", "product_qini_on_true_effect")
        }
        lines.append(
            f"\nseed {w['seed']}: uplift held-out Qini {w['uplift']['qini']} (risk ranking "
            f"{w['uplift']['qini_rank_by_risk']}); Qini on the true effect as a share of ranking "
            f"by the exact expected effect — uplift model: {shares['qini_on_true_effect']}; "
            f"the list's own estimate: {shares['product_qini_on_true_effect']}"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    (RESULTS / f"retention_{stamp}.json").write_text(json.dumps(result, indent=2, default=str))
    (RESULTS / f"retention_{stamp}.md").write_text("\n".join(lines) + "\n")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result, indent=2, default=str))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
