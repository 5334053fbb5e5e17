"""The retention decision policy: eligibility, credit gating, offer and channel choice, budget, control group.

Expected value of contacting a customer with an offer through a channel:
    P(accept) = reach(channel) × min(acceptance(offer, reasons) × persuasion(channel), 0.95)
                × take-up factor(offer, channel)
    P(saved)  = P(churn) × (P(accept) × save_given_accept − reach × backfire_rate × backfire_increase)
    EV = P(saved) × value saved − P(accept) × offer cost − contact cost(channel)
An offer's cost is paid only when it is taken up, so it is weighted by the acceptance rate; the
contact itself is always paid. A taken-up offer removes only part of a customer's churn risk, and
some reached customers resent being contacted and churn more (`retention.response_prior`), so a
contact can be worth less than nothing. The take-up factor is what campaign responses showed:
observed take-ups over predicted ones (`retention.takeup`). A call reaches and persuades more
people than an SMS but costs more, so the channel is chosen with the offer, by expected value,
within channel capacities.
Where an uplift estimate per offer exists it replaces P(saved): it refers to the learning
campaigns' channel (`uplift.reference_channel`) and is scaled to another channel by the ratio of
their reach × persuasion. Where only evaluated campaigns exist, P(saved) is scaled per offer by
the share of predicted saves the control groups confirmed (its realisation).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from configs.schema import RetentionConfig
from retention.takeup import factor_for

TIER_ORDER = {"basic": 0, "silver": 1, "gold": 2, "diamond": 3}
LIST_COLUMNS = (
    "list_id",
    "as_of",
    "customer_id",
    "segment",
    "value_tier",
    "lifecycle_stage",
    "churn_probability",
    "risk_decile",
    "credit_grade",
    "value",
    "offer",
    "channel",
    "accept_probability",
    "save_probability",
    "expected_value",
    "offer_cost",
    "contact_cost",
    "reasons",
    "control_flag",
    "contact_by",
)


@dataclass(frozen=True)
class PolicyResult:
    retention_list: pl.DataFrame
    collections: pl.DataFrame
    excluded: dict[str, int]
    budget_used: float


def exclusions(candidates: pl.DataFrame, cfg: RetentionConfig, as_of: date) -> pl.DataFrame:
    """Why each customer may not be contacted (None = eligible), first reason wins."""
    weak = pl.col("credit_grade").is_in(cfg.weak_grades)
    low_value = (
        pl.col("value_tier").replace_strict(TIER_ORDER, default=0)
        <= TIER_ORDER[cfg.collections_max_tier]
    )
    cooldown_start = as_of - timedelta(days=cfg.contact_policy.cooldown_days)
    # Far behind on payment: heading for disconnection for non-payment, which the churn label
    # counts but no retention offer prevents. Collections' case, whatever the customer's tier.
    behind = (
        pl.col("days_past_due_last").fill_null(0) >= cfg.max_days_past_due
        if "days_past_due_last" in candidates.columns
        else pl.lit(False)
    )
    return candidates.with_columns(
        pl.when(weak & low_value)
        .then(pl.lit("collections"))
        .when(behind)
        .then(pl.lit("arrears"))
        .when(pl.col("do_not_contact"))
        .then(pl.lit("do_not_contact"))
        .when(pl.col("marketing_opt_out"))
        .then(pl.lit("opted_out"))
        .when(
            pl.col("last_contact_date").is_not_null()
            & (pl.col("last_contact_date") > cooldown_start)
        )
        .then(pl.lit("cool_down"))
        .when(pl.col("contacts_in_period") >= cfg.contact_policy.max_contacts)
        .then(pl.lit("contact_cap"))
        .otherwise(None)
        .alias("excluded_reason")
    )


def channel_factor(cfg: RetentionConfig, channel: str) -> float:
    """Reach × persuasion: how much of an offer's effect a contact through the channel delivers."""
    ch = cfg.channels[channel]
    return ch.reach * ch.persuasion


def open_channels(cfg: RetentionConfig) -> list[str]:
    """Channels with capacity this month, in configured order."""
    return [c for c, v in cfg.channels.items() if v.capacity > 0]


def offer_options(
    eligible: pl.DataFrame,
    cfg: RetentionConfig,
    realisation: dict[str, float] | None = None,
    channels: list[str] | None = None,
    takeup: dict[str, float] | None = None,
) -> pl.DataFrame:
    """Every (customer, allowed offer, open channel) with its acceptance probability and value.

    `takeup` scales acceptance per offer × channel by what campaign responses showed
    (`retention.takeup.factor_for`). `realisation` scales the prior save estimate per offer by
    what evaluated campaigns showed: observed incremental saves over predicted ones. `uplift_<offer>` columns
    (estimated churn reduction through the reference channel) replace the prior; `accept_<offer>`
    columns replace the configured acceptance rate. `uplift_<offer>__<channel>` and
    `accept_<offer>__<channel>` columns, where given, are taken as they are for that channel. `_gain` is the expected value before the
    contact cost; `_ev` after it.
    """
    frames = []
    groups = pl.concat_list(["reason_group_1", "reason_group_2", "reason_group_3"])
    weak = pl.col("credit_grade").is_in(cfg.weak_grades)
    channels = channels or open_channels(cfg)
    ref = cfg.uplift.reference_channel
    ref_factor = channel_factor(cfg, ref) if ref in cfg.channels else 1.0
    response = cfg.response_prior
    for offer in cfg.offers:
        allowed = (
            pl.col("segment").is_in(offer.segments)
            & pl.col("value_tier").is_in(offer.tiers)
            & pl.col("credit_grade").is_in(offer.credit_grades)
        )
        if offer.device_subsidy or offer.extends_credit:
            allowed = allowed & ~weak  # weak credit: no subsidies, nothing that extends credit
        matches = groups.list.eval(pl.element().is_in(offer.reasons)).list.any()
        accept = (
            pl.when(matches)
            .then(min(offer.accept_rate * cfg.reason_match_boost, cfg.max_accept_probability))
            .otherwise(offer.accept_rate)
        )
        accept_col = f"accept_{offer.name}"
        if accept_col in eligible.columns:  # a per-customer acceptance estimate, where one exists
            accept = pl.col(accept_col).fill_null(accept)
        part = eligible.filter(allowed)
        uplift_col = f"uplift_{offer.name}"
        for channel in channels:
            ch = cfg.channels[channel]
            taken = (
                ch.reach
                * (accept * ch.persuasion).clip(upper_bound=cfg.max_accept_probability)
                * factor_for(takeup, offer.name, channel)
            ).clip(upper_bound=cfg.max_accept_probability)
            resent = ch.reach * response.backfire_rate * response.backfire_churn_increase
            priced = part.filter(pl.col("segment").is_in(ch.segments)).with_columns(
                pl.lit(offer.name).alias("offer"),
                pl.lit(channel).alias("channel"),
                pl.lit(float(offer.cost)).alias("offer_cost"),
                pl.lit(float(ch.cost)).alias("_contact_cost"),
                taken.alias("accept_probability"),
            )
            prior = pl.col("churn_probability") * (
                pl.col("accept_probability") * response.save_given_accept - resent
            )
            exact = f"{uplift_col}__{channel}"
            if exact in priced.columns:
                # Exact per-channel values (the benchmark's ceilings): no scaling.
                saved = pl.col(exact).fill_null(0.0)
                if f"accept_{offer.name}__{channel}" in priced.columns:
                    priced = priced.with_columns(
                        pl.col(f"accept_{offer.name}__{channel}").alias("accept_probability")
                    )
            elif uplift_col in priced.columns:
                scale = channel_factor(cfg, channel) / ref_factor
                # Nobody can be saved more surely than they would churn.
                saved = pl.min_horizontal(
                    pl.col(uplift_col) * scale, pl.col("churn_probability")
                ).fill_null(prior)
            else:
                saved = prior
                if realisation and offer.name in realisation:
                    saved = saved * realisation[offer.name]
            frames.append(
                priced.with_columns(saved.alias("save_probability")).with_columns(
                    (
                        pl.col("save_probability") * pl.col("value")
                        - pl.col("accept_probability") * pl.col("offer_cost")
                    ).alias("_gain")
                )
            )
    if not frames:
        return eligible.head(0)
    return pl.concat(frames, how="diagonal_relaxed").with_columns(
        (pl.col("_gain") - pl.col("_contact_cost")).alias("_ev")
    )


def best_per_channel(options: pl.DataFrame) -> pl.DataFrame:
    """Each customer's best offer through each channel, plus their best (offer, channel) overall."""
    per_channel = options.sort(
        ["customer_id", "channel", "_ev", "offer"], descending=[False, False, True, False]
    ).unique(["customer_id", "channel"], keep="first", maintain_order=True)
    return per_channel.sort(
        ["customer_id", "_ev", "channel"], descending=[False, True, False]
    ).with_columns(pl.int_range(pl.len()).over("customer_id").alias("_rank"))


def channel_bests(
    priced: pl.DataFrame,
    cfg: RetentionConfig,
    realisation: dict[str, float] | None = None,
    takeup: dict[str, float] | None = None,
) -> pl.DataFrame:
    """best_per_channel over every offer and open channel, priced one channel at a time.

    Only a channel's best offer per customer can be chosen, so the options never hold every
    offer × channel row at once (the 1M list stage peaked at 9.7 GB holding them).
    """
    per_channel = []
    for channel in open_channels(cfg):
        options = offer_options(priced, cfg, realisation, [channel], takeup)
        if not options.is_empty():
            per_channel.append(best_per_channel(options))
    if not per_channel:
        return pl.DataFrame()
    return best_per_channel(pl.concat(per_channel, how="diagonal_relaxed"))


def assign_control(frame: pl.DataFrame, share: float, seed: int) -> pl.Series:
    """A random share of each (value tier × risk decile) stratum, reproducible from the seed."""
    rng = np.random.default_rng(seed)
    u = pl.Series("_u", rng.random(frame.height))
    ranked = (
        frame.select("value_tier", "risk_decile")
        .with_columns(u)
        .with_columns(
            pl.col("_u").rank("ordinal").over(["value_tier", "risk_decile"]).alias("_r"),
            pl.len().over(["value_tier", "risk_decile"]).alias("_n"),
        )
    )
    # Stochastic rounding keeps the expected share exact even in small strata.
    quota = (ranked["_n"] * share + pl.Series(rng.random(frame.height))).floor()
    return (ranked["_r"] <= quota).alias("control_flag")


# What offers and channels are priced on; the rest of a customer's columns join the chosen rows.
PRICED_ON = (
    "customer_id",
    "segment",
    "value_tier",
    "credit_grade",
    "reason_group_1",
    "reason_group_2",
    "reason_group_3",
    "churn_probability",
    "value",
)


def _split_priced(eligible: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(columns options are priced on, the customer's other columns keyed by customer_id)."""
    priced = [c for c in eligible.columns if c in PRICED_ON or c.startswith(("uplift_", "accept_"))]
    rest = [c for c in eligible.columns if c not in priced]
    return eligible.select(priced), eligible.select("customer_id", *rest)


def decide(
    customers: pl.DataFrame,
    cfg: RetentionConfig,
    as_of: date,
    list_id: str,
    seed: int,
    budget: float | None = None,
    realisation: dict[str, float] | None = None,
    takeup: dict[str, float] | None = None,
) -> PolicyResult:
    """Choose who gets which offer through which channel within budget and capacity."""
    budget = cfg.budget if budget is None else budget
    flagged, excluded, collections, eligible = _screen(customers, cfg, as_of)
    # Every customer becomes offers × channels rows: at 1M customers, carrying all their
    # columns into each made the list stage peak at 14 GB.
    priced, rest = _split_priced(eligible)
    ranked = channel_bests(priced, cfg, realisation, takeup)
    if ranked.is_empty():
        return PolicyResult(_empty_list(), collections, excluded, 0.0)
    # Customers in order of expected value per unit of cost of their best (offer, channel).
    best = ranked.filter(pl.col("_rank") == 0)
    best = best.join(rest, on="customer_id", how="left", maintain_order="left").with_columns(
        (pl.col("accept_probability") * pl.col("offer_cost") + pl.col("_contact_cost")).alias(
            "_cost"
        )
    )
    best = best.filter(pl.col("_ev") > cfg.min_expected_value)
    best = best.with_columns(
        (pl.col("_ev") / pl.col("_cost").clip(lower_bound=1e-6)).alias("_efficiency")
    ).sort(["_efficiency", "customer_id"], descending=[True, False])
    best = best.with_columns(assign_control(best, cfg.control_share, seed))
    alternatives = ranked.filter(pl.col("_ev") > cfg.min_expected_value)
    return _allocate(best, alternatives, cfg, as_of, list_id, budget, collections, excluded)


def learning_list(
    customers: pl.DataFrame,
    cfg: RetentionConfig,
    as_of: date,
    list_id: str,
    seed: int,
    share: float,
    budget: float | None = None,
) -> PolicyResult:
    """A learning campaign: a random share of eligible customers, each with a random allowed offer.

    Randomising who is listed and which offer they get makes every offer's effect learnable from
    the campaign (the policy's own lists confound the offer with the customer's traits). The same
    exclusions, credit gating, channel rules, capacity, budget and stratified control group hold;
    only the expected-value filter is off, because the point is to learn where value lies.
    """
    if not 0.0 < share <= 1.0:
        raise ValueError("the learning share must be in (0, 1]")
    budget = cfg.budget if budget is None else budget
    flagged, excluded, collections, eligible = _screen(customers, cfg, as_of)
    eligible = eligible.sort("customer_id")
    rng = np.random.default_rng(seed)
    picked = eligible.filter(pl.Series(rng.random(eligible.height) < share))
    # One channel for every learning contact, so offers' effects are learnt without channel
    # confounding; the policy scales them to other channels by reach × persuasion.
    channel = cfg.uplift.reference_channel
    if channel not in cfg.channels:
        raise ValueError(f"uplift.reference_channel {channel!r} is not a configured channel")
    options = offer_options(picked, cfg, channels=[channel])
    if options.is_empty():
        return PolicyResult(_empty_list(), collections, excluded, 0.0)
    options = options.sort(["customer_id", "offer"])
    best = (
        options.with_columns(pl.Series("_r", rng.random(options.height)))
        .sort(["customer_id", "_r"])
        .unique("customer_id", keep="first", maintain_order=True)
        .drop("_r")
    )
    # A random contact order, so a binding budget or capacity cuts a random subset.
    best = best.with_columns(pl.Series("_o", rng.random(best.height))).sort("_o").drop("_o")
    best = best.with_columns(assign_control(best, cfg.control_share, seed + 1))
    return _allocate(best, None, cfg, as_of, list_id, budget, collections, excluded)


def _screen(customers: pl.DataFrame, cfg: RetentionConfig, as_of: date):
    """Exclusion reasons, their counts, the collections flags and the eligible customers."""
    flagged = exclusions(_with_value(customers, cfg), cfg, as_of)
    excluded = dict(
        flagged.filter(pl.col("excluded_reason").is_not_null())["excluded_reason"]
        .value_counts()
        .iter_rows()
    )
    return (
        flagged,
        excluded,
        _collections(flagged),
        flagged.filter(pl.col("excluded_reason").is_null()),
    )


def _with_value(customers: pl.DataFrame, cfg: RetentionConfig) -> pl.DataFrame:
    """Value saved when a churner is kept: margin over the value horizon."""
    return customers.with_columns(
        (pl.col("monthly_spend").fill_null(0.0) * cfg.margin_rate * cfg.value_horizon_months).alias(
            "value"
        )
    )


def _collections(flagged: pl.DataFrame) -> pl.DataFrame:
    return flagged.filter(pl.col("excluded_reason").is_in(["collections", "arrears"])).select(
        "customer_id",
        pl.when(pl.col("excluded_reason") == "arrears")
        .then(pl.lit("far behind on payment: heading for disconnection for non-payment"))
        .otherwise(pl.lit("low value and weak credit grade"))
        .alias("reason"),
    )


def _allocate(
    best: pl.DataFrame,
    alternatives: pl.DataFrame | None,
    cfg: RetentionConfig,
    as_of: date,
    list_id: str,
    budget: float,
    collections: pl.DataFrame,
    excluded: dict[str, int],
) -> PolicyResult:
    """Walk the ranked customers: their best (offer, channel) with capacity left, within budget.

    `alternatives` holds each customer's best offer per channel with positive expected value,
    best first; when the customer's first channel is full, the next best open one is used (a
    learning list passes None: its one channel or nothing). Cost = contact cost (always paid) +
    P(accept) × offer cost (paid only when taken up): the same rule the benchmark and the
    evaluation use; with `budget_basis: worst_case` the full offer cost, so realised spend can
    never exceed the budget. Control customers cost nothing and hold no capacity.
    """
    channels = cfg.channels
    remaining = {k: v.capacity for k, v in channels.items()}
    fallback: dict[str, list[tuple]] = {}
    if alternatives is not None:
        for cid, channel, offer, accept, cost, gain, save in (
            alternatives.filter(pl.col("_rank") > 0)
            .select(
                "customer_id",
                "channel",
                "offer",
                "accept_probability",
                "offer_cost",
                "_gain",
                "save_probability",
            )
            .iter_rows()
        ):
            fallback.setdefault(cid, []).append((channel, offer, accept, cost, gain, save))

    def cheapest_open() -> float | None:
        return min((channels[c].cost for c, left in remaining.items() if left > 0), default=None)

    floor = cheapest_open()
    worst_case = cfg.budget_basis == "worst_case"
    spent = 0.0
    picked: list[tuple | None] = []
    for cid, control, channel, offer, accept, offer_cost, gain, save in best.select(
        "customer_id",
        "control_flag",
        "channel",
        "offer",
        "accept_probability",
        "offer_cost",
        "_gain",
        "save_probability",
    ).iter_rows():
        # Nobody further down can be contacted once even the cheapest open channel is over budget.
        if floor is None or spent + floor > budget:
            break
        choice = None
        for c, o, a, oc, g, e in [(channel, offer, accept, offer_cost, gain, save)] + fallback.get(
            cid, []
        ):
            # The budget caps expected spend, or worst-case spend (every offer taken up).
            if (
                remaining[c] > 0
                and spent + channels[c].cost + (1.0 if worst_case else a) * oc <= budget
            ):
                choice = (c, o, a, oc, g, e)
                break
        if choice is None:
            picked.append(None)
            continue
        c, o, a, oc, g, e = choice
        # A control customer is held out only where a treated one would have been contacted, so
        # both arms come from the same ranked population and the control share stays as set.
        if not control:
            spent += channels[c].cost + (1.0 if worst_case else a) * oc
            remaining[c] -= 1
            if not remaining[c]:
                floor = cheapest_open()
        picked.append(choice)
    n = len(picked)
    keep = [p is not None for p in picked]
    col = lambda i, dtype: pl.Series([p[i] if p else None for p in picked], dtype=dtype)  # noqa: E731
    best = (
        best.head(n)
        .with_columns(
            pl.Series("_keep", keep, dtype=pl.Boolean),
            col(0, pl.Utf8).alias("channel"),
            col(1, pl.Utf8).alias("offer"),
            col(2, pl.Float64).alias("accept_probability"),
            col(3, pl.Float64).alias("offer_cost"),
            col(4, pl.Float64).alias("_gain"),
            col(5, pl.Float64).alias("save_probability"),
        )
        .filter(pl.col("_keep"))
    )
    best = best.with_columns(
        pl.col("channel")
        .replace_strict({c: v.cost for c, v in channels.items()}, return_dtype=pl.Float64)
        .alias("contact_cost"),
    ).with_columns(
        (pl.col("_gain") - pl.col("contact_cost")).alias("expected_value"),
        pl.concat_str(
            [pl.col("reason_1"), pl.col("reason_2"), pl.col("reason_3")],
            separator="; ",
            ignore_nulls=True,
        ).alias("reasons"),
        pl.lit(list_id).alias("list_id"),
        pl.lit(as_of).alias("as_of"),
        pl.lit(as_of + timedelta(days=cfg.contact_within_days)).alias("contact_by"),
    )
    return PolicyResult(best.select(LIST_COLUMNS), collections, excluded, round(spent, 2))


def _empty_list() -> pl.DataFrame:
    return pl.DataFrame(schema={c: pl.Utf8 for c in LIST_COLUMNS})
