"""Build, store and export retention target lists (DuckDB + Parquet/CSV/XLSX + manifest)."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

import duckdb
import polars as pl

from configs.contracts import CHURN_MODEL, CREDIT_MODEL, UPLIFT_MODEL
from configs.schema import Settings
from features.columns import feature_columns
from models.calibration_watch import apply_shift
from models.takeup import PRIOR, fit_takeup
from pipelines.stages.calibration_watch import watch
from pipelines.stages.features import load_snapshots
from pipelines.stages.uplift import with_uplift
from pipelines.store.config import config_hash
from pipelines.store.errors import InputError
from pipelines.store.warehouse import LIST_DDL, connect
from pipelines.store.workdir import (
    OWNER_ONLY,
    Workdir,
    atomic_folder,
    atomic_write_text,
    audit,
    mask_salt,
)
from retention.evaluation import realisation, saves_standard_error
from retention.export_safety import neutralise, safe_name
from retention.handoff import contact_rows, control_rows
from retention.identity import list_identity, takeup_identity
from retention.masking import mask_ids
from retention.policy import channel_factor, decide, exclusions, learning_list
from retention.power import campaign_size, detectable_effect
from retention.takeup import factor_for, takeup_factors

log = logging.getLogger(__name__)


@dataclass
class ListReport:
    list_id: str
    as_of: date
    rows: int
    treated: int
    control: int
    budget_used: float
    expected_saves: float
    expected_profit: float
    paths: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    warning: str | None = None  # one line when the campaign cannot learn what is asked
    held: str | None = None  # why the list is held for review (nothing exported to marketing)


def load_candidates(con, as_of: date, period_days: int = 90) -> pl.DataFrame:
    """Scores at as_of with snapshot meta, opt-outs and contact history up to as_of.

    `contacts_in_period` counts contacts in the `period_days` before as_of (the contact cap's
    period, `retention.contact_policy.period_days`).
    """
    try:
        # Snapshots built before the arrears feature existed lack it: nobody counts as behind.
        known = {
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'feat' AND table_name = 'customer_snapshot'"
            ).fetchall()
        }
        arrears = (
            "f.days_past_due_last"
            if "days_past_due_last" in known
            else "CAST(NULL AS INTEGER) AS days_past_due_last"
        )
        frame = con.sql(
            """
            WITH hist AS (
                SELECT customer_id, max(contact_date) AS last_contact_date,
                       count(*) FILTER (WHERE contact_date > CAST($as_of AS DATE) - $period)
                           AS contacts_in_period
                FROM raw.contacts WHERE NOT control_flag AND contact_date <= $as_of GROUP BY 1
            )
            SELECT s.customer_id, s.churn_probability, s.risk_decile, s.credit_grade, s.credit_pd,
                   s.reason_1, s.reason_2, s.reason_3, s.reason_group_1, s.reason_group_2,
                   s.reason_group_3, s.churn_model_version, s.credit_model_version,
                   f.segment, f.value_tier, f.lifecycle_stage, f.monthly_spend, {arrears},
                   coalesce(c.marketing_opt_out, false) AS marketing_opt_out,
                   coalesce(c.do_not_contact, false) AS do_not_contact,
                   h.last_contact_date, coalesce(h.contacts_in_period, 0) AS contacts_in_period
            FROM scores.customer_scores s
            JOIN feat.customer_snapshot f USING (customer_id, as_of)
            LEFT JOIN raw.customers c USING (customer_id)
            LEFT JOIN hist h USING (customer_id)
            WHERE s.as_of = $as_of
            ORDER BY s.customer_id
            """.replace("{arrears}", arrears),
            params={"as_of": as_of, "period": period_days},
        ).pl()
    except duckdb.CatalogException as exc:  # missing tables: say which step to run
        table = re.search(r'Table with name "?([\w.]+)"? does not exist', str(exc))
        missing = f" (no table {table.group(1)})" if table else ""
        raise InputError(
            f"no scores to target for {as_of}: run `churn score --as-of {as_of}`{missing}"
        ) from None
    if frame.is_empty():
        raise InputError(f"no scores for {as_of}: run `churn score --as-of {as_of}` first")
    return frame


def offer_realisation(con, settings: Settings, as_of: date) -> dict[str, float]:
    """Per offer: evaluated incremental saves over predicted saves of earlier lists, shrunk toward
    1 by the evaluation's own precision (`retention.evaluation.realisation`)."""
    cfg = settings.retention.realisation
    if not cfg.enabled:
        return {}
    try:
        rows = con.sql(
            """
            WITH evaluated AS (
                SELECT r.list_id, r.grp AS offer, r.incremental_saves, r.treated, r.control,
                       r.treated_churn_rate, r.control_churn_rate
                FROM eval.campaign_results r
                JOIN retention.list_manifest m USING (list_id)
                WHERE r.window_days = $window AND r.matured AND r.breakdown = 'offer'
                  AND m.as_of < $as_of
            ), predicted AS (
                SELECT l.list_id, l.offer,
                       sum(coalesce(l.save_probability, l.churn_probability * l.accept_probability))
                           AS predicted
                FROM retention.retention_lists l
                WHERE NOT l.control_flag AND l.list_id IN (SELECT list_id FROM evaluated)
                GROUP BY 1, 2
            )
            SELECT e.offer, e.incremental_saves, e.treated, e.control, e.treated_churn_rate,
                   e.control_churn_rate, p.predicted
            FROM evaluated e JOIN predicted p USING (list_id, offer)
            ORDER BY 1
            """,
            params={"window": cfg.window_days, "as_of": as_of},
        ).fetchall()
    except (duckdb.CatalogException, duckdb.BinderException):  # nothing evaluated yet
        return {}
    per_offer: dict[str, list[float]] = {}
    for offer, saves, treated, control, rate_t, rate_c, predicted in rows:
        if predicted is None or saves is None:
            continue
        acc = per_offer.setdefault(offer, [0.0, 0.0, 0.0])
        acc[0] += saves
        acc[1] += predicted
        # Lists are independent samples: their variances add.
        acc[2] += saves_standard_error(treated, control, rate_t, rate_c) ** 2
    return {
        offer: round(
            realisation(observed, max(predicted, 0.0), var**0.5, cfg.prior_sd, cfg.max_factor), 4
        )
        for offer, (observed, predicted, var) in sorted(per_offer.items())
    }


def played_out_contacts(con, as_of: date, with_snapshot: bool = False) -> pl.DataFrame:
    """Carried-out contacts of lists before `as_of` whose responses are in: offer, channel, the
    acceptance the list predicted and whether it was taken up; with `with_snapshot`, also the
    customer's snapshot at the list date (empty before any campaign has played out)."""
    snapshot = (
        "JOIN feat.customer_snapshot f ON f.customer_id = l.customer_id AND f.as_of = m.as_of"
        if with_snapshot
        else ""
    )
    try:
        return con.sql(
            f"""
            SELECT {"f.*," if with_snapshot else ""} l.offer, l.channel, l.accept_probability,
                   c.response = 'accepted' AS accepted
            FROM retention.retention_lists l
            JOIN retention.list_manifest m USING (list_id)
            JOIN raw.contacts c ON c.list_id = l.list_id AND c.customer_id = l.customer_id
            {snapshot}
            WHERE NOT l.control_flag AND NOT c.control_flag AND c.response IS NOT NULL
              AND m.as_of < $as_of AND c.contact_date <= $as_of
              AND l.accept_probability IS NOT NULL
            ORDER BY m.as_of, l.customer_id, l.list_id
            """,  # noqa: S608 - fixed SQL fragments only
            params={"as_of": as_of},
        ).pl()
    except (duckdb.CatalogException, duckdb.BinderException):  # no campaign played out yet
        return pl.DataFrame()


def offer_takeup(con, settings: Settings, as_of: date) -> dict[str, float]:
    """Per offer × channel and per offer: take-ups campaign responses showed over predicted ones."""
    cfg = settings.retention.takeup
    if not cfg.enabled:
        return {}
    return takeup_factors(played_out_contacts(con, as_of), cfg.prior_strength)


def with_takeup(
    settings: Settings,
    con,
    candidates: pl.DataFrame,
    as_of: date,
    factors: dict[str, float],
) -> tuple[pl.DataFrame, dict[str, float], dict | None]:
    """Candidates with `accept_<offer>` from the per-customer take-up model where it passes its
    gate (enough contacts, and a lower out-of-fold log-loss than the calibrated acceptance).

    Returns the candidates, the take-up factors still to apply (none for an offer the model
    estimates: it learned from the same responses) and its report for the manifest (None: off).
    """
    cfg = settings.retention.takeup
    if not (cfg.enabled and cfg.model):
        return candidates, factors, None
    contacts = played_out_contacts(con, as_of, with_snapshot=True)
    accepted = int(contacts["accepted"].sum()) if contacts.height else 0
    if contacts.height < cfg.min_contacts or accepted < cfg.min_accepted:
        why = (
            f"{contacts.height} played-out contacts with {accepted} take-ups; the take-up model "
            f"needs {cfg.min_contacts} and {cfg.min_accepted}"
        )
        return candidates, factors, {"used": False, "why": why}
    prior = [
        factor_for(factors, o, c) * p
        for o, c, p in contacts.select("offer", "channel", "accept_probability").iter_rows()
    ]
    contacts = contacts.with_columns(
        pl.Series(PRIOR, prior).clip(upper_bound=settings.retention.max_accept_probability)
    )
    bookkeeping = {"offer", "channel", "accepted", "accept_probability", PRIOR}
    columns = feature_columns([c for c in contacts.columns if c not in bookkeeping])
    factors_by_channel = {
        n: channel_factor(settings.retention, n) for n in settings.retention.channels
    }
    model = fit_takeup(contacts, columns, factors_by_channel, cfg.folds, settings.seed)
    report = {**model.report, "features": len(columns)}
    report["gain"] = round(1.0 - report["logloss"] / report["prior_logloss"], 5)
    if report["gain_se"] < cfg.min_gain_se:
        report |= {
            "used": False,
            "why": f"out-of-fold log-loss {report['logloss']:.4f} against the calibrated "
            f"acceptance's {report['prior_logloss']:.4f}: {report['gain_se']:.1f} standard "
            f"errors better, {cfg.min_gain_se:.1f} needed",
        }
        return candidates, factors, report
    snap = load_snapshots(settings, [as_of], con=con)
    snap = snap.join(candidates.select("customer_id"), on="customer_id", how="semi")
    offers = [o.name for o in settings.retention.offers]
    accept = pl.concat(
        [snap.select("customer_id"), model.accept_columns(snap, offers)], how="horizontal"
    )
    report["used"] = True
    report["why"] = (
        f"out-of-fold log-loss {report['logloss']:.4f} against the calibrated acceptance's "
        f"{report['prior_logloss']:.4f} on customers it never saw "
        f"({report['gain_se']:.1f} standard errors better)"
    )
    # Offers it estimates are calibrated by it; the rest keep their take-up factors.
    left = {k: v for k, v in factors.items() if k.split("__")[0] not in model.offers}
    return candidates.join(accept, on="customer_id", how="left"), left, report


def build_retention_list(
    settings: Settings,
    as_of: date,
    budget: float | None = None,
    reveal_reason: str | None = None,
    learning_share: float | Literal["power"] | None = None,
) -> ListReport:
    """Decide, store (replacing the same list id) and export the list with its manifest.

    With `learning_share`, a learning campaign instead: that share of eligible customers at
    random, each with a random allowed offer (see `retention.policy.learning_list`); "power"
    sizes the share by the power calculation in `retention.campaigns`.
    """
    started = time.perf_counter()
    wd = Workdir.from_settings(settings).ensure()
    budget = settings.retention.budget if budget is None else budget
    con = connect(wd)
    try:
        candidates = load_candidates(con, as_of, settings.retention.contact_policy.period_days)
        realised = offer_realisation(con, settings, as_of)
        takeup = offer_takeup(con, settings, as_of)
        takeup_model = None
        if learning_share is None:
            candidates, takeup, takeup_model = with_takeup(settings, con, candidates, as_of, takeup)
        calibration = (
            None if learning_share is not None else watch(settings, con, candidates, as_of)
        )
    finally:
        con.close()
    if calibration is not None and calibration.logit_shift:
        # Prior-shift correction: same ranking, mean score back at the trailing rate.
        candidates = candidates.with_columns(
            pl.Series(
                "churn_probability",
                apply_shift(candidates["churn_probability"].to_numpy(), calibration.logit_shift),
            )
        )
    # Once an uplift model is champion, the policy ranks by estimated incremental saves.
    candidates, uplift_version = with_uplift(settings, candidates, as_of)
    if uplift_version is not None:
        realised = {}  # the uplift model already learned from the same campaigns
    con = connect(wd)
    try:
        if learning_share is not None:
            uplift_version, realised, takeup = None, {}, {}
        list_id, seed = list_identity(
            as_of,
            config_hash(settings),
            candidates,
            budget,
            uplift_version,
            {
                **realised,
                **{f"takeup:{k}": v for k, v in takeup.items()},
                **takeup_identity(takeup_model),
            },
        )
        if learning_share == "power":
            learning_share = power_sized_share(settings, candidates, as_of)
        if learning_share is not None:
            list_id = f"{list_id}-learn"
            result = learning_list(
                candidates, settings.retention, as_of, list_id, seed, learning_share, budget
            )
        else:
            result = decide(
                candidates, settings.retention, as_of, list_id, seed, budget, realised, takeup
            )
        rl = result.retention_list.with_columns(
            mask_ids(result.retention_list["customer_id"], mask_salt(settings))
        )
        con.execute(LIST_DDL)
        con.register("_list", rl)
        con.register("_coll", result.collections.with_columns(pl.lit(list_id).alias("list_id")))
        treated = rl.filter(~pl.col("control_flag"))
        control = rl.filter(pl.col("control_flag"))
        expected_saves = float(treated["save_probability"].sum())
        learn = learning_check(settings, candidates, rl, as_of)
        manifest = {
            "list_id": list_id,
            "as_of": str(as_of),
            "created_at": datetime.now().isoformat(timespec="seconds"),
            "customers": rl.height,
            "treated": treated.height,
            "control": control.height,
            "budget": budget,
            "budget_basis": settings.retention.budget_basis,
            "budget_caps": BUDGET_CAPS[settings.retention.budget_basis],
            "budget_used": result.budget_used,
            "spend_expected": round(
                float(
                    (
                        treated["contact_cost"]
                        + treated["accept_probability"] * treated["offer_cost"]
                    ).sum()
                ),
                2,
            ),
            "spend_worst_case": round(
                float((treated["contact_cost"] + treated["offer_cost"]).sum()), 2
            ),
            "expected_saves": round(expected_saves, 2),
            "expected_profit": round(float(treated["expected_value"].sum()), 2),
            # Customers to contact only: the control group is counted on its own below.
            "by_tier": dict(treated["value_tier"].value_counts().iter_rows()),
            "by_offer": dict(treated["offer"].value_counts().iter_rows()),
            "by_channel": dict(treated["channel"].value_counts().iter_rows()),
            "control_group": {
                "customers": control.height,
                "by_tier": dict(control["value_tier"].value_counts().iter_rows()),
                "drawn": (
                    f"at random, {settings.retention.control_share:.0%} of each value tier × "
                    "risk decile stratum among the customers who would have been contacted "
                    "(stochastic rounding; seeded by the list id); never contacted"
                ),
                "file": "control_group.parquet",
            },
            "power": learn,
            "excluded": result.excluded,
            "collections_flagged": result.collections.height,
            "model_versions": {
                CHURN_MODEL: candidates["churn_model_version"][0],
                CREDIT_MODEL: candidates["credit_model_version"][0],
                UPLIFT_MODEL: uplift_version,
            },
            "ranking": "randomised offers (learning campaign)"
            if learning_share is not None
            else "uplift"
            if uplift_version
            else "churn probability × acceptance"
            + (" (per-customer take-up model)" if takeup_model and takeup_model["used"] else "")
            + (" × campaign realisation per offer" if realised else ""),
            "realisation": realised,
            "takeup": takeup,
            "takeup_model": takeup_model,
            "config_hash": config_hash(settings),
            "data_as_of": str(as_of),
            "masked": reveal_reason is None,
            "expected_churners": round(float(candidates["churn_probability"].sum()), 1),
            "calibration": None if calibration is None else asdict(calibration),
            "held": calibration.reason if calibration and calibration.action == "hold" else None,
        }
        con.execute("BEGIN")
        con.execute("DELETE FROM retention.retention_lists WHERE list_id = ?", [list_id])
        con.execute("INSERT INTO retention.retention_lists BY NAME SELECT * FROM _list")
        con.execute("DELETE FROM retention.list_manifest WHERE list_id = ?", [list_id])
        con.execute(
            "INSERT INTO retention.list_manifest VALUES (?, ?, now()::TIMESTAMP, ?)",
            [list_id, as_of, json.dumps(manifest, default=str)],
        )
        con.execute("DELETE FROM retention.collections_flags WHERE list_id = ?", [list_id])
        con.execute("INSERT INTO retention.collections_flags BY NAME SELECT * FROM _coll")
        con.execute("COMMIT")
    finally:
        con.close()
    paths = export_list(settings, rl, manifest, reveal_reason)
    return ListReport(
        list_id,
        as_of,
        rl.height,
        treated.height,
        rl.height - treated.height,
        result.budget_used,
        round(expected_saves, 2),
        manifest["expected_profit"],
        paths,
        round(time.perf_counter() - started, 2),
        learn["warning"],
        manifest["held"],
    )


BUDGET_CAPS = {
    "expected": "expected spend: contact cost + acceptance probability × offer cost",
    "worst_case": "worst-case spend: contact cost + full offer cost (everyone accepts)",
}


def _eligible(settings: Settings, candidates: pl.DataFrame, as_of: date) -> pl.DataFrame:
    return exclusions(candidates, settings.retention, as_of).filter(
        pl.col("excluded_reason").is_null()
    )


def power_sized_share(settings: Settings, candidates: pl.DataFrame, as_of: date) -> float:
    """Share of eligible customers a learning campaign needs to detect the configured effect."""
    cfg = settings.retention
    eligible = _eligible(settings, candidates, as_of)
    if eligible.is_empty():
        raise InputError(f"no eligible customers at {as_of} for a learning campaign")
    base = float(eligible["churn_probability"].mean())
    effect = min(cfg.campaigns.detectable_effect, base)
    need = campaign_size(
        base, effect, cfg.campaigns.alpha, cfg.campaigns.power, cfg.control_share or 0.5
    )
    return min(1.0, need.total / eligible.height)


def learning_check(
    settings: Settings, candidates: pl.DataFrame, rl: pl.DataFrame, as_of: date
) -> dict:
    """The list's minimum detectable effect for its arms, what learning the asked effect needs,
    and a one-line warning when the list or the whole eligible base is too small for it."""
    camp, share = settings.retention.campaigns, settings.retention.control_share or 0.5
    eligible = _eligible(settings, candidates, as_of)
    pool = rl if rl.height else eligible
    base = float(pool["churn_probability"].mean()) if pool.height else 0.0
    n_control = int(rl["control_flag"].sum()) if rl.height else 0
    n_treated = rl.height - n_control
    out: dict = {
        "base_churn": round(base, 4),
        "detectable_effect_asked": camp.detectable_effect,
        "alpha": camp.alpha,
        "power": camp.power,
        "minimum_detectable_effect": None,
        "needed": None,
        "eligible": eligible.height,
        "warning": None,
    }
    if not 0.0 < base < 1.0:
        return out
    if n_control and n_treated:
        out["minimum_detectable_effect"] = round(
            detectable_effect(base, n_control, n_treated, camp.alpha, camp.power), 5
        )
    effect = min(camp.detectable_effect, base)
    need = campaign_size(base, effect, camp.alpha, camp.power, share)
    out["needed"] = {"control": need.control, "treated": need.treated}
    asked = f"{camp.detectable_effect * 100:.2f} points at {camp.power:.0%} power, α {camp.alpha}"
    if need.total > eligible.height:
        out["warning"] = (
            f"the base is too small to learn a churn reduction of {asked}: that needs "
            f"{need.control:,} control + {need.treated:,} treated customers at base churn "
            f"{base:.1%}, and only {eligible.height:,} are eligible"
        )
    elif out["minimum_detectable_effect"] is None or out["minimum_detectable_effect"] > effect:
        mde = out["minimum_detectable_effect"]
        shown = "nothing" if mde is None else f"only {mde * 100:.2f} points or more"
        out["warning"] = (
            f"this list can detect {shown}, not {asked}: that needs {need.control:,} control + "
            f"{need.treated:,} treated customers (e.g. `churn target --learning`)"
        )
    return out


def export_list(
    settings: Settings, rl: pl.DataFrame, manifest: dict, reveal_reason: str | None
) -> dict[str, str]:
    """Marketing's contact file (Parquet, CSV, XLSX: customers to contact only) and the analysts'
    control-group file, owner-only, atomically; masked unless revealed. Text cells a spreadsheet
    would run as formulas are neutralised in CSV and XLSX."""
    wd = Workdir.from_settings(settings)
    try:
        folder = wd.lists / safe_name(manifest["list_id"], "list id")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    out = rl.drop("customer_id") if reveal_reason is None else rl
    if reveal_reason is not None:
        audit(
            Workdir.from_settings(settings), f"reveal list {manifest['list_id']}: {reveal_reason}"
        )
    out = out.select(
        [
            "list_id",
            "customer_key",
            *[c for c in out.columns if c not in ("list_id", "customer_key")],
        ]
    )
    files = {
        "retention_list": contact_rows(out),
        "control_group": control_rows(out),
    }
    paths = {}
    # The list's files appear together or not at all: a run killed mid-export leaves the
    # previous folder (or none), never a contact file without its manifest.
    with atomic_folder(folder) as staging:
        # A held list is stored for review; marketing receives nothing until it is released.
        for name, frame in {} if manifest.get("held") else files.items():
            kinds = ("parquet", "csv") if name == "control_group" else ("parquet", "csv", "xlsx")
            for kind in kinds:
                target = staging / f"{name}.{kind}"
                if kind == "parquet":
                    frame.write_parquet(target)
                elif kind == "csv":
                    neutralise(frame).write_csv(target)
                else:
                    neutralise(frame).write_excel(target, worksheet="retention list", autofit=True)
                os.chmod(target, OWNER_ONLY)
                key = kind if name == "retention_list" else f"control_{kind}"
                paths[key] = str(folder / target.name)
        manifest_text = json.dumps(manifest, indent=2, default=str)
        atomic_write_text(staging / "manifest.json", manifest_text, mode=OWNER_ONLY)
        paths["manifest"] = str(folder / "manifest.json")
    return paths


def treatments_for(settings: Settings, list_id: str) -> pl.DataFrame:
    """The list as the campaign system would execute it (for the simulator's playback)."""
    con = connect(Workdir.from_settings(settings), read_only=True)
    try:
        frame = con.sql(
            "SELECT customer_id, offer, channel, as_of, control_flag, list_id"
            " FROM retention.retention_lists WHERE list_id = ?",
            params=[list_id],
        ).pl()
    finally:
        con.close()
    if frame.is_empty():
        raise InputError(f"no retention list {list_id!r}")
    return frame.with_columns(
        (pl.col("as_of") + timedelta(days=1)).alias("contact_date"),
        pl.col("channel").fill_null("sms"),
    ).drop("as_of")
