"""`evergreen ui` (`make ui`) ends everything it started on Ctrl-C: dagster dev with a run in
flight ignored SIGTERM for more than 8 minutes, and its webserver, daemon and code server
stayed alive."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from evergreen.rollout.processes import stop_group
from evergreen.serving.process import free_port
from tests.rollout.conftest import processes_of

STUBBORN = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if sys.argv[1] == "parent":
    subprocess.Popen([sys.executable, __file__, "child"])            # same group: must end
    subprocess.Popen([sys.executable, __file__, "child"], start_new_session=True)  # detached
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_group_that_ignores_sigint_and_sigterm_is_ended_and_detached_ones_kept(tmp_path):
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    leader = subprocess.Popen([sys.executable, str(script), "parent"], start_new_session=True)
    time.sleep(1.5)
    family = psutil.Process(leader.pid).children(recursive=True)
    detached = [p for p in family if os.getpgid(p.pid) != leader.pid]
    assert len(family) == 2 and len(detached) == 1
    try:
        killed = stop_group(leader.pid, grace_s=1.0, term_s=1.0)

        in_group = [leader.pid, *(p.pid for p in family if p not in detached)]
        assert sorted(killed) == sorted(in_group)  # they ignored SIGINT and SIGTERM
        assert not any(_alive(pid) for pid in in_group)
        assert detached[0].is_running()  # a detached process (a serving replica) is not ours
    finally:
        for process in detached:
            process.kill()


def test_ctrl_c_of_evergreen_ui_ends_dagster_the_report_server_and_the_evidently_ui(tmp_path):
    home = tmp_path / "home"
    port, evidently = free_port(), free_port()
    env = {
        **os.environ,
        "EVERGREEN_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "EVERGREEN_REPORTS_PORT": str(free_port()),
        "EVERGREEN_UI_STOP_GRACE_S": "10",
    }
    evergreen = str(Path(sys.executable).with_name("evergreen"))
    log = (tmp_path / "ui.log").open("wb")
    ui = subprocess.Popen(
        [evergreen, "ui", "--port", str(port), "--evidently-port", str(evidently)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    said = f"Evidently UI (drift and quality per day): http://127.0.0.1:{evidently}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert ui.poll() is None, (tmp_path / "ui.log").read_text()[-2000:]
            try:
                answered = httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2)
                if answered.status_code == 200 and said in (tmp_path / "ui.log").read_text():
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        assert len(processes_of(home)) >= 3  # dagster dev, webserver, daemon, code server...
        # The Evidently UI over the home's (empty) workspace answers at the address it printed.
        assert said in (tmp_path / "ui.log").read_text()
        assert httpx.get(f"http://127.0.0.1:{evidently}/api/projects", timeout=5).json() == []

        ui.send_signal(signal.SIGINT)  # Ctrl-C
        assert ui.wait(90) == 0  # Ctrl-C is how it ends

        time.sleep(1.0)
        assert processes_of(home) == [], [p.cmdline()[:3] for p in processes_of(home)]
    finally:
        for process in processes_of(home):
            process.kill()
        if ui.poll() is None:
            ui.kill()
