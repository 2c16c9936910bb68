"""A real serving stack for the rollout tests: Caddy (edge and router), ``bentoml serve``
replicas of the fixture service, the watchdog; every process stopped at the end.

The stack is module-scoped: starting a BentoML replica costs seconds, so the end-to-end tests
run one after another on the same stack, each deploying from where the previous one left it
(what serves is read from the state, never assumed). Ports are free loopback ports chosen at run
time. The finalizer stops the stack through the supervisor and then kills, by pid, any process
still carrying the test's home in its environment.
"""

import contextlib
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from evergreen.ports import free_port
from evergreen.rollout.controller import RolloutController
from evergreen.rollout.load import LoadLoop, Sample, probe_transactions
from evergreen.rollout.revisions import RevisionSpec, service_folder_spec
from evergreen.rollout.supervisor import Supervisor, SupervisorOptions
from evergreen.settings import EvergreenSettings

FIXTURE_SERVICE = Path(__file__).parent / "fixture_service"
LOAD_RATE = 80  # requests per second through the router


def fixture_spec(version: str, replicas: int = 1, **env: object) -> RevisionSpec:
    """A revision of the fixture service answering as ``version`` (env: its misbehaviour)."""
    values = {"FIXTURE_MODEL_VERSION": version, **{k: str(v) for k, v in env.items()}}
    return service_folder_spec(FIXTURE_SERVICE, values, replicas)


def rollout_settings(home: Path) -> EvergreenSettings:
    """Settings of a test home with the router on free loopback ports."""
    return EvergreenSettings(home=home, serve_port=free_port()).ensure_dirs()


def processes_of(home: Path) -> list[psutil.Process]:
    """Live processes started for ``home`` (their environment names it)."""
    found = []
    marker = str(home)
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.pid == os.getpid() or process.status() == psutil.STATUS_ZOMBIE:
                continue
            if any(marker in value for value in process.environ().values()):
                found.append(process)
    return found


def tear_down(settings: EvergreenSettings) -> list[int]:
    """Stop the stack; kill (by pid) whatever survived. Returns the pids that had to be
    killed."""
    with contextlib.suppress(Exception):
        Supervisor(settings).stop_all("test teardown")
    survivors = processes_of(settings.home)
    for process in survivors:
        with contextlib.suppress(psutil.Error):
            os.kill(process.pid, signal.SIGKILL)
    return [p.pid for p in survivors]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A controller whose router serves fixture revision v1 (two replicas), with the
    watchdog running."""
    settings = rollout_settings(tmp_path_factory.mktemp("rollout") / "home")
    supervisor = Supervisor(settings, options=SupervisorOptions(ready_timeout_s=120))
    controller = RolloutController(settings, supervisor, actor="pytest")
    try:
        controller.serve(fixture_spec("v1", replicas=2))
        yield controller
    finally:
        tear_down(settings)


@pytest.fixture
def load(stack):
    """Steady traffic through the serving address while the test runs."""
    payloads = probe_transactions(stack.settings, 2000, seed=0)  # the state's data time
    loop = LoadLoop(stack.supervisor.serving_url(), rate=LOAD_RATE, threads=4, payloads=payloads)
    loop.start()
    time.sleep(0.5)
    try:
        yield loop
    finally:
        loop.stop()


def assert_no_failed_requests(loop: LoadLoop, torn_allowed: int = 0) -> list[Sample]:
    """Stop the load and assert every request got a 200, and that at most ``torn_allowed``
    answers were torn after their headers and sent again (only a killed replica tears one:
    at most the requests it had in flight, one per client); returns the samples."""
    samples = loop.stop()
    failed = loop.failed()
    assert samples, "the load loop sent nothing"
    assert not failed, f"{len(failed)} of {len(samples)} requests failed, e.g. {failed[:3]}"
    torn = sum(s.torn_retries for s in samples)
    assert torn <= torn_allowed, f"{torn} torn answers sent again, at most {torn_allowed} expected"
    return samples


def wall_to_loop(at_iso: str) -> float:
    """A ledger timestamp on the load loop's (monotonic) clock."""
    import datetime as dt

    wall = dt.datetime.fromisoformat(at_iso).timestamp()
    return time.monotonic() - (time.time() - wall)


def wait_for(condition, timeout_s: float, what: str):
    """``condition()``'s first truthy value, polled every 0.25 s; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
