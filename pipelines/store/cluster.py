"""The Dask cluster stages run on (`executor: dask`): task runner, client, partition tasks.

Feature building and scoring split customers by a hash of their id; each partition is a Prefect
task that Prefect's DaskTaskRunner sends to a Dask cluster (a LocalCluster, or the scheduler at
`executor.address`). Results are gathered in the flow, so outputs equal the local executor's.
Training's final LightGBM fit uses the same cluster through `dask_client` (pipelines/dask_training).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from configs.schema import Settings


def _local_cluster_kwargs(settings: Settings) -> dict[str, Any]:
    return {
        "n_workers": settings.executor.workers,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
    }


def task_runner(settings: Settings):
    """Prefect's DaskTaskRunner for the configured cluster."""
    from prefect_dask import DaskTaskRunner

    cfg = settings.executor
    if cfg.address:
        return DaskTaskRunner(address=cfg.address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster", cluster_kwargs=_local_cluster_kwargs(settings)
    )


@contextmanager
def dask_client(settings: Settings) -> Iterator[Any]:
    """A distributed Client on the configured cluster (a LocalCluster for the call if no address)."""
    from distributed import Client, LocalCluster

    if settings.executor.address:
        with Client(settings.executor.address) as client:
            yield client
        return
    with LocalCluster(**_local_cluster_kwargs(settings)) as cluster, Client(cluster) as client:
        yield client


@task(cache_policy=NO_CACHE, task_run_name="partition-{index}")
def partition_task(fn, index: int, args: tuple) -> Any:
    del index  # names the task run only
    return fn(*args)


def submit_parts(fn, arglist: list[tuple]) -> list[Any]:
    """Run fn over each argument tuple as Prefect tasks on the flow's task runner; keep order."""
    futures = [partition_task.submit(fn, i, args) for i, args in enumerate(arglist)]
    return [f.result() for f in futures]
