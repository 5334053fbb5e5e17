"""Scheduled deployments of the flows, served by `churn serve` (no separate worker needed)."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from configs.schema import Settings

log = logging.getLogger(__name__)


def build_deployments(settings: Settings, config_files: list[str] | None = None) -> list[Any]:
    """Daily ingest, monthly cycle and monthly campaign evaluation, on cron schedules from config."""
    from prefect.deployments.runner import EntrypointType

    from pipelines.run import flows

    params = {"home": str(settings.home), "config": list(config_files or [])}
    schedules = settings.orchestration.schedules
    spec = (
        (flows.ingest_flow, "daily-ingest", schedules.ingest),
        (flows.retention_cycle, "monthly-cycle", schedules.cycle),
        (flows.evaluate_flow, "monthly-evaluation", schedules.evaluate),
    )
    return [
        fl.to_deployment(
            name=name,
            cron=cron,
            parameters=params,
            tags=["churn"],
            # Module paths, not file paths: the installed package runs from any directory.
            entrypoint_type=EntrypointType.MODULE_PATH,
        )
        for fl, name, cron in spec
    ]


def serve(settings: Settings, config_files: list[str] | None = None) -> None:
    """Serve the deployments until interrupted."""
    from prefect import serve as prefect_serve

    prefect_serve(*build_deployments(settings, config_files), print_starting_message=True)


def serve_once(settings: Settings, config_files: list[str] | None = None) -> dict[str, str]:
    """Register the deployments, trigger each once, run them to completion and exit."""
    return asyncio.run(_serve_once(build_deployments(settings, config_files)))


async def _serve_once(deployments: list[Any]) -> dict[str, str]:
    """One runner per deployment, one after the other: stages share the work-dir lock."""
    from prefect.client.orchestration import get_client
    from prefect.runner import Runner

    states = {}
    for dep in deployments:
        runner = Runner(name=f"churn-once-{dep.name}", query_seconds=1, prefetch_seconds=60)
        dep_id = await runner.aadd_deployment(dep)
        async with get_client() as client:
            # In ephemeral mode the flow-run subprocess must report to this process's temporary
            # server, not start a server of its own.
            os.environ.setdefault("PREFECT_API_URL", str(client.api_url).rstrip("/"))
            run = await client.create_flow_run_from_deployment(dep_id)
        await runner.start(run_once=True)
        async with get_client() as client:
            final = await client.read_flow_run(run.id)
        states[dep.name] = final.state.name if final.state else "unknown"
    return states
