"""The one-command demo: a synthetic operator run through several monthly retention cycles."""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from configs.schema import Settings
from pipelines.store.errors import WorkdirError
from pipelines.store.workdir import Workdir, atomic_write_text

log = logging.getLogger(__name__)

DEMO_MARKER = ".churn-demo"


@dataclass
class DemoSummary:
    home: Path
    cycles: list[dict[str, Any]] = field(default_factory=list)
    evaluations: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    peak_rss_mb: float = 0.0


def demo_overrides(settings: Settings) -> dict[str, Any]:
    """The demo's config layer, written to <home>/demo.yaml so every flow sees the same config."""
    demo = settings.demo
    return {
        "simulator": {
            "customers": demo.customers,
            "months": demo.initial_months,
            "drift_month": demo.drift_month,
        },
        "models": {"trials": demo.trials},
    }


def prepare_home(settings: Settings, fresh: bool) -> Workdir:
    """Use an empty home, or one an earlier demo made (wiped when fresh); never other data."""
    import shutil

    wd = Workdir.from_settings(settings)
    # Prefect's home is made before this runs (at import); it is not data.
    if wd.home.exists() and any(p != wd.prefect_home for p in wd.home.iterdir()):
        if not (wd.home / DEMO_MARKER).exists():
            raise WorkdirError(
                f"{wd.home} already holds data that the demo did not create; "
                "pass --home with an empty or new folder"
            )
        if fresh:
            for p in wd.home.iterdir():
                if p == wd.prefect_home:
                    continue
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()
    wd.ensure()
    (wd.home / DEMO_MARKER).write_text("created by churn demo\n")
    return wd


def run_demo(
    settings: Settings,
    config_files: list[str],
    fresh: bool = True,
    say: Callable[[str], None] = log.info,
) -> DemoSummary:
    """Simulate, then run `demo.cycles` monthly cycles, playing each list forward in the simulator."""
    from pipelines.run.flows import evaluate_flow, ingest_flow, retention_cycle
    from pipelines.stages.target import treatments_for
    from simulator import advance, simulate

    started = time.perf_counter()
    wd = prepare_home(settings, fresh)
    demo_yaml = wd.home / "demo.yaml"
    atomic_write_text(demo_yaml, yaml.safe_dump(demo_overrides(settings), sort_keys=False))
    files = [*config_files, str(demo_yaml)]
    from pipelines.store.config import load_settings

    settings = load_settings([Path(f) for f in files], home=wd.home)
    summary = DemoSummary(home=wd.home)

    sim = settings.simulator
    say(f"simulating {sim.customers} customers over {sim.months} months (seed {settings.seed})")
    simulate(sim, wd.home, seed=settings.seed)

    home = str(wd.home)
    for i in range(settings.demo.cycles):
        say(
            f"cycle {i + 1}/{settings.demo.cycles}: ingest, features, train, score, uplift, "
            "target, monitor, evaluate"
        )
        result = retention_cycle(home=home, config=files)
        summary.cycles.append(result)
        target = result.get("target") or {}
        state = "HELD, would contact" if target.get("held") else "with"
        say(
            f"  as-of {result.get('as_of')}: list {target.get('list_id')} {state} "
            f"{target.get('treated')} treated + {target.get('control')} control, "
            f"drift {(result.get('monitor') or {}).get('decision')}"
        )
        uplift = result.get("uplift") or {}
        if uplift.get("explanation"):
            say(f"  uplift: {uplift['explanation']}")
        if result.get("held"):
            say(f"  {result['held']}")
        say("  playing the campaign forward one month in the simulator")
        # A held list, or one on which nobody was worth contacting, reaches no customer: the
        # month plays out without a campaign.
        published = target.get("list_id") and not target.get("held") and target.get("treated")
        advance(
            wd.home,
            months=1,
            treatments=treatments_for(settings, target["list_id"]) if published else None,
        )
    ingest_flow(home=home, config=files)
    summary.evaluations = evaluate_flow(home=home, config=files)
    summary.seconds = time.perf_counter() - started
    summary.peak_rss_mb = peak_rss_mb()
    return summary


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024
