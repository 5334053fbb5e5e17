"""The operator's world stepping month by month: behaviour, hazards, bills, payments, care, events.

Everything is vectorised over the whole population (numpy arrays, one row per customer); the
state between months lives in truth/state/ so a world can be continued and campaigns can act on it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from configs.schema import SimulatorConfig
from features.split import month_end
from simulator import population as pop
from simulator.landing import LandingWriter

log = logging.getLogger(__name__)

SLA_HOURS = {"low": 72.0, "medium": 48.0, "high": 24.0, "critical": 8.0}
# Treatment effect on the monthly churn hazard by hidden response type.
EFFECT = {"persuadable": 0.25, "do_not_disturb": 2.5, "sure_thing": 1.0, "lost_cause": 1.0}
EFFECT_DAYS = 120
ACCEPT = {"persuadable": 0.7, "sure_thing": 0.4, "lost_cause": 0.1, "do_not_disturb": 0.05}


@dataclass
class SimulationSummary:
    """What a simulate/advance call produced."""

    customers: int
    months: int
    first_date: date
    last_date: date
    rows: dict[str, int] = field(default_factory=dict)
    churn_rate: dict[str, float] = field(default_factory=dict)
    serious_arrears_rate: float = 0.0
    files_written: int = 0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _days(d: np.ndarray) -> np.ndarray:
    """datetime64[D] → int days since epoch (NaT → large sentinel)."""
    out = d.astype("datetime64[D]").astype("int64")
    return np.where(np.isnat(d), np.iinfo(np.int64).max // 4, out)


def _epoch(d: date) -> int:
    return (d - date(1970, 1, 1)).days


@dataclass
class World:
    """Population state plus the bookkeeping needed to continue the simulation."""

    cfg: SimulatorConfig
    state: pl.DataFrame
    responses: pl.DataFrame
    next_month: date
    month_index: int
    next_id: int
    intercept: float
    default_intercept: float
    rng: np.random.Generator
    pending_payments: pl.DataFrame
    monthly_truth: list[pl.DataFrame] = field(default_factory=list)

    # --- persistence ------------------------------------------------------------------------

    @staticmethod
    def state_dir(out: Path) -> Path:
        return out / "truth" / "state"

    def save(self, out: Path) -> None:
        sd = self.state_dir(out)
        sd.mkdir(parents=True, exist_ok=True)
        self.state.write_parquet(sd / "customers.parquet")
        self.pending_payments.write_parquet(sd / "pending_payments.parquet")
        meta = {
            "cfg": self.cfg.model_dump(mode="json"),
            "next_month": self.next_month.isoformat(),
            "month_index": self.month_index,
            "next_id": self.next_id,
            "intercept": self.intercept,
            "default_intercept": self.default_intercept,
            "rng": self.rng.bit_generator.state,
        }
        (sd / "meta.json").write_text(json.dumps(meta, default=int))
        truth = out / "truth"
        self.responses.write_parquet(truth / "responses.parquet")
        latent = self.state.select(
            "customer_id",
            "satisfaction",
            "price_sensitivity",
            "financial_stress",
            "latent_risk",
            "usage_level",
        ).join(self.responses, on="customer_id", how="left")
        latent.write_parquet(truth / "customers.parquet")
        monthly_path = truth / "monthly.parquet"
        frames = [pl.read_parquet(monthly_path)] if monthly_path.exists() else []
        frames += self.monthly_truth
        if frames:
            pl.concat(frames, how="vertical_relaxed").write_parquet(monthly_path)
        self.monthly_truth = []

    @classmethod
    def load(cls, out: Path) -> World:
        sd = cls.state_dir(out)
        if not (sd / "meta.json").exists():
            raise ValueError(f"no simulated world at {out}: run `churn simulate` first")
        meta = json.loads((sd / "meta.json").read_text())
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng"]
        return cls(
            cfg=SimulatorConfig.model_validate(meta["cfg"]),
            state=pl.read_parquet(sd / "customers.parquet"),
            responses=pl.read_parquet(out / "truth" / "responses.parquet"),
            next_month=date.fromisoformat(meta["next_month"]),
            month_index=meta["month_index"],
            next_id=meta["next_id"],
            intercept=meta["intercept"],
            default_intercept=meta["default_intercept"],
            rng=rng,
            pending_payments=pl.read_parquet(sd / "pending_payments.parquet"),
        )

    # --- creation ----------------------------------------------------------------------------

    @classmethod
    def create(cls, cfg: SimulatorConfig, seed: int) -> World:
        rng = np.random.default_rng(seed)
        start = cfg.start_date.replace(day=1)
        # The initial base activated over the six years before the start.
        base = pop.new_customers(
            cfg, rng, cfg.customers, 1, start - timedelta(days=6 * 365), 6 * 365
        )
        state = cls._with_dynamics(pl.DataFrame(base))
        world = cls(
            cfg=cfg,
            state=state,
            responses=pop.response_types(state, rng),
            next_month=start,
            month_index=1,
            next_id=cfg.customers + 1,
            intercept=0.0,
            default_intercept=0.0,
            rng=rng,
            pending_payments=_empty_payments(),
        )
        # Serious arrears build up over ~2 months: enter non-payment at about a third of the target.
        world.default_intercept = world._calibrate(
            world._default_logit, cfg.serious_arrears_target / 3, postpaid_only=True
        )
        world._sample_intents(start)
        return world

    @staticmethod
    def _with_dynamics(frame: pl.DataFrame) -> pl.DataFrame:
        n = frame.height
        return frame.with_columns(
            pl.lit(True).alias("active"),
            pl.lit(None, dtype=pl.Date).alias("churn_date"),
            pl.lit(None, dtype=pl.Date).alias("intent_date"),
            pl.lit(None, dtype=pl.Date).alias("portout_date"),
            pl.lit(None, dtype=pl.Utf8).alias("disconnect_type"),
            pl.lit(False).alias("nonpay"),
            pl.lit(0.0).alias("overdue"),
            pl.lit(None, dtype=pl.Date).alias("unpaid_since"),
            pl.lit(False).alias("written_off"),
            pl.lit(1.0).alias("effect_mult"),
            pl.lit(None, dtype=pl.Date).alias("effect_until"),
            pl.lit(0.0).alias("recent_tickets"),
            pl.lit(0.0).alias("bill_shock"),
            pl.lit(0.0).alias("plan_misfit"),
            pl.lit(0.0).alias("am_change"),
            pl.lit(-999, dtype=pl.Int64).alias("last_ticket_day"),
            pl.col("plan_id").alias("current_plan"),
            pl.col("contract_end").alias("current_contract_end"),
            pl.lit(np.zeros(n, dtype=np.float64)).alias("hazard"),
            pl.lit(False).alias("new_this_month"),
        ).with_columns(
            pl.col("activation_date").cast(pl.Date),
            pl.col("contract_end").cast(pl.Date),
            pl.col("current_contract_end").cast(pl.Date),
        )

    # --- hazards -----------------------------------------------------------------------------

    def _churn_logit(self, s: pl.DataFrame, month_start: date, drift: bool = True) -> np.ndarray:
        m0 = _epoch(month_start)
        tenure_years = (m0 - _days(s["activation_date"].to_numpy())) / 365.0
        end = _days(s["current_contract_end"].to_numpy().astype("datetime64[D]"))
        to_end = end - m0
        postpaid = (s["payment_type"] == "postpaid").to_numpy()
        near_end = postpaid & (to_end > -60) & (to_end < 75)
        locked_in = postpaid & (to_end >= 75)
        competitor = 1.0
        if drift and self.cfg.drift_month is not None and self.month_index >= self.cfg.drift_month:
            competitor = self.cfg.drift_strength
        handset = s["handset_age_months"].to_numpy() + tenure_years * 12
        return (
            -0.55 * s["satisfaction"].to_numpy()
            + 1.4 * s["price_sensitivity"].to_numpy() * competitor
            + 1.2 * s["bill_shock"].to_numpy()
            + 0.45 * np.minimum(s["recent_tickets"].to_numpy(), 4)
            + 1.1 * near_end
            - 0.9 * locked_in
            + 0.012 * np.minimum(handset, 60)
            + 0.6 * s["am_change"].to_numpy()
            + 0.45 * s["latent_risk"].to_numpy()
            + 0.5 * (~postpaid)
            + 0.4 * s["plan_misfit"].to_numpy()
            - 0.35 * np.sqrt(np.clip(tenure_years, 0, None))
        )

    def _default_logit(self, s: pl.DataFrame, month_start: date) -> np.ndarray:
        del month_start
        return (
            5.0 * s["financial_stress"].to_numpy()
            + 0.4 * s["bill_shock"].to_numpy()
            - 0.2 * s["satisfaction"].to_numpy()
        )

    def _calibrate(self, logit_fn, target: float, postpaid_only: bool = False) -> float:
        s = self.state
        if postpaid_only:
            s = s.filter(pl.col("payment_type") == "postpaid")
        return _fit_intercept(logit_fn(s, self.next_month), target)

    def _sample_intents(self, nm: date) -> None:
        """Decide the voluntary churners of month `nm` ahead, so their usage declines beforehand.

        The intercept is re-fitted each month on the hazard without the drift term so the base
        churn stays at its target while a competitor launch (drift) still raises it.
        """
        s = self.state
        days_next = (pop.next_month(nm) - nm).days
        live = s.filter(pl.col("active"))
        z0 = self._churn_logit(live, nm, drift=False)
        self.intercept = _fit_intercept(z0, self.cfg.monthly_churn_target * 0.85)
        h = _sigmoid(self._churn_logit(s, nm) + self.intercept)
        eff_until = _days(s["effect_until"].to_numpy().astype("datetime64[D]"))
        effect = np.where(eff_until >= _epoch(nm), s["effect_mult"].to_numpy(), 1.0)
        h = np.clip(h * effect, 0.0, 0.95)
        eligible = s["active"].to_numpy() & s["intent_date"].is_null().to_numpy()
        draw = self.rng.random(s.height) < h
        offset = self.rng.integers(0, days_next, s.height)
        intent = np.where(eligible & draw, _epoch(nm) + offset, -1)
        lead = self.rng.integers(2, 21, s.height)
        portout = np.where((intent >= 0) & (self.rng.random(s.height) < 0.55), intent - lead, -1)
        to_date = lambda a: pl.Series(np.where(a >= 0, a, 0).astype("datetime64[D]")).cast(pl.Date)  # noqa: E731
        self.state = s.with_columns(
            pl.Series("hazard", h),
            pl.when(pl.Series(intent >= 0))
            .then(to_date(intent))
            .otherwise(pl.col("intent_date"))
            .alias("intent_date"),
            pl.when(pl.Series(portout >= 0))
            .then(to_date(portout))
            .otherwise(pl.col("portout_date"))
            .alias("portout_date"),
        )

    # --- treatments ----------------------------------------------------------------------------

    def apply_treatments(self, treatments: pl.DataFrame, month_start: date) -> pl.DataFrame:
        """Treated customers react by their hidden type; returns contact records (control untouched)."""
        t = treatments.join(self.responses, on="customer_id", how="left")
        offer_type = np.full(t.height, "sure_thing", dtype=object)
        for offer in t["offer"].unique().to_list():
            col = f"response_{offer}"
            if col in t.columns:
                mask = (t["offer"] == offer).to_numpy()
                offer_type[mask] = t[col].to_numpy()[mask]
        control = t["control_flag"].to_numpy()
        mult = np.array([EFFECT.get(k, 1.0) for k in offer_type])
        accept_p = np.array([ACCEPT.get(k, 0.2) for k in offer_type])
        u = self.rng.random(t.height)
        response = np.where(
            u < accept_p, "accepted", np.where(u < accept_p + 0.35, "declined", "no_answer")
        )
        effects = pl.DataFrame(
            {
                "customer_id": t["customer_id"],
                "_mult": np.where(control, 1.0, mult),
            }
        ).filter(pl.col("_mult") != 1.0)
        until = month_start + timedelta(days=EFFECT_DAYS)
        s = self.state.join(effects, on="customer_id", how="left")
        mult_s = s["_mult"].fill_null(1.0).to_numpy()
        # Intents already drawn for this month are thinned (or added to) by the treatment.
        has_intent = s["intent_date"].is_not_null().to_numpy()
        u2 = self.rng.random(s.height)
        cancel = has_intent & (mult_s < 1.0) & (u2 > mult_s)
        hz = s["hazard"].to_numpy()
        add = (~has_intent) & (mult_s > 1.0) & s["active"].to_numpy() & (u2 < hz * (mult_s - 1.0))
        days = (pop.next_month(month_start) - month_start).days
        add_date = _epoch(month_start) + self.rng.integers(0, days, s.height)
        self.state = s.with_columns(
            pl.when(pl.Series(cancel))
            .then(None)
            .when(pl.Series(add))
            .then(pl.Series(add_date.astype("datetime64[D]")).cast(pl.Date))
            .otherwise(pl.col("intent_date"))
            .alias("intent_date"),
            pl.when(pl.Series(cancel))
            .then(None)
            .otherwise(pl.col("portout_date"))
            .alias("portout_date"),
            pl.when(pl.col("_mult").is_not_null())
            .then(pl.col("_mult"))
            .otherwise(pl.col("effect_mult"))
            .alias("effect_mult"),
            pl.when(pl.col("_mult").is_not_null())
            .then(pl.lit(until))
            .otherwise(pl.col("effect_until"))
            .alias("effect_until"),
        ).drop("_mult")
        return pl.DataFrame(
            {
                "contact_id": [
                    f"{lid}-{cid}" for lid, cid in zip(t["list_id"], t["customer_id"], strict=True)
                ],
                "list_id": t["list_id"],
                "customer_id": t["customer_id"],
                "offer": t["offer"],
                "channel": t["channel"],
                "contact_date": t["contact_date"].cast(pl.Date),
                "control_flag": t["control_flag"],
                "response": pl.Series(np.where(control, None, response).tolist(), dtype=pl.Utf8),
            }
        )

    # --- one month ---------------------------------------------------------------------------

    def step(self, writer: LandingWriter, contacts: pl.DataFrame | None = None) -> dict[str, float]:
        cfg, rng = self.cfg, self.rng
        m_start = self.next_month
        m_end = month_end(m_start)
        n_days = (m_end - m_start).days + 1
        m0 = _epoch(m_start)
        tag = m_start.strftime("%Y-%m")

        # New activations keep the base roughly growing.
        first_month = self.month_index == 1
        active_n = int(self.state["active"].sum())
        n_new = 0 if first_month else int(rng.poisson(active_n * cfg.monthly_churn_target * 1.08))
        if n_new:
            fresh = pl.DataFrame(pop.new_customers(cfg, rng, n_new, self.next_id, m_start, n_days))
            fresh = self._with_dynamics(fresh).with_columns(pl.lit(True).alias("new_this_month"))
            self.next_id += n_new
            self.responses = pl.concat([self.responses, pop.response_types(fresh, rng)])
            self.state = pl.concat(
                [self.state.with_columns(pl.lit(False).alias("new_this_month")), fresh],
                how="vertical_relaxed",
            )
        else:
            self.state = self.state.with_columns(pl.lit(False).alias("new_this_month"))
        # Next month's churners decide now (from last month's experience), so that their usage
        # declines and their port-out requests arrive before they leave.
        self._sample_intents(pop.next_month(m_start))
        s = self.state
        n = s.height
        active = s["active"].to_numpy()

        # Involuntary disconnects: long arrears; voluntary: last month's intents.
        dpd_start = np.where(
            s["unpaid_since"].is_null().to_numpy(),
            0,
            m0 - _days(s["unpaid_since"].to_numpy().astype("datetime64[D]")),
        )
        invol = active & s["nonpay"].to_numpy() & (dpd_start >= 90) & (rng.random(n) < 0.6)
        invol_day = m0 + rng.integers(0, n_days, n)
        intent = _days(s["intent_date"].to_numpy().astype("datetime64[D]"))
        vol = active & (intent >= m0) & (intent <= m0 + n_days - 1)
        churn_day = np.where(vol, intent, np.where(invol, invol_day, -1))
        churns = churn_day >= 0
        act_day = _days(s["activation_date"].to_numpy().astype("datetime64[D]"))

        # Daily usage for everyone alive on any day of the month.
        day_idx = m0 + np.arange(n_days)
        alive = (
            active[:, None]
            & (act_day[:, None] <= day_idx[None, :])
            & ~(churns[:, None] & (day_idx[None, :] >= churn_day[:, None]))
        )
        upcoming = np.where(
            intent > 0, intent, np.where(churns, churn_day, np.iinfo(np.int64).max // 8)
        )
        until = (upcoming[:, None] - day_idx[None, :]).astype(np.float32)
        decline = np.clip(until / 50.0, 0.2, 1.0) ** 0.8
        weekday = (day_idx + 3) % 7  # 1970-01-01 was a Thursday
        weekend = (weekday >= 5).astype(np.float32)
        season = 1.0 + 0.06 * np.sin(2 * np.pi * (m_start.month - 3) / 12)
        lvl = s["usage_level"].to_numpy().astype(np.float32)[:, None]
        drift_boost, voice_shift = 1.0, 1.0
        if cfg.drift_month is not None and self.month_index >= cfg.drift_month:
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
            offnet_base
            + rng.normal(0, 0.05, (n, n_days)).astype(np.float32)
            + 0.15 * (1 - decline),
            0,
            1,
        )
        regions = s["region"].to_numpy()
        incident_regions = [r for r in pop.REGIONS if rng.random() < 0.08]
        incident = np.isin(regions, incident_regions)
        inc_start = rng.integers(0, max(n_days - 7, 1))
        inc_days = np.zeros(n_days, dtype=bool)
        inc_days[inc_start : inc_start + 7] = True
        dropped = np.clip(
            rng.beta(1.2, 90, (n, n_days))
            + (incident[:, None] & inc_days[None, :]) * rng.uniform(0.03, 0.09),
            0,
            1,
        ).astype(np.float32)
        writer.write_usage(
            m_start, s["customer_id"].to_numpy(), alive, voice, sms, data, roaming, offnet, dropped
        )

        # Monthly totals, plan fit and bills.
        alive_days = alive.sum(axis=1)
        frac = alive_days / n_days
        plans = pop.plans_frame()
        plan_row = s.select("current_plan").join(
            plans.rename({"plan_id": "current_plan"}),
            on="current_plan",
            how="left",
            maintain_order="left",
        )
        fee = plan_row["monthly_fee"].to_numpy()
        allow_data = plan_row["data_mb"].to_numpy()
        allow_voice = plan_row["voice_min"].to_numpy()
        data_tot = (data * alive).sum(axis=1)
        voice_tot = (voice * alive).sum(axis=1)
        over_data = np.maximum(0.0, data_tot - allow_data * frac) * 0.004
        over_voice = np.maximum(0.0, voice_tot - allow_voice * frac) * 0.05
        overage = over_data + over_voice
        bb = s["has_broadband"].to_numpy() * pop.BROADBAND_FEE
        fx = s["has_fixed"].to_numpy() * pop.FIXED_FEE
        usage_ratio = np.where(
            allow_data > 0, data_tot / np.maximum(allow_data * np.maximum(frac, 1e-6), 1), 1
        )
        misfit = np.clip(np.abs(np.log(np.maximum(usage_ratio, 0.05))) - 0.5, 0, 3)
        billed = (alive_days > 0) & (s["payment_type"] == "postpaid").to_numpy()
        mobile_amt = fee * frac
        amount = mobile_amt + (bb + fx) * frac + overage
        bill_shock = np.where(billed, np.clip(overage / np.maximum(fee, 1) - 0.3, 0, 3), 0)
        issue = pop.next_month(m_start)
        ids = s["customer_id"].to_numpy()
        inv = pl.DataFrame(
            {
                "invoice_id": np.char.add(np.char.add("INV", tag.replace("-", "")), ids)[billed],
                "customer_id": ids[billed],
                "period_start": pl.Series([m_start] * int(billed.sum()), dtype=pl.Date),
                "issue_date": pl.Series([issue] * int(billed.sum()), dtype=pl.Date),
                "due_date": pl.Series(
                    [issue + timedelta(days=20)] * int(billed.sum()), dtype=pl.Date
                ),
                "amount": np.round(amount[billed], 2),
                "mobile_amount": np.round(mobile_amt[billed] + overage[billed], 2),
                "broadband_amount": np.round((bb * frac)[billed], 2),
                "fixed_amount": np.round((fx * frac)[billed], 2),
                "overage_amount": np.round(overage[billed], 2),
            }
        )
        writer.write("invoices", tag, inv)

        # Non-payment: some postpaid customers stop paying; a few cure.
        postpaid = (s["payment_type"] == "postpaid").to_numpy()
        p_def = _sigmoid(self._default_logit(s, m_start) + self.default_intercept)
        nonpay = s["nonpay"].to_numpy().copy()
        start_nonpay = active & postpaid & ~nonpay & (rng.random(n) < p_def)
        cure = nonpay & (rng.random(n) < 0.15)
        nonpay = (nonpay | start_nonpay) & ~cure
        stress = s["financial_stress"].to_numpy()
        due_day = _epoch(issue) + 20
        late = rng.random(n) < np.clip(0.05 + 1.2 * stress, 0, 0.9)
        pay_day = np.where(
            late,
            due_day + rng.exponential(6 + 30 * stress).astype(int) + 1,
            due_day - rng.integers(0, 18, n),
        )
        pays = billed & ~nonpay
        channels = np.array(["direct_debit", "card", "bank_transfer", "retail", "app"])
        new_pay = pl.DataFrame(
            {
                "payment_id": np.char.add("PAY", np.char.add(tag.replace("-", ""), ids))[pays],
                "customer_id": ids[pays],
                "invoice_id": np.char.add(np.char.add("INV", tag.replace("-", "")), ids)[pays],
                "payment_date": pl.Series(pay_day[pays].astype("datetime64[D]")).cast(pl.Date),
                "amount": np.round(amount[pays], 2),
                "channel": rng.choice(channels, n)[pays],
            }
        )
        # Cured customers settle their overdue balance this month.
        overdue = s["overdue"].to_numpy().copy()
        cure_pay = cure & (overdue > 0)
        cure_rows = pl.DataFrame(
            {
                "payment_id": np.char.add("PAYC", np.char.add(tag.replace("-", ""), ids))[cure_pay],
                "customer_id": ids[cure_pay],
                "invoice_id": pl.Series([None] * int(cure_pay.sum()), dtype=pl.Utf8),
                "payment_date": pl.Series(
                    (m0 + rng.integers(0, n_days, n))[cure_pay].astype("datetime64[D]")
                ).cast(pl.Date),
                "amount": np.round(overdue[cure_pay], 2),
                "channel": rng.choice(channels, n)[cure_pay],
            }
        )
        pending = pl.concat([self.pending_payments, new_pay, cure_rows], how="vertical_relaxed")
        due_now = pending.filter(pl.col("payment_date") <= m_end)
        writer.write("payments", tag, due_now)
        self.pending_payments = pending.filter(pl.col("payment_date") > m_end)

        unpaid_since = s["unpaid_since"].to_numpy().astype("datetime64[D]")
        overdue = np.where(cure, 0.0, overdue)
        unpaid_since = np.where(cure, np.datetime64("NaT"), unpaid_since)
        # The previous invoice falls due inside this month; non-payers add it to their arrears.
        prev_due = m0 + 19
        owes = nonpay & active & postpaid
        overdue = np.where(owes, overdue + fee + (bb + fx), overdue)
        unpaid_since = np.where(
            owes & np.isnat(unpaid_since), np.datetime64(date(1970, 1, 1)) + prev_due, unpaid_since
        )
        dpd = np.where(np.isnat(unpaid_since), 0, _epoch(m_end) - _days(unpaid_since))
        write_off = (dpd > 150) & ~s["written_off"].to_numpy()
        coll = (overdue > 0) & (dpd > 0)
        writer.write(
            "collections",
            tag,
            pl.DataFrame(
                {
                    "customer_id": ids[coll],
                    "snapshot_date": pl.Series([m_end] * int(coll.sum()), dtype=pl.Date),
                    "days_past_due": dpd[coll].astype(np.int32),
                    "amount_overdue": np.round(overdue[coll], 2),
                    "write_off": write_off[coll],
                }
            ),
        )
        # Written-off customers are cut off at month end.
        wo_churn = write_off & active & ~churns
        churn_day = np.where(wo_churn, _epoch(m_end), churn_day)
        churns = churns | wo_churn
        invol = invol | wo_churn

        # Prepaid top-ups with failures by channel and stress.
        prepaid_alive = (~postpaid) & (alive_days > 0)
        n_top = rng.poisson(np.where(prepaid_alive, 1.2 + fee / 12 * frac + 0.5 * lvl[:, 0], 0))
        top_owner = np.repeat(np.arange(n), n_top)
        if top_owner.size:
            t_channels = np.array(["retail", "online", "app", "voucher", "bank"])
            ch = rng.choice(t_channels, top_owner.size, p=[0.3, 0.2, 0.25, 0.15, 0.1])
            fail_p = (
                0.02
                + 0.35 * stress[top_owner]
                + np.where(np.isin(ch, ["online", "bank"]), 0.04, 0.0)
            )
            failed = rng.random(top_owner.size) < fail_p
            first = np.maximum(act_day[top_owner], m0)
            last = np.where(churns[top_owner], churn_day[top_owner] - 1, m0 + n_days - 1)
            day = first + (rng.random(top_owner.size) * np.maximum(last - first + 1, 1)).astype(int)
            ts = day.astype("datetime64[D]").astype("datetime64[s]") + rng.integers(
                6 * 3600, 23 * 3600, top_owner.size
            ).astype("timedelta64[s]")
            reasons = rng.choice(
                np.array(["insufficient_funds", "card_declined", "timeout", "invalid_voucher"]),
                top_owner.size,
            )
            tops = pl.DataFrame(
                {
                    "topup_id": _seq_ids("TOP", tag, top_owner.size, 8),
                    "customer_id": ids[top_owner],
                    "topup_ts": pl.Series(ts.astype("datetime64[us]")).cast(pl.Datetime("us")),
                    "amount": rng.choice(
                        np.array([5.0, 10.0, 20.0, 50.0]), top_owner.size, p=[0.2, 0.4, 0.3, 0.1]
                    ),
                    "channel": ch,
                    "status": np.where(failed, "failed", "success"),
                    "failure_reason": pl.Series(
                        np.where(failed, reasons, None).tolist(), dtype=pl.Utf8
                    ),
                }
            )
        else:
            tops = pl.DataFrame(
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
        writer.write("topups", tag, tops)
        topup_fail = (
            np.bincount(top_owner, weights=failed if top_owner.size else None, minlength=n)
            if top_owner.size
            else np.zeros(n)
        )

        # Care tickets: dissatisfaction, incidents, bill shock and arrears raise the rate.
        sat = s["satisfaction"].to_numpy()
        lam = frac * (
            0.05
            + 0.22 * (sat < -1)
            + 0.55 * incident
            + 0.7 * bill_shock
            + 0.2 * nonpay
            + 0.1 * (topup_fail > 0)
        )
        n_tk = rng.poisson(lam)
        tk_owner = np.repeat(np.arange(n), n_tk)
        if tk_owner.size:
            cause = np.where(
                incident[tk_owner],
                "network",
                np.where(
                    bill_shock[tk_owner] > 0,
                    "billing",
                    rng.choice(
                        np.array(["technical", "service", "other", "billing"]), tk_owner.size
                    ),
                ),
            )
            sev = rng.choice(
                np.array(["low", "medium", "high", "critical"]),
                tk_owner.size,
                p=[0.4, 0.35, 0.2, 0.05],
            )
            sla = np.vectorize(SLA_HOURS.get)(sev).astype(float)
            first = np.maximum(act_day[tk_owner], m0)
            last = np.where(churns[tk_owner], churn_day[tk_owner] - 1, m0 + n_days - 1)
            day = first + (rng.random(tk_owner.size) * np.maximum(last - first + 1, 1)).astype(int)
            opened = day.astype("datetime64[D]").astype("datetime64[s]") + rng.integers(
                8 * 3600, 20 * 3600, tk_owner.size
            ).astype("timedelta64[s]")
            hours = rng.gamma(2.0, sla / 2.6 * np.where(cause == "network", 1.5, 1.0))
            unresolved = rng.random(tk_owner.size) < 0.03
            resolved = opened + (hours * 3600).astype("timedelta64[s]")
            last_tk = s["last_ticket_day"].to_numpy()[tk_owner]
            order_in_month = (
                np.concatenate([np.arange(k) for k in n_tk[n_tk > 0]])
                if tk_owner.size
                else np.array([])
            )
            repeat = (order_in_month > 0) | (day - last_tk <= 30)
            tickets = pl.DataFrame(
                {
                    "ticket_id": _seq_ids("TK", tag, tk_owner.size, 7),
                    "customer_id": ids[tk_owner],
                    "opened_ts": pl.Series(opened.astype("datetime64[us]")).cast(pl.Datetime("us")),
                    "resolved_ts": pl.Series(
                        np.where(unresolved, np.datetime64("NaT"), resolved).astype(
                            "datetime64[us]"
                        )
                    ).cast(pl.Datetime("us")),
                    "category": cause,
                    "severity": sev,
                    "sla_hours": sla,
                    "repeat_flag": repeat,
                }
            )
            last_ticket = np.full(n, -999)
            np.maximum.at(last_ticket, tk_owner, day)
        else:
            tickets = pl.DataFrame(
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
            last_ticket = np.full(n, -999)
        writer.write("tickets", tag, tickets)

        # Events: port-out requests ahead of churn, SIM swaps, suspends, plan changes, AM changes, renewals.
        ev_frames = []
        portout = _days(s["portout_date"].to_numpy().astype("datetime64[D]"))
        po = (portout >= m0) & (portout <= m0 + n_days - 1)
        ev_frames.append(_events(ids[po], portout[po], "port_out_request", None, rng))
        swap = active & (rng.random(n) < 0.006 + 0.02 * (intent > 0))
        ev_frames.append(
            _events(ids[swap], m0 + rng.integers(0, n_days, n)[swap], "sim_swap", None, rng)
        )
        susp = (~postpaid) & active & (topup_fail > 0) & (rng.random(n) < 0.3)
        sday = m0 + rng.integers(0, max(n_days - 5, 1), n)
        ev_frames.append(_events(ids[susp], sday[susp], "suspend", None, rng))
        ev_frames.append(
            _events(ids[susp], sday[susp] + rng.integers(1, 5, n)[susp], "resume", None, rng)
        )
        up = active & (usage_ratio > 1.6) & (rng.random(n) < 0.25)
        down = active & (usage_ratio < 0.3) & (rng.random(n) < 0.08)
        cur_plan = s["current_plan"].to_numpy().copy()
        order = [p[0] for p in pop.PLANS]
        pos = np.array([order.index(p) for p in cur_plan])
        same_type_max = np.where(postpaid, len(order) - 1, 2)
        same_type_min = np.where(postpaid, 3, 0)
        new_pos = np.clip(pos + up.astype(int) - down.astype(int), same_type_min, same_type_max)
        changed = new_pos != pos
        cur_plan = np.array(order, dtype=object)[new_pos]
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
        amc = business & active & (rng.random(n) < 0.03)
        ev_frames.append(
            _events(
                ids[amc], m0 + rng.integers(0, n_days, n)[amc], "account_manager_change", None, rng
            )
        )
        c_end = _days(s["current_contract_end"].to_numpy().astype("datetime64[D]"))
        ending = postpaid & active & (c_end >= m0) & (c_end <= m0 + n_days - 1) & ~churns
        renew = ending & (rng.random(n) < 0.55)
        new_end = np.where(renew, c_end + 730, c_end)
        ev_frames.append(
            _events(
                ids[renew],
                c_end[renew],
                "contract_renewal",
                new_end[renew].astype("datetime64[D]").astype(str),
                rng,
            )
        )
        events = (
            pl.concat([f for f in ev_frames if f.height], how="vertical_relaxed")
            if any(f.height for f in ev_frames)
            else _events(ids[:0], np.array([], dtype=int), "sim_swap", None, rng)
        )
        writer.write(
            "events",
            tag,
            events.with_columns(
                pl.format(
                    "EV{}{}",
                    pl.lit(tag.replace("-", "")),
                    pl.int_range(pl.len()).cast(pl.Utf8).str.zfill(8),
                ).alias("event_id")
            ),
        )

        # Disconnects, customers and products files.
        dis = pl.DataFrame(
            {
                "customer_id": ids[churns],
                "disconnect_date": pl.Series(churn_day[churns].astype("datetime64[D]")).cast(
                    pl.Date
                ),
                "disconnect_type": np.where(invol[churns], "involuntary", "voluntary"),
                "reason": np.where(
                    invol[churns],
                    np.where(write_off[churns], "write_off", "non_payment"),
                    np.where(po[churns] | (portout[churns] > 0), "port_out", "competitor_or_other"),
                ),
            }
        )
        writer.write("disconnects", tag, dis)
        new_mask = s["new_this_month"].to_numpy() | (first_month & np.ones(n, dtype=bool))
        cust_cols = [
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
        ]
        writer.write("customers", tag, s.filter(pl.Series(new_mask)).select(cust_cols))
        writer.write("products", tag, _products(s, new_mask, churns, churn_day))
        if contacts is not None and contacts.height:
            writer.write("contacts", tag, contacts)

        # State for next month.
        complaints = np.bincount(tk_owner, minlength=n) if tk_owner.size else np.zeros(n)
        sat_new = (
            0.92 * sat
            - 0.35 * complaints
            - 0.4 * incident * (rng.random(n) < 0.5)
            - 0.3 * bill_shock
            + rng.normal(0, 0.15, n)
        )
        still = active & ~churns
        self.state = s.with_columns(
            pl.Series("active", still),
            pl.when(pl.Series(churns))
            .then(pl.Series(churn_day.astype("datetime64[D]")).cast(pl.Date))
            .otherwise(pl.col("churn_date"))
            .alias("churn_date"),
            pl.when(pl.Series(vol))
            .then(None)
            .otherwise(pl.col("intent_date"))
            .alias("intent_date"),
            pl.when(pl.Series(churns))
            .then(pl.Series(np.where(invol, "involuntary", "voluntary")))
            .otherwise(pl.col("disconnect_type"))
            .alias("disconnect_type"),
            pl.Series("nonpay", nonpay),
            pl.Series("overdue", overdue),
            pl.Series("unpaid_since", unpaid_since).cast(pl.Date),
            pl.Series("written_off", s["written_off"].to_numpy() | write_off),
            pl.Series("recent_tickets", 0.5 * s["recent_tickets"].to_numpy() + complaints),
            pl.Series("bill_shock", bill_shock),
            pl.Series("plan_misfit", misfit),
            pl.Series("am_change", np.where(amc, 1.0, 0.6 * s["am_change"].to_numpy())),
            pl.Series("last_ticket_day", np.maximum(s["last_ticket_day"].to_numpy(), last_ticket)),
            pl.Series("current_plan", cur_plan.astype(str)),
            pl.Series("current_contract_end", new_end.astype("datetime64[D]")).cast(pl.Date),
            pl.Series("satisfaction", np.clip(sat_new, -4, 4)),
        )
        serious = postpaid & (dpd >= 60)
        self.monthly_truth.append(
            pl.DataFrame(
                {
                    "customer_id": ids,
                    "month": pl.Series([m_start] * n, dtype=pl.Date),
                    "churn_hazard": self.state["hazard"].to_numpy(),
                    "default_propensity": np.where(postpaid, p_def, 0.0),
                    "churned": churns,
                    "defaulted": serious,
                }
            ).filter(pl.Series(active))
        )
        self.next_month = pop.next_month(m_start)
        self.month_index += 1
        n_active = max(int(active.sum()), 1)
        return {
            "month": tag,
            "churn_rate": float(churns[active].sum() / n_active),
            "serious_arrears": float(serious[active & postpaid].mean())
            if (active & postpaid).any()
            else 0.0,
            "active": n_active,
        }


def _seq_ids(prefix: str, tag: str, n: int, width: int) -> np.ndarray:
    """Row ids unique within a month's export: PREFIX + YYYYMM + zero-padded sequence."""
    return np.char.add(
        f"{prefix}{tag.replace('-', '')}", np.char.zfill(np.arange(n).astype(str), width)
    )


def _fit_intercept(z: np.ndarray, target: float) -> float:
    """Intercept b such that mean(sigmoid(z + b)) equals the target rate (bisection)."""
    lo, hi = -20.0, 10.0
    for _ in range(50):
        mid = (lo + hi) / 2
        if _sigmoid(z + mid).mean() > target:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


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


def _products(
    s: pl.DataFrame, new_mask: np.ndarray, churns: np.ndarray, churn_day: np.ndarray
) -> pl.DataFrame:
    """Rows for products that start (new customers) and re-deliveries with end dates (churners)."""
    frames = []
    end = pl.Series(np.where(churns, churn_day, 0).astype("datetime64[D]")).cast(pl.Date)
    base = s.with_columns(
        end.alias("_end"), pl.Series("_new", new_mask), pl.Series("_churn", churns)
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


def _empty_payments() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "payment_id": pl.Utf8,
            "customer_id": pl.Utf8,
            "invoice_id": pl.Utf8,
            "payment_date": pl.Date,
            "amount": pl.Float64,
            "channel": pl.Utf8,
        }
    )
