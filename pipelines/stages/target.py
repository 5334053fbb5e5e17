"""Build, store and export retention target lists (DuckDB + Parquet/CSV/XLSX + manifest)."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import duckdb
import polars as pl

from configs.contracts import CHURN_MODEL, CREDIT_MODEL, UPLIFT_MODEL
from configs.schema import Settings
from pipelines.stages.uplift import with_uplift
from pipelines.store.config import config_hash
from pipelines.store.errors import InputError
from pipelines.store.warehouse import LIST_DDL, connect
from pipelines.store.workdir import (
    OWNER_ONLY,
    Workdir,
    atomic_path,
    atomic_write_text,
    audit,
    mask_salt,
)
from retention.evaluation import realisation
from retention.identity import list_identity
from retention.masking import mask_ids
from retention.policy import decide, learning_list

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


def load_candidates(con, as_of: date) -> pl.DataFrame:
    """Scores at as_of with snapshot meta, opt-outs and contact history up to as_of."""
    try:
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
                   f.segment, f.value_tier, f.lifecycle_stage, f.monthly_spend,
                   coalesce(c.marketing_opt_out, false) AS marketing_opt_out,
                   coalesce(c.do_not_contact, false) AS do_not_contact,
                   h.last_contact_date, coalesce(h.contacts_in_period, 0) AS contacts_in_period
            FROM scores.customer_scores s
            JOIN feat.customer_snapshot f USING (customer_id, as_of)
            LEFT JOIN raw.customers c USING (customer_id)
            LEFT JOIN hist h USING (customer_id)
            WHERE s.as_of = $as_of
            ORDER BY s.customer_id
            """,
            params={"as_of": as_of, "period": 90},
        ).pl()
    except duckdb.CatalogException as exc:  # missing tables: say which step to run
        raise InputError(
            f"no scores to target for {as_of}: run `churn score --as-of {as_of}` ({exc})".split(
                "\n"
            )[0]
        ) from None
    if frame.is_empty():
        raise InputError(f"no scores for {as_of}: run `churn score --as-of {as_of}` first")
    return frame


def offer_realisation(con, settings: Settings, as_of: date) -> dict[str, float]:
    """Per offer: evaluated incremental saves over predicted saves of earlier lists (shrunk)."""
    cfg = settings.retention.realisation
    if not cfg.enabled:
        return {}
    try:
        rows = con.sql(
            """
            WITH evaluated AS (
                SELECT r.list_id, r.grp AS offer, r.incremental_saves
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
            SELECT e.offer, sum(e.incremental_saves) AS observed, sum(p.predicted) AS predicted
            FROM evaluated e JOIN predicted p USING (list_id, offer)
            GROUP BY 1 ORDER BY 1
            """,
            params={"window": cfg.window_days, "as_of": as_of},
        ).fetchall()
    except (duckdb.CatalogException, duckdb.BinderException):  # nothing evaluated yet
        return {}
    return {
        offer: round(realisation(observed, predicted, cfg.prior_strength), 4)
        for offer, observed, predicted in rows
        if predicted is not None
    }


def build_retention_list(
    settings: Settings,
    as_of: date,
    budget: float | None = None,
    reveal_reason: str | None = None,
    learning_share: float | None = None,
) -> ListReport:
    """Decide, store (replacing the same list id) and export the list with its manifest.

    With `learning_share`, a learning campaign instead: that share of eligible customers at
    random, each with a random allowed offer (see `retention.policy.learning_list`).
    """
    started = time.perf_counter()
    wd = Workdir.from_settings(settings).ensure()
    budget = settings.retention.budget if budget is None else budget
    con = connect(wd)
    try:
        candidates = load_candidates(con, as_of)
        realised = offer_realisation(con, settings, as_of)
    finally:
        con.close()
    # Once an uplift model is champion, the policy ranks by estimated incremental saves.
    candidates, uplift_version = with_uplift(settings, candidates, as_of)
    if uplift_version is not None:
        realised = {}  # the uplift model already learned from the same campaigns
    con = connect(wd)
    try:
        if learning_share is not None:
            uplift_version, realised = None, {}
        list_id, seed = list_identity(
            as_of, config_hash(settings), candidates, budget, uplift_version, realised
        )
        if learning_share is not None:
            list_id = f"{list_id}-learn"
            result = learning_list(
                candidates, settings.retention, as_of, list_id, seed, learning_share, budget
            )
        else:
            result = decide(candidates, settings.retention, as_of, list_id, seed, budget, realised)
        rl = result.retention_list.with_columns(
            mask_ids(result.retention_list["customer_id"], mask_salt(settings))
        )
        con.execute(LIST_DDL)
        con.register("_list", rl)
        con.register("_coll", result.collections.with_columns(pl.lit(list_id).alias("list_id")))
        treated = rl.filter(~pl.col("control_flag"))
        expected_saves = float(treated["save_probability"].sum())
        manifest = {
            "list_id": list_id,
            "as_of": str(as_of),
            "created_at": datetime.now().isoformat(timespec="seconds"),
            "customers": rl.height,
            "treated": treated.height,
            "control": rl.height - treated.height,
            "budget": budget,
            "budget_used": result.budget_used,
            "expected_saves": round(expected_saves, 2),
            "expected_profit": round(float(treated["expected_value"].sum()), 2),
            "by_tier": dict(rl["value_tier"].value_counts().iter_rows()),
            "by_offer": dict(rl["offer"].value_counts().iter_rows()),
            "by_channel": dict(treated["channel"].value_counts().iter_rows()),
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
            + (" × campaign realisation per offer" if realised else ""),
            "realisation": realised,
            "config_hash": config_hash(settings),
            "data_as_of": str(as_of),
            "masked": reveal_reason is None,
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
    )


def export_list(
    settings: Settings, rl: pl.DataFrame, manifest: dict, reveal_reason: str | None
) -> dict[str, str]:
    """Parquet, CSV and XLSX for marketing, owner-only, atomically; masked unless revealed."""
    wd = Workdir.from_settings(settings)
    folder = wd.lists / manifest["list_id"]
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
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
    paths = {}
    for kind in ("parquet", "csv", "xlsx"):
        target = folder / f"retention_list.{kind}"
        with atomic_path(target, OWNER_ONLY) as tmp:
            if kind == "parquet":
                out.write_parquet(tmp)
            elif kind == "csv":
                out.write_csv(tmp)
            else:
                out.write_excel(tmp, worksheet="retention list", autofit=True)
        paths[kind] = str(target)
    atomic_write_text(
        folder / "manifest.json", json.dumps(manifest, indent=2, default=str), mode=OWNER_ONLY
    )
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
