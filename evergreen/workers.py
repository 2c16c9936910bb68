"""Runs on Celery workers (the cluster profile): the executor the code location's jobs use, and
the Celery app and command of a worker host.

On the cluster profile a run's orchestration stays where it was launched (the daemon or the
webserver's run worker) and every step of it is a Celery task on Redis (the broker, and the
result backend): any worker host with the code, the same settings and the instance's storage on
PostgreSQL takes it, executes it with ``execute_plan_iterator`` and writes its events to the
shared instance. A task is acknowledged only once it finished (``task_acks_late``) and handed
back to the queue when its worker dies (``task_reject_on_worker_lost``), and a worker takes one
task at a time (prefetch 1): a step is never parked behind a long one on a busy worker. A
failed run is retried by the daemon (``run_retries`` in ``evergreen.instance``).

The deploy job is the exception (``control_plane_executor``): a rollout starts the router and
the replicas' watchdog where it runs, and those belong to the control plane, so its steps run in
the run's own process there; its replicas reach the worker hosts through the ``hosts`` target.

The local profile has no executor here (None: Dagster's default, processes on this machine).
Imports dagster-celery (the ``cluster`` extra) only on the cluster profile.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from evergreen.settings import EvergreenSettings

QUEUE = "dagster"  # dagster-celery's queue (make_app routes every task there)
CELERY_EXECUTOR = "evergreen_celery"  # the executor's name, as a job's definition shows it

# Celery settings of both sides, the executor (which submits) and the workers (which consume).
CELERY_SETTINGS: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
    "result_expires": 24 * 3600,
}


def celery_config(settings: EvergreenSettings) -> dict[str, Any]:
    """The ``celery_executor`` config of the cluster: Redis as broker and result backend."""
    if not settings.redis_url:
        raise ValueError("runs on Celery workers need EVERGREEN_REDIS_URL")
    return {
        "broker": settings.redis_url,
        "backend": settings.redis_url,
        "config_source": dict(CELERY_SETTINGS),
    }


def run_executor(settings: EvergreenSettings) -> Any:
    """The executor of every job of the code location: None on the local profile (Dagster's
    default), ``celery_executor`` on Redis on the cluster profile."""
    if not settings.is_cluster:
        return None
    from dagster_celery import celery_executor

    return celery_executor.configured(celery_config(settings), name=CELERY_EXECUTOR)


def control_plane_executor(settings: EvergreenSettings) -> Any:
    """The executor of the jobs whose steps belong to the control plane (the deploy job: the
    rollout controller starts the router and the replicas' watchdog where it runs): None on the
    local profile (Dagster's default), in the run's own process on the cluster profile, which
    is the daemon's or the webserver's host, never a worker host."""
    if not settings.is_cluster:
        return None
    from dagster import in_process_executor

    return in_process_executor


def worker_app(settings: EvergreenSettings) -> Any:
    """The Celery app a worker host runs: dagster-celery's step task on the cluster's Redis."""
    from dagster_celery.executor import CeleryExecutor
    from dagster_celery.make_app import make_app
    from dagster_celery.tasks import create_task

    config = celery_config(settings)
    executor = CeleryExecutor.for_cli(
        broker=config["broker"], backend=config["backend"], config_source=config["config_source"]
    )
    app = make_app(executor.app_args())
    create_task(app)
    return app


def worker_command(name: str | None = None, concurrency: int = 1) -> list[str]:
    """The command of a worker: ``celery worker`` on ``evergreen.celery_app`` (its settings
    come from the environment, as every Evergreen process's do), consuming the dagster queue."""
    name = name or f"evergreen@{socket.gethostname()}"
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "evergreen.celery_app",
        "worker",
        "--queues",
        QUEUE,
        "--hostname",
        name,
        "--concurrency",
        str(concurrency),
        "--pool",
        "prefork",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
