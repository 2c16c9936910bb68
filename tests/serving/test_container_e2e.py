"""Container deploys end to end, from the project's own commands, on podman.

Once per session (``container_home``): ``evergreen bento prepare`` (the local base image and the
wheels, cached outside the clone and reused when their inputs are unchanged), then for the
champion and a second model ``evergreen bento build`` and ``evergreen bento containerize``. The
home is a copy of the serving fixture's, owned by an unprivileged uid as a person's home would
be: the replicas run as that uid, not as root and not as the image's user.

Then, under load through the router, with every request answered: the first rollout by the
``deployment`` asset on the container target, a blue-green to the second model's image, a
canary back to the champion's, a ``kill -9`` of one container (the watchdog restarts it), and
``evergreen rollback``, which brings the previous revision back as containers. Around them: a
replica that dies says why (its standard error), and one that cannot write the home is not
ready, with the reason.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from evergreen.ports import free_port
from evergreen.rollout.analysis import AnalysisPolicy
from evergreen.rollout.container import ContainerTarget, engine_available, remove_containers
from evergreen.rollout.controller import RolloutController, RolloutFailed
from evergreen.rollout.load import LoadLoop, probe_transactions
from evergreen.rollout.revisions import resolve_revision
from evergreen.rollout.state import STOPPED, read_state
from evergreen.rollout.strategies import BlueGreen, Canary
from evergreen.rollout.supervisor import Supervisor, SupervisorOptions
from evergreen.settings import EvergreenSettings
from tests.rollout.conftest import assert_no_failed_requests, tear_down, wait_for

pytestmark = pytest.mark.e2e
HOME_UID = 10_001  # the (unprivileged) person who owns the test's home
# Two different models: the score check would refuse the switch; errors and latency still count.
POLICY = AnalysisPolicy(max_p99_ms=500.0, min_requests=10, probe_requests=30, max_ks_statistic=1.0)
EVERGREEN = str(Path(sys.executable).with_name("evergreen"))


def evergreen(env: dict, *args: str, timeout_s: float = 1200) -> str:
    """Run an ``evergreen`` command; its output (fails the test on a non-zero exit)."""
    done = subprocess.run(
        [EVERGREEN, *args], env=env, capture_output=True, text=True, timeout=timeout_s
    )
    assert done.returncode == 0, f"evergreen {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


def ensure_podman() -> None:
    """Podman from Debian, set up as containers.md says (``make podman``), when missing."""
    if not engine_available("podman")[0]:
        root = Path(__file__).resolve().parents[2]
        subprocess.run(["make", "-C", str(root), "podman"], check=True, timeout=900)
    usable, why = engine_available("podman")
    assert usable, why


@pytest.fixture(scope="session")
def container_home(serving_home, tmp_path_factory):
    """A copy of the serving home owned by HOME_UID, with both models' bentos built and
    containerized by the CLI; (settings, environment, champion bento, other bento)."""
    ensure_podman()
    home = tmp_path_factory.mktemp("containers") / "home"
    shutil.copytree(serving_home.settings.home, home, symlinks=True)
    shutil.rmtree(home / "serving", ignore_errors=True)
    shutil.rmtree(home / "registry" / "bentoml" / "bentos", ignore_errors=True)
    env = {
        **os.environ,
        "EVERGREEN_HOME": str(home),
        "EVERGREEN_LABEL_DELAY_DAYS": str(serving_home.settings.label_delay_days),
        "EVERGREEN_SERVE_PORT": str(free_port()),
    }
    for line in evergreen(env, "bento", "prepare").splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = value
    bentos = []
    for model in (serving_home.champion, serving_home.other):
        evergreen(env, "bento", "build", "--model", model)
        out = evergreen(env, "bento", "containerize", "--model", model)
        bentos.append(out.strip().splitlines()[-1].split(":", 2)[0:2])
    champion, other = (":".join(b) for b in bentos)
    for path in [home, *home.rglob("*")]:  # the person's home: theirs, not root's
        os.lchown(path, HOME_UID, HOME_UID)
    settings = EvergreenSettings(
        home=home,
        label_delay_days=serving_home.settings.label_delay_days,
        serve_port=int(env["EVERGREEN_SERVE_PORT"]),
        deploy_target="container",
    ).ensure_dirs()
    yield settings, env, champion, other
    remove_containers(settings)


@pytest.fixture(scope="module")
def stack(container_home):
    settings, env, _, _ = container_home
    supervisor = Supervisor(settings, options=SupervisorOptions(ready_timeout_s=120))
    controller = RolloutController(settings, supervisor, actor="pytest")
    try:
        yield controller
    finally:
        tear_down(settings)
        remove_containers(settings)


def stable(controller):
    state = read_state(controller.settings)
    return state.revisions[state.stable]


def containers_of(settings, revision: str) -> list[str]:
    cmd = [
        "podman",
        "ps",
        "--format",
        "{{.Names}}",
        "--filter",
        f"label=evergreen.home={settings.home}",
    ]
    cmd += ["--filter", f"label=evergreen.revision={revision}"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()


def test_the_images_are_the_bentos_and_small(container_home):
    settings, _, champion, other = container_home
    from evergreen.serving.containers import CODE_LABEL, bento_code_version, image_label, image_size

    for tag in (champion, other):
        assert image_label(tag, CODE_LABEL) == bento_code_version(settings, tag)
        assert image_size(tag) < 1.6e9  # 2.42 GB before the apt layer and unused packages went


def test_a_replica_that_dies_says_why_and_one_that_cannot_write_is_not_ready(container_home, stack):
    settings, _, champion, _ = container_home
    broken = resolve_revision(settings, champion, {"EVERGREEN_SERVE_WORKERS": "many"}, 1)
    with pytest.raises(RolloutFailed) as failure:
        stack.deploy(broken, BlueGreen(warmup_requests=0), "test: a replica that dies")
    # The traceback is on the container's standard error: it must be in the message.
    assert "exited before it was ready" in str(failure.value)
    assert "invalid literal for int()" in str(failure.value)

    # As the image's own user (uid 1034), the home (HOME_UID's, 0755) is not writable.
    spec = resolve_revision(settings, champion, {}, 1)
    target = ContainerTarget(user="1034:1034")
    replica = target.start_replica(settings, "unwritable", spec, 0, free_port())
    try:

        def verdict():
            try:  # readiness is judged (and its reason logged) when /readyz is asked
                status = httpx.get(f"{replica.url}/readyz", timeout=5).status_code
            except httpx.HTTPError:
                return None
            text = target.container_log(replica)
            return (status, text) if "readiness:" in text else None

        status, log = wait_for(verdict, 90, "the readiness verdict")
        assert status == 503
        assert "not writable by uid 1034" in log or "cannot be created by uid 1034" in log
    finally:
        target.stop_replica(replica, grace_s=2)


def test_rollouts_to_containers_under_load_without_a_failed_request(
    container_home, stack, instance
):
    from dagster import materialize

    from assets.deployment import deployment
    from evergreen.resources import EvergreenResource

    settings, env, champion, other = container_home
    first = {
        "source": champion, "target": "container", "strategy": "blue-green",
        "keep_previous_seconds": 0.0, "warmup_requests": 5, "drain_seconds": 0.5, "replicas": 2,
    }  # fmt: skip
    done = materialize(
        [deployment],
        instance=instance,
        resources={"evergreen": EvergreenResource(home=str(settings.home))},
        run_config={"ops": {"deployment": {"config": first}}},
        raise_on_error=False,
    )
    assert done.success, [
        e.message for e in done.all_events if e.event_type_value == "STEP_FAILURE"
    ]
    blue = stable(stack)
    assert (
        blue.target.startswith("container podman") and len(containers_of(settings, blue.name)) == 2
    )

    payloads = probe_transactions(settings, 2000, seed=0)  # at the data time of the home's state
    load = LoadLoop(stack.supervisor.serving_url(), rate=30, threads=3, payloads=payloads).start()
    marks = {}  # when each step began (the load loop's clock): a failure says during what
    try:
        marks["blue-green"] = time.monotonic()
        green_result = stack.deploy(
            resolve_revision(settings, other, {}, 2),
            BlueGreen(warmup_requests=10, keep_previous_s=0.0, drain_s=0.5, analysis=POLICY),
            "test: blue-green between containers",
        )
        assert green_result.status == "completed"
        green = stable(stack)
        assert green.model_version != blue.model_version and containers_of(settings, green.name)
        assert read_state(settings).revisions[blue.name].phase == STOPPED
        assert not containers_of(settings, blue.name)

        marks["canary"] = time.monotonic()
        canary = stack.deploy(
            resolve_revision(settings, champion, {}, 2),
            Canary(steps=(50, 100), step_s=3.0, warmup_requests=5, drain_s=0.5, analysis=POLICY),
            "test: canary between containers",
        )
        assert canary.status == "completed" and len(canary.analyses) == 2
        current = stable(stack)

        marks["kill -9"] = time.monotonic()
        victim = current.replicas[0]
        subprocess.run(["podman", "kill", "--signal", "KILL", victim.container], check=True)
        restarted = wait_for(
            lambda: next(
                (r for r in stable(stack).replicas if r.index == 0 and r.ready and r.restarts),
                None,
            ),
            120,
            "the watchdog to restart the killed container",
        )
        assert restarted.container != victim.container

        # `evergreen rollback` (its controller's default target is process) brings the
        # previous revision, stopped by now, back where it ran: as containers.
        marks["rollback"] = time.monotonic()
        plain = {k: v for k, v in env.items() if k != "EVERGREEN_DEPLOY_TARGET"}
        result = json.loads(evergreen(plain, "rollback", "--reason", "test", "--json"))
        assert result["status"] == "completed"
        back = stable(stack)
        assert back.model_version == green.model_version and back.name != green.name
        assert back.target.startswith("container podman")
        assert len(containers_of(settings, back.name)) == 2
        status = json.loads(evergreen(plain, "status", "--json"))
        targets = {r["revision"]: r["target"] for r in status["revisions"]}
        assert targets[back.name].startswith("container podman")
        time.sleep(1.0)
    finally:
        print("steps began at", marks)
        samples = assert_no_failed_requests(load, torn_allowed=load.threads)  # the kill -9
    assert len({s.model_version for s in samples}) == 2
