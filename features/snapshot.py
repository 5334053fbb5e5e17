"""Point-in-time customer snapshot: SQL over raw tables using only data stamped at or before as_of.

The SQL and the feature dictionary are generated from the same specs, so they cannot disagree.
`as_of` is always a bound parameter ($as_of); window lengths and tier cut-offs come from the
validated config (integers and floats), never from free text.
"""

# SQL here is assembled from feature specs and validated config numbers only; as_of and data_end
# are bound parameters.
# ruff: noqa: S608

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from configs.schema import FeaturesConfig
from features.dictionary import FeatureSpec
from features.relative import relative_specs
from features.rollup import USAGE_METRICS, usage_ctes

T = "CAST($as_of AS DATE)"
# Timestamps on the as-of day belong to it: compare them with the next midnight.
T_END = f"({T} + INTERVAL 1 DAY)"

META_COLUMNS = (
    "customer_id",
    "as_of",
    "segment",
    "payment_type",
    "region",
    "plan_id",
    "enterprise_grade",
    "value_tier",
    "lifecycle_stage",
    "monthly_spend",
)


@dataclass(frozen=True)
class Feature:
    spec: FeatureSpec
    expr: str  # SQL over the CTE it belongs to
    rollup: tuple | None = None  # usage features: how features.rollup reads it from weekly pieces


def _f(
    name,
    expr,
    description,
    sources,
    window=None,
    dtype="DOUBLE",
    group=None,
    template=None,
    rollup=None,
):
    return Feature(
        FeatureSpec(name, description, dtype, tuple(sources), window, group, template), expr, rollup
    )


def usage_features(windows: list[int]) -> list[Feature]:
    out = []
    for w in windows:
        for col, agg, label, group in USAGE_METRICS:
            template = None
            if col == "dropped_call_rate":
                template = f"dropped calls {{value:.1%}} over {w} days"
            out.append(
                _f(
                    f"{col}_{w}d",
                    f"CAST({agg}({col}) FILTER (WHERE usage_date > {T} - {w}) AS DOUBLE)",
                    f"{label} over the last {w} days",
                    ["usage_daily"],
                    w,
                    group=group,
                    template=template,
                    rollup=(agg, col, w),
                )
            )
        out.append(
            _f(
                f"active_days_{w}d",
                f"count(*) FILTER (WHERE usage_date > {T} - {w})",
                f"days with any usage in the last {w} days",
                ["usage_daily"],
                w,
                "INTEGER",
                "usage_down",
                rollup=("days", w),
            )
        )
    out += [
        _f(
            "days_since_last_usage",
            f"{T} - max(usage_date)",
            "days since the last day with usage (recency)",
            ["usage_daily"],
            group="usage_down",
            template="no usage for {value:.0f} days",
            rollup=("last",),
        ),
        _f(
            "voice_min_prev60",
            f"sum(voice_min) FILTER (WHERE usage_date > {T} - 90 AND usage_date <= {T} - 30)",
            "voice minutes in the 60 days before the last 30",
            ["usage_daily"],
            60,
            rollup=("prev", "voice_min"),
        ),
        _f(
            "data_mb_prev60",
            f"sum(data_mb) FILTER (WHERE usage_date > {T} - 90 AND usage_date <= {T} - 30)",
            "data MB in the 60 days before the last 30",
            ["usage_daily"],
            60,
            rollup=("prev", "data_mb"),
        ),
        _f(
            "data_slope_90d",
            f"regr_slope(data_mb, CAST(usage_date - {T} AS DOUBLE)) FILTER (WHERE usage_date > {T} - 90)",
            "daily data trend over 90 days (MB per day per day)",
            ["usage_daily"],
            90,
            group="usage_down",
            rollup=("slope", "data_mb"),
        ),
        _f(
            "voice_slope_90d",
            f"regr_slope(voice_min, CAST(usage_date - {T} AS DOUBLE)) FILTER (WHERE usage_date > {T} - 90)",
            "daily voice trend over 90 days (minutes per day per day)",
            ["usage_daily"],
            90,
            group="usage_down",
            rollup=("slope", "voice_min"),
        ),
    ]
    return out


def derived_features() -> list[Feature]:
    """Computed in the final select from columns of the CTEs."""
    trend = "({a} / 30.0) / nullif({b} / 60.0, 0) - 1"
    return [
        _f(
            "tenure_days",
            f"{T} - c.activation_date",
            "days since activation",
            ["customers"],
            dtype="INTEGER",
            group="tenure",
            template="customer for only {value:.0f} days",
        ),
        _f(
            "days_to_contract_end",
            f"coalesce(k.contract_end, c.contract_end) - {T}",
            "days until the contract term ends (negative: out of contract)",
            ["customers", "events"],
            dtype="INTEGER",
            group="contract_end",
            template="contract ends in {value:.0f} days",
        ),
        _f(
            "handset_age_months",
            f"c.handset_age_months + ({T} - c.activation_date) / 30",
            "handset age in months",
            ["customers"],
            dtype="INTEGER",
            group="handset_age",
            template="handset {value:.0f} months old",
        ),
        _f(
            "data_trend_30v60",
            trend.format(a="u.data_mb_30d", b="u.data_mb_prev60"),
            "data use last 30 days vs the 60 before (relative change)",
            ["usage_daily"],
            90,
            group="usage_down",
            template="data usage {value:+.0%} vs previous 60 days",
        ),
        _f(
            "voice_trend_30v60",
            trend.format(a="u.voice_min_30d", b="u.voice_min_prev60"),
            "voice use last 30 days vs the 60 before (relative change)",
            ["usage_daily"],
            90,
            group="usage_down",
            template="voice usage {value:+.0%} vs previous 60 days",
        ),
        _f(
            "data_allowance_use_30d",
            "u.data_mb_30d / nullif(p.data_mb, 0)",
            "data used in 30 days as a share of the plan allowance",
            ["usage_daily", "plans"],
            30,
            group="plan_misfit",
            template="uses {value:.0%} of the data allowance",
        ),
        _f(
            "voice_allowance_use_30d",
            "u.voice_min_30d / nullif(p.voice_min, 0)",
            "voice minutes in 30 days as a share of the plan allowance",
            ["usage_daily", "plans"],
            30,
            group="plan_misfit",
            template="uses {value:.0%} of the voice allowance",
        ),
        _f(
            "plan_fee",
            "p.monthly_fee",
            "monthly fee of the current plan",
            ["plans", "events"],
            group="price",
        ),
        _f(
            "is_postpaid",
            "CAST(c.payment_type = 'postpaid' AS INTEGER)",
            "1 for postpaid",
            ["customers"],
            dtype="INTEGER",
        ),
    ]


def bill_window(days: int) -> int:
    """Bills are monthly: a window this long holds exactly days/30 bills whatever the month lengths."""
    return math.ceil(days * 365.25 / 360) + 1


def billing_features(tier_window: int) -> list[Feature]:
    months = tier_window / 30.0
    return [
        _f(
            "bill_last",
            "arg_max(amount, issue_date)",
            "amount of the latest bill",
            ["invoices"],
            group="price",
        ),
        _f(
            "bill_median_prev3",
            "median(amount) FILTER (WHERE issue_date < (SELECT max(i2.issue_date) FROM raw.invoices i2 WHERE i2.customer_id = i.customer_id AND i2.issue_date <= "
            + T
            + ") AND issue_date > "
            + T
            + " - 130)",
            "median of the three bills before the latest",
            ["invoices"],
            120,
        ),
        _f(
            "overage_last",
            "arg_max(overage_amount, issue_date)",
            "out-of-bundle charges on the latest bill",
            ["invoices"],
            group="bill_shock",
            template="{value:.0f} of out-of-bundle charges on the last bill",
        ),
        _f(
            "invoice_spend_window",
            f"sum(amount) FILTER (WHERE issue_date > {T} - {bill_window(tier_window)}) / {months}",
            f"average monthly billed spend over {tier_window} days",
            ["invoices"],
            tier_window,
        ),
        _f(
            "invoice_spend_30d",
            f"sum(amount) FILTER (WHERE issue_date > {T} - {bill_window(30)})",
            "billed in the last month",
            ["invoices"],
            30,
        ),
        _f(
            "invoice_spend_prev60",
            f"sum(amount) FILTER (WHERE issue_date > {T} - {bill_window(90)}"
            f" AND issue_date <= {T} - {bill_window(30)})",
            "billed in the two months before the last",
            ["invoices"],
            60,
        ),
    ]


def payment_features() -> list[Feature]:
    return [
        _f(
            "late_payments_180d",
            "count(*) FILTER (WHERE paid_date > due_date)",
            "bills paid late in 180 days",
            ["invoices", "payments"],
            180,
            "INTEGER",
            "payment",
            "{value:.0f} late payments in 180 days",
        ),
        _f(
            "avg_days_late_180d",
            "avg(greatest(paid_date - due_date, 0))",
            "average days late per bill",
            ["invoices", "payments"],
            180,
            group="payment",
        ),
        _f(
            "unpaid_due_bills",
            f"count(*) FILTER (WHERE paid_date IS NULL AND due_date <= {T})",
            "bills past due and unpaid at as-of",
            ["invoices", "payments"],
            180,
            "INTEGER",
            "payment",
            "{value:.0f} unpaid overdue bills",
        ),
        _f(
            "outstanding_balance",
            "sum(amount) FILTER (WHERE paid_date IS NULL)",
            "amount of bills issued and not yet paid",
            ["invoices", "payments"],
            180,
            group="payment",
        ),
    ]


def collection_features() -> list[Feature]:
    return [
        _f(
            "days_past_due_last",
            "arg_max(days_past_due, snapshot_date)",
            "days past due at the last month end",
            ["collections"],
            dtype="INTEGER",
            group="payment",
            template="{value:.0f} days past due",
        ),
        _f(
            "max_days_past_due_180d",
            f"max(days_past_due) FILTER (WHERE snapshot_date > {T} - 180)",
            "worst days past due in 180 days",
            ["collections"],
            180,
            "INTEGER",
            "payment",
        ),
        _f(
            "amount_overdue_last",
            "arg_max(amount_overdue, snapshot_date)",
            "overdue amount at the last month end",
            ["collections"],
            group="payment",
        ),
        _f(
            "arrears_months_365d",
            f"count(*) FILTER (WHERE snapshot_date > {T} - 365)",
            "month ends in arrears over a year",
            ["collections"],
            365,
            "INTEGER",
            "payment",
        ),
        _f(
            "ever_written_off",
            "CAST(bool_or(write_off) AS INTEGER)",
            "ever had debt written off",
            ["collections"],
            dtype="INTEGER",
            group="payment",
        ),
    ]


def topup_features() -> list[Feature]:
    ok, bad = "status = 'success'", "status = 'failed'"
    return [
        _f(
            "topups_30d",
            f"count(*) FILTER (WHERE {ok} AND topup_ts > {T} - 30)",
            "successful top-ups in 30 days",
            ["topups"],
            30,
            "INTEGER",
        ),
        _f(
            "topup_amount_90d",
            f"sum(amount) FILTER (WHERE {ok} AND topup_ts > {T} - 90)",
            "topped-up amount in 90 days",
            ["topups"],
            90,
            group="spend_down",
        ),
        _f(
            "topup_spend_window",
            f"sum(amount) FILTER (WHERE {ok} AND topup_ts > {T} - $tier_window) / ($tier_window / 30.0)",
            "average monthly top-up spend over the tier window",
            ["topups"],
        ),
        _f(
            "topup_failures_30d",
            f"count(*) FILTER (WHERE {bad} AND topup_ts > {T} - 30)",
            "failed top-ups in 30 days",
            ["topups"],
            30,
            "INTEGER",
            "topup_failure",
            "{value:.0f} failed top-ups in 30 days",
        ),
        _f(
            "topup_failure_rate_90d",
            f"avg(CAST({bad} AS INTEGER)) FILTER (WHERE topup_ts > {T} - 90)",
            "share of top-ups that failed in 90 days",
            ["topups"],
            90,
            group="topup_failure",
        ),
        _f(
            "days_since_topup",
            f"{T} - CAST(max(topup_ts) FILTER (WHERE {ok}) AS DATE)",
            "days since last successful top-up",
            ["topups"],
            dtype="INTEGER",
            group="usage_down",
        ),
    ]


def ticket_features() -> list[Feature]:
    # Resolution after as-of is unknown at as-of: such tickets count as still open.
    resolved = f"CASE WHEN resolved_ts < {T_END} THEN resolved_ts END"
    age_h = f"date_diff('second', opened_ts, coalesce({resolved}, {T_END})) / 3600.0"
    out = [
        _f(
            "complaints_30d",
            f"count(*) FILTER (WHERE opened_ts >= {T} - 29)",
            "care tickets opened in 30 days",
            ["tickets"],
            30,
            "INTEGER",
            "complaints",
            "{value:.0f} complaints in 30 days",
        ),
        _f(
            "complaints_90d",
            f"count(*) FILTER (WHERE opened_ts >= {T} - 89)",
            "care tickets opened in 90 days",
            ["tickets"],
            90,
            "INTEGER",
            "complaints",
            "{value:.0f} complaints in 90 days",
        ),
        _f(
            "severe_complaints_90d",
            f"count(*) FILTER (WHERE opened_ts >= {T} - 89 AND severity IN ('high', 'critical'))",
            "high or critical tickets in 90 days",
            ["tickets"],
            90,
            "INTEGER",
            "complaints",
            "{value:.0f} severe complaints in 90 days",
        ),
        _f(
            "sla_breaches_90d",
            f"count(*) FILTER (WHERE opened_ts >= {T} - 89 AND {age_h} > sla_hours)",
            "tickets over their SLA (as known at as-of) in 90 days",
            ["tickets"],
            90,
            "INTEGER",
            "sla_breach",
            "{value:.0f} SLA breaches in 90 days",
        ),
        _f(
            "repeat_complaints_90d",
            f"count(*) FILTER (WHERE opened_ts >= {T} - 89 AND repeat_flag)",
            "repeat tickets in 90 days",
            ["tickets"],
            90,
            "INTEGER",
            "complaints",
            "{value:.0f} repeat complaints",
        ),
        _f(
            "open_tickets",
            f"count(*) FILTER (WHERE {resolved} IS NULL)",
            "tickets still open at as-of",
            ["tickets"],
            dtype="INTEGER",
            group="sla_breach",
            template="{value:.0f} unresolved tickets",
        ),
        _f(
            "days_since_complaint",
            f"{T} - CAST(max(opened_ts) AS DATE)",
            "days since the last ticket",
            ["tickets"],
            dtype="INTEGER",
            group="complaints",
        ),
    ]
    for cat in ("billing", "network", "technical", "service"):
        group = {"billing": "bill_shock", "network": "network_quality"}.get(cat, "complaints")
        out.append(
            _f(
                f"{cat}_complaints_90d",
                f"count(*) FILTER (WHERE opened_ts >= {T} - 89 AND category = '{cat}')",
                f"{cat} tickets in 90 days",
                ["tickets"],
                90,
                "INTEGER",
                group,
                f"{{value:.0f}} {cat} complaints in 90 days",
            )
        )
    return out


def event_features() -> list[Feature]:
    spec = (
        (
            "port_out_request",
            30,
            "port_out",
            "asked to port the number out {value:.0f} time(s) in 30 days",
        ),
        ("port_out_request", 90, "port_out", None),
        ("sim_swap", 90, "events", "{value:.0f} SIM swaps in 90 days"),
        ("suspend", 90, "events", "suspended {value:.0f} time(s) in 90 days"),
        ("resume", 90, "events", None),
        (
            "account_manager_change",
            180,
            "account_manager_change",
            "account manager changed {value:.0f} time(s)",
        ),
        ("plan_change", 180, "plan_misfit", None),
        ("contract_renewal", 365, "contract_end", None),
    )
    out = [
        _f(
            f"{kind}_{w}d",
            f"count(*) FILTER (WHERE event_type = '{kind}' AND event_ts >= {T} - {w - 1})",
            f"{kind.replace('_', ' ')} events in {w} days",
            ["events"],
            w,
            "INTEGER",
            group,
            template,
        )
        for kind, w, group, template in spec
    ]
    out.append(
        _f(
            "days_since_port_out_request",
            f"{T} - CAST(max(event_ts) FILTER (WHERE event_type = 'port_out_request') AS DATE)",
            "days since the last port-out request",
            ["events"],
            dtype="INTEGER",
            group="port_out",
        )
    )
    return out


def product_features() -> list[Feature]:
    return [
        _f("products_held", "count(*)", "products held at as-of", ["products"], dtype="INTEGER"),
        _f(
            "has_broadband",
            "CAST(bool_or(product = 'broadband') AS INTEGER)",
            "holds broadband",
            ["products"],
            dtype="INTEGER",
        ),
        _f(
            "has_fixed",
            "CAST(bool_or(product = 'fixed') AS INTEGER)",
            "holds a fixed line",
            ["products"],
            dtype="INTEGER",
        ),
        _f(
            "products_monthly_fee",
            "sum(monthly_fee)",
            "monthly fees of products held",
            ["products"],
            group="price",
        ),
    ]


def late_features() -> list[Feature]:
    """Depend on the value columns computed in the final select."""
    return [
        _f(
            "spend_trend_30v60",
            "(coalesce(invoice_spend_30d, 0) + coalesce(topup_30d_amount, 0)) / 30.0"
            " / nullif((coalesce(invoice_spend_prev60, 0) + coalesce(topup_prev60_amount, 0)) / 60.0, 0) - 1",
            "spend last 30 days vs the 60 before (relative change)",
            ["invoices", "topups"],
            90,
            group="spend_down",
            template="spend {value:+.0%} vs previous 60 days",
        ),
        _f(
            "bill_shock_ratio",
            "bill_last / nullif(bill_median_prev3, 0)",
            "latest bill vs own median of the three before",
            ["invoices"],
            120,
            group="bill_shock",
            template="last bill {value:.1f}× the usual amount",
        ),
        _f(
            "credit_exposure_ratio",
            "coalesce(outstanding_balance, 0) / greatest(monthly_spend, 1)",
            "unpaid balance in months of average spend (exposure vs spend-based limit)",
            ["invoices", "payments"],
            group="payment",
        ),
    ]


def all_features(cfg: FeaturesConfig) -> list[Feature]:
    return (
        derived_features()
        + usage_features(cfg.windows_days)
        + billing_features(cfg.tier_window_days)
        + payment_features()
        + collection_features()
        + topup_features()
        + ticket_features()
        + event_features()
        + product_features()
        + late_features()
    )


def feature_specs(cfg: FeaturesConfig) -> tuple[FeatureSpec, ...]:
    """The dictionary for this configuration (windows come from config)."""
    # Segment-relative companions are added to the whole snapshot after the SQL (features.relative).
    return tuple(f.spec for f in all_features(cfg)) + relative_specs()


def _select(features: list[Feature]) -> str:
    return ",\n    ".join(f'{f.expr} AS "{f.spec.name}"' for f in features)


def tier_case(cfg: FeaturesConfig, spend: str = "monthly_spend") -> str:
    """Value tier by average monthly spend across all products; cut-offs from config."""
    t = cfg.tiers
    return (
        f"CASE WHEN {spend} >= {float(t.diamond)} THEN 'diamond'"
        f" WHEN {spend} >= {float(t.gold)} THEN 'gold'"
        f" WHEN {spend} >= {float(t.silver)} THEN 'silver' ELSE 'basic' END"
    )


def lifecycle_case(cfg: FeaturesConfig) -> str:
    """Development → growth → maturity, or decline when usage or spend falls (rules from config)."""
    lc = cfg.lifecycle
    drop = float(lc.decline_max_spend_trend)
    return f"""CASE WHEN tenure_days <= {int(lc.development_max_tenure_days)} THEN 'development'
         WHEN (coalesce(data_trend_30v60, 0) + coalesce(voice_trend_30v60, 0)) / 2 <= {drop}
           OR (payment_type = 'postpaid' AND coalesce(spend_trend_30v60, 0) <= {drop}) THEN 'decline'
         WHEN tenure_days <= {int(lc.growth_max_tenure_days)}
           OR coalesce(spend_trend_30v60, 0) >= {float(lc.growth_min_spend_trend)} THEN 'growth'
         ELSE 'maturity' END"""


def snapshot_sql(cfg: FeaturesConfig, rollup_as_of: date | None = None) -> str:
    """SELECT producing one row per customer active at $as_of with meta columns and features.

    With `rollup_as_of` (the same date as $as_of) usage windows are read from the weekly rollups
    (features.rollup), which must be current; without, from every daily row (the reference the
    rollups are tested against).
    """
    max_w = max(cfg.windows_days + [180])
    tw = int(cfg.tier_window_days)
    usage = usage_features(cfg.windows_days)
    topups = [Feature(f.spec, f.expr.replace("$tier_window", str(tw))) for f in topup_features()]
    derived = derived_features()
    late = late_features()
    cols = [
        f'{prefix}."{f.spec.name}"'
        for prefix, fs in (
            ("u", usage),
            ("b", billing_features(tw)),
            ("pm", payment_features()),
            ("co", collection_features()),
            ("t", topups),
            ("tk", ticket_features()),
            ("e", event_features()),
            ("pr", product_features()),
        )
        for f in fs
    ]
    # A customer with no rows in a source has zero of what it counts, not an unknown number.
    counted = {f.spec.name for f in all_features(cfg) if f.expr.startswith("count(")}
    cols = [
        f"coalesce({c}, 0) AS {c.split('.', 1)[1]}"
        if c.split(".", 1)[1].strip('"') in counted
        else c
        for c in cols
    ]
    if rollup_as_of is None:
        usage_cte = f"""u AS (
    SELECT customer_id,
    {_select(usage)}
    FROM raw.usage_daily WHERE usage_date <= {T} AND usage_date > {T} - {max_w}
    GROUP BY customer_id
)"""
    else:
        usage_cte = usage_ctes(
            cfg.windows_days, rollup_as_of, {f.spec.name: f.rollup for f in usage}
        )
    return f"""
WITH
cust AS (
    SELECT c.* FROM raw.customers c
    WHERE c.activation_date <= {T}
      AND NOT EXISTS (SELECT 1 FROM raw.disconnects d
                      WHERE d.customer_id = c.customer_id AND d.disconnect_date <= {T})
),
plan_now AS (
    SELECT customer_id, arg_max(detail, event_ts) AS plan_id FROM raw.events
    WHERE event_type = 'plan_change' AND event_ts < {T_END} GROUP BY 1
),
k AS (
    SELECT customer_id, TRY_CAST(arg_max(detail, event_ts) AS DATE) AS contract_end FROM raw.events
    WHERE event_type = 'contract_renewal' AND event_ts < {T_END} GROUP BY 1
),
{usage_cte},
b AS (
    SELECT customer_id,
    {_select(billing_features(tw))}
    FROM raw.invoices i WHERE issue_date <= {T} AND issue_date > {T} - 400
    GROUP BY customer_id
),
paid AS (
    SELECT invoice_id, min(payment_date) AS paid_date FROM raw.payments
    WHERE payment_date <= {T} AND invoice_id IS NOT NULL GROUP BY 1
),
pm AS (
    SELECT i.customer_id,
    {_select(payment_features())}
    FROM raw.invoices i LEFT JOIN paid USING (invoice_id)
    WHERE i.issue_date <= {T} AND i.issue_date > {T} - 180
    GROUP BY i.customer_id
),
co AS (
    SELECT customer_id,
    {_select(collection_features())}
    FROM raw.collections WHERE snapshot_date <= {T}
    GROUP BY customer_id
),
t AS (
    SELECT customer_id,
    {_select(topups)},
    sum(amount) FILTER (WHERE status = 'success' AND topup_ts > {T} - 30) AS topup_30d_amount,
    sum(amount) FILTER (WHERE status = 'success' AND topup_ts > {T} - 90 AND topup_ts <= {T} - 30)
        AS topup_prev60_amount
    FROM raw.topups WHERE topup_ts < {T_END} AND topup_ts >= {T} - 400
    GROUP BY customer_id
),
tk AS (
    SELECT customer_id,
    {_select(ticket_features())}
    FROM raw.tickets WHERE opened_ts < {T_END}
    GROUP BY customer_id
),
e AS (
    SELECT customer_id,
    {_select(event_features())}
    FROM raw.events WHERE event_ts < {T_END}
    GROUP BY customer_id
),
pr AS (
    SELECT customer_id,
    {_select(product_features())}
    FROM raw.products WHERE start_date <= {T} AND (end_date IS NULL OR end_date > {T})
    GROUP BY customer_id
),
base AS (
    SELECT
    c.customer_id,
    {T} AS as_of,
    c.segment,
    c.payment_type,
    c.region,
    coalesce(pn.plan_id, c.plan_id) AS plan_id,
    c.enterprise_grade,
    CASE WHEN c.payment_type = 'postpaid' THEN coalesce(b.invoice_spend_window, 0)
         ELSE coalesce(t.topup_spend_window, 0) END AS monthly_spend,
    {_select(derived)},
    {", ".join(cols)},
    t.topup_30d_amount, t.topup_prev60_amount
    FROM cust c
    LEFT JOIN plan_now pn USING (customer_id)
    LEFT JOIN k USING (customer_id)
    LEFT JOIN plans_now p ON p.plan_id = coalesce(pn.plan_id, c.plan_id)
    LEFT JOIN u USING (customer_id)
    LEFT JOIN b USING (customer_id)
    LEFT JOIN pm USING (customer_id)
    LEFT JOIN co USING (customer_id)
    LEFT JOIN t USING (customer_id)
    LEFT JOIN tk USING (customer_id)
    LEFT JOIN e USING (customer_id)
    LEFT JOIN pr USING (customer_id)
)
SELECT
    customer_id, as_of, segment, payment_type, region, plan_id, enterprise_grade,
    {tier_case(cfg)} AS value_tier,
    {lifecycle_case(cfg)} AS lifecycle_stage,
    monthly_spend,
    * EXCLUDE (customer_id, as_of, segment, payment_type, region, plan_id, enterprise_grade,
               monthly_spend, topup_30d_amount, topup_prev60_amount,
               spend_trend_30v60, bill_shock_ratio, credit_exposure_ratio),
    spend_trend_30v60, bill_shock_ratio, credit_exposure_ratio
FROM (
    SELECT base.*,
    {_select(late)}
    FROM base
)
"""


PLANS_NOW_SQL = "CREATE OR REPLACE TEMP VIEW plans_now AS SELECT * FROM raw.plans"


def labels_sql(horizons: list[int], serious_days: int) -> str:
    """Labels for (customer_id, as_of) rows of temp table `_snap`, using only data after as_of.

    NULL when the horizon reaches beyond $data_end (not matured) or, for default, for prepaid.
    Arrears are observed at month ends, so the default window reaches one day further: a
    30-day horizon from 30 September must see the 31 October position.
    """
    parts = []
    for h in horizons:
        h = int(h)
        parts.append(
            f"""CASE WHEN s.as_of + {h} > CAST($data_end AS DATE) THEN NULL
             WHEN EXISTS (SELECT 1 FROM raw.disconnects d WHERE d.customer_id = s.customer_id
                          AND d.disconnect_date > s.as_of AND d.disconnect_date <= s.as_of + {h})
               OR EXISTS (SELECT 1 FROM raw.events ev WHERE ev.customer_id = s.customer_id
                          AND ev.event_type = 'port_out_request'
                          AND ev.event_ts >= s.as_of + 1 AND ev.event_ts < s.as_of + {h + 1})
             THEN 1 ELSE 0 END AS churn_{h}d"""
        )
        parts.append(
            f"""CASE WHEN s.as_of + {h} > CAST($data_end AS DATE) OR s.payment_type <> 'postpaid' THEN NULL
             WHEN EXISTS (SELECT 1 FROM raw.collections cl WHERE cl.customer_id = s.customer_id
                          AND cl.snapshot_date > s.as_of AND cl.snapshot_date <= s.as_of + {h} + 1
                          AND (cl.days_past_due >= {int(serious_days)} OR cl.write_off))
             THEN 1 ELSE 0 END AS default_{h}d"""
        )
    return "SELECT s.customer_id, s.as_of,\n" + ",\n".join(parts) + "\nFROM _snap s"
