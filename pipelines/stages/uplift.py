"""Train the uplift model on evaluated campaigns (MLflow), and attach its estimates for targeting."""

# ruff: noqa: S608 - SQL text below only interpolates integers from the validated config.
from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import mlflow
import pandas as pd
import polars as pl

from configs.contracts import UPLIFT_MODEL
from configs.schema import Settings
from features.columns import feature_columns
from models.uplift import (
    OFFER_COLUMN,
    PerOfferUplift,
    UpliftModel,
    fit_campaign_uplift,
    fit_risk,
    qini_coefficient,
    qini_gain_se,
    uplift_gate,
)
from models.uplift_eval import choose_campaign_learner
from models.uplift_holdout import mark_held_out, split_held_out
from pipelines.stages.features import load_snapshots
from pipelines.store.registry import as_polars
from pipelines.store.tracking import alias_missing, experiment_client, git_commit, register_version
from pipelines.store.warehouse import connect
from pipelines.store.workdir import Workdir, mask_salt
from retention.masking import mask_ids

log = logging.getLogger(__name__)

# Columns campaign_rows adds to the snapshot: bookkeeping, never model features.
EXTRA_COLUMNS = {"offer", "treated", "listed", "gone", "churned", "held_out"}


@dataclass
class UpliftResult:
    trained: bool
    explanation: str
    version: str | None = None
    champion: bool = False
    qini: float | None = None
    qini_by_risk: float | None = None
    qini_two_model: float | None = None  # no longer measured: see learner and inner_qini
    learner: str | None = None
    inner_qini: dict[str, float] = field(default_factory=dict)
    lists: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class UpliftBundle(mlflow.pyfunc.PythonModel):
    """MLflow wrapper: `uplift_<offer>` columns for snapshot-shaped rows."""

    def __init__(self, model: UpliftModel | PerOfferUplift) -> None:
        self.model = model

    # Typed (a DataFrame needs no schema inference), so MLflow raises no "add type hints".
    def predict(
        self,
        context: Any,  # noqa: ARG002 - MLflow's signature
        model_input: pd.DataFrame,
        params: dict[str, Any] | None = None,  # noqa: ARG002
    ) -> pd.DataFrame:
        return self.model.uplift_columns(as_polars(model_input)).to_pandas()


def campaign_rows(settings: Settings, as_of: date | None = None) -> pl.DataFrame:
    """Customers at each matured list date: arm, offer, held-out flag and churn outcome.

    A list's outcome has matured when the data reach `uplift.horizon_days` past its date. Customers
    not on a list at that date were left alone, so they join the control arm (the targeting
    depended only on the features, which the models condition on) — unless an earlier list
    contacted them within the horizon: its offer may still act, so they are no clean control.
    """
    cfg = settings.retention.uplift
    wd = Workdir.from_settings(settings)
    con = connect(wd, read_only=True)
    try:
        try:
            lists = con.sql(
                f"""SELECT m.list_id, m.as_of FROM retention.list_manifest m
                    WHERE m.as_of + INTERVAL {int(cfg.horizon_days)} DAY
                          <= (SELECT max(usage_date) FROM raw.usage_daily)
                      AND ($as_of IS NULL OR m.as_of + INTERVAL {int(cfg.horizon_days)} DAY <= $as_of)
                      AND EXISTS (SELECT 1 FROM raw.contacts c WHERE c.list_id = m.list_id)
                    ORDER BY m.as_of""",
                params={"as_of": as_of},
            ).pl()
        except duckdb.CatalogException:  # no lists or no contacts yet
            return pl.DataFrame()
        if lists.is_empty():
            return pl.DataFrame()
        on_list = con.sql(
            """SELECT customer_id, as_of, offer, NOT control_flag AS treated
               FROM retention.retention_lists WHERE list_contains(?, list_id)""",
            params=[lists["list_id"].to_list()],
        ).pl()
        churn = con.sql(
            "SELECT customer_id, min(disconnect_date) AS gone FROM raw.disconnects GROUP BY 1"
        ).pl()
        contacted = con.sql(
            "SELECT DISTINCT customer_id, contact_date FROM raw.contacts WHERE NOT control_flag"
        ).pl()
    finally:
        con.close()
    snap = load_snapshots(settings, sorted(set(lists["as_of"].to_list())))
    frame = (
        snap.join(on_list, on=["customer_id", "as_of"], how="left")
        .join(churn, on="customer_id", how="left")
        .with_columns(
            pl.col("treated").fill_null(False),
            pl.col("offer").is_not_null().alias("listed"),
            (
                pl.col("gone").is_not_null()
                & (pl.col("gone") > pl.col("as_of"))
                & (pl.col("gone") <= pl.col("as_of") + pl.duration(days=cfg.horizon_days))
            )
            .cast(pl.Int32)
            .alias("churned"),
        )
    )
    recent = (
        frame.filter(pl.col("offer").is_null())
        .select("customer_id", "as_of")
        .join(contacted, on="customer_id")
        .filter(
            (pl.col("contact_date") <= pl.col("as_of"))
            & (pl.col("contact_date") > pl.col("as_of") - pl.duration(days=cfg.horizon_days))
        )
        .select("customer_id", "as_of")
        .unique()
    )
    frame = frame.join(recent, on=["customer_id", "as_of"], how="anti")
    return mark_held_out(frame, cfg.holdout_share, settings.seed)


def train_uplift(settings: Settings, as_of: date | None = None) -> UpliftResult:
    """Fit the uplift learner; log, register, and make champion if held-out Qini clears the gate.

    The learner is `retention.uplift.learner`, or with `auto` the one with the best Qini over an
    inner CV of the training customers; the hold-out never chooses, it only gates.
    """

    started = time.perf_counter()
    cfg = settings.retention.uplift
    frame = campaign_rows(settings, as_of)
    listed = frame.filter(pl.col("listed")) if frame.height else frame
    if listed.height < cfg.min_list_rows:
        why = (
            f"{listed.height} customers on matured, played-out lists; uplift needs "
            f"{cfg.min_list_rows} (lists mature {cfg.horizon_days} days after their date)"
        )
        log.debug("uplift not trained: %s", why)  # the caller reports it (CLI line, cycle summary)
        return UpliftResult(False, why, seconds=round(time.perf_counter() - started, 2))
    columns = feature_columns([c for c in frame.columns if c not in EXTRA_COLUMNS])
    train, hold = split_held_out(frame)
    control = train.filter(~pl.col("treated"))

    inner: dict[str, float] = {}
    learner = cfg.learner
    if learner == "auto":
        learner, inner = choose_campaign_learner(train, columns, seed=settings.seed)

    try:
        model = fit_campaign_uplift(train, columns, seed=settings.seed, learner=learner)
        # Ranking by risk is what uplift must beat: churn without contact, learned from controls.
        risk = (
            model.control
            if isinstance(model, UpliftModel)
            else fit_risk(
                control, control["churned"].to_numpy().astype(float), columns, settings.seed
            )
        )
    except ValueError as exc:
        return UpliftResult(False, f"uplift not trained: {exc}")
    y, t = hold["churned"].to_numpy(), hold["treated"].to_numpy()
    gain_se = 0.0
    if t.all() or not t.any():
        qini = qini_risk = None
    else:
        score, baseline = model.uplift(hold, hold[OFFER_COLUMN]), risk.predict(hold)
        qini = qini_coefficient(y, t, score)
        qini_risk = qini_coefficient(y, t, baseline)
        if cfg.min_gain_se > 0:
            gain_se = qini_gain_se(
                y, t, score, baseline, hold["customer_id"].to_numpy(), seed=settings.seed
            )
    lists = sorted(set(map(str, listed["as_of"].unique().to_list())))
    rows = {
        "treated": train.height - control.height,
        "control": control.height,
        "control_on_lists": int(control["listed"].sum()),
        "held_out": hold.height,
    }
    champion, why = uplift_gate(qini, qini_risk, cfg.min_qini, gain_se, cfg.min_gain_se)
    client, experiment_id = experiment_client(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-uplift-{lists[-1]}"):
        mlflow.set_tags({"model": UPLIFT_MODEL, "stage": "train", "git_commit": git_commit()})
        mlflow.log_params(
            {
                "learner": learner,
                **(
                    {"offer_shift_penalty": model.treated.penalty}
                    if isinstance(model, UpliftModel)
                    else {}
                ),
                "list_dates": ",".join(lists),
                "horizon_days": cfg.horizon_days,
                "offers": ",".join(model.offers),
                "features": len(columns),
                **{f"rows_{k}": v for k, v in rows.items()},
            }
        )
        if qini is not None:
            mlflow.log_metrics(
                {"qini": qini, "qini_rank_by_risk": qini_risk, "qini_gain_se": gain_se}
            )
        finite = {f"inner_qini_{k}": v for k, v in inner.items() if v > float("-inf")}
        if finite:
            mlflow.log_metrics(finite)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "uplift_holdout.csv"
            # Artifacts carry masked keys only, like the lists marketing receives.
            pl.DataFrame(
                [
                    mask_ids(hold["customer_id"], mask_salt(settings)),
                    hold["as_of"],
                    hold["offer"],
                    hold["treated"],
                    hold["churned"],
                    pl.Series("uplift", model.uplift(hold, hold[OFFER_COLUMN])),
                ]
            ).write_csv(path)
            mlflow.log_artifact(str(path), artifact_path="evaluation")
        info = mlflow.pyfunc.log_model(name="model", python_model=UpliftBundle(model))
        version = str(register_version(client, UPLIFT_MODEL, info).version)
    client.set_registered_model_alias(UPLIFT_MODEL, "challenger", version)
    if champion:
        client.set_registered_model_alias(UPLIFT_MODEL, "champion", version)
    log.info("uplift v%s: %s", version, why)
    # By keyword: the fields' order is not the order they are worked out in.
    return UpliftResult(
        trained=True,
        explanation=why,
        version=version,
        champion=champion,
        qini=qini,
        qini_by_risk=qini_risk,
        learner=learner,
        inner_qini=inner,
        lists=lists,
        rows=rows,
        seconds=round(time.perf_counter() - started, 2),
    )


def load_uplift(
    settings: Settings, alias: str = "champion"
) -> tuple[UpliftModel | PerOfferUplift, str] | None:
    """The uplift model behind an alias and its version, or None when there is none yet."""
    client, _ = experiment_client(settings)
    try:
        mv = client.get_model_version_by_alias(UPLIFT_MODEL, alias)
    except mlflow.exceptions.MlflowException as exc:
        if not alias_missing(exc):
            raise
        return None
    loaded = mlflow.pyfunc.load_model(f"models:/{UPLIFT_MODEL}@{alias}")
    return loaded.unwrap_python_model().model, str(mv.version)


def with_uplift(
    settings: Settings, candidates: pl.DataFrame, as_of: date, alias: str = "champion"
) -> tuple[pl.DataFrame, str | None]:
    """Candidates with `uplift_<offer>` columns when uplift is enabled and a champion exists."""
    if not settings.retention.uplift.enabled:
        return candidates, None
    found = load_uplift(settings, alias)
    if found is None:
        return candidates, None
    model, version = found
    snap = load_snapshots(settings, [as_of]).join(
        candidates.select("customer_id"), on="customer_id", how="semi"
    )
    estimates = pl.concat(
        [snap.select("customer_id"), model.uplift_columns(snap).with_columns(pl.all().round(6))],
        how="horizontal",
    )
    return candidates.join(estimates, on="customer_id", how="left"), version
