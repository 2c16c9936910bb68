"""`evergreen observe` from the shell: it starts Prometheus and Alertmanager on the ports asked
for, with the rules loaded and the loop's metrics among the targets, and Ctrl-C ends both."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from evergreen.ports import free_port
from tests.servers import ensure_debian


def started_for(folder: Path) -> list[psutil.Process]:
    """Live processes whose command line names ``folder`` (the servers of this test)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(folder) in cmdline and process.status() != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def test_observe_serves_until_ctrl_c_and_then_stops_its_servers(tmp_path):
    ensure_debian("prometheus", "prometheus")
    ensure_debian("prometheus-alertmanager", "prometheus-alertmanager")
    prometheus, alertmanager = free_port(), free_port()
    env = {
        **os.environ,
        "EVERGREEN_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    evergreen = Path(sys.executable).with_name("evergreen")
    argv = [str(evergreen), "observe", "--prometheus-port", str(prometheus)]
    argv += ["--alertmanager-port", str(alertmanager)]
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        rules = []
        while time.monotonic() < deadline and process.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{prometheus}/api/v1/rules", timeout=1)
                rules = [r["name"] for g in answer.json()["data"]["groups"] for r in g["rules"]]
                targets = httpx.get(
                    f"http://127.0.0.1:{prometheus}/api/v1/targets", timeout=1
                ).json()["data"]["activeTargets"]
                jobs = {t["labels"]["job"] for t in targets}
                if rules and "evergreen" in jobs:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert "ServingErrorRate" in rules and "DataLate" in rules
        assert httpx.get(f"http://127.0.0.1:{alertmanager}/-/ready", timeout=2).status_code == 200
        children = psutil.Process(process.pid).children(recursive=True)
        assert {p.name() for p in children} >= {"prometheus", "prometheus-alertmanager"}

        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        for child in started_for(tmp_path):  # whatever a failure left behind, by pid
            child.kill()

    assert process.returncode == 0, output
    assert f"Prometheus:   http://127.0.0.1:{prometheus}" in output
    assert len(children) >= 2 and started_for(tmp_path) == []
