"""Benchmark: single-transaction scoring at 1, 16 and 64 concurrent clients.

Prints a table; ``--json PATH`` writes the same figures as one flat object. Three ways to serve
the very same work (``evergreen.serving.runtime.ServingRuntime.predict``: parse, online lookup,
model, prediction log, JSON answer):

* ``floor``: in-process calls from N threads (no HTTP): the floor;
* ``bare``: a bare Starlette app (one uvicorn worker, no access log) doing exactly that;
* ``bento``: the BentoML service (``bentos/fraud_detection``) under ``bentoml serve``.

The load comes from another process (N asyncio keep-alive HTTP/1.1 connections, each posting
real transactions of the served day back to back), for ``--seconds`` after a warm-up; it
reports requests/s, p50/p99 latency, errors, and its own CPU use (when the loader itself is near
a full core, the servers' throughput is bounded by it). Server CPU per request comes from
psutil over the server's process tree. Goals (issue 5): bento >= 50 % of bare's throughput and
bento p99 <= 20 ms at 16 clients on this 2-core machine; with the request-time state update
(issue 14), bento >= 60 % of bare at 16 clients and p99 <= 20 ms.

Every request carries a transaction id of its own (the real transactions of the served day,
re-numbered), so each one writes a new event to the request-time state, as live traffic does;
the update's cost per request is measured in process: the floor at one client with and without
the state write, and ``RealtimeState.record`` of one transaction alone (median).

The home (data, features online, a champion) is built in a temporary folder unless ``--home``
names one that has a champion; building it takes about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the bench-only helpers

from evergreen.settings import EvergreenSettings  # noqa: E402

CLIENTS = (1, 16, 64)
WARMUP_S = 2.0
SEED = 11


# ----------------------------------------------------------------------------- the home


def prepare_home(home: Path, days: int = 14) -> tuple[EvergreenSettings, str]:
    """Simulate ``days`` days, ingest, compute features, put the last day online, train a
    small model and make it champion (``real_home``'s steps, a larger world). Returns the
    settings and the champion's tag."""
    from real_home import ingest_and_features, online_and_training_split, train_and_register

    from evergreen.models.registry import ModelRegistry

    settings = EvergreenSettings(home=home, label_delay_days=3).ensure_dirs()
    ingest_and_features(settings, days, customers=2000, terminals=4000, seed=SEED)
    split, service = online_and_training_split(settings, days, window_days=days)
    reason = "serving benchmark"
    tag = train_and_register(settings, split, service, SEED, {"iterations": 200}, reason)
    ModelRegistry(settings).set_status(tag, "champion", "bench", reason)
    _reconcile(settings, days)
    return settings, tag


def _reconcile(settings: EvergreenSettings, days: int) -> None:
    """Every ingested day into the request-time state (``transaction_state``'s work)."""
    import datetime as dt

    from real_home import START

    from evergreen.features.feast_client import feature_store
    from evergreen.features.realtime_state import reconcile_day
    from evergreen.features.sqlite_online_store import realtime_state_of
    from evergreen.warehouse import warehouse

    state = realtime_state_of(feature_store(settings).config)
    with warehouse(settings, read_only=True) as conn:
        for i in range(days):
            reconcile_day(state, conn, START + dt.timedelta(days=i))
    state.close()


FRESH_IDS = 9 * 10**17  # re-numbered copies: ids no simulated transaction has


def request_bodies(
    settings: EvergreenSettings, run: int = 0, n: int = 500, copies: int = 100
) -> list[bytes]:
    """Single-transaction JSON bodies: real transactions of the day the store serves, each
    repeated ``copies`` times under a fresh transaction id (``run``: one id range per level of
    each server), so every request adds an event."""
    from evergreen.serving.validation import recent_transactions

    transactions, _ = recent_transactions(settings, n, SEED)
    first = FRESH_IDS + run * 10**9
    return [
        tx.model_copy(update={"transaction_id": first + k * n + i}).model_dump_json().encode()
        for k in range(copies)
        for i, tx in enumerate(transactions)
    ]


class BodyFiles:
    """A fresh file of bodies for each server level (``next()``), ids never reused."""

    def __init__(self, settings: EvergreenSettings, folder: Path) -> None:
        self.settings, self.folder, self.runs = settings, folder, 0

    def bodies(self) -> list[bytes]:
        self.runs += 1
        return request_bodies(self.settings, self.runs)

    def next(self) -> Path:
        path = self.folder / f"bodies-{self.runs + 1}.json"
        path.write_text(json.dumps([b.decode() for b in self.bodies()]))
        return path


def state_write_cost(runtime, bodies: list[bytes], n: int = 2000) -> float:
    """Median milliseconds of ``RealtimeState.record`` of one transaction."""
    from evergreen.serving.schemas import PredictRequest

    state = runtime.reader().state
    times = []
    for k, body in enumerate(bodies[:n]):
        tx = PredictRequest.model_validate_json(body).transactions[0]
        event = (FRESH_IDS // 2 + k, tx.customer_id, tx.terminal_id, tx.tx_datetime, tx.amount)
        began = time.perf_counter()
        state.record([event])
        times.append(time.perf_counter() - began)
    return float(np.median(times) * 1000)


def open_runtime(settings: EvergreenSettings, tag: str, log_dir: Path):
    from evergreen.models.bentoml_home import model_store
    from evergreen.serving.prediction_log import PredictionLog
    from evergreen.serving.runtime import ServingRuntime, serving_model

    model = serving_model(model_store(settings).get(tag))
    return ServingRuntime(settings, model, PredictionLog(log_dir)).open()


# ----------------------------------------------------------------------------- the floor


def bench_floor(runtime, bodies: list[bytes], clients: int, seconds: float) -> dict:
    """In-process ``predict`` (parse + lookup + model + log + JSON) from ``clients`` threads."""
    from evergreen.serving.schemas import PredictRequest

    def call(body: bytes) -> None:
        runtime.predict(PredictRequest.model_validate_json(body)).model_dump_json()

    for body in bodies[:50]:
        call(body)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    deadline = time.perf_counter() + seconds

    def worker(k: int) -> None:
        i = k
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            call(bodies[i % len(bodies)])
            latencies[k].append(time.perf_counter() - began)
            i += clients

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    flat = [x for per in latencies for x in per]
    return _summary(flat, elapsed, errors=0)


def _summary(latencies: list[float], elapsed: float, errors: int) -> dict:
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "errors": errors,
        "requests": len(latencies),
    }


# ----------------------------------------------------------------------------- the bare app


def bare_app(runtime):
    """A Starlette app with one route doing the service's work, nothing else."""
    from pydantic import ValidationError
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from evergreen.serving.runtime import OutOfDataTime
    from evergreen.serving.schemas import PredictRequest

    async def predict(request):
        try:
            parsed = PredictRequest.model_validate_json(await request.body())
        except ValidationError as error:
            detail = error.errors(include_url=False, include_context=False, include_input=False)
            return JSONResponse({"detail": detail}, status_code=400)
        try:
            body = runtime.predict(parsed).model_dump_json()
        except OutOfDataTime as exc:
            return JSONResponse({"detail": exc.errors}, status_code=400)
        return Response(body, media_type="application/json")

    async def readyz(_):
        ready = runtime.readiness()
        return Response(ready.reason, status_code=200 if ready.ready else 503)

    routes = [Route("/predict", predict, methods=["POST"]), Route("/readyz", readyz)]
    return Starlette(routes=routes)


def serve_bare(args) -> None:
    import uvicorn

    from evergreen.serving.runtime import freeze_startup_heap

    settings = EvergreenSettings(home=Path(args.home))
    runtime = open_runtime(settings, args.model, Path(args.log_dir))
    freeze_startup_heap()  # as the bento does: the two differ only by the framework
    uvicorn.run(
        bare_app(runtime), host="127.0.0.1", port=args.port, log_level="warning", access_log=False
    )


# ----------------------------------------------------------------------------- load


async def _http_client(host: str, port: int, bodies: list[bytes], k: int, clients: int, clock):
    """One keep-alive HTTP/1.1 connection posting bodies back to back: raw asyncio streams,
    so the loader spends a small fraction of a server's CPU per request (an httpx client
    spends about as much as the server, and on two cores it would be the bottleneck)."""
    reader, writer = await asyncio.open_connection(host, port)
    latencies, errors, i = [], 0, k
    head = f"POST /predict HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    try:
        while (now := time.perf_counter()) < clock["stop_at"]:
            body = bodies[i % len(bodies)]
            i += clients
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            status, length = await _read_response_head(reader)
            await reader.readexactly(length)
            done = time.perf_counter()
            if now < clock["warm_until"]:
                continue
            if status == 200:
                latencies.append(done - now)
            else:
                errors += 1
    finally:
        writer.close()
    return latencies, errors


async def _read_response_head(reader: asyncio.StreamReader) -> tuple[int, int]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, length


async def _load(url: str, bodies: list[bytes], clients: int, seconds: float) -> dict:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    warm_until = time.perf_counter() + WARMUP_S
    clock = {"warm_until": warm_until, "stop_at": warm_until + seconds}
    cpu = time.process_time()
    host, port = parts.hostname, parts.port
    results = await asyncio.gather(
        *(_http_client(host, port, bodies, k, clients, clock) for k in range(clients))
    )
    cpu = time.process_time() - cpu
    latencies = [x for per, _ in results for x in per]
    summary = _summary(latencies, seconds, sum(errors for _, errors in results))
    summary["loader_cpu_share"] = cpu / (seconds + WARMUP_S)
    return summary


def run_load(args) -> None:
    bodies = json.loads(Path(args.bodies).read_text())
    encoded = [b.encode() for b in bodies]
    result = asyncio.run(_load(args.url, encoded, args.clients, args.seconds))
    print(json.dumps(result))


def load_from_subprocess(url: str, bodies_file: Path, clients: int, seconds: float) -> dict:
    """Run the load generator in its own process; returns its summary."""
    cmd = [sys.executable, __file__, "--role", "load", "--url", url, "--bodies", str(bodies_file)]
    cmd += ["--clients", str(clients), "--seconds", str(seconds)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its descendants."""
    import psutil

    total = 0.0
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def bench_server(url: str, pid: int, bodies_file: Path, clients: int, seconds: float) -> dict:
    before = _tree_cpu(pid)
    result = load_from_subprocess(url, bodies_file, clients, seconds)
    cpu = _tree_cpu(pid) - before
    total_requests = result["requests"] * (seconds + WARMUP_S) / seconds  # warm-up included
    result["server_cpu_ms_per_req"] = cpu * 1000 / total_requests if total_requests else np.nan
    return result


# ----------------------------------------------------------------------------- main


def _bare_process(settings: EvergreenSettings, tag: str, port: int, log_dir: Path):
    from evergreen.serving.process import serving_env

    cmd = [sys.executable, __file__, "--role", "bare", "--home", str(settings.home)]
    cmd += ["--model", tag, "--port", str(port), "--log-dir", str(log_dir)]
    return subprocess.Popen(cmd, env=serving_env(settings), start_new_session=True)


def _wait_ready(url: str, timeout_s: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout_s} s")


def run(args) -> dict:
    from evergreen.models.registry import ModelRegistry
    from evergreen.ports import free_port
    from evergreen.serving.process import BentoProcess
    from evergreen.serving.runtime import freeze_startup_heap

    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    try:
        if args.home:
            settings = EvergreenSettings(home=Path(args.home))
            tag = ModelRegistry(settings).champion().tag
        else:
            began = time.perf_counter()
            settings, tag = prepare_home(workdir / "home")
            print(f"home prepared in {time.perf_counter() - began:.0f} s", file=sys.stderr)
        files = BodyFiles(settings, workdir)
        figures: dict = {"model": tag, "seconds_per_level": args.seconds, "cpus": os.cpu_count()}
        runtime = open_runtime(settings, tag, workdir / "floor-log")
        freeze_startup_heap()  # the servers do too
        for clients in args.clients:
            floor = bench_floor(runtime, files.bodies(), clients, args.seconds)
            _record(figures, "floor", clients, floor)
        runtime.writes_state = False  # the same floor without the state write
        floor = bench_floor(runtime, files.bodies(), 1, args.seconds)
        _record(figures, "floor_no_state_write", 1, floor)
        runtime.writes_state = True
        figures["state_record_one_p50_ms"] = round(state_write_cost(runtime, files.bodies()), 4)
        if 1 in args.clients:
            with_write = figures["floor_c1_p50_ms"]
            figures["state_write_cost_per_request_ms"] = round(
                with_write - figures["floor_no_state_write_c1_p50_ms"], 4
            )
        runtime.close()

        port = free_port()
        bare = _bare_process(settings, tag, port, workdir / "bare-log")
        try:
            _wait_ready(f"http://127.0.0.1:{port}")
            for clients in args.clients:
                result = bench_server(
                    f"http://127.0.0.1:{port}", bare.pid, files.next(), clients, args.seconds
                )
                _record(figures, "bare", clients, result)
        finally:
            bare.terminate()
            bare.wait(15)

        target = "bentos.fraud_detection.service:FraudDetection"
        for workers in args.bento_workers:
            kind = "bento" if workers == 1 else f"bento_w{workers}"
            env = {
                "EVERGREEN_PREDICTIONS_DIR": str(workdir / f"{kind}-log"),
                "EVERGREEN_SERVE_WORKERS": str(workers),
            }
            with BentoProcess(target, settings, args={"model_tag": tag}, env=env) as bento:
                for clients in args.clients:
                    result = bench_server(
                        bento.url, bento.process.pid, files.next(), clients, args.seconds
                    )
                    _record(figures, kind, clients, result)
        _ratios(figures, args)
        return figures
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _ratios(figures: dict, args) -> None:
    """Each bento's throughput over the bare app's, and the issue's two goals (per bento)."""
    for workers in args.bento_workers:
        kind = "bento" if workers == 1 else f"bento_w{workers}"
        for clients in args.clients:
            bare_rps = figures.get(f"bare_c{clients}_rps") or np.nan
            ratio = figures[f"{kind}_c{clients}_rps"] / bare_rps
            figures[f"{kind}_over_bare_c{clients}_rps_ratio"] = round(ratio, 3)
        if 16 in args.clients:
            ratio = figures[f"{kind}_over_bare_c16_rps_ratio"]
            figures[f"goal_{kind}_over_bare_c16_ge_0_6"] = bool(ratio >= 0.6)
            figures[f"goal_{kind}_c16_p99_le_20ms"] = bool(figures[f"{kind}_c16_p99_ms"] <= 20)


def _record(figures: dict, kind: str, clients: int, result: dict) -> None:
    prefix = f"{kind}_c{clients}"
    for key, value in result.items():
        figures[f"{prefix}_{key}"] = round(value, 3) if isinstance(value, float) else value
    print(
        f"{kind:6s} c{clients:<3d} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:7.2f} ms  "
        f"p99 {result['p99_ms']:7.2f} ms  errors {result['errors']}",
        file=sys.stderr,
    )


def _kind_order(kind: str) -> tuple[int, str]:
    return ({"floor": 0, "bare": 1}.get(kind, 2), kind)


def print_table(figures: dict, clients: tuple[int, ...]) -> None:
    print(f"\nmodel {figures['model']}, {figures['seconds_per_level']} s per level")
    header = f"{'serving':8s} {'clients':>7s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s}"
    header += f" {'errors':>6s} {'cpu ms/req':>10s} {'loader cpu':>10s}"
    print(header)
    kinds = sorted({key.split("_c")[0] for key in figures if key.endswith("_rps")})
    for kind in sorted(kinds, key=_kind_order):
        for c in clients:
            p = f"{kind}_c{c}"
            if f"{p}_rps" not in figures:
                continue
            cpu = figures.get(f"{p}_server_cpu_ms_per_req", float("nan"))
            loader = figures.get(f"{p}_loader_cpu_share", float("nan"))
            print(
                f"{kind:8s} {c:7d} {figures[f'{p}_rps']:8.0f} {figures[f'{p}_p50_ms']:8.2f} "
                f"{figures[f'{p}_p99_ms']:8.2f} {figures[f'{p}_errors']:6d} {cpu:10.2f} "
                f"{loader:10.0%}"
            )
    for key, value in figures.items():
        if key.endswith("_rps_ratio") or key.startswith(("goal_", "state_")):
            print(f"{key}: {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--clients", type=int, nargs="+", default=list(CLIENTS))
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per level")
    parser.add_argument(
        "--bento-workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="BentoML worker processes to try (1 is compared with the one-worker bare app)",
    )
    parser.add_argument("--home", help="an EVERGREEN_HOME with a champion (else one is built)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--role", choices=["bench", "bare", "load"], default="bench")
    parser.add_argument("--url")
    parser.add_argument("--bodies")
    parser.add_argument("--model")
    parser.add_argument("--port", type=int)
    parser.add_argument("--log-dir")
    args = parser.parse_args()
    if args.role == "bare":
        serve_bare(args)
    elif args.role == "load":
        args.clients = args.clients[0]
        run_load(args)
    else:
        figures = run(args)
        print_table(figures, tuple(args.clients))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
