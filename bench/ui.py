"""Benchmark: how long the code location takes to load, against importing Dagster alone.

Prints a table; ``--json PATH`` writes the same figures. Each figure is the median wall time of
a fresh ``python -c "import ..."`` process: ``import definitions`` (what `dagster dev`, every run
worker and every sensor tick pay) against ``import dagster`` (the floor: no code location can
load faster than the library it is written in). The goal is a location that loads in under 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_import(module: str, env: dict[str, str]) -> float:
    """Wall seconds of a fresh interpreter that imports ``module``."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-W", "ignore", "-c", f"import {module}"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def time_imports(modules: list[str], repeats: int, env: dict[str, str]) -> dict[str, list[float]]:
    """``repeats`` timings of each module, interleaved so a busy machine slows all alike."""
    times: dict[str, list[float]] = {m: [] for m in modules}
    for _ in range(repeats):
        for module in modules:
            times[module].append(time_import(module, env))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, help="Write the figures to this JSON file.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-ui-") as home:
        env = {**os.environ, "EVERGREEN_HOME": home, "DAGSTER_HOME": f"{home}/dagster"}
        times = time_imports(["dagster", "definitions"], args.repeats, env)
    floor, location = times["dagster"], times["definitions"]
    dagster_s, definitions_s = statistics.median(floor), statistics.median(location)
    figures = {
        "import_dagster_s": round(dagster_s, 3),
        "import_definitions_s": round(definitions_s, 3),
        "import_definitions_max_s": round(max(location), 3),
        "definitions_over_dagster_ratio": round(definitions_s / dagster_s, 3),
        "code_location_goal_s": 10.0,
        "load_average_1m": round(os.getloadavg()[0], 2),  # how busy the machine was
    }
    print(f"\nCode-location load, median of {args.repeats} fresh interpreters")
    print(f"{'figure':<44}{'value':>10}")
    print("-" * 54)
    for label, key in [
        ("import dagster (floor, s)", "import_dagster_s"),
        ("import definitions (s)", "import_definitions_s"),
        ("import definitions, slowest (s)", "import_definitions_max_s"),
        ("definitions / dagster", "definitions_over_dagster_ratio"),
        ("goal (s)", "code_location_goal_s"),
        ("machine load average, 1 min", "load_average_1m"),
    ]:
        print(f"{label:<44}{figures[key]:>10.3f}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
