"""One simulated month as per-table steps, each returning its table; the caller persists them.

The steps run in a fixed order and share one `Month` (the arrays a later table needs from an
earlier one: who churns, who was alive on which day, bills, arrears). Their order is the order
of the random draws, so it must not change without a reason (tests/test_simulator_golden.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import polars as pl

import simulator.population as pop
from features.split import month_end

# The `simulator.world.World` whose month is stepped; not imported, since world imports this module.
World = Any

SLA_HOURS = {"low": 72.0, "medium": 48.0, "high": 24.0, "critical": 8.0}


@dataclass
class DailyUsage:
    """The month's usage as customer × day arrays; `alive` says which cells are real rows."""

    month_start: date
    ids: np.ndarray
    alive: np.ndarray
    voice: np.ndarray
    sms: np.ndarray
    data: np.ndarray
    roaming: np.ndarray
    offnet: np.ndarray
    dropped: np.ndarray


@dataclass
class MonthTables:
    """What a month produced: landing tables in export order, the truth rows and the summary."""

    tag: str
    usage: DailyUsage
    tables: list[tuple[str, pl.DataFrame]] = field(default_factory=list)
    truth: pl.DataFrame | None = None
    stats: dict[str, float] = field(default_factory=dict)


class Month:
    """Working arrays of one month, filled in step by step (one row per customer)."""

    def __init__(self, world: World) -> None:
        self.start = world.next_month
        self.end = month_end(self.start)
        self.n_days = (self.end - self.start).days + 1
        self.m0 = _epoch(self.start)
        self.tag = self.start.strftime("%Y-%m")
        self.first_month = world.month_index == 1


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _days(d: np.ndarray) -> np.ndarray:
    """datetime64[D] → int days since epoch (NaT → large sentinel)."""
    out = d.astype("datetime64[D]").astype("int64")
    return np.where(np.isnat(d), np.iinfo(np.int64).max // 4, out)


def _epoch(d: date) -> int:
    return (d - date(1970, 1, 1)).days


def activations(w: World, m: Month) -> None:
    """New activations keep the base roughly growing; next month's churners decide now."""
    cfg, rng = w.cfg, w.rng
    active_n = int(w.state["active"].sum())
    n_new = 0 if m.first_month else int(rng.poisson(active_n * cfg.monthly_churn_target * 1.08))
    if n_new:
        fresh = pl.DataFrame(pop.new_customers(cfg, rng, n_new, w.next_id, m.start, m.n_days))
        fresh = w._with_dynamics(fresh).with_columns(pl.lit(True).alias("new_this_month"))
        w.next_id += n_new
        w.responses = pl.concat([w.responses, pop.response_types(fresh, rng)])
        w.state = pl.concat(
            [w.state.with_columns(pl.lit(False).alias("new_this_month")), fresh],
            how="vertical_relaxed",
        )
    else:
        w.state = w.state.with_columns(pl.lit(False).alias("new_this_month"))
    # Next month's churners decide now (from last month's experience), so that their usage
    # declines and their port-out requests arrive before they leave.
    w._sample_intents(pop.next_month(m.start))
    s = m.s = w.state
    m.n = s.height
    m.ids = s["customer_id"].to_numpy()
    m.active = s["active"].to_numpy()
    m.postpaid = (s["payment_type"] == "postpaid").to_numpy()


def disconnect_plan(w: World, m: Month) -> None:
    """Involuntary disconnects: long arrears; voluntary: last month's intents."""
    s, rng, n, m0 = m.s, w.rng, m.n, m.m0
    dpd_start = np.where(
        s["unpaid_since"].is_null().to_numpy(),
        0,
        m0 - _days(s["unpaid_since"].to_numpy().astype("datetime64[D]")),
    )
    invol = m.active & s["nonpay"].to_numpy() & (dpd_start >= 90) & (rng.random(n) < 0.6)
    invol_day = m0 + rng.integers(0, m.n_days, n)
    m.intent = _days(s["intent_date"].to_numpy().astype("datetime64[D]"))
    m.vol = m.active & (m.intent >= m0) & (m.intent <= m0 + m.n_days - 1)
    m.churn_day = np.where(m.vol, m.intent, np.where(invol, invol_day, -1))
    m.churns = m.churn_day >= 0
    m.invol = invol
    m.act_day = _days(s["activation_date"].to_numpy().astype("datetime64[D]"))


def usage(w: World, m: Month) -> DailyUsage:
    """Daily usage for everyone alive on any day of the month."""
    cfg, rng, s, n, n_days = w.cfg, w.rng, m.s, m.n, m.n_days
    day_idx = m.m0 + np.arange(n_days)
    alive = (
        m.active[:, None]
        & (m.act_day[:, None] <= day_idx[None, :])
        & ~(m.churns[:, None] & (day_idx[None, :] >= m.churn_day[:, None]))
    )
    upcoming = np.where(
        m.intent > 0, m.intent, np.where(m.churns, m.churn_day, np.iinfo(np.int64).max // 8)
    )
    until = (upcoming[:, None] - day_idx[None, :]).astype(np.float32)
    # Leavers who wind down use less over their last six weeks, down to about half.
    fades = s["intent_fades"].to_numpy()
    decline = np.where(fades[:, None], np.clip(until / 45.0, 0.5, 1.0), 1.0).astype(np.float32)
    weekday = (day_idx + 3) % 7  # 1970-01-01 was a Thursday
    weekend = (weekday >= 5).astype(np.float32)
    season = 1.0 + 0.06 * np.sin(2 * np.pi * (m.start.month - 3) / 12)
    lvl = s["usage_level"].to_numpy().astype(np.float32)[:, None]
    drift_boost, voice_shift = 1.0, 1.0
    if cfg.drift_month is not None and w.month_index >= cfg.drift_month:
        # The competitor's data-heavy bundles with free OTT calling shift the usage mix.
        drift_boost, voice_shift = 1.6, 0.7
    noise = rng.lognormal(0.0, 0.35, (n, n_days)).astype(np.float32)
    voice = lvl * 11.0 * voice_shift * (1.0 - 0.25 * weekend) * season * decline * noise
    data = (
        lvl
        * s["data_affinity"].to_numpy().astype(np.float32)[:, None]
        * 420.0
        * (1.0 + 0.2 * weekend)
        * decline
        * drift_boost
        * rng.lognormal(0.0, 0.4, (n, n_days)).astype(np.float32)
    )
    # Bill shock: a week of unusually heavy data (a trip, a new device) for a few customers.
    spike = rng.random(n) < 0.04
    spike_start = rng.integers(0, max(n_days - 7, 1), n)
    in_spike = (np.arange(n_days)[None, :] >= spike_start[:, None]) & (
        np.arange(n_days)[None, :] < spike_start[:, None] + 7
    )
    data = np.where(spike[:, None] & in_spike, data * 6.0, data).astype(np.float32)
    sms = rng.poisson(np.clip(lvl * 2.5 * decline, 0, None)).astype(np.int32)
    roaming = np.where(
        rng.random((n, n_days)) < 0.01, rng.exponential(60.0, (n, n_days)), 0.0
    ).astype(np.float32)
    offnet_base = rng.beta(3, 5, n).astype(np.float32)[:, None]
    offnet = np.clip(
        offnet_base + rng.normal(0, 0.05, (n, n_days)).astype(np.float32) + 0.15 * (1 - decline),
        0,
        1,
    )
    regions = s["region"].to_numpy()
    incident_regions = [r for r in pop.REGIONS if rng.random() < 0.08]
    m.incident = np.isin(regions, incident_regions)
    inc_start = rng.integers(0, max(n_days - 7, 1))
    inc_days = np.zeros(n_days, dtype=bool)
    inc_days[inc_start : inc_start + 7] = True
    dropped = np.clip(
        rng.beta(1.2, 90, (n, n_days))
        + (m.incident[:, None] & inc_days[None, :]) * rng.uniform(0.03, 0.09),
        0,
        1,
    ).astype(np.float32)
    m.alive, m.lvl, m.data, m.voice = alive, lvl, data, voice
    return DailyUsage(m.start, m.ids, alive, voice, sms, data, roaming, offnet, dropped)


def invoices(w: World, m: Month) -> pl.DataFrame:
    """Monthly totals, plan fit and bills."""
    s, alive = m.s, m.alive
    m.alive_days = alive.sum(axis=1)
    frac = m.frac = m.alive_days / m.n_days
    plans = pop.plans_frame()
    plan_row = s.select("current_plan").join(
        plans.rename({"plan_id": "current_plan"}),
        on="current_plan",
        how="left",
        maintain_order="left",
    )
    fee = m.fee = plan_row["monthly_fee"].to_numpy()
    allow_data = plan_row["data_mb"].to_numpy()
    allow_voice = plan_row["voice_min"].to_numpy()
    data_tot = (m.data * alive).sum(axis=1)
    voice_tot = (m.voice * alive).sum(axis=1)
    over_data = np.maximum(0.0, data_tot - allow_data * frac) * 0.004
    over_voice = np.maximum(0.0, voice_tot - allow_voice * frac) * 0.05
    overage = over_data + over_voice
    m.bb = s["has_broadband"].to_numpy() * pop.BROADBAND_FEE
    m.fx = s["has_fixed"].to_numpy() * pop.FIXED_FEE
    m.usage_ratio = np.where(
        allow_data > 0, data_tot / np.maximum(allow_data * np.maximum(frac, 1e-6), 1), 1
    )
    m.misfit = np.clip(np.abs(np.log(np.maximum(m.usage_ratio, 0.05))) - 0.5, 0, 3)
    billed = m.billed = (m.alive_days > 0) & m.postpaid
    mobile_amt = fee * frac
    amount = m.amount = mobile_amt + (m.bb + m.fx) * frac + overage
    m.bill_shock = np.where(billed, np.clip(overage / np.maximum(fee, 1) - 0.3, 0, 3), 0)
    m.issue = pop.next_month(m.start)
    ids, tag, k = m.ids, m.tag, int(billed.sum())
    return pl.DataFrame(
        {
            "invoice_id": np.char.add(np.char.add("INV", tag.replace("-", "")), ids)[billed],
            "customer_id": ids[billed],
            "period_start": pl.Series([m.start] * k, dtype=pl.Date),
            "issue_date": pl.Series([m.issue] * k, dtype=pl.Date),
            "due_date": pl.Series([m.issue + timedelta(days=20)] * k, dtype=pl.Date),
            "amount": np.round(amount[billed], 2),
            "mobile_amount": np.round(mobile_amt[billed] + overage[billed], 2),
            "broadband_amount": np.round((m.bb * frac)[billed], 2),
            "fixed_amount": np.round((m.fx * frac)[billed], 2),
            "overage_amount": np.round(overage[billed], 2),
        }
    )


def payments(w: World, m: Month) -> pl.DataFrame:
    """Non-payment: some postpaid customers stop paying; a few cure. Payments due this month."""
    s, rng, n, ids, tag = m.s, w.rng, m.n, m.ids, m.tag
    m.p_def = _sigmoid(w._default_logit(s, m.start) + w.default_intercept)
    nonpay = s["nonpay"].to_numpy().copy()
    start_nonpay = m.active & m.postpaid & ~nonpay & (rng.random(n) < m.p_def)
    m.cure = nonpay & (rng.random(n) < 0.15)
    m.nonpay = (nonpay | start_nonpay) & ~m.cure
    stress = m.stress = s["financial_stress"].to_numpy()
    due_day = _epoch(m.issue) + 20
    late = rng.random(n) < np.clip(0.05 + 1.2 * stress, 0, 0.9)
    pay_day = np.where(
        late,
        due_day + rng.exponential(6 + 30 * stress).astype(int) + 1,
        due_day - rng.integers(0, 18, n),
    )
    pays = m.billed & ~m.nonpay
    channels = np.array(["direct_debit", "card", "bank_transfer", "retail", "app"])
    new_pay = pl.DataFrame(
        {
            "payment_id": np.char.add("PAY", np.char.add(tag.replace("-", ""), ids))[pays],
            "customer_id": ids[pays],
            "invoice_id": np.char.add(np.char.add("INV", tag.replace("-", "")), ids)[pays],
            "payment_date": pl.Series(pay_day[pays].astype("datetime64[D]")).cast(pl.Date),
            "amount": np.round(m.amount[pays], 2),
            "channel": rng.choice(channels, n)[pays],
        }
    )
    # Cured customers settle their overdue balance this month.
    m.overdue = s["overdue"].to_numpy().copy()
    cure_pay = m.cure & (m.overdue > 0)
    cure_rows = pl.DataFrame(
        {
            "payment_id": np.char.add("PAYC", np.char.add(tag.replace("-", ""), ids))[cure_pay],
            "customer_id": ids[cure_pay],
            "invoice_id": pl.Series([None] * int(cure_pay.sum()), dtype=pl.Utf8),
            "payment_date": pl.Series(
                (m.m0 + rng.integers(0, m.n_days, n))[cure_pay].astype("datetime64[D]")
            ).cast(pl.Date),
            "amount": np.round(m.overdue[cure_pay], 2),
            "channel": rng.choice(channels, n)[cure_pay],
        }
    )
    pending = pl.concat([w.pending_payments, new_pay, cure_rows], how="vertical_relaxed")
    w.pending_payments = pending.filter(pl.col("payment_date") > m.end)
    return pending.filter(pl.col("payment_date") <= m.end)


def collections(w: World, m: Month) -> pl.DataFrame:
    """Arrears at month end; written-off customers are cut off."""
    s, ids = m.s, m.ids
    unpaid_since = s["unpaid_since"].to_numpy().astype("datetime64[D]")
    overdue = np.where(m.cure, 0.0, m.overdue)
    unpaid_since = np.where(m.cure, np.datetime64("NaT"), unpaid_since)
    # The previous invoice falls due inside this month; non-payers add it to their arrears.
    prev_due = m.m0 + 19
    owes = m.nonpay & m.active & m.postpaid
    overdue = np.where(owes, overdue + m.fee + (m.bb + m.fx), overdue)
    unpaid_since = np.where(
        owes & np.isnat(unpaid_since), np.datetime64(date(1970, 1, 1)) + prev_due, unpaid_since
    )
    dpd = np.where(np.isnat(unpaid_since), 0, _epoch(m.end) - _days(unpaid_since))
    write_off = (dpd > 150) & ~s["written_off"].to_numpy()
    coll = (overdue > 0) & (dpd > 0)
    table = pl.DataFrame(
        {
            "customer_id": ids[coll],
            "snapshot_date": pl.Series([m.end] * int(coll.sum()), dtype=pl.Date),
            "days_past_due": dpd[coll].astype(np.int32),
            "amount_overdue": np.round(overdue[coll], 2),
            "write_off": write_off[coll],
        }
    )
    # Written-off customers are cut off at month end.
    wo_churn = write_off & m.active & ~m.churns
    m.churn_day = np.where(wo_churn, _epoch(m.end), m.churn_day)
    m.churns = m.churns | wo_churn
    m.invol = m.invol | wo_churn
    m.overdue, m.unpaid_since, m.dpd, m.write_off = overdue, unpaid_since, dpd, write_off
    return table


def topups(w: World, m: Month) -> pl.DataFrame:
    """Prepaid top-ups with failures by channel and stress."""
    rng, n, m0, stress = w.rng, m.n, m.m0, m.stress
    prepaid_alive = (~m.postpaid) & (m.alive_days > 0)
    n_top = rng.poisson(np.where(prepaid_alive, 1.2 + m.fee / 12 * m.frac + 0.5 * m.lvl[:, 0], 0))
    top_owner = np.repeat(np.arange(n), n_top)
    if not top_owner.size:
        m.topup_fail = np.zeros(n)
        return pl.DataFrame(
            schema={
                "topup_id": pl.Utf8,
                "customer_id": pl.Utf8,
                "topup_ts": pl.Datetime("us"),
                "amount": pl.Float64,
                "channel": pl.Utf8,
                "status": pl.Utf8,
                "failure_reason": pl.Utf8,
            }
        )
    t_channels = np.array(["retail", "online", "app", "voucher", "bank"])
    ch = rng.choice(t_channels, top_owner.size, p=[0.3, 0.2, 0.25, 0.15, 0.1])
    fail_p = 0.02 + 0.35 * stress[top_owner] + np.where(np.isin(ch, ["online", "bank"]), 0.04, 0.0)
    failed = rng.random(top_owner.size) < fail_p
    first = np.maximum(m.act_day[top_owner], m0)
    last = np.where(m.churns[top_owner], m.churn_day[top_owner] - 1, m0 + m.n_days - 1)
    day = first + (rng.random(top_owner.size) * np.maximum(last - first + 1, 1)).astype(int)
    ts = day.astype("datetime64[D]").astype("datetime64[s]") + rng.integers(
        6 * 3600, 23 * 3600, top_owner.size
    ).astype("timedelta64[s]")
    reasons = rng.choice(
        np.array(["insufficient_funds", "card_declined", "timeout", "invalid_voucher"]),
        top_owner.size,
    )
    table = pl.DataFrame(
        {
            "topup_id": _seq_ids("TOP", m.tag, top_owner.size, 8),
            "customer_id": m.ids[top_owner],
            "topup_ts": pl.Series(ts.astype("datetime64[us]")).cast(pl.Datetime("us")),
            "amount": rng.choice(
                np.array([5.0, 10.0, 20.0, 50.0]), top_owner.size, p=[0.2, 0.4, 0.3, 0.1]
            ),
            "channel": ch,
            "status": np.where(failed, "failed", "success"),
            "failure_reason": pl.Series(np.where(failed, reasons, None).tolist(), dtype=pl.Utf8),
        }
    )
    m.topup_fail = np.bincount(top_owner, weights=failed, minlength=n)
    return table


def tickets(w: World, m: Month) -> pl.DataFrame:
    """Care tickets: dissatisfaction, incidents, bill shock and arrears raise the rate."""
    s, rng, n, m0 = m.s, w.rng, m.n, m.m0
    m.sat = sat = s["satisfaction"].to_numpy()
    incident, bill_shock = m.incident, m.bill_shock
    lam = m.frac * (
        0.05
        + 0.22 * (sat < -1)
        + 0.55 * incident
        + 0.7 * bill_shock
        + 0.2 * m.nonpay
        + 0.1 * (m.topup_fail > 0)
    )
    n_tk = rng.poisson(lam)
    tk_owner = m.tk_owner = np.repeat(np.arange(n), n_tk)
    m.last_ticket = np.full(n, -999)
    if not tk_owner.size:
        return pl.DataFrame(
            schema={
                "ticket_id": pl.Utf8,
                "customer_id": pl.Utf8,
                "opened_ts": pl.Datetime("us"),
                "resolved_ts": pl.Datetime("us"),
                "category": pl.Utf8,
                "severity": pl.Utf8,
                "sla_hours": pl.Float64,
                "repeat_flag": pl.Boolean,
            }
        )
    cause = np.where(
        incident[tk_owner],
        "network",
        np.where(
            bill_shock[tk_owner] > 0,
            "billing",
            rng.choice(np.array(["technical", "service", "other", "billing"]), tk_owner.size),
        ),
    )
    sev = rng.choice(
        np.array(["low", "medium", "high", "critical"]), tk_owner.size, p=[0.4, 0.35, 0.2, 0.05]
    )
    sla = np.vectorize(SLA_HOURS.get)(sev).astype(float)
    first = np.maximum(m.act_day[tk_owner], m0)
    last = np.where(m.churns[tk_owner], m.churn_day[tk_owner] - 1, m0 + m.n_days - 1)
    day = first + (rng.random(tk_owner.size) * np.maximum(last - first + 1, 1)).astype(int)
    opened = day.astype("datetime64[D]").astype("datetime64[s]") + rng.integers(
        8 * 3600, 20 * 3600, tk_owner.size
    ).astype("timedelta64[s]")
    hours = rng.gamma(2.0, sla / 2.6 * np.where(cause == "network", 1.5, 1.0))
    unresolved = rng.random(tk_owner.size) < 0.03
    resolved = opened + (hours * 3600).astype("timedelta64[s]")
    last_tk = s["last_ticket_day"].to_numpy()[tk_owner]
    order_in_month = np.concatenate([np.arange(k) for k in n_tk[n_tk > 0]])
    repeat = (order_in_month > 0) | (day - last_tk <= 30)
    np.maximum.at(m.last_ticket, tk_owner, day)
    return pl.DataFrame(
        {
            "ticket_id": _seq_ids("TK", m.tag, tk_owner.size, 7),
            "customer_id": m.ids[tk_owner],
            "opened_ts": pl.Series(opened.astype("datetime64[us]")).cast(pl.Datetime("us")),
            "resolved_ts": pl.Series(
                np.where(unresolved, np.datetime64("NaT"), resolved).astype("datetime64[us]")
            ).cast(pl.Datetime("us")),
            "category": cause,
            "severity": sev,
            "sla_hours": sla,
            "repeat_flag": repeat,
        }
    )


def events(w: World, m: Month) -> pl.DataFrame:
    """Port-out requests ahead of churn, SIM swaps, suspends, plan changes, AM changes, renewals."""
    s, rng, n, m0, n_days, ids = m.s, w.rng, m.n, m.m0, m.n_days, m.ids
    active, postpaid = m.active, m.postpaid
    ev_frames = []
    portout = m.portout = _days(s["portout_date"].to_numpy().astype("datetime64[D]"))
    po = m.po = (portout >= m0) & (portout <= m0 + n_days - 1)
    ev_frames.append(_events(ids[po], portout[po], "port_out_request", None, rng))
    swap = active & (rng.random(n) < 0.006 + 0.02 * (m.intent > 0))
    ev_frames.append(
        _events(ids[swap], m0 + rng.integers(0, n_days, n)[swap], "sim_swap", None, rng)
    )
    susp = (~postpaid) & active & (m.topup_fail > 0) & (rng.random(n) < 0.3)
    sday = m0 + rng.integers(0, max(n_days - 5, 1), n)
    ev_frames.append(_events(ids[susp], sday[susp], "suspend", None, rng))
    ev_frames.append(
        _events(ids[susp], sday[susp] + rng.integers(1, 5, n)[susp], "resume", None, rng)
    )
    up = active & (m.usage_ratio > 1.6) & (rng.random(n) < 0.25)
    down = active & (m.usage_ratio < 0.3) & (rng.random(n) < 0.08)
    cur_plan = s["current_plan"].to_numpy().copy()
    order = [p[0] for p in pop.PLANS]
    pos = np.array([order.index(p) for p in cur_plan])
    same_type_max = np.where(postpaid, len(order) - 1, 2)
    same_type_min = np.where(postpaid, 3, 0)
    new_pos = np.clip(pos + up.astype(int) - down.astype(int), same_type_min, same_type_max)
    changed = new_pos != pos
    m.cur_plan = cur_plan = np.array(order, dtype=object)[new_pos]
    ev_frames.append(
        _events(
            ids[changed],
            m0 + rng.integers(0, n_days, n)[changed],
            "plan_change",
            cur_plan[changed],
            rng,
        )
    )
    business = np.isin(s["segment"].to_numpy(), ["enterprise", "government"])
    m.amc = amc = business & active & (rng.random(n) < 0.03)
    ev_frames.append(
        _events(ids[amc], m0 + rng.integers(0, n_days, n)[amc], "account_manager_change", None, rng)
    )
    c_end = _days(s["current_contract_end"].to_numpy().astype("datetime64[D]"))
    ending = postpaid & active & (c_end >= m0) & (c_end <= m0 + n_days - 1) & ~m.churns
    renew = ending & (rng.random(n) < 0.55)
    m.new_end = new_end = np.where(renew, c_end + 730, c_end)
    ev_frames.append(
        _events(
            ids[renew],
            c_end[renew],
            "contract_renewal",
            new_end[renew].astype("datetime64[D]").astype(str),
            rng,
        )
    )
    table = (
        pl.concat([f for f in ev_frames if f.height], how="vertical_relaxed")
        if any(f.height for f in ev_frames)
        else _events(ids[:0], np.array([], dtype=int), "sim_swap", None, rng)
    )
    return table.with_columns(
        pl.format(
            "EV{}{}",
            pl.lit(m.tag.replace("-", "")),
            pl.int_range(pl.len()).cast(pl.Utf8).str.zfill(8),
        ).alias("event_id")
    )


def disconnects(w: World, m: Month) -> pl.DataFrame:
    churns, invol, portout = m.churns, m.invol, m.portout
    return pl.DataFrame(
        {
            "customer_id": m.ids[churns],
            "disconnect_date": pl.Series(m.churn_day[churns].astype("datetime64[D]")).cast(pl.Date),
            "disconnect_type": np.where(invol[churns], "involuntary", "voluntary"),
            "reason": np.where(
                invol[churns],
                np.where(m.write_off[churns], "write_off", "non_payment"),
                np.where(m.po[churns] | (portout[churns] > 0), "port_out", "competitor_or_other"),
            ),
        }
    )


CUSTOMER_COLUMNS = (
    "customer_id",
    "segment",
    "region",
    "activation_date",
    "payment_type",
    "plan_id",
    "contract_end",
    "handset_age_months",
    "enterprise_grade",
    "account_manager",
    "marketing_opt_out",
    "do_not_contact",
)


def customers(w: World, m: Month) -> pl.DataFrame:
    """New customers (the whole base in the first month)."""
    m.new_mask = m.s["new_this_month"].to_numpy() | (m.first_month & np.ones(m.n, dtype=bool))
    return m.s.filter(pl.Series(m.new_mask)).select(CUSTOMER_COLUMNS)


def products(w: World, m: Month) -> pl.DataFrame:
    """Rows for products that start (new customers) and re-deliveries with end dates (churners)."""
    s, churns = m.s, m.churns
    frames = []
    end = pl.Series(np.where(churns, m.churn_day, 0).astype("datetime64[D]")).cast(pl.Date)
    base = s.with_columns(
        end.alias("_end"), pl.Series("_new", m.new_mask), pl.Series("_churn", churns)
    )
    fees = pop.plans_frame().select(
        pl.col("plan_id").alias("current_plan"), pl.col("monthly_fee").alias("_fee")
    )
    rows = base.filter(pl.col("_new") | pl.col("_churn")).join(fees, on="current_plan", how="left")
    for product, flag, fee in (
        ("mobile", None, None),
        ("broadband", "has_broadband", pop.BROADBAND_FEE),
        ("fixed", "has_fixed", pop.FIXED_FEE),
    ):
        r = rows if flag is None else rows.filter(pl.col(flag))
        frames.append(
            r.select(
                "customer_id",
                pl.lit(product).alias("product"),
                pl.col("activation_date").alias("start_date"),
                pl.when(pl.col("_churn")).then(pl.col("_end")).otherwise(None).alias("end_date"),
                (pl.lit(fee) if fee is not None else pl.col("_fee"))
                .cast(pl.Float64)
                .alias("monthly_fee"),
            )
        )
    return pl.concat(frames)


def next_state(w: World, m: Month) -> pl.DataFrame:
    """The state carried into next month; returns the month's truth rows."""
    s, rng, n, sat = m.s, w.rng, m.n, m.sat
    churns, invol, active = m.churns, m.invol, m.active
    complaints = np.bincount(m.tk_owner, minlength=n) if m.tk_owner.size else np.zeros(n)
    sat_new = (
        0.92 * sat
        - 0.35 * complaints
        - 0.4 * m.incident * (rng.random(n) < 0.5)
        - 0.3 * m.bill_shock
        + rng.normal(0, 0.15, n)
    )
    still = active & ~churns
    w.state = s.with_columns(
        pl.Series("active", still),
        pl.when(pl.Series(churns))
        .then(pl.Series(m.churn_day.astype("datetime64[D]")).cast(pl.Date))
        .otherwise(pl.col("churn_date"))
        .alias("churn_date"),
        pl.when(pl.Series(m.vol)).then(None).otherwise(pl.col("intent_date")).alias("intent_date"),
        pl.when(pl.Series(churns))
        .then(pl.Series(np.where(invol, "involuntary", "voluntary")))
        .otherwise(pl.col("disconnect_type"))
        .alias("disconnect_type"),
        pl.Series("nonpay", m.nonpay),
        pl.Series("overdue", m.overdue),
        pl.Series("unpaid_since", m.unpaid_since).cast(pl.Date),
        pl.Series("written_off", s["written_off"].to_numpy() | m.write_off),
        pl.Series("recent_tickets", 0.5 * s["recent_tickets"].to_numpy() + complaints),
        pl.Series("bill_shock", m.bill_shock),
        pl.Series("plan_misfit", m.misfit),
        pl.Series("am_change", np.where(m.amc, 1.0, 0.6 * s["am_change"].to_numpy())),
        pl.Series("last_ticket_day", np.maximum(s["last_ticket_day"].to_numpy(), m.last_ticket)),
        pl.Series("current_plan", m.cur_plan.astype(str)),
        pl.Series("current_contract_end", m.new_end.astype("datetime64[D]")).cast(pl.Date),
        pl.Series("satisfaction", np.clip(sat_new, -4, 4)),
    )
    m.serious = m.postpaid & (m.dpd >= 60)
    return pl.DataFrame(
        {
            "customer_id": m.ids,
            "month": pl.Series([m.start] * n, dtype=pl.Date),
            "churn_hazard": w.state["hazard"].to_numpy(),
            "default_propensity": np.where(m.postpaid, m.p_def, 0.0),
            "churned": churns,
            "defaulted": m.serious,
        }
    ).filter(pl.Series(active))


def step(w: World, contacts: pl.DataFrame | None = None) -> MonthTables:
    """Simulate the world's next month; returns its tables (nothing is written here)."""
    m = Month(w)
    activations(w, m)
    disconnect_plan(w, m)
    out = MonthTables(tag=m.tag, usage=usage(w, m))
    for name, table_step in (
        ("invoices", invoices),
        ("payments", payments),
        ("collections", collections),
        ("topups", topups),
        ("tickets", tickets),
        ("events", events),
        ("disconnects", disconnects),
        ("customers", customers),
        ("products", products),
    ):
        out.tables.append((name, table_step(w, m)))
    if contacts is not None and contacts.height:
        out.tables.append(("contacts", contacts))
    out.truth = next_state(w, m)
    w.next_month = pop.next_month(m.start)
    w.month_index += 1
    active, postpaid = m.active, m.postpaid
    n_active = max(int(active.sum()), 1)
    out.stats = {
        "month": m.tag,
        "churn_rate": float(m.churns[active].sum() / n_active),
        "serious_arrears": float(m.serious[active & postpaid].mean())
        if (active & postpaid).any()
        else 0.0,
        "active": n_active,
    }
    return out


def _seq_ids(prefix: str, tag: str, n: int, width: int) -> np.ndarray:
    """Row ids unique within a month's export: PREFIX + YYYYMM + zero-padded sequence."""
    return np.char.add(
        f"{prefix}{tag.replace('-', '')}", np.char.zfill(np.arange(n).astype(str), width)
    )


def _events(
    ids: np.ndarray, days: np.ndarray, kind: str, detail, rng: np.random.Generator
) -> pl.DataFrame:
    k = ids.size
    ts = days.astype("datetime64[D]").astype("datetime64[s]") + rng.integers(
        7 * 3600, 22 * 3600, k
    ).astype("timedelta64[s]")
    return pl.DataFrame(
        {
            "event_id": pl.Series([""] * k, dtype=pl.Utf8),
            "customer_id": pl.Series(ids, dtype=pl.Utf8),
            "event_ts": pl.Series(ts.astype("datetime64[us]")).cast(pl.Datetime("us")),
            "event_type": pl.Series([kind] * k, dtype=pl.Utf8),
            "detail": pl.Series(list(detail) if detail is not None else [None] * k, dtype=pl.Utf8),
        }
    )
