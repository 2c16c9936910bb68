"""Benchmark: simulator throughput and the cost of ingesting one new day against history size.

Prints a table; ``--json PATH`` writes the same figures. History is built by copying a generated
day with shifted dates and ids (its content does not matter to the cost, only its size).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from evergreen.ingest.partition import ingest_partition
from evergreen.settings import EvergreenSettings
from evergreen.simulator import SimulatorConfig, build_population, generate_day
from evergreen.simulator.landing import (
    landing_time,
    transactions_path,
    transactions_table,
    write_parquet,
)
from evergreen.warehouse import warehouse

START = dt.date(2018, 4, 1)


def write_transactions(frame, out: Path, day: dt.date) -> Path:
    """Land one day's transactions the way the simulator does."""
    path = transactions_path(out, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(transactions_table(frame), path, landing_time(day))
    return path


def _median_time(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times), times


def bench_simulator(cfg: SimulatorConfig, repeats: int) -> dict:
    """Population build once, then generate (and write) single days."""
    began = time.perf_counter()
    population = build_population(cfg)
    population_s = time.perf_counter() - began
    frames = {}

    def gen(i=[0]):  # noqa: B006 - a counter across calls: each repeat generates a new day
        frames["index"] = 200 + i[0]
        frames["last"] = generate_day(cfg, population, frames["index"])
        i[0] += 1

    gen_s, _ = _median_time(gen, repeats)
    rows = len(frames["last"])
    out = Path(tempfile.mkdtemp(prefix="bench-sim-"))
    write_s, _ = _median_time(
        lambda: write_transactions(frames["last"], out, cfg.date_of(frames["index"])), repeats
    )
    shutil.rmtree(out)
    return {
        "population_s": population_s,
        "rows": rows,
        "generate_s": gen_s,
        "write_s": write_s,
        "frame": frames["last"],
        "day": cfg.date_of(frames["index"]),
    }


def _build_history(settings: EvergreenSettings, day_file: Path, new_day: dt.date, days: int):
    """Fill raw_transactions and ingest_log with ``days`` shifted copies of one day."""
    with warehouse(settings) as conn:
        for k in range(days, 0, -1):  # oldest first, so row groups stay ordered by date
            d = new_day - dt.timedelta(days=k)
            conn.execute(
                "INSERT INTO raw_transactions SELECT transaction_id - ?::BIGINT * 100000000, "
                "tx_datetime - to_days(?::INT), customer_id, terminal_id, amount, region, channel, "
                "card_type, ?::DATE, 'history.parquet', now()::TIMESTAMP FROM read_parquet(?)",
                [k, k, d, str(day_file)],
            )
            n = conn.execute("SELECT count(*) FROM read_parquet(?)", [str(day_file)]).fetchone()[0]
            conn.execute(
                "INSERT INTO ingest_log VALUES ('transactions', ?, now()::TIMESTAMP, "
                "1, 0, ?, ?, ?, 0, 'history')",
                [d, n, n, n],
            )


def bench_ingest(frame, new_day: dt.date, history_days: int, repeats: int, workdir: Path) -> float:
    """Median seconds to ingest one new day over ``history_days`` days already loaded."""
    settings = EvergreenSettings(home=workdir / f"h{history_days}").ensure_dirs()
    landed = write_transactions(frame, settings.landing_dir, new_day)
    _build_history(settings, landed, new_day, history_days)
    return _median_time(lambda: ingest_partition(settings, "transactions", new_day), repeats)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=500_000, help="~2 transactions each a day")
    parser.add_argument("--terminals", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--history", type=int, nargs=2, default=[30, 180], metavar=("SHORT", "LONG")
    )
    parser.add_argument("--json", type=Path, help="Write the figures to this JSON file.")
    args = parser.parse_args()

    cfg = SimulatorConfig(customers=args.customers, terminals=args.terminals, start=START)
    sim = bench_simulator(cfg, args.repeats)
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        short_s = bench_ingest(sim["frame"], sim["day"], args.history[0], args.repeats, workdir)
        shutil.rmtree(workdir / f"h{args.history[0]}")
        long_s = bench_ingest(sim["frame"], sim["day"], args.history[1], args.repeats, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = sim["rows"]
    gen_total = sim["generate_s"] + sim["write_s"]
    figures = {
        "tx_per_day": rows,
        "population_build_s": round(sim["population_s"], 3),
        "simulate_day_s": round(sim["generate_s"], 3),
        "write_day_s": round(sim["write_s"], 3),
        "simulate_tx_per_s": round(rows / sim["generate_s"]),
        f"ingest_day_h{args.history[0]}_s": round(short_s, 3),
        f"ingest_day_h{args.history[1]}_s": round(long_s, 3),
        "ingest_history_ratio": round(long_s / short_s, 3),
        "generate_over_ingest_ratio": round(gen_total / short_s, 3),
    }
    _print_table(figures, args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


def _print_table(f: dict, args) -> None:
    h0, h1 = args.history
    print(f"\nIngest benchmark: {f['tx_per_day']:,} transactions/day, median of {args.repeats}")
    print(f"{'figure':<46}{'value':>14}")
    print("-" * 60)
    rows = [
        ("population build (s, once)", f"{f['population_build_s']:.2f}"),
        ("simulate one day (s)", f"{f['simulate_day_s']:.2f}"),
        ("write one day to landing (s)", f"{f['write_day_s']:.2f}"),
        ("simulator throughput (transactions/s)", f"{f['simulate_tx_per_s']:,}"),
        (f"ingest one day, {h0} days history (s)", f"{f[f'ingest_day_h{h0}_s']:.2f}"),
        (f"ingest one day, {h1} days history (s)", f"{f[f'ingest_day_h{h1}_s']:.2f}"),
        (f"ratio {h1}-day / {h0}-day (goal <= 1.3)", f"{f['ingest_history_ratio']:.2f}"),
        ("(simulate + write) / ingest (goal < 1)", f"{f['generate_over_ingest_ratio']:.2f}"),
    ]
    for name, value in rows:
        print(f"{name:<46}{value:>14}")


if __name__ == "__main__":
    main()
