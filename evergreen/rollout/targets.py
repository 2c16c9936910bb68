"""Where replicas run: the ``Target`` protocol and the default ``process`` target.

A target starts one replica of a revision on a port, tells whether it still lives and stops
it. ``ProcessTarget`` runs ``bentoml serve`` as a detached process on loopback (its own
session, its output in ``<serving_dir>/<revision>/replica-<i>.log``); ``HostsTarget`` is the
same process placed on other hosts (``deploy_hosts``: each one's address and the command prefix
that runs a process there, such as ``ip netns exec NS``); ``evergreen.rollout.container`` runs
the containerized bento under podman or docker instead. Kubernetes is not a target the
controller drives: ``evergreen.rollout.kubernetes`` renders the manifests a cluster rolls out
by itself.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Protocol

import httpx

from evergreen.rollout.processes import (
    descendants,
    is_alive,
    kill,
    log_tail,
    spawn_detached,
    terminate,
)
from evergreen.rollout.revisions import RevisionSpec
from evergreen.rollout.state import ReplicaState
from evergreen.settings import EvergreenSettings, ReplicaHost, get_settings

LOOPBACK = ReplicaHost()


class Target(Protocol):
    """How replicas are started and stopped."""

    name: str

    def start_replica(
        self, settings: EvergreenSettings, revision: str, spec: RevisionSpec, index: int, port: int
    ) -> ReplicaState:
        """Start one replica listening on ``port`` (of loopback, or of its host's address:
        ``ReplicaState.host``); returns at once."""
        ...

    def is_alive(self, replica: ReplicaState) -> bool:
        """Whether the replica's process (or container) still runs."""
        ...

    def stop_replica(self, replica: ReplicaState, grace_s: float) -> None:
        """Stop gracefully (SIGTERM: in-flight requests finish), forcibly after ``grace_s``."""
        ...

    def kill_replica(self, replica: ReplicaState) -> None:
        """Kill at once (kill -9), as a crash would."""
        ...

    def describe_failure(self, replica: ReplicaState) -> str:
        """Why a replica did not come up: the end of its log."""
        ...


def target_named(name: str, settings: EvergreenSettings | None = None) -> Target:
    """The target a revision was started with, from the name the state file keeps (the hosts
    target's hosts: from ``settings``, else the process's)."""
    if name == ProcessTarget.name:
        return ProcessTarget()
    if name == HostsTarget.name:
        return HostsTarget((settings or get_settings()).deploy_hosts)
    kind, _, rest = name.partition(" ")
    if kind == "container":
        from evergreen.rollout.container import BENTO_IMAGE, ContainerTarget

        engine, _, image = rest.partition(" ")
        return ContainerTarget(image=None if image == BENTO_IMAGE else image, engine=engine)
    raise ValueError(f"unknown target {name!r}")


def default_target(settings: EvergreenSettings) -> Target:
    """The target new revisions start on: ``settings.deploy_target`` (``EVERGREEN_DEPLOY_TARGET``:
    ``process``; ``container``: each revision's bento image under
    ``settings.container_engine``; ``hosts``: processes on ``settings.deploy_hosts``)."""
    if settings.deploy_target == "hosts":
        return HostsTarget(settings.deploy_hosts)
    if settings.deploy_target == "container":
        from evergreen.rollout.container import ContainerTarget

        return ContainerTarget(image=None, engine=settings.container_engine)
    return ProcessTarget()


def is_ready(replica: ReplicaState, timeout_s: float = 2.0) -> bool:
    """True when the replica's ``/readyz`` answers 200."""
    try:
        return httpx.get(f"{replica.url}/readyz", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def replica_bentoml_home(settings: EvergreenSettings, revision: str, index: int) -> Path:
    """A BentoML home of the replica's own that shares the model and bento stores.

    ``bentoml serve`` wipes ``$BENTOML_HOME/prometheus_multiproc_dir`` when it starts, and every
    server of one home writes its metrics there: with one home, starting a replica would reset
    the others' counters and all replicas would report the same, summed, numbers."""
    home = settings.serving_dir / revision / f"replica-{index}" / "bentoml"
    home.mkdir(parents=True, exist_ok=True)
    for store in ("models", "bentos"):
        shared = settings.bentoml_home / store
        shared.mkdir(parents=True, exist_ok=True)
        link = home / store
        if not link.is_symlink():
            link.symlink_to(shared, target_is_directory=True)
    return home


def _host_settings(settings: EvergreenSettings, host: ReplicaHost) -> EvergreenSettings:
    """The settings of a replica on ``host``: its own home when it has one (the replica's
    BentoML home goes there; the model and bento stores, the online store and the prediction
    log stay shared), else the controller's."""
    if host.home is None:
        return settings
    if settings.shared_store is None:
        raise ValueError(
            f"host {host.address} has a home of its own, which needs EVERGREEN_SHARED_STORE: "
            "its replicas' prediction log (which the canary's analysis reads) goes there"
        )
    return settings.model_copy(update={"home": Path(host.home)})


class ProcessTarget:
    """``bentoml serve`` replicas as detached processes on this machine."""

    name = "process"

    def place(self, index: int) -> ReplicaHost:
        """The host replica ``index`` runs on: this machine, on loopback."""
        return LOOPBACK

    def command(self, spec: RevisionSpec, port: int, host: ReplicaHost = LOOPBACK) -> list[str]:
        """The ``bentoml serve`` command line of one replica, run on ``host``."""
        return [
            *host.launcher,
            sys.executable,
            "-m",
            "bentoml",
            "serve",
            spec.serve_target,
            "--host",
            host.address,
            "--port",
            str(port),
        ]

    def start_replica(
        self, settings: EvergreenSettings, revision: str, spec: RevisionSpec, index: int, port: int
    ) -> ReplicaState:
        from evergreen.features.repo import PROJECT_ROOT
        from evergreen.rollout.records import now
        from evergreen.serving.process import serving_env

        log = settings.serving_dir / revision / f"replica-{index}.log"
        host = self.place(index)
        on_host = _host_settings(settings, host)
        env = serving_env(on_host, spec.env)
        env["BENTOML_HOME"] = str(replica_bentoml_home(on_host, revision, index))
        process = spawn_detached(
            self.command(spec, port, host),
            env=env,
            cwd=Path(spec.working_dir) if spec.working_dir else PROJECT_ROOT,
            log_path=log,
        )
        return ReplicaState(
            index=index,
            port=port,
            log=str(log),
            started_at=now(),
            process=process,
            host=host.address,
        )

    def is_alive(self, replica: ReplicaState) -> bool:
        # The BentoML supervisor and its worker: a replica whose worker died serves nothing.
        return is_alive(replica.process) and all(is_alive(w) for w in replica.workers)

    def record_workers(self, replica: ReplicaState) -> None:
        """Remember the worker processes, so a stop finds them even if their parent died."""
        if replica.process is not None:
            replica.workers = descendants(replica.process)

    def stop_replica(self, replica: ReplicaState, grace_s: float) -> None:
        terminate(replica.processes(), grace_s)

    def kill_replica(self, replica: ReplicaState) -> None:
        kill(replica.processes() + (descendants(replica.process) if replica.process else []))

    def describe_failure(self, replica: ReplicaState) -> str:
        return log_tail(Path(replica.log))


class HostsTarget(ProcessTarget):
    """``ProcessTarget`` with its replicas on other hosts: replica ``i`` on host ``i`` modulo
    their number, started through the host's launcher (which must exec the command, as
    ``ip netns exec`` does, so its pid is the replica's), listening on the host's address,
    which the router dials. Liveness and stops go by pid, as the process target's: the hosts
    share this machine's process table (network namespaces); hosts that do not would need a
    remote stop."""

    name = "hosts"

    def __init__(self, hosts: list[ReplicaHost]) -> None:
        self.hosts = list(hosts)

    def place(self, index: int) -> ReplicaHost:
        if not self.hosts:
            raise ValueError(
                "the hosts target has no hosts: set EVERGREEN_DEPLOY_HOSTS "
                '(e.g. [{"address": "10.0.0.11", "launcher": ["ip", "netns", "exec", "h1"]}])'
            )
        return self.hosts[index % len(self.hosts)]
