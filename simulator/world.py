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

import simulator.month as month
import simulator.population as pop
import simulator.response as response_model
from configs.schema import SimulatorConfig
from simulator.month import MonthTables, _days, _epoch, _sigmoid
from simulator.response import EFFECT_DAYS

log = logging.getLogger(__name__)

WIND_DOWN_SHARE = 0.3  # leavers whose usage declines before they go


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
            pl.lit(False).alias("intent_fades"),
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
        # Number portability completes within about a working day in the EU (Directive 2009/136/EC,
        # art. 30), so the donor operator sees a port-out request only days before the churn.
        lead = self.rng.integers(1, 6, s.height)
        portout = np.where((intent >= 0) & (self.rng.random(s.height) < 0.55), intent - lead, -1)
        # Only some leavers wind their usage down first (the rest switch at once, e.g. at a
        # contract end or on a competitor's offer): churn should be about as predictable from
        # usage as in operators' own data (out-of-time ROC-AUC about 0.7-0.85, not 0.95).
        fades = self.rng.random(s.height) < WIND_DOWN_SHARE
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
            pl.when(pl.Series(intent >= 0))
            .then(pl.Series(fades))
            .otherwise(pl.col("intent_fades"))
            .alias("intent_fades"),
        )

    # --- treatments ----------------------------------------------------------------------------

    def apply_treatments(self, treatments: pl.DataFrame, month_start: date) -> pl.DataFrame:
        """Treated customers respond (`simulator.response`); returns contact records.

        Each treated contact is reached or not by its channel, then accepted, declined or
        resented by the customer's state now and their latent responsiveness. An accepted offer
        multiplies the hazard by its effect; a resented contact by `BACKFIRE`. The churn intents
        already drawn for this month are thinned (or added to) accordingly. Control rows are
        untouched. The uniforms are drawn per customer of the base, whoever is listed, so a world
        continued with different lists gives each customer the same draws (common random numbers).
        """
        # Uniforms per customer of the base, whoever is listed: common random numbers.
        u_reach = self.rng.random(self.state.height)
        u_response = self.rng.random(self.state.height)
        t = treatments.join(
            self.state.with_row_index("_row").select(
                "_row",
                "customer_id",
                "segment",
                "satisfaction",
                "recent_tickets",
                "bill_shock",
                "plan_misfit",
                "price_sensitivity",
                "handset_age_months",
            ),
            on="customer_id",
            how="left",
        ).join(self.responses, on="customer_id", how="left")
        t = t.with_columns(
            pl.col("segment").fill_null("individual"),
            pl.col("satisfaction", "recent_tickets", "bill_shock", "plan_misfit").fill_null(0.0),
            pl.col("price_sensitivity").fill_null(0.0),
            pl.col("handset_age_months").fill_null(0),
            pl.col("responsiveness").fill_null(0.0),
        )
        row = t["_row"].fill_null(0).to_numpy()
        control = t["control_flag"].to_numpy()
        response, mult = response_model.draw_outcomes(
            t["offer"].to_numpy(),
            t["channel"].to_numpy(),
            response_model.state_arrays(t),
            t["responsiveness"].to_numpy(),
            u_reach[row],
            u_response[row],
        )
        effects = (
            pl.DataFrame({"customer_id": t["customer_id"], "_mult": np.where(control, 1.0, mult)})
            .filter(pl.col("_mult") != 1.0)
            .unique("customer_id", keep="first")
        )
        until = month_start + timedelta(days=EFFECT_DAYS)
        s = self.state.join(effects, on="customer_id", how="left", maintain_order="left")
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

    def step(self, contacts: pl.DataFrame | None = None) -> MonthTables:
        """Simulate the next month and return its tables (`simulator.month`); writes nothing."""
        out = month.step(self, contacts)
        self.monthly_truth.append(out.truth)
        return out


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
