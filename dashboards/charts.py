"""Altair chart builders for the cockpit pages (pure: frames in, charts out)."""

from __future__ import annotations

from typing import Any

import altair as alt
import polars as pl

TIER_ORDER = ["diamond", "gold", "silver", "basic", "unknown"]
MONTH_AXIS = alt.Axis(format="%b %Y", labelAngle=0)
LABELS = alt.Axis(labelLimit=240)  # feature and offer names are long
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"]
LEGEND = alt.Legend(orient="bottom", labelLimit=300, title=None)


def versions(labels: list[str]) -> alt.Color:
    """The same colour for a model version on every chart of the Models page."""
    return alt.Color(
        "version:N",
        legend=LEGEND,
        scale=alt.Scale(domain=labels, range=PALETTE[: len(labels)]),
    )


def churn_trend(trend: pl.DataFrame) -> alt.Chart:
    """Observed churn rate per snapshot month; horizons not yet matured are left out."""
    long = (
        trend.unpivot(index="as_of", on=["churn_30d", "churn_90d"], variable_name="horizon")
        .drop_nulls("value")
        .with_columns(pl.col("horizon").str.replace("churn_", "within "))
    )
    return (
        alt.Chart(long)
        .mark_line(point=True)
        .encode(
            x=alt.X("yearmonth(as_of):O", title="snapshot month end", axis=MONTH_AXIS),
            y=alt.Y("value:Q", title="churn rate", axis=alt.Axis(format="%")),
            color=alt.Color("horizon:N", title=None),
            tooltip=["as_of:T", "horizon:N", alt.Tooltip("value:Q", format=".2%")],
        )
        .properties(height=280)
    )


def risk_histogram(scores: pl.DataFrame) -> alt.Chart:
    return (
        alt.Chart(scores.select("churn_probability"))
        .mark_bar()
        .encode(
            x=alt.X("churn_probability:Q", bin=alt.Bin(maxbins=40), title="churn probability"),
            y=alt.Y("count():Q", title="customers"),
            tooltip=[alt.Tooltip("count():Q", title="customers")],
        )
        .properties(height=280)
    )


def at_risk_bars(groups: pl.DataFrame, by: str) -> alt.Chart:
    order = TIER_ORDER if by == "value_tier" else None
    return (
        alt.Chart(groups)
        .mark_bar()
        .encode(
            y=alt.Y(f"{by}:N", title=by.replace("_", " "), sort=order or "-x"),
            x=alt.X("revenue_at_risk:Q", title="monthly revenue at risk"),
            color=alt.Color("high_risk:Q", title="high-risk customers"),
            tooltip=[
                f"{by}:N",
                "customers:Q",
                "high_risk:Q",
                alt.Tooltip("expected_churners:Q", format=".1f"),
                alt.Tooltip("revenue_at_risk:Q", format=",.0f"),
            ],
        )
        .properties(height=200)
    )


def risk_history(scores: pl.DataFrame) -> alt.Chart:
    return (
        alt.Chart(scores.select("as_of", "churn_probability", "risk_decile"))
        .mark_line(point=True)
        .encode(
            x=alt.X("yearmonth(as_of):O", title="scored as of", axis=MONTH_AXIS),
            y=alt.Y(
                "churn_probability:Q",
                title="churn probability",
                axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1]),
            ),
            tooltip=["as_of:T", alt.Tooltip("churn_probability:Q", format=".1%"), "risk_decile:Q"],
        )
        .properties(height=260)
    )


def small_line(frame: pl.DataFrame, title: str, domain: list[Any] | None = None) -> alt.Chart:
    """One monthly series; a shared x domain keeps the small multiples aligned."""
    scale = alt.Scale(domain=domain) if domain else alt.Scale()
    return (
        alt.Chart(frame.select("month", "value"))
        .mark_line(point=True)
        .encode(
            x=alt.X("month:T", title=None, axis=alt.Axis(format="%b %y"), scale=scale),
            y=alt.Y("value:Q", title=None),
            tooltip=[alt.Tooltip("month:T", format="%B %Y"), alt.Tooltip("value:Q", format=",.2f")],
        )
        .properties(height=150, title=title)
    )


def importance(data: dict[str, dict[str, Any]], top: int = 15) -> alt.Chart:
    """Gain importance per feature for each version (label -> {feature: gain}), top by the first."""
    rows = [
        {"version": label, "feature": f, "gain": float(g)}
        for label, imp in data.items()
        for f, g in imp.items()
    ]
    frame = pl.DataFrame(rows)
    first = next(iter(data))
    keep = (
        frame.filter(pl.col("version") == first).sort("gain", descending=True).head(top)["feature"]
    )
    frame = frame.filter(pl.col("feature").is_in(keep.implode()))
    return (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            y=alt.Y("feature:N", sort=keep.to_list(), title=None, axis=LABELS),
            x=alt.X("gain:Q", title="gain"),
            color=versions(list(data)),
            yOffset="version:N",
            tooltip=["version:N", "feature:N", alt.Tooltip("gain:Q", format=",.0f")],
        )
        .properties(height=alt.Step(18 if len(data) == 1 else 10 * len(data)))
    )


def gains(data: dict[str, list[dict[str, Any]]]) -> alt.Chart:
    rows = [{"version": label, **r} for label, table in data.items() for r in table]
    rows += [{"version": "random", "decile": d, "cumulative_gain": d / 10} for d in range(0, 11)]
    rows += [{"version": label, "decile": 0, "cumulative_gain": 0.0} for label in data]
    frame = pl.DataFrame(rows, infer_schema_length=None)
    return (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("decile:Q", title="top deciles contacted", scale=alt.Scale(domain=[0, 10])),
            y=alt.Y(
                "cumulative_gain:Q", title="share of churners found", axis=alt.Axis(format="%")
            ),
            color=alt.Color(
                "version:N",
                legend=LEGEND,
                scale=alt.Scale(
                    domain=[*data, "random"],
                    range=[*PALETTE[: len(data)], "#9e9e9e"],
                ),
            ),
            strokeDash=alt.condition(
                alt.datum.version == "random", alt.value([4, 4]), alt.value([1, 0])
            ),
            tooltip=[
                "version:N",
                "decile:Q",
                alt.Tooltip("cumulative_gain:Q", format=".1%"),
                alt.Tooltip("cumulative_lift:Q", format=".2f"),
            ],
        )
        .properties(height=300)
    )


def calibration(data: dict[str, list[dict[str, Any]]]) -> alt.LayerChart:
    rows = [{"version": label, **r} for label, table in data.items() for r in table]
    frame = pl.DataFrame(rows, infer_schema_length=None)
    top = float(max(frame["predicted"].max(), frame["observed"].max()) or 1.0)
    diagonal = (
        alt.Chart(pl.DataFrame({"x": [0.0, top], "y": [0.0, top]}))
        .mark_line(strokeDash=[4, 4], color="gray")
        .encode(x="x:Q", y="y:Q")
    )
    points = (
        alt.Chart(frame)
        .mark_line(point=True)
        .encode(
            x=alt.X("predicted:Q", title="mean predicted"),
            y=alt.Y("observed:Q", title="observed rate"),
            color=versions(list(data)),
            tooltip=[
                "version:N",
                alt.Tooltip("predicted:Q", format=".3f"),
                alt.Tooltip("observed:Q", format=".3f"),
                "customers:Q",
            ],
        )
    )
    return (diagonal + points).properties(height=300)


def drift_share(runs: pl.DataFrame) -> alt.Chart:
    return (
        alt.Chart(runs.select("as_of", "drifted_share", "prediction_drift", "decision"))
        .mark_line(point=True)
        .encode(
            x=alt.X("yearmonth(as_of):O", title="as of", axis=MONTH_AXIS),
            y=alt.Y(
                "drifted_share:Q", title="share of features drifted", axis=alt.Axis(format="%")
            ),
            tooltip=[
                "as_of:T",
                alt.Tooltip("drifted_share:Q", format=".1%"),
                alt.Tooltip("prediction_drift:Q", format=".3f"),
                "decision:N",
            ],
        )
        .properties(height=220)
    )


def drifted_features(features: pl.DataFrame) -> alt.Chart:
    return (
        alt.Chart(features)
        .mark_bar()
        .encode(
            y=alt.Y("feature:N", sort="-x", title=None, axis=LABELS),
            x=alt.X("strength:Q", title="drift strength (−log10 p, or distance)"),
            color=alt.Color(
                "drifted:N",
                scale=alt.Scale(domain=[True, False], range=["#d62728", "#9e9e9e"]),
                legend=LEGEND,
            ),
            tooltip=["feature:N", "method:N", alt.Tooltip("drift_score:Q", format=".4g")],
        )
        .properties(height=alt.Step(20))
    )


def uplift_intervals(rows: pl.DataFrame) -> alt.LayerChart:
    """Churn reduction (control − treated) per group with its 95% interval; zero marked."""
    base = alt.Chart(rows).encode(y=alt.Y("grp:N", title=None, axis=LABELS))
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("ci_low:Q", title="churn reduction (control − treated)", axis=alt.Axis(format="%")),
        x2="ci_high:Q",
    )
    points = base.mark_point(filled=True, size=80).encode(
        x="difference:Q",
        color=alt.value("#1f77b4"),
        tooltip=[
            "grp:N",
            "treated:Q",
            "control:Q",
            alt.Tooltip("treated_churn_rate:Q", format=".1%"),
            alt.Tooltip("control_churn_rate:Q", format=".1%"),
            alt.Tooltip("difference:Q", format=".1%"),
            alt.Tooltip("ci_low:Q", format=".1%"),
            alt.Tooltip("ci_high:Q", format=".1%"),
            alt.Tooltip("p_value:Q", format=".3f"),
        ],
    )
    zero = alt.Chart(pl.DataFrame({"x": [0.0]})).mark_rule(color="gray").encode(x="x:Q")
    return (zero + bars + points).properties(height=alt.Step(28))


def treated_vs_control(rows: pl.DataFrame) -> alt.Chart:
    long = rows.select(
        "grp",
        pl.col("treated_churn_rate").alias("treated"),
        pl.col("control_churn_rate").alias("control"),
    ).unpivot(index="grp", variable_name="group", value_name="churn_rate")
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            y=alt.Y("grp:N", title=None, axis=LABELS),
            yOffset="group:N",
            x=alt.X("churn_rate:Q", title="churn rate", axis=alt.Axis(format="%")),
            color=alt.Color(
                "group:N",
                scale=alt.Scale(domain=["treated", "control"], range=["#1f77b4", "#ff7f0e"]),
                legend=LEGEND,
            ),
            tooltip=["grp:N", "group:N", alt.Tooltip("churn_rate:Q", format=".1%")],
        )
        .properties(height=alt.Step(14))
    )
