"""Streamlit retention cockpit: read-only views over one churn work directory."""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import streamlit as st

from dashboards import charts, data
from dashboards.access import DATA_TEAM, MARKETING, is_local, role_for, role_passwords
from dashboards.data import EMPTY_HINT, NoData, WarehouseBusy

st.set_page_config(
    page_title="Retention cockpit", page_icon=":material/trending_down:", layout="wide"
)

TTL = 60  # seconds: the pipeline publishes at most a few times a day, a minute is fresh enough


def resolve() -> tuple[Path, list[str]]:
    """Work directory and extra config files: `-- --home H --config C`, else CHURN_HOME, else .churn."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--home")
    parser.add_argument("--config", action="append", default=[])
    # Under AppTest sys.argv is pytest's; unknown options are ignored rather than fatal.
    args, _ = parser.parse_known_args(sys.argv[1:])
    home = args.home or os.environ.get("CHURN_HOME") or ".churn"
    return Path(home).expanduser().resolve(), list(args.config)


HOME, CONFIG_FILES = resolve()


# Caching lives here so data.py stays free of Streamlit; errors are never cached, so a busy
# warehouse is retried on the next rerun.
@st.cache_data(ttl=TTL, show_spinner=False)
def load_overview(home: str) -> data.Overview:
    return data.overview(home)


@st.cache_data(ttl=TTL, show_spinner=False)
def load_list_ids(home: str) -> pl.DataFrame:
    return data.list_ids(home)


@st.cache_data(ttl=TTL, show_spinner=False)
def load_list(home: str, list_id: str) -> pl.DataFrame:
    return data.retention_list(home, list_id)


@st.cache_data(ttl=TTL, show_spinner=False)
def load_choices(home: str) -> pl.DataFrame:
    return data.customer_choices(home)


@st.cache_data(ttl=TTL, show_spinner=False)
def load_masked_choices(home: str) -> pl.DataFrame:
    return data.masked_choices(home)


@st.cache_data(ttl=TTL, show_spinner=False)
def load_customer(home: str, customer_id: str) -> data.CustomerView:
    return data.customer(home, customer_id)


@st.cache_data(ttl=TTL, show_spinner="Reading the MLflow registry…")
def load_models(home: str, config_files: tuple[str, ...]):
    from dashboards.models import registry

    return registry(home, config_files)


@st.cache_data(ttl=TTL, show_spinner=False)
def load_drift_runs(home: str) -> pl.DataFrame:
    return data.drift_runs(home)


@st.cache_data(ttl=TTL, show_spinner=False)
def load_feature_drift(home: str, run_at) -> pl.DataFrame:
    return data.feature_drift(home, run_at)


@st.cache_data(ttl=TTL, show_spinner=False)
def load_campaigns(home: str) -> pl.DataFrame:
    return data.campaign_results(home)


def guarded(page: Callable[[], None]) -> Callable[[], None]:
    """Missing data and a busy warehouse are states to explain, not tracebacks."""

    @functools.wraps(page)
    def run() -> None:
        try:
            page()
        except WarehouseBusy as exc:
            st.warning(str(exc), icon="⏳")
            if st.button("Refresh"):
                st.cache_data.clear()
                st.rerun()
        except NoData as exc:
            st.info(str(exc), icon="ℹ️")
        except data.DashboardDataError as exc:
            st.error(str(exc))

    return run


def money(x: float | None) -> str:
    return "–" if x is None else f"{x:,.0f}"


def pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}%}"


def show(chart) -> None:
    st.altair_chart(chart, width="stretch")


def table(frame: pl.DataFrame, column_config: dict | None = None, **kwargs) -> None:
    """st.dataframe without an index, showing dates as dates (not midnight timestamps)."""
    config = {
        name: st.column_config.DateColumn(format="YYYY-MM-DD")
        for name, dtype in frame.schema.items()
        if dtype == pl.Date
    }
    config.update(column_config or {})
    st.dataframe(frame, hide_index=True, column_config=config, **kwargs)


# --- Sign-in and audit -----------------------------------------------------------------------


def audit_line(line: str) -> None:
    """One line in the work directory's owner-only audit log, tagged with the browser session."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    from pipelines.store.workdir import Workdir, audit

    ctx = get_script_run_ctx()
    audit(Workdir(HOME), f"dashboard {line} session={ctx.session_id[:8] if ctx else '-'}")


def sign_in() -> str:
    """The signed-in role. With passwords configured, a login wall stops every page until one
    matches; without any, only a loopback bind is served (the owner on their own machine)."""
    from pipelines.store.config import load_settings
    from pipelines.store.errors import ChurnError

    try:
        settings = load_settings([Path(f) for f in CONFIG_FILES], home=HOME)
    except ChurnError as exc:
        st.error(f"Cannot read the configuration: {exc}")
        st.stop()
    passwords = role_passwords(settings.security)
    if not passwords:
        # Unset, Streamlit binds every interface: that is not local either.
        if not is_local(st.get_option("server.address") or ""):
            st.error(
                "This cockpit is reachable beyond this machine and has no password: set "
                "CHURN_SECURITY__DASHBOARD_PASSWORD and restart it, or bind it to 127.0.0.1."
            )
            st.stop()
        return DATA_TEAM
    role = st.session_state.get("role")
    if role in passwords:
        return role
    st.title("Retention cockpit")
    st.caption("Sign in with your team's password.")
    with st.form("sign_in"):
        given = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        role = role_for(given, passwords)
        if role is not None:
            st.session_state["role"] = role
            audit_line(f"sign-in role={role}")
            st.rerun()
        audit_line("sign-in refused")
        time.sleep(1)  # slows password guessing
        st.error("Wrong password.")
    st.stop()


def audit_lookup(role: str, shown: str) -> None:
    """Each customer a session opens is audited once (reruns of the same view are not)."""
    if st.session_state.get("_audited_lookup") != (role, shown):
        audit_line(f"customer lookup role={role} customer={shown}")
        st.session_state["_audited_lookup"] = (role, shown)


# --- Pages ----------------------------------------------------------------------------------


def overview_page() -> None:
    st.title("Overview")
    ov = load_overview(str(HOME))
    scores, manifest = ov.scores, ov.manifest or {}
    st.caption(f"Latest scores as of **{ov.as_of}** · {len(scores):,} customers scored")
    c = st.columns(4)
    c[0].metric(
        "Active customers", f"{scores.height:,}", help="Customers scored at the latest as-of date"
    )
    c[1].metric(
        "Expected churners",
        f"{scores['churn_probability'].sum():,.0f}",
        help="Sum of churn probabilities over the model's horizon",
    )
    c[2].metric(
        "High-risk customers", f"{(scores['risk_decile'] >= 9).sum():,}", help="Risk deciles 9–10"
    )
    at_risk = (scores["churn_probability"] * scores["monthly_spend"].fill_null(0.0)).sum()
    c[3].metric(
        "Monthly revenue at risk", money(at_risk), help="Σ churn probability × monthly spend"
    )
    if manifest:
        st.subheader(f"Latest retention list · {manifest.get('list_id', '')}")
        if manifest.get("held"):
            st.warning(f"Held for review, nothing sent to marketing: {manifest['held']}")
        c = st.columns(5)
        c[0].metric("Latest list size", f"{manifest.get('customers', 0):,}")
        c[1].metric(
            "Treated / control", f"{manifest.get('treated', 0):,} / {manifest.get('control', 0):,}"
        )
        c[2].metric("Expected saves", f"{manifest.get('expected_saves', 0):,.1f}")
        c[3].metric("Expected value", money(manifest.get("expected_profit")))
        c[4].metric(
            "Budget used",
            f"{money(manifest.get('budget_used'))} / {money(manifest.get('budget'))}",
        )
    else:
        st.info("No retention list published yet — run `churn target` (or `churn cycle`).")
    left, right = st.columns(2)
    with left:
        st.markdown("**Observed monthly churn rate**")
        if (
            ov.churn_trend.drop_nulls(["churn_30d"]).height
            or ov.churn_trend.drop_nulls(["churn_90d"]).height
        ):
            show(charts.churn_trend(ov.churn_trend))
        else:
            st.info("No matured churn labels yet.")
    with right:
        st.markdown("**Risk distribution** (latest scores)")
        show(charts.risk_histogram(scores))
    left, right = st.columns(2)
    for col, by in ((left, "value_tier"), (right, "segment")):
        with col:
            st.markdown(f"**Customers and value at risk by {by.replace('_', ' ')}**")
            groups = data.risk_by_group(scores, by)
            show(charts.at_risk_bars(groups, by))
            table(
                groups,
                column_config={
                    "expected_churners": st.column_config.NumberColumn(format="%.1f"),
                    "revenue_at_risk": st.column_config.NumberColumn(format="%.0f"),
                },
            )


def list_page() -> None:
    st.title("Retention list")
    ids = load_list_ids(str(HOME))
    if ids.is_empty():
        raise NoData(EMPTY_HINT + " (no retention list published)")
    labels = {
        r["list_id"]: f"{r['list_id']} · as of {r['as_of']} · {r['customers']:,} customers"
        + (" · HELD" if r["held"] else "")
        for r in ids.iter_rows(named=True)
    }
    list_id = st.selectbox("List", list(labels), format_func=labels.get, key="list_id")
    held = ids.filter(pl.col("list_id") == list_id)["held"][0]
    if held:
        st.warning(
            f"Held for review: {held}. Nothing from this list goes to marketing, so it offers no"
            " download. To publish, re-run `churn target` with"
            " `monitoring.calibration.action: recalibrate` or after retraining on the new month."
        )
    frame = load_list(str(HOME), list_id)
    c = st.columns(4)
    filters = {
        col: c[i].multiselect(
            col.replace("_", " ").capitalize(),
            sorted(frame[col].drop_nulls().unique().to_list()),
            key=f"f_{col}",
        )
        for i, col in enumerate(("value_tier", "segment", "offer", "channel"))
    }
    c = st.columns([2, 1])
    deciles = c[0].slider("Risk decile", 1, 10, (1, 10), key="f_deciles")
    group = c[1].radio("Group", ["all", "treated", "control"], horizontal=True, key="f_group")
    shown = data.filter_list(frame, deciles=deciles, group=group, **filters)
    c = st.columns(4)
    c[0].metric("Customers shown", f"{shown.height:,}", help=f"of {frame.height:,} on the list")
    c[1].metric("Treated", f"{(~shown['control_flag']).sum():,}")
    c[2].metric("Σ expected value", money(shown["expected_value"].sum()), help="Before offer costs")
    c[3].metric("Offer + contact cost", money((shown["offer_cost"] + shown["contact_cost"]).sum()))
    table(
        shown,
        height=480,
        column_config={
            "customer_key": st.column_config.TextColumn("customer key", help="Masked id"),
            "churn_probability": st.column_config.ProgressColumn(
                "churn probability", format="percent", min_value=0.0, max_value=1.0
            ),
            "accept_probability": st.column_config.NumberColumn(format="percent"),
            "value": st.column_config.NumberColumn(format="%.0f"),
            "expected_value": st.column_config.NumberColumn(format="%.1f"),
            "reasons": st.column_config.TextColumn(width="large"),
        },
    )
    st.caption(
        "Customers are shown by their masked key; internal customer ids never leave the warehouse here."
    )
    if held:
        return
    contacts = f"{(~shown['control_flag']).sum():,} customers to contact (the control group is never exported here)"
    c = st.columns([1, 1, 4])
    c[0].download_button(
        "Download CSV",
        # Deferred: the file is built only when clicked, not on every rerun.
        functools.partial(data.contacts_download, shown, "csv"),
        file_name=data.download_name(list_id, "csv"),
        help=contacts,
        mime="text/csv",
        key="dl_csv",
        on_click="ignore",
    )
    c[1].download_button(
        "Download XLSX",
        functools.partial(data.contacts_download, shown, "xlsx"),
        file_name=data.download_name(list_id, "xlsx"),
        help=contacts,
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        key="dl_xlsx",
        on_click="ignore",
    )


def pick_customer(role: str) -> tuple[str, str]:
    """(internal id, what the page shows): marketing picks and searches masked keys only."""
    if role == MARKETING:
        choices = load_masked_choices(str(HOME))
        if choices.is_empty():
            raise NoData(EMPTY_HINT + " (no published retention list)")
        probs = dict(zip(choices["customer_key"], choices["churn_probability"], strict=True))
        c = st.columns(2)
        picked = c[0].selectbox(
            "Riskiest customers on the newest list (masked keys)",
            list(probs),
            format_func=lambda key: f"{key} · {probs[key]:.1%}",
            key="customer_pick",
        )
        typed = c[1].text_input("…or a masked key from a list", key="customer_key").strip()
        key = typed or picked
        customer_id = data.customer_for_key(str(HOME), key)
        if customer_id is None:
            raise NoData(f"No customer with masked key {key!r} on a published list.")
        return customer_id, key
    choices = load_choices(str(HOME))
    if choices.is_empty():
        raise NoData(EMPTY_HINT + " (no scored customers)")
    probs = dict(zip(choices["customer_id"], choices["churn_probability"], strict=True))
    c = st.columns(2)
    picked = c[0].selectbox(
        "Riskiest customers (latest scores)",
        list(probs),
        format_func=lambda cid: f"{cid} · {probs[cid]:.1%}",
        key="customer_pick",
    )
    typed = c[1].text_input("…or any customer id", key="customer_id").strip()
    return typed or picked, typed or picked


def customer_page() -> None:
    st.title("Customer")
    customer_id, shown = pick_customer(ROLE)
    view = load_customer(str(HOME), customer_id)
    audit_lookup(ROLE, shown)
    p, scores = view.profile, view.scores
    latest = scores.row(-1, named=True) if scores.height else {}
    st.subheader(shown)
    c = st.columns(4)
    c[0].metric("Segment", p.get("segment") or "–")
    c[1].metric("Value tier", p.get("value_tier") or "–")
    c[2].metric("Lifecycle", p.get("lifecycle_stage") or "–")
    c[3].metric("Plan", p.get("plan_id") or "–")
    c = st.columns(4)
    tenure = p.get("tenure_days")
    c[0].metric("Tenure", "–" if tenure is None else f"{tenure / 30.44:.0f} months")
    c[1].metric("Monthly spend", money(p.get("monthly_spend")))
    c[2].metric(
        "Churn probability",
        pct(latest.get("churn_probability")),
        help=f"Latest scores, as of {latest.get('as_of', '–')}",
    )
    c[3].metric("Risk decile", str(latest.get("risk_decile", "–")), help="10 = riskiest")
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Risk history**")
        if scores.height:
            show(charts.risk_history(scores))
        else:
            st.info("This customer has not been scored.")
    with right:
        st.markdown("**Top reasons** (latest scores)")
        reasons = [latest.get(f"reason_{i}") for i in (1, 2, 3)]
        reasons = [r for r in reasons if r]
        if reasons:
            st.markdown("\n".join(f"{i}. {r}" for i, r in enumerate(reasons, 1)))
        else:
            st.caption("No reason codes: they are computed for the riskier deciles only.")
        extra = {
            k: p.get(k)
            for k in ("payment_type", "region", "activation_date", "contract_end")
            if p.get(k) is not None
        }
        st.markdown("**Profile**")
        table(
            pl.DataFrame({"field": list(extra), "value": [str(v) for v in extra.values()]}),
        )
    st.markdown("**Monthly usage, billing and complaints**")
    if view.timeline.height:
        metrics = view.timeline["metric"].unique(maintain_order=True).to_list()
        months = view.timeline["month"]
        domain = [months.min().isoformat(), months.max().isoformat()]
        for start in range(0, len(metrics), 4):
            cols = st.columns(4)
            for col, metric in zip(cols, metrics[start : start + 4], strict=False):
                with col:
                    part = view.timeline.filter(pl.col("metric") == metric)
                    show(charts.small_line(part, metric, domain))
    else:
        st.info("No usage, billing or complaint history for this customer.")
    left, right = st.columns(2)
    with left:
        st.markdown("**Offer history**")
        if view.offers.height:
            table(view.offers)
        else:
            st.caption("Never on a retention list.")
    with right:
        st.markdown("**Recent tickets**")
        if view.tickets.height:
            table(view.tickets)
        else:
            st.caption("No tickets.")


def models_page() -> None:
    st.title("Models")
    views = load_models(str(HOME), tuple(CONFIG_FILES))
    tabs = st.tabs([v.name for v in views])
    for tab, view in zip(tabs, views, strict=True):
        with tab:
            champion = view.aliases.get("champion")
            challenger = view.aliases.get("challenger")
            rows = {r["version"]: r for r in view.versions.iter_rows(named=True)}
            champ, chall = rows.get(champion or "", {}), rows.get(challenger or "", {})
            c = st.columns(6)
            c[0].metric("Champion", f"v{champion}" if champion else "–")
            c[1].metric("Challenger", f"v{challenger}" if challenger else "–")
            for col, key, label, better in (
                (c[2], "pr_auc", "PR AUC", "normal"),
                (c[3], "roc_auc", "ROC AUC", "normal"),
                (c[4], "top_decile_lift", "Top-decile lift", "normal"),
                (c[5], "brier", "Brier", "inverse"),
            ):
                new, old = chall.get(key), champ.get(key)
                delta = None if new is None or old is None or champion == challenger else new - old
                col.metric(
                    label,
                    "–" if new is None else f"{new:.3f}",
                    delta=None if delta is None else f"{delta:+.3f}",
                    delta_color=better,
                    help="Challenger on its own out-of-time validation month; delta vs the champion",
                )
            if champion and champion == challenger:
                st.caption(f"The latest challenger (v{challenger}) is the current champion.")
            if chall.get("gate"):
                st.caption(f"Promotion gate on v{challenger}: {chall['gate']}")
            versions = view.versions.with_columns(
                (
                    pl.lit(f"http://127.0.0.1:5000/#/experiments/{view.experiment_id}/runs/")
                    + pl.col("run_id")
                ).alias("mlflow")
            )
            table(
                versions,
                column_config={
                    "mlflow": st.column_config.LinkColumn(
                        "MLflow run", display_text="open run", help="Needs `mlflow ui` running"
                    ),
                    "trained_at": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
                    "gate": st.column_config.TextColumn(width="large"),
                },
            )
            st.caption(
                "Run links open a local MLflow UI: `uv run mlflow ui --backend-store-uri "
                f"sqlite:///{HOME / 'mlflow' / 'mlflow.db'}`"
            )
            # Champion first, so it keeps the first colour on every chart.
            order = sorted(view.artifacts, key=lambda v: v != champion)
            labelled = {
                f"v{v} ({', '.join(sorted(a for a, av in view.aliases.items() if av == v))})": (
                    view.artifacts[v]
                )
                for v in order
            }
            if not any(labelled.values()):
                st.info("No evaluation artifacts logged for the champion or challenger.")
                continue
            found = {
                kind: {k: a[kind] for k, a in labelled.items() if kind in a}
                for kind in ("gains", "calibration", "importance")
            }
            left, right = st.columns(2)
            with left:
                st.markdown("**Cumulative gains** (out-of-time validation)")
                if found["gains"]:
                    show(charts.gains(found["gains"]))
            with right:
                st.markdown("**Calibration** (by predicted decile)")
                if found["calibration"]:
                    show(charts.calibration(found["calibration"]))
            left, right = st.columns(2)
            with left:
                st.markdown("**Feature importance** (gain, top 15)")
                if found["importance"]:
                    show(charts.importance(found["importance"]))
            with right:
                if found["gains"]:
                    label, gains = next(iter(found["gains"].items()))
                    st.markdown(f"**Gains by decile**, {label}")
                    table(
                        pl.DataFrame(gains),
                        column_config={
                            "rate": st.column_config.NumberColumn(format="percent"),
                            "cumulative_gain": st.column_config.NumberColumn(format="percent"),
                            "cumulative_lift": st.column_config.NumberColumn(format="%.2f"),
                        },
                    )


def monitoring_page() -> None:
    st.title("Monitoring")
    runs = load_drift_runs(str(HOME))
    if runs.is_empty():
        raise NoData(EMPTY_HINT + " (no monitoring run yet: `churn monitor`)")
    last = runs.row(0, named=True)
    c = st.columns(5)
    c[0].metric("Latest decision", str(last["decision"]).upper(), help=f"as of {last['as_of']}")
    c[1].metric(
        "Features drifted", pct(last["drifted_share"]), help=f"{last['n_drifted']} features"
    )
    c[2].metric("Prediction drift", f"{last['prediction_drift']:.3f}")
    c[3].metric(
        "Realised AUC",
        "–" if last["realised_auc"] is None else f"{last['realised_auc']:.3f}",
        help="On the matured labels of an earlier scoring",
    )
    c[4].metric(
        "Reference AUC", "–" if last["reference_auc"] is None else f"{last['reference_auc']:.3f}"
    )
    left, right = st.columns([2, 3])
    with left:
        st.markdown("**Drift per run**")
        show(charts.drift_share(runs))
    with right:
        st.markdown("**Runs**")
        table(
            runs.select(
                "as_of",
                "reference",
                "drifted_share",
                "n_drifted",
                "prediction_drift",
                "realised_auc",
                "realised_lift",
                "decision",
                "reasons",
            ),
            column_config={"drifted_share": st.column_config.NumberColumn(format="percent")},
        )
    labels = {
        r["run_at"]: f"as of {r['as_of']} (run {r['run_at']:%Y-%m-%d %H:%M})"
        for r in runs.iter_rows(named=True)
    }
    run_at = st.selectbox("Run", list(labels), format_func=labels.get, key="drift_run")
    features = load_feature_drift(str(HOME), run_at)
    st.markdown("**Top drifted features**")
    if features.height:
        left, right = st.columns([3, 2])
        with left:
            show(charts.drifted_features(features))
        with right:
            table(features.drop("strength"))
    else:
        st.caption("No per-feature drift recorded for this run.")
    st.markdown("**Evidently report**")
    files = data.reports(HOME)
    if not files:
        st.info("No Evidently report under reports/ yet.")
        return
    report = st.selectbox("Report", files, format_func=lambda p: p.name, key="report")
    st.iframe(report, height=800, alt=f"Evidently report {report.name}")


def campaigns_page() -> None:
    st.title("Campaigns")
    results = load_campaigns(str(HOME))
    if results.is_empty():
        raise NoData(
            "No campaign has been evaluated yet — `churn evaluate` (run by `churn cycle`) "
            "compares treated and control customers once a list's contact window has passed."
        )
    lists = results["list_id"].unique(maintain_order=True).to_list()
    c = st.columns([3, 1])
    list_id = c[0].selectbox("List", lists, key="campaign_list")
    windows = sorted(results.filter(pl.col("list_id") == list_id)["window_days"].unique().to_list())
    window = c[1].radio(
        "Window", windows, format_func=lambda w: f"{w} days", horizontal=True, key="campaign_window"
    )
    rows = results.filter((pl.col("list_id") == list_id) & (pl.col("window_days") == window))
    overall = rows.filter(pl.col("breakdown") == "all")
    if overall.height:
        o = overall.row(0, named=True)
        if not o["matured"]:
            st.warning(
                f"The {window}-day window has not fully passed yet: these outcomes are provisional."
            )
        if o.get("verdict") == "too few controls to tell":
            st.warning(
                f"Too few controls to tell: {o['control']:,} control customers, fewer than the "
                "configured minimum (retention.campaigns.min_control).",
            )
        elif o.get("verdict"):
            st.info(f"Verdict: {o['verdict']} ({o.get('test') or 'test'}).")
        c = st.columns(6)
        c[0].metric(
            "Treated churn", pct(o["treated_churn_rate"]), help=f"{o['treated']:,} customers"
        )
        c[1].metric(
            "Control churn", pct(o["control_churn_rate"]), help=f"{o['control']:,} customers"
        )
        c[2].metric(
            "Churn reduction",
            pct(o["difference"]),
            help=f"95% interval {pct(o['ci_low'])} to {pct(o['ci_high'])}",
        )
        c[3].metric(
            "p-value",
            f"{o['p_value']:.3f}",
            help=f"{o.get('test') or 'test'}; the interval holds what this test does not reject",
        )
        c[4].metric("Incremental saves", f"{o['incremental_saves']:,.1f}")
        roi_text = "–" if o["roi"] is None else f"{o['roi']:.2f}"
        roi_range = (
            None
            if o.get("roi_low") is None
            else f"95% interval {o['roi_low']:.2f} to {o['roi_high']:.2f}"
        )
        c[5].metric("ROI", roi_text, help=roi_range)
        st.caption(
            f"95% interval for the churn reduction: {pct(o['ci_low'])} to {pct(o['ci_high'])}"
            f" ({o.get('test') or 'test'}, p = {o['p_value']:.3f}); ROI {roi_text}"
            f"{f' ({roi_range})' if roi_range else ''}; realised spend {money(o['cost'])}."
        )
    left, right = st.columns(2)
    for col, breakdown, title in ((left, "offer", "by offer"), (right, "tier", "by value tier")):
        part = rows.filter(pl.col("breakdown") == breakdown)
        with col:
            st.subheader(title.capitalize())
            if part.is_empty():
                st.caption(f"No {breakdown} had both treated and control customers.")
                continue
            st.markdown("**Churn reduction** (control − treated) with 95% interval")
            show(charts.uplift_intervals(part))
            st.markdown("**Churn rate**, treated vs control")
            show(charts.treated_vs_control(part))
    history = results.filter(
        (pl.col("breakdown") == "all") & (pl.col("window_days") == window)
    ).with_columns(pl.col("list_id").alias("grp"))
    if history.height > 1:
        st.subheader("Every evaluated list")
        st.markdown(f"**Churn reduction within {window} days** with 95% interval, per list")
        show(charts.uplift_intervals(history))
    st.markdown("**All results for this list**")
    table(
        rows.drop("list_id", "as_of"),
        column_config={
            c: st.column_config.NumberColumn(format="percent")
            for c in ("treated_churn_rate", "control_churn_rate", "difference", "ci_low", "ci_high")
        },
    )


# Material icons ship with Streamlit's font; emoji need a system emoji font.
PAGES = {
    "overview": ("Overview", ":material/dashboard:", overview_page),
    "retention-list": ("Retention list", ":material/list_alt:", list_page),
    "customer": ("Customer", ":material/person:", customer_page),
    "models": ("Models", ":material/model_training:", models_page),
    "monitoring": ("Monitoring", ":material/monitor_heart:", monitoring_page),
    "campaigns": ("Campaigns", ":material/campaign:", campaigns_page),
}


ROLE = DATA_TEAM  # set by main() before any page runs


def main() -> None:
    global ROLE
    ROLE = sign_in()
    # A start page chosen in session state lets tests (and links) open any page directly.
    start = st.session_state.get("start_page", "overview")
    pages = [
        st.Page(guarded(fn), title=title, icon=icon, url_path=slug, default=slug == start)
        for slug, (title, icon, fn) in PAGES.items()
    ]
    page = st.navigation(pages)
    with st.sidebar:
        st.caption(f"Work directory: `{HOME}`")
        if "role" in st.session_state:
            st.caption(f"Signed in: **{ROLE}**")
            if st.button("Sign out"):
                audit_line(f"sign-out role={ROLE}")
                del st.session_state["role"]
                st.rerun()
        if not data.warehouse_path(HOME).is_file():
            st.caption("No warehouse yet.")
        if st.button("Refresh data", help=f"Data is cached for {TTL} s"):
            st.cache_data.clear()
            st.rerun()
    page.run()


main()
