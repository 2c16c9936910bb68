"""Throwaway PostgreSQL and Redis servers for tests: Debian's packages (installed with apt-get
when missing, as ``make servers`` does), each in its own temp folder on a free port, stopped at
the end even when the test fails. ``tests/server_fixtures.py`` makes them fixtures.

The servers run as children of the test process (never the system services), bound to the
address asked for: loopback, or a test host's address inside a network namespace it made.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
_APT_UPDATED = False


def ensure_debian(binary: str | Path, package: str) -> None:
    """Install Debian's ``package`` when ``binary`` (a path or a command) is missing."""
    global _APT_UPDATED
    if Path(binary).exists() or shutil.which(str(binary)):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _APT_UPDATED:
        subprocess.run([*sudo, "apt-get", "update"], check=True, capture_output=True, env=env)
        _APT_UPDATED = True
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "--no-install-recommends", package],
        check=True,
        capture_output=True,
        env=env,
    )


def _wait(check, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{what} not up after {timeout_s:.0f} s: {last}")


@dataclass
class RedisServer:
    """``redis-server`` on ``host:port`` with its files in ``folder`` (no persistence)."""

    folder: Path
    port: int
    host: str = "127.0.0.1"
    netns: str | None = None  # run inside this network namespace
    persist: bool = False  # an append-only file, synced each write: a restart keeps the data
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> RedisServer:
        ensure_debian("redis-server", "redis-server")
        self.folder.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", self.host]
        command += ["--dir", str(self.folder), "--save", ""]
        if not self.host.startswith("127."):
            # Redis 7 refuses clients from other addresses without a password ("protected
            # mode"), bind or not: a test network's hosts are such clients.
            command += ["--protected-mode", "no"]
        if self.persist:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            command += ["--appendonly", "no"]
        if self.netns:
            command = ["ip", "netns", "exec", self.netns, *command]
        log = (self.folder / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _wait(self.ping, f"redis on {self.host}:{self.port}")
        return self

    def ping(self) -> bool:
        import redis

        return bool(redis.Redis(host=self.host, port=self.port, socket_timeout=1).ping())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


@dataclass
class PostgresServer:
    """PostgreSQL 15 (initdb, pg_ctl) on ``host:port``, its cluster in ``folder``, trust
    authentication for user ``postgres`` (a throwaway test server)."""

    folder: Path
    port: int
    host: str = "127.0.0.1"
    netns: str | None = None

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{db}"

    def _as_postgres(self, *command: str, **kw) -> subprocess.CompletedProcess:
        run = ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else [*command]
        if self.netns:
            run = ["ip", "netns", "exec", self.netns, *run]
        done = subprocess.run(run, capture_output=True, text=True, **kw)
        if done.returncode:
            raise RuntimeError(f"{' '.join(command[:1])} failed: {done.stdout}{done.stderr}")
        return done

    def start(self) -> PostgresServer:
        ensure_debian(PG_BIN / "pg_ctl", "postgresql")
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        if not self.data.exists():
            initdb = str(PG_BIN / "initdb")
            self._as_postgres(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres")
            # initdb trusts loopback only; on a test network the hosts of its subnet connect.
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write("host all all samenet trust\n")
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses={self.host} "
            "-c fsync=off -c max_connections=200"
        )
        pg_ctl = str(PG_BIN / "pg_ctl")
        log = str(self.folder / "postgres.log")
        self._as_postgres(pg_ctl, "-D", str(self.data), "-l", log, "-w", "-o", options, "start")
        _wait(self.ping, f"postgres on {self.host}:{self.port}")
        return self

    def ping(self) -> bool:
        import psycopg2

        with contextlib.closing(psycopg2.connect(self.url(), connect_timeout=2)) as conn:
            return conn.cursor() is not None

    def create_database(self, name: str) -> str:
        """A new database on this server; returns its URL."""
        import psycopg2

        conn = psycopg2.connect(self.url())
        conn.autocommit = True
        with contextlib.closing(conn), conn.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(RuntimeError):
                self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "stop")

    def restart(self) -> None:
        self.stop()
        self.start()
