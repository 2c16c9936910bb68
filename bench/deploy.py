"""Benchmark: consecutive zero-downtime deploys under steady load.

Prints a table; ``--json PATH`` writes the same figures. A real Caddy (edge and router) and
real ``bentoml serve`` replicas on free loopback ports; a load loop sends ``POST /predict``
through the serving address at ``--rate`` requests per second the whole time:

* steady state first (``--steady`` seconds, nothing deploys): its p99 latency is the floor;
* then ``--deploys`` consecutive deploys (blue-green by default, or canary), each of a new
  revision; every request sent while a deploy runs counts for the "during deploys" p99;
* figures: failed requests (must be 0), p99 during deploys against steady state (the ratio),
  and the time per deploy (median and max, from the controller's call to its return).

What is deployed: by default the tests' fixture service (``tests/rollout/fixture_service``,
the fraud bento's API without a model, each deploy a new model version) in a temporary home.
``--real`` builds a small real home first (``bench/real_home.py``: data, features online, two
trained models, their bentos) and deploys the real fraud bento, alternating between the two
models. ``--source`` deploys models or bentos of ``EVERGREEN_HOME`` instead (repeat to
alternate); that home must have its online store, so the replicas become ready.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from evergreen.ports import free_port  # noqa: E402
from evergreen.rollout.controller import RolloutController  # noqa: E402
from evergreen.rollout.load import LoadLoop, p99_ms, probe_transactions  # noqa: E402
from evergreen.rollout.revisions import (  # noqa: E402
    RevisionSpec,
    resolve_revision,
    service_folder_spec,
)
from evergreen.rollout.strategies import BlueGreen, Canary  # noqa: E402
from evergreen.rollout.supervisor import Supervisor  # noqa: E402
from evergreen.settings import EvergreenSettings, get_settings  # noqa: E402

FIXTURE = ROOT / "tests" / "rollout" / "fixture_service"


def _specs(args, settings: EvergreenSettings) -> list[RevisionSpec]:
    """The revisions to deploy, in order: the first serves before the benchmark starts."""
    if args.source:
        sources = [resolve_revision(settings, s, {}, args.replicas) for s in args.source]
        return [sources[i % len(sources)] for i in range(args.deploys + 1)]
    return [
        service_folder_spec(FIXTURE, {"FIXTURE_MODEL_VERSION": f"bench-v{i}"}, args.replicas)
        for i in range(args.deploys + 1)
    ]


def _strategy(name: str):
    if name == "canary":
        return Canary(steps=(10, 50, 100), step_s=3.0, drain_s=1.0)
    return BlueGreen(warmup_requests=10, keep_previous_s=0.0, drain_s=1.0)


def run(args) -> dict:
    temporary = None
    if args.source:
        base = get_settings()
    else:
        temporary = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
        base = EvergreenSettings(home=temporary / "home")
    if args.real:
        from bench.real_home import build_real_home

        began = time.monotonic()
        real = build_real_home(temporary / "home")
        print(f"real home built in {time.monotonic() - began:.0f} s: {', '.join(real.bentos)}")
        base, args.source = real.settings, list(real.bentos)
    settings = base.model_copy(update={"serve_port": free_port()}).ensure_dirs()
    controller = RolloutController(settings, Supervisor(settings), actor="bench")
    specs = _specs(args, settings)
    try:
        began = time.monotonic()
        controller.serve(specs[0])
        first_start_s = time.monotonic() - began
        payloads = probe_transactions(settings, 2000, seed=0)  # the state's data time
        url = controller.supervisor.serving_url()
        loop = LoadLoop(url, rate=args.rate, threads=6, payloads=payloads).start()
        time.sleep(1.0)  # connections open, caches warm
        steady_start = loop.mark()
        time.sleep(args.steady)
        steady = loop.between(steady_start, loop.mark())
        windows, durations = [], []
        for i, spec in enumerate(specs[1:], 1):
            start = loop.mark()
            result = controller.deploy(spec, _strategy(args.strategy), f"bench deploy {i}")
            windows.append((start, loop.mark()))
            durations.append(result.duration_s)
            print(f"deploy {i}: {result.rollout.revision} in {result.duration_s:.1f} s", flush=True)
        samples = loop.stop()
        during = [s for a, b in windows for s in loop.between(a, b)]
        elapsed = samples[-1].started - samples[0].started if samples else 0.0
    finally:
        controller.stop()
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
    return {
        "deploys": len(durations),
        "strategy": args.strategy,
        "replicas_per_revision": args.replicas,
        "source": ("real bentos: " if args.real else "") + ", ".join(args.source)
        if args.source
        else "fixture service",
        "rate_target_rps": args.rate,
        "rate_achieved_rps": round(len(samples) / elapsed, 1) if elapsed else 0.0,
        "requests_total": len(samples),
        "requests_during_deploys": len(during),
        "failed_requests": len(loop.failed()),
        "steady_p99_ms": round(p99_ms(steady), 2),
        "deploy_p99_ms": round(p99_ms(during), 2),
        "p99_ratio_deploy_vs_steady": round(p99_ms(during) / p99_ms(steady), 2),
        "deploy_time_median_s": round(statistics.median(durations), 2),
        "deploy_time_max_s": round(max(durations), 2),
        "first_serve_s": round(first_start_s, 2),
    }


def print_table(figures: dict) -> None:
    print(f"\n{'figure':<34}{'value':>22}")
    print("-" * 56)
    for key, value in figures.items():
        print(f"{key:<34}{value!s:>22}")
    print("\ngoal: failed_requests == 0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=10)
    parser.add_argument("--rate", type=float, default=100.0, help="Requests per second.")
    parser.add_argument("--steady", type=float, default=20.0, help="Seconds of steady state.")
    parser.add_argument("--strategy", choices=["blue-green", "canary"], default="blue-green")
    parser.add_argument("--replicas", type=int, default=1, help="Replicas per revision.")
    parser.add_argument(
        "--source",
        action="append",
        help="A model or bento of EVERGREEN_HOME to deploy (repeat to alternate).",
    )
    parser.add_argument(
        "--real", action="store_true", help="Build a small real home and deploy its bentos."
    )
    parser.add_argument("--json", type=Path, help="Write the figures to this JSON file.")
    args = parser.parse_args()
    figures = run(args)
    print_table(figures)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if figures["failed_requests"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
