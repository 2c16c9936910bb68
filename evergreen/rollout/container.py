"""The ``container`` target: replicas as containers of the bento's image (podman or docker).

The image is what ``evergreen bento containerize`` builds (``evergreen.serving.containers``;
``../shared/reference/containers.md`` describes podman on machines without a Docker engine).
Each replica is ``<engine> run -d`` of the image on the host's network, its server listening
on the replica's loopback port (``BENTOML_HOST``/``BENTOML_PORT``), the home mounted at its own
path and run as the home's owner; stopped with ``<engine> stop --time GRACE`` (SIGTERM, then
SIGKILL), killed with ``<engine> kill``, its output (both streams) kept in the replica's log
before the container is removed. ``engine_available`` says whether this machine can run one
(a ``docker`` client without a reachable engine cannot).
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from evergreen.rollout.revisions import RevisionSpec
from evergreen.rollout.state import ReplicaState
from evergreen.settings import EvergreenSettings

BENTO_IMAGE = "bento-image"  # the target's name when each revision runs its own bento's image
SCRATCH = "/tmp/evergreen"  # a tmpfs of the container's own


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


def home_label(settings: EvergreenSettings) -> str:
    """A short, stable token of the home: containers of two homes never share a name."""
    return hashlib.sha256(str(settings.home.resolve()).encode()).hexdigest()[:8]


def container_name(settings: EvergreenSettings, revision: str, index: int) -> str:
    """A name unique to this start (a restarted replica is a new container: the router and the
    watchdog tell it from the dead one by name)."""
    return f"evergreen-{home_label(settings)}-{revision}-{index}-{secrets.token_hex(3)}"


def state_owner(settings: EvergreenSettings) -> str:
    """``uid:gid`` of the home's owner: replicas run as the person whose state they write."""
    info = settings.home.stat()
    return f"{info.st_uid}:{info.st_gid}"


@dataclass
class ContainerTarget:
    """Replicas as containers of ``image`` run by ``engine``; with no ``image``, each
    revision's own bento image (``evergreen bento containerize`` tags it as the bento).

    Who the replica runs as: the home's owner (``--user UID:GID``, ``state_owner``), not the
    image's ``bentoml`` user (uid 1034), which cannot write the mounted home's prediction log
    or the online store's SQLite journal. Same uid, same rights as a ``process`` replica of
    that person: nothing in the home is chmod-ed or chown-ed, and nobody runs as root unless
    the home belongs to root. (``--userns=keep-id`` does the same for rootless podman only.)
    BentoML's own scratch (``BENTOML_HOME``: its metrics folder) goes to a private tmpfs, as
    the image's home is not that user's."""

    image: str | None = None
    engine: str = "podman"
    user: str | None = None  # uid:gid to run as; None: the home's owner

    @property
    def name(self) -> str:
        """How the state file names this target (``target_named`` reads it back)."""
        return f"container {self.engine} {self.image or BENTO_IMAGE}"

    def image_of(self, spec: RevisionSpec) -> str:
        """The image a revision runs: the target's, or the revision's bento image."""
        if self.image:
            return self.image
        if not spec.bento_tag:
            raise ContainerEngineError(
                f"{spec.source} is not a bento: the container target runs bento images only"
            )
        return spec.bento_tag

    def run_command(
        self, settings: EvergreenSettings, revision: str, spec: RevisionSpec, index: int, port: int
    ) -> list[str]:
        """The ``run`` command of one replica (its name is the one after ``--name``)."""
        home = str(settings.home)
        cmd = [self.engine, "run", "--detach", "--name", container_name(settings, revision, index)]
        # The host's network, the server on the replica's loopback port itself: a published
        # port is forwarded by the engine (DNAT, conmon holding the port), and a container
        # killed with -9 left a second of connections going nowhere (the router's dial timed
        # out: a failed request) where a dead process's port refuses at once, and the router
        # retries elsewhere.
        cmd += ["--network", "host"]
        cmd += ["--label", f"evergreen.home={home}", "--label", f"evergreen.revision={revision}"]
        cmd += ["--label", f"evergreen.model_version={spec.model_version}"]
        cmd += ["--user", self.user or state_owner(settings), "--tmpfs", f"{SCRATCH}:rw,mode=1777"]
        cmd += ["--volume", f"{home}:{home}"]  # the same path: the home's files name each other
        env = {
            "EVERGREEN_HOME": home,
            "BENTOML_HOME": f"{SCRATCH}/bentoml",
            "BENTOML_HOST": "127.0.0.1",
            "BENTOML_PORT": str(port),
            **spec.env,
        }
        for key, value in sorted(env.items()):
            cmd += ["--env", f"{key}={value}"]
        return [*cmd, self.image_of(spec)]

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

        cmd = self.run_command(settings, revision, spec, index, port)
        self._run(cmd)
        log = settings.serving_dir / revision / f"replica-{index}.log"
        return ReplicaState(
            index=index,
            port=port,
            log=str(log),
            started_at=now(),
            container=cmd[cmd.index("--name") + 1],
        )

    def is_alive(self, replica: ReplicaState) -> bool:
        cmd = [self.engine, "inspect", "--format", "{{.State.Running}}", str(replica.container)]
        try:
            return self._run(cmd, timeout_s=20) == "true"
        except ContainerEngineError:
            return False

    def stop_replica(self, replica: ReplicaState, grace_s: float) -> None:
        with contextlib.suppress(ContainerEngineError):  # already gone: nothing to stop
            self._run(self.stop_command(replica, grace_s), timeout_s=grace_s + 30)
        self._remove(replica)

    def kill_replica(self, replica: ReplicaState) -> None:
        """SIGKILL (a crash), then remove the container, its output kept in the replica's log
        first (a restart reuses the log's path, not the container)."""
        with contextlib.suppress(ContainerEngineError):  # it may have died already
            self._run(self.kill_command(replica))
        self._remove(replica)

    def _remove(self, replica: ReplicaState) -> None:
        self.save_log(replica)
        with contextlib.suppress(ContainerEngineError):
            self._run([self.engine, "rm", "--force", str(replica.container)])

    def container_log(self, replica: ReplicaState, tail: int | None = None) -> str:
        """The container's output: standard output AND standard error, as ``<engine> logs``
        gives them (a traceback is on standard error)."""
        cmd = [
            self.engine,
            "logs",
            *(["--tail", str(tail)] if tail else []),
            str(replica.container),
        ]
        try:
            done = subprocess.run(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"{' '.join(cmd[:2])} failed: {error}"
        return done.stdout.strip()

    def save_log(self, replica: ReplicaState) -> None:
        """Append the container's output to the replica's log file (kept after ``rm``)."""
        text = self.container_log(replica)
        if text and "no such container" not in text.lower():
            path = Path(replica.log)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as handle:
                handle.write(f"--- {replica.container}\n{text}\n")

    def describe_failure(self, replica: ReplicaState) -> str:
        text = self.container_log(replica, tail=30)
        return text or "(no output)"


def remove_containers(settings: EvergreenSettings, engine: str = "podman") -> list[str]:
    """Force-remove every container of this home (a test's teardown); their names."""
    ls = [engine, "ps", "--all", "--quiet", "--filter", f"label=evergreen.home={settings.home}"]
    ids = subprocess.run(ls, capture_output=True, text=True, timeout=60).stdout.split()
    if ids:
        subprocess.run([engine, "rm", "--force", *ids], capture_output=True, timeout=120)
    return ids


def ensure_image(settings: EvergreenSettings, target: object, spec: RevisionSpec):
    """Before a rollout on the container target: the revision's bento image, containerized
    unless it exists (``evergreen.serving.containers.containerize``). Returns the
    ``BuiltImage``, or None when there is nothing to build (another target, a fixed image)."""
    if not isinstance(target, ContainerTarget) or target.image or not spec.bento_tag:
        return None
    from evergreen.serving.containers import containerize

    return containerize(settings, spec.bento_tag, target.engine)
