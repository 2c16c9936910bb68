"""Benchmark: what CatBoost's input costs a served request (``serving_model.predict_rows``).

A replica scores one request's rows as Python lists. Handed a bare list, CatBoost builds its
Pool itself and works out which columns are categorical from the model on every call; a Pool
built by the caller with the categorical positions fixed at load (what ``predict_rows``
does) skips that. This measures the Pool against the bare list in the same process and run,
on a CatBoost model of the serving model's shape (57 features, 3 categorical) trained here on
random data; both give the same scores (asserted).

    python bench/pool_input.py [--rows 1 100] [--repeats 7] [--calls 500] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from catboost import CatBoostClassifier, Pool

NUMERIC, CATEGORICAL = 54, 3


def _model(seed: int = 7) -> tuple[CatBoostClassifier, list[str], list[int]]:
    """A classifier of the serving model's shape: numeric columns, then categorical ones."""
    rng = np.random.default_rng(seed)
    names = [f"x{i}" for i in range(NUMERIC)] + [f"c{i}" for i in range(CATEGORICAL)]
    positions = list(range(NUMERIC, NUMERIC + CATEGORICAL))
    rows = [_row(rng) for _ in range(2000)]
    labels = [int(r[0] + r[1] > 1.2) for r in rows]
    model = CatBoostClassifier(iterations=300, depth=6, random_seed=seed, verbose=False)
    model.fit(Pool(rows, labels, cat_features=positions, feature_names=names))
    return model, names, positions


def _row(rng) -> list:
    return [float(v) for v in rng.random(NUMERIC)] + [f"k{rng.integers(5)}" for _ in range(3)]


def _per_call_ms(fn, calls: int) -> float:
    began = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - began) / calls * 1e3


def bench(rows_per_call: tuple[int, ...], repeats: int, calls: int) -> dict:
    model, _, positions = _model()
    rng = np.random.default_rng(1)
    figures = {}
    for n in rows_per_call:
        rows = [_row(rng) for _ in range(n)]
        inputs = {
            "list": lambda r=rows: r,
            "pool": lambda r=rows: Pool(r, cat_features=positions),
        }
        scores = {k: model.predict_proba(make(), thread_count=1) for k, make in inputs.items()}
        assert all(np.array_equal(scores["list"], s) for s in scores.values())  # same scores
        times = {k: [] for k in inputs}
        for _ in range(repeats):  # interleaved, so a noisy neighbour hits every variant
            for k, make in inputs.items():
                times[k].append(
                    _per_call_ms(lambda m=make: model.predict_proba(m(), thread_count=1), calls)
                )
        medians = {k: statistics.median(v) for k, v in times.items()}
        figures[n] = {
            k: {"median_ms": medians[k], "ratio_to_list": medians[k] / medians["list"]}
            for k in inputs
        }
    return figures


def print_table(figures: dict) -> None:
    print(f"{'rows/call':>9}  {'input':<11} {'median ms/call':>15} {'x list':>7}")
    for n, variants in figures.items():
        for k, f in variants.items():
            print(f"{n:>9}  {k:<11} {f['median_ms']:>15.3f} {f['ratio_to_list']:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures = bench(tuple(args.rows), args.repeats, args.calls)
    print_table(figures)
    if args.json:
        args.json.write_text(json.dumps({str(k): v for k, v in figures.items()}, indent=2))


if __name__ == "__main__":
    main()
