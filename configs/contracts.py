"""Data contracts of the raw tables: the one declaration that simulator, ingestion and features share.

Landing layout: ``<landing>/<table>/<table>_<YYYY-MM-DD>.<ext>`` for daily tables and
``<landing>/<table>/<table>_<YYYY-MM>.<ext>`` for monthly tables (``<ext>`` is parquet or csv);
static reference tables are ``<landing>/<table>/<table>.<ext>``. The folder names the table.
All timestamps are naive local time; all dates are calendar dates. ``customer_id`` is the one
customer key across every table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Cadence = Literal["daily", "monthly", "static"]


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # DuckDB type: VARCHAR, INTEGER, BIGINT, DOUBLE, DATE, TIMESTAMP, BOOLEAN
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    description: str = ""


@dataclass(frozen=True)
class Table:
    name: str
    cadence: Cadence
    key: tuple[str, ...]
    columns: tuple[Column, ...]
    event_time: str | None = None  # the column that says when a row became known
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


# Registered model names in MLflow; `churn train --model churn|credit` picks by the short name.
CHURN_MODEL = "churn"
CREDIT_MODEL = "credit_risk"
UPLIFT_MODEL = "churn_uplift"
REGISTERED = {"churn": CHURN_MODEL, "credit": CREDIT_MODEL}

SEGMENTS = ("individual", "family", "enterprise", "government")
VALUE_TIERS = ("diamond", "gold", "silver", "basic")
CREDIT_GRADES = ("A", "B", "C", "D", "E")
PAYMENT_TYPES = ("prepaid", "postpaid")
PRODUCTS = ("mobile", "broadband", "fixed")
ENTERPRISE_GRADES = tuple(f"{n}{c}" for c in "AB" for n in range(1, 6))
TICKET_CATEGORIES = ("billing", "network", "technical", "service", "other")
SEVERITIES = ("low", "medium", "high", "critical")
EVENT_TYPES = (
    "plan_change",
    "sim_swap",
    "suspend",
    "resume",
    "port_out_request",
    "account_manager_change",
    "contract_renewal",
)
TOPUP_CHANNELS = ("retail", "online", "app", "voucher", "bank")
PAYMENT_CHANNELS = ("direct_debit", "card", "bank_transfer", "retail", "app")
DISCONNECT_TYPES = ("voluntary", "involuntary")
CONTACT_RESPONSES = ("accepted", "declined", "no_answer")
CHANNELS = ("account_manager", "outbound_call", "sms", "app", "email")

C = Column

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "customers",
            "monthly",
            ("customer_id",),
            (
                C("customer_id", "VARCHAR"),
                C("segment", "VARCHAR", allowed=SEGMENTS),
                C("region", "VARCHAR"),
                C("activation_date", "DATE"),
                C("payment_type", "VARCHAR", allowed=PAYMENT_TYPES),
                C("plan_id", "VARCHAR", description="plan at activation; later changes are events"),
                C("contract_end", "DATE", nullable=True, description="end of the initial term"),
                C(
                    "handset_age_months",
                    "INTEGER",
                    min_value=0,
                    max_value=240,
                    description="handset age at activation",
                ),
                C("enterprise_grade", "VARCHAR", nullable=True, allowed=ENTERPRISE_GRADES),
                C("account_manager", "VARCHAR", nullable=True),
                C("marketing_opt_out", "BOOLEAN"),
                C("do_not_contact", "BOOLEAN"),
            ),
            event_time="activation_date",
            description="Customers activated in the month of the file (the first file holds the base).",
        ),
        Table(
            "plans",
            "static",
            ("plan_id",),
            (
                C("plan_id", "VARCHAR"),
                C("plan_name", "VARCHAR"),
                C("payment_type", "VARCHAR", allowed=PAYMENT_TYPES),
                C("monthly_fee", "DOUBLE", min_value=0),
                C("voice_min", "DOUBLE", min_value=0),
                C("sms", "DOUBLE", min_value=0),
                C("data_mb", "DOUBLE", min_value=0),
            ),
            description="Plan catalogue with monthly allowances.",
        ),
        Table(
            "products",
            "monthly",
            ("customer_id", "product", "start_date"),
            (
                C("customer_id", "VARCHAR"),
                C("product", "VARCHAR", allowed=PRODUCTS),
                C("start_date", "DATE"),
                C("end_date", "DATE", nullable=True),
                C("monthly_fee", "DOUBLE", min_value=0),
            ),
            event_time="start_date",
            description="Product holdings; a re-delivery sets end_date when a product ends.",
        ),
        Table(
            "usage_daily",
            "daily",
            ("customer_id", "usage_date"),
            (
                C("customer_id", "VARCHAR"),
                C("usage_date", "DATE"),
                C("voice_min", "DOUBLE", min_value=0),
                C("sms_count", "INTEGER", min_value=0),
                C("data_mb", "DOUBLE", min_value=0),
                C("roaming_mb", "DOUBLE", min_value=0),
                C("offnet_share", "DOUBLE", min_value=0, max_value=1),
                C("dropped_call_rate", "DOUBLE", min_value=0, max_value=1),
            ),
            event_time="usage_date",
            description="One row per active customer per day.",
        ),
        Table(
            "invoices",
            "monthly",
            ("invoice_id",),
            (
                C("invoice_id", "VARCHAR"),
                C("customer_id", "VARCHAR"),
                C("period_start", "DATE"),
                C("issue_date", "DATE"),
                C("due_date", "DATE"),
                C("amount", "DOUBLE", min_value=0),
                C("mobile_amount", "DOUBLE", min_value=0),
                C("broadband_amount", "DOUBLE", min_value=0),
                C("fixed_amount", "DOUBLE", min_value=0),
                C("overage_amount", "DOUBLE", min_value=0),
            ),
            event_time="issue_date",
            description="Monthly postpaid bills, issued the day after the period ends.",
        ),
        Table(
            "payments",
            "monthly",
            ("payment_id",),
            (
                C("payment_id", "VARCHAR"),
                C("customer_id", "VARCHAR"),
                C("invoice_id", "VARCHAR", nullable=True, description="NULL: payment on account"),
                C("payment_date", "DATE"),
                C("amount", "DOUBLE", min_value=0),
                C("channel", "VARCHAR", allowed=PAYMENT_CHANNELS),
            ),
            event_time="payment_date",
        ),
        Table(
            "topups",
            "monthly",
            ("topup_id",),
            (
                C("topup_id", "VARCHAR"),
                C("customer_id", "VARCHAR"),
                C("topup_ts", "TIMESTAMP"),
                C("amount", "DOUBLE", min_value=0),
                C("channel", "VARCHAR", allowed=TOPUP_CHANNELS),
                C("status", "VARCHAR", allowed=("success", "failed")),
                C("failure_reason", "VARCHAR", nullable=True),
            ),
            event_time="topup_ts",
            description="Prepaid top-up attempts, failed ones included.",
        ),
        Table(
            "tickets",
            "monthly",
            ("ticket_id",),
            (
                C("ticket_id", "VARCHAR"),
                C("customer_id", "VARCHAR"),
                C("opened_ts", "TIMESTAMP"),
                C(
                    "resolved_ts",
                    "TIMESTAMP",
                    nullable=True,
                    description="may lie after the file's month; use only when <= as-of",
                ),
                C("category", "VARCHAR", allowed=TICKET_CATEGORIES),
                C("severity", "VARCHAR", allowed=SEVERITIES),
                C("sla_hours", "DOUBLE", min_value=0),
                C("repeat_flag", "BOOLEAN"),
            ),
            event_time="opened_ts",
            description="Care tickets (complaints).",
        ),
        Table(
            "events",
            "monthly",
            ("event_id",),
            (
                C("event_id", "VARCHAR"),
                C("customer_id", "VARCHAR"),
                C("event_ts", "TIMESTAMP"),
                C("event_type", "VARCHAR", allowed=EVENT_TYPES),
                C(
                    "detail",
                    "VARCHAR",
                    nullable=True,
                    description="plan_change: new plan_id; contract_renewal: new end date",
                ),
            ),
            event_time="event_ts",
        ),
        Table(
            "disconnects",
            "monthly",
            ("customer_id",),
            (
                C("customer_id", "VARCHAR"),
                C("disconnect_date", "DATE"),
                C("disconnect_type", "VARCHAR", allowed=DISCONNECT_TYPES),
                C("reason", "VARCHAR", nullable=True),
            ),
            event_time="disconnect_date",
        ),
        Table(
            "collections",
            "monthly",
            ("customer_id", "snapshot_date"),
            (
                C("customer_id", "VARCHAR"),
                C("snapshot_date", "DATE"),
                C("days_past_due", "INTEGER", min_value=0),
                C("amount_overdue", "DOUBLE", min_value=0),
                C("write_off", "BOOLEAN"),
            ),
            event_time="snapshot_date",
            description="Month-end arrears position of every postpaid customer with overdue debt.",
        ),
        Table(
            "contacts",
            "monthly",
            ("contact_id",),
            (
                C("contact_id", "VARCHAR"),
                C("list_id", "VARCHAR"),
                C("customer_id", "VARCHAR"),
                # Offers are configured (retention.offers), so no fixed list here.
                C("offer", "VARCHAR"),
                C("channel", "VARCHAR", allowed=CHANNELS),
                C("contact_date", "DATE"),
                C("control_flag", "BOOLEAN"),
                C("response", "VARCHAR", nullable=True, allowed=CONTACT_RESPONSES),
            ),
            event_time="contact_date",
            description="Campaign contacts and responses; control rows are never contacted.",
        ),
    )
}

DATE_TYPES = ("DATE", "TIMESTAMP")

# Lineage columns every raw table carries besides its contract columns.
LINEAGE_COLUMNS: tuple[Column, ...] = (
    Column("_source_file", "VARCHAR", description="landing file the row came from"),
    Column("_loaded_at", "TIMESTAMP", description="when the row was loaded"),
)


def raw_table_ddl(table: Table, schema: str = "raw") -> str:
    """CREATE TABLE statement for a raw table (identifiers come from the contract, not input)."""
    cols = ", ".join(f'"{c.name}" {c.dtype}' for c in table.columns + LINEAGE_COLUMNS)
    return f'CREATE TABLE IF NOT EXISTS {schema}."{table.name}" ({cols})'
