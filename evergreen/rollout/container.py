"""The ``container`` target: replicas as containers of the bento's image (podman or docker).

The image is what ``bentoml containerize`` builds (``evergreen.serving.bento.container_command``;
``../shared/reference/containers.md`` describes podman on machines without a Docker engine).
Each replica is ``<engine> run -d`` of the image with its port 3000 published on a loopback
port, stopped with ``<engine> stop --time GRACE`` (SIGTERM, then SIGKILL), killed with
``<engine> kill``. ``engine_available`` says whether this machine can run one (a ``docker``
client without a reachable engine cannot).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from evergreen.rollout.revisions import RevisionSpec
from evergreen.rollout.state import ReplicaState
from evergreen.settings import EvergreenSettings

CONTAINER_PORT = 3000  # where BentoML's image serves


class ContainerEngineError(RuntimeError):
    """No usable container engine, or it refused a command."""


def find_engine(preferred: tuple[str, ...] = ("podman", "docker")) -> str | None:
    """The first container engine client on PATH."""
    for name in preferred:
        if shutil.which(name):
            return name
    return None


def engine_available(engine: str | None = None) -> tuple[bool, str]:
    """Whether ``engine`` (or the first found) can run containers here, and why not."""
    engine = engine or find_engine()
    if engine is None:
        return False, "neither podman nor docker is installed"
    try:
        done = subprocess.run([engine, "info"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, f"{engine} info failed: {error}"
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()
        return False, f"{engine} has no engine to talk to: {why[-1] if why else done.returncode}"
    return True, f"{engine} works"


def container_name(revision: str, index: int) -> str:
    return f"evergreen-{revision}-{index}"


@dataclass
class ContainerTarget:
    """Replicas as containers of ``image`` run by ``engine``."""

    image: str
    engine: str = "podman"

    @property
    def name(self) -> str:
        """How the state file names this target (``target_named`` reads it back)."""
        return f"container {self.engine} {self.image}"

    def run_command(
        self, settings: EvergreenSettings, revision: str, spec: RevisionSpec, index: int, port: int
    ) -> list[str]:
        """The ``run`` command of one replica."""
        cmd = [self.engine, "run", "--detach", "--name", container_name(revision, index)]
        cmd += ["--publish", f"127.0.0.1:{port}:{CONTAINER_PORT}"]
        cmd += ["--label", f"evergreen.revision={revision}"]
        cmd += ["--label", f"evergreen.model_version={spec.model_version}"]
        cmd += ["--volume", f"{settings.home}:/home/bentoml/evergreen"]
        env = {"EVERGREEN_HOME": "/home/bentoml/evergreen", **spec.env}
        for key, value in sorted(env.items()):
            cmd += ["--env", f"{key}={value}"]
        return [*cmd, self.image]

    def stop_command(self, replica: ReplicaState, grace_s: float) -> list[str]:
        return [self.engine, "stop", "--time", str(int(grace_s)), str(replica.container)]

    def kill_command(self, replica: ReplicaState) -> list[str]:
        return [self.engine, "kill", "--signal", "KILL", str(replica.container)]

    def _run(self, cmd: list[str], timeout_s: float = 120) -> str:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise ContainerEngineError(f"{' '.join(cmd[:3])} failed: {error}") from None
        if done.returncode != 0:
            raise ContainerEngineError(f"{' '.join(cmd[:3])} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def start_replica(
        self, settings: EvergreenSettings, revision: str, spec: RevisionSpec, index: int, port: int
    ) -> ReplicaState:
        from evergreen.rollout.records import now

        self._run(self.run_command(settings, revision, spec, index, port))
        log = settings.serving_dir / revision / f"replica-{index}.log"
        return ReplicaState(
            index=index,
            port=port,
            log=str(log),
            started_at=now(),
            container=container_name(revision, index),
        )

    def is_alive(self, replica: ReplicaState) -> bool:
        cmd = [self.engine, "inspect", "--format", "{{.State.Running}}", str(replica.container)]
        try:
            return self._run(cmd, timeout_s=20) == "true"
        except ContainerEngineError:
            return False

    def stop_replica(self, replica: ReplicaState, grace_s: float) -> None:
        self._run(self.stop_command(replica, grace_s), timeout_s=grace_s + 30)
        self._run([self.engine, "rm", "--force", str(replica.container)])

    def kill_replica(self, replica: ReplicaState) -> None:
        self._run(self.kill_command(replica))

    def describe_failure(self, replica: ReplicaState) -> str:
        try:
            text = self._run([self.engine, "logs", "--tail", "30", str(replica.container)])
        except ContainerEngineError as error:
            text = str(error)
        Path(replica.log).parent.mkdir(parents=True, exist_ok=True)
        Path(replica.log).write_text(text)
        return text
