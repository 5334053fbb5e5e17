"""Snapshot mode with a treatment column: uplift learners evaluated on a campaign table you have."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from configs.schema import Settings
from models.uplift_eval import (
    Campaign,
    UpliftEvaluation,
    evaluate,
    outcome_like,
    uplift_verdict,
)
from models.uplift_metrics import GOALS
from pipelines.stages.snapshot import prepare, read_table
from pipelines.store.errors import InputError
from pipelines.store.workdir import Workdir, atomic_write_text

log = logging.getLogger(__name__)


@dataclass
class UpliftSnapshotResult:
    metrics: dict
    left_out: int
    charts: list[Path]
    verdict: str
    seconds: float


def campaign_table(
    frame: pl.DataFrame,
    target: str,
    positive: str,
    treatment: str,
    treated: str,
    control: str,
    id_col: str | None = None,
    drop: list[str] | None = None,
    goal: str = "increase",
) -> tuple[Campaign, int]:
    """Rows of the two arms as a Campaign, and how many rows had neither treatment value."""
    if goal not in GOALS:
        raise InputError(f"--goal must be one of {', '.join(GOALS)}, not {goal!r}")
    if treatment not in frame.columns:
        raise InputError(
            f"treatment column {treatment!r} not found; columns are: {', '.join(frame.columns[:30])}"
        )
    if treated.strip() == control.strip():
        raise InputError("--treated and --control must be different values")
    arm = frame[treatment].cast(pl.Utf8).str.strip_chars()
    is_t, is_c = (
        (arm == treated.strip()).fill_null(False),
        (arm == control.strip()).fill_null(False),
    )
    for flag, value in ((is_t, treated), (is_c, control)):
        if not flag.any():
            seen = ", ".join(sorted(map(str, arm.drop_nulls().unique().to_list()))[:8])
            raise InputError(f"no row has {treatment} = {value!r} (values seen: {seen})")
    keep = is_t | is_c
    x, y, cols = prepare(frame.filter(keep), target, positive, id_col, [treatment, *(drop or [])])
    return Campaign(x, is_t.filter(keep).to_numpy().astype(int), y, cols, goal), int((~keep).sum())


def write_charts(ev: UpliftEvaluation, stem: Path) -> list[Path]:
    """Qini curve (first split) and uplift by decile (mean over splits) as standalone HTML."""
    import altair as alt

    curve = ev.curve.unpivot(index="share", variable_name="ranking", value_name="incremental")
    qini_chart = (
        alt.Chart(curve)
        .mark_line()
        .encode(
            x=alt.X("share:Q", title="share of customers targeted", axis=alt.Axis(format="%")),
            y=alt.Y("incremental:Q", title="incremental good outcomes (Qini)"),
            color=alt.Color("ranking:N", title=None),
        )
        .properties(title="Qini curve (test part of split 0)", width=560, height=360)
    )
    deciles = (
        alt.Chart(ev.deciles)
        .mark_bar()
        .encode(
            x=alt.X("decile:O", title="decile of predicted uplift (1 = highest)"),
            y=alt.Y("uplift:Q", title="treated − control outcome rate", axis=alt.Axis(format="%")),
        )
        .properties(title="Uplift by decile (mean over splits)", width=560, height=360)
    )
    paths = [stem.with_name(f"{stem.name}_qini.html"), stem.with_name(f"{stem.name}_deciles.html")]
    for chart, path in zip((qini_chart, deciles), paths, strict=True):
        atomic_write_text(path, chart.to_html())
    return paths


def run_uplift_snapshot(
    settings: Settings,
    data: Path,
    target: str,
    positive: str,
    treatment: str,
    treated: str,
    control: str,
    id_col: str | None = None,
    drop: list[str] | None = None,
    learner: str = "auto",
    seeds: int = 5,
    goal: str = "increase",
    metrics_out: Path | None = None,
    console=None,
) -> UpliftSnapshotResult:
    """Read, evaluate over `seeds` splits, write metrics JSON and charts (beside the JSON)."""
    from rich.console import Console

    console = console or Console(stderr=True)
    started = time.perf_counter()
    if seeds < 2:
        raise InputError("--seeds must be at least 2 (figures are mean and sd over splits)")
    campaign, left_out = campaign_table(
        read_table(data), target, positive, treatment, treated, control, id_col, drop, goal
    )
    if left_out:
        console.print(
            f"left out {left_out:,} row(s) whose {treatment} is neither {treated!r} nor {control!r}"
        )
    suspects = outcome_like(campaign.features, campaign.y)
    if suspects:
        console.print(
            f"warning: {', '.join(suspects)} look(s) like outcomes (wherever off its usual value, "
            f"{target} is always the same): measured after contact? leave out with --drop"
        )
    console.print(
        f"{len(campaign.y):,} rows, treated share {campaign.treated.mean():.3f}, "
        f"goal {goal}, learner {learner}, {seeds} splits"
    )
    with console.status("uplift: starting") as status:
        try:
            ev = evaluate(campaign, learner, seeds, bag=True, on_step=status.update)
        except ValueError as exc:
            raise InputError(f"uplift cannot be learned from this table: {exc}") from None
    metrics = ev.metrics()
    for s in ev.splits:
        console.print(
            f"seed {s.seed}: {s.learner} Qini {s.qini:.4f}, uplift@30 {s.uplift_at_30:.4f}"
        )
    said = uplift_verdict(metrics)
    metrics["verdict"] = said
    metrics["left_out_rows"] = left_out
    metrics["suspect_outcome_columns"] = suspects
    stem = (
        Path(metrics_out).with_suffix("")
        if metrics_out is not None
        else Workdir.from_settings(settings).reports / f"uplift_{Path(data).stem}"
    )
    charts = write_charts(ev, stem)
    if metrics_out is not None:
        atomic_write_text(Path(metrics_out), json.dumps(metrics, indent=2, default=_plain))
    return UpliftSnapshotResult(
        metrics, left_out, charts, said, round(time.perf_counter() - started, 2)
    )


def _plain(value):
    return value.item() if isinstance(value, np.generic) else str(value)
