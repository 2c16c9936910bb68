"""Benchmark: the Fraud Detection Handbook's baseline protocol, our pipeline against its baselines.

Prints a table; ``--json PATH`` writes the same figures as one flat JSON object. One run, one
simulated data set (the handbook's reference configuration: 5,000 customers, 10,000 terminals,
183 days from 2018-04-01), one protocol (train 2018-07-25..07-31, a 7-day delay, test
2018-08-08..08-14 without the cards known to be compromised before each test day), one test set:

* ours: the simulated days ingested through the real ingest (validation, DuckDB), the daily
  feature tables written by the feature-table code, ``feast apply``, the training week and the
  test week built through Feast's point-in-time join of the FeatureService that serving reads,
  CatBoost via ``train_candidate`` (early stopping and threshold on the last
  ``--validation-days`` days of the training week, as ``split_by_time`` cuts them);
* the handbook's: its 15 features computed its way in pandas (``bench/handbook_features.py``),
  standardised, and scikit-learn's logistic regression and random forest with its parameters;
* and CatBoost with ``train_candidate``'s parameters and split on the handbook's features, which
  tells how much of a difference comes from the features rather than the model.

Our features: the daily batch's (a transaction sees the feature rows of the day before it) and
the request-time windows (``evergreen.features.realtime``: the card's and terminal's
transactions strictly before this one, the same day's included, as the online state holds them);
``catboost_feast_daily_only`` is the same model without the request-time windows (the ablation).
The handbook's customer windows include the transaction itself. Metrics
(``evergreen.models.metrics``): ROC AUC, average precision and Card Precision@100 on the same
test transactions; training time is the fit alone, prediction time
``predict_proba`` on the test set, as the handbook times them, each also as this process's CPU
time (``*_train_cpu_s``), which a machine busy with other work inflates less than wall time.
``--quick`` runs the whole path on a small bank with 4-day weeks: a smoke test, not a measurement.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.handbook_features import (  # noqa: E402
    HANDBOOK_FEATURES,
    PUBLISHED,
    PUBLISHED_ROWS,
    BaselineProtocol,
    add_handbook_features,
    handbook_classifiers,
    load_labelled_transactions,
    scale_like_handbook,
    train_test_split,
)
from evergreen.settings import EvergreenSettings  # noqa: E402

REFERENCE_TRANSACTIONS, REFERENCE_FRAUDS = 1_754_155, 14_681  # the handbook's reference run
MODELS = {
    "catboost_feast": "CatBoost on Feast features (ours)",
    "catboost_feast_daily_only": "  ours without the request-time features",
    "logreg_handbook": "logistic regression, handbook features",
    "random_forest_handbook": "random forest, handbook features",
    "catboost_handbook": "CatBoost (our params), handbook features",
}
BASELINES = ("logreg_handbook", "random_forest_handbook")
METRICS = {"roc_auc": "ROC AUC", "average_precision": "AP", "card_precision_at_100": "CP@100"}


@dataclass(frozen=True)
class Workload:
    """What to simulate and which protocol to run on it."""

    customers: int
    terminals: int
    start: dt.date
    days: int
    seed: int
    protocol: BaselineProtocol

    @classmethod
    def reference(cls, seed: int) -> Workload:
        """The handbook's reference run and its baseline protocol."""
        return cls(5000, 10_000, dt.date(2018, 4, 1), 183, seed, BaselineProtocol())

    @classmethod
    def quick(cls, seed: int) -> Workload:
        """A small bank, 4-day weeks and a 4-day label delay from its third day: a smoke test
        of the whole path, not a measurement."""
        start = dt.date(2018, 4, 1)
        protocol = BaselineProtocol(start + dt.timedelta(days=2), 4, 4, 4)
        days = (protocol.test_end - start).days + 1 + protocol.delay_days
        return cls(500, 1000, start, days, seed, protocol)

    @property
    def last_ingested_day(self) -> dt.date:
        """The day the test week's last labels land."""
        return self.protocol.test_end + dt.timedelta(days=self.protocol.delay_days)


@dataclass
class ModelRun:
    """One model's test scores and timings (wall clock and this process's CPU time, which a
    busy machine inflates less)."""

    scores: np.ndarray
    train_s: float
    train_cpu_s: float
    predict_s: float
    threshold: float = 0.5
    notes: dict = field(default_factory=dict)


def timed(fn, *args, **kwargs):
    """``(result, wall seconds, CPU seconds of this process, all threads)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


class Clock:
    """Named wall-clock timings of the run's stages."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def time(self, name: str, fn, *args, **kwargs):
        began = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = time.perf_counter() - began
        return result


# ----------------------------------------------------------------------------- our pipeline


def simulate(settings: EvergreenSettings, work: Workload):
    """The reference simulation into the home's landing zone."""
    from evergreen.simulator import SimulatorConfig
    from evergreen.simulator import simulate as run_simulator

    config = SimulatorConfig(
        customers=work.customers,
        terminals=work.terminals,
        start=work.start,
        days=work.days,
        seed=work.seed,
        label_delay_days=work.protocol.delay_days,
    )
    return run_simulator(config, settings.landing_dir)


def ingest(settings: EvergreenSettings, first_day: dt.date, last_day: dt.date) -> int:
    """Every day's transactions, then its labels, through the real ingest; rows loaded.

    Raises ``RuntimeError`` naming the partition if a file is quarantined (clean data expected)."""
    from evergreen.ingest.partition import ingest_partition

    loaded = 0
    for day in _days(first_day, last_day):
        for feed in ("transactions", "labels"):
            report = ingest_partition(settings, feed, day)
            if report.rejected:
                reasons = "; ".join(v.reason() for v in report.rejected)
                raise RuntimeError(f"{feed} {day}: file(s) quarantined: {reasons}")
            loaded += report.rows_loaded if feed == "transactions" else 0
    return loaded


def write_feature_tables(settings: EvergreenSettings, first_day: dt.date, last_day: dt.date):
    """Both daily feature tables for ``first_day..last_day``, as their assets write them."""
    from evergreen.features.customer_spending import CUSTOMER_SPENDING, customer_spending_rows
    from evergreen.features.tables import write_partition
    from evergreen.features.terminal_risk import TERMINAL_RISK, terminal_risk_rows
    from evergreen.warehouse import warehouse

    created_at = dt.datetime.now(dt.UTC)
    with warehouse(settings, read_only=True) as conn:
        for day in _days(first_day, last_day):
            rows = customer_spending_rows(conn, day, created_at)
            write_partition(CUSTOMER_SPENDING, rows, settings.features_dir, day)
            rows = terminal_risk_rows(conn, day, created_at, settings.label_lookback_days)
            write_partition(TERMINAL_RISK, rows, settings.features_dir, day)


def feast_week(settings: EvergreenSettings, store, first_day: dt.date, days: int) -> pd.DataFrame:
    """A week's labelled transactions (labels landed a delay after it) joined through Feast."""
    from evergreen.features.repo import FEATURE_SERVICE
    from evergreen.features.training_set import (
        TrainingWindow,
        build_training_set,
        labelled_transactions,
    )
    from evergreen.warehouse import warehouse

    last_day = first_day + dt.timedelta(days=days - 1)
    window = TrainingWindow(
        first_day, last_day, last_day + dt.timedelta(days=settings.label_delay_days)
    )
    with warehouse(settings, read_only=True) as conn:
        entities = labelled_transactions(conn, window)
        return build_training_set(store, entities, FEATURE_SERVICE, warehouse=conn).to_pandas()


def run_catboost(
    train_week: pd.DataFrame,
    test: pd.DataFrame,
    validation_days: int,
    seed: int,
    feature_names: list[str] | None = None,
) -> ModelRun:
    """``train_candidate`` on the training week, cut by ``split_by_time`` with the test week as
    its held-out evaluation days (``feature_names``: an ablation's subset of the inputs)."""
    from evergreen.models.training import train_candidate

    split = _split(train_week, test, validation_days)
    trained, _, train_cpu_s = timed(
        train_candidate, split.train, split.validation, seed, feature_names=feature_names
    )
    scores, predict_s, _ = timed(trained.predict_proba, test)
    notes = {
        "fit_days": trained.days["train"],
        "validation_days": trained.days["validation"],
        "trees": trained.tree_count,
    }
    # The fit alone (what the handbook times); the CPU time also covers the threshold choice.
    return ModelRun(
        scores, trained.training_seconds, train_cpu_s, predict_s, trained.threshold, notes
    )


def _split(train_week: pd.DataFrame, test: pd.DataFrame, validation_days: int):
    """``split_by_time`` of train week + test week: the test days are its evaluation days."""
    from evergreen.models.training import split_by_time

    test_days = test["tx_datetime"].dt.date.nunique()
    return split_by_time(pd.concat([train_week, test]), test_days, validation_days)


# ----------------------------------------------------------------------------- the handbook's


def handbook_frame(settings: EvergreenSettings, protocol: BaselineProtocol) -> pd.DataFrame:
    """Labelled transactions from the first day the features look at, with the 15 features."""
    from evergreen.warehouse import warehouse

    with warehouse(settings, read_only=True) as conn:
        frame = load_labelled_transactions(conn, protocol.history_start, protocol.test_end)
    return add_handbook_features(frame, delay_days=protocol.delay_days)


def run_sklearn(classifier, train: pd.DataFrame, test: pd.DataFrame) -> ModelRun:
    """The handbook's ``fit_model_and_get_predictions``: scale, fit, predict_proba."""
    train_x, test_x = scale_like_handbook(train, test, HANDBOOK_FEATURES)
    _, train_s, train_cpu_s = timed(classifier.fit, train_x, train["label"].to_numpy())
    scores, predict_s, _ = timed(classifier.predict_proba, test_x)
    return ModelRun(scores[:, 1], train_s, train_cpu_s, predict_s)


def run_catboost_on_handbook(
    train: pd.DataFrame, test: pd.DataFrame, validation_days: int, seed: int
) -> ModelRun:
    """CatBoost with ``train_candidate``'s parameters and split on the handbook's features:
    tells the features' share of a gap from the model's."""
    from catboost import CatBoostClassifier

    from evergreen.models.training import DEFAULT_PARAMS, THREAD_COUNT

    def utc(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.assign(tx_datetime=frame["tx_datetime"].dt.tz_localize("UTC"))

    split = _split(utc(train), utc(test), validation_days)
    model = CatBoostClassifier(
        **DEFAULT_PARAMS, random_seed=seed, thread_count=THREAD_COUNT, verbose=False
    )
    fit_x, fit_y = split.train[HANDBOOK_FEATURES], split.train["label"]
    eval_set = (split.validation[HANDBOOK_FEATURES], split.validation["label"])
    _, train_s, train_cpu_s = timed(model.fit, fit_x, fit_y, eval_set=eval_set)
    scores, predict_s, _ = timed(model.predict_proba, test[HANDBOOK_FEATURES])
    return ModelRun(
        scores[:, 1], train_s, train_cpu_s, predict_s, notes={"trees": model.tree_count_}
    )


# ----------------------------------------------------------------------------- evaluation


def model_metrics(scored: pd.DataFrame, column: str, threshold: float) -> dict:
    """ROC AUC, average precision and Card Precision@100 of one score column."""
    from evergreen.models.metrics import evaluate

    overall = evaluate(scored, column, threshold, segments=(), k=100).overall
    return {
        "roc_auc": overall.roc_auc,
        "average_precision": overall.average_precision,
        "card_precision_at_100": overall.card_precision_at_k,
    }


def _same_transactions(name: str, ours: pd.DataFrame, theirs: pd.DataFrame) -> None:
    """Both sides must hold the same transactions in the same (transaction id) order."""
    a, b = ours["transaction_id"].to_numpy(), theirs["transaction_id"].to_numpy()
    if not np.array_equal(a, b):
        raise RuntimeError(
            f"{name}: the Feast frame has {len(a):,} transactions, the handbook's {len(b):,}, "
            "not the same ones in the same order; both sides must score the same transactions"
        )


def _share(frame: pd.DataFrame) -> float:
    return float(frame["label"].mean()) if len(frame) else 0.0


# ----------------------------------------------------------------------------- main


@dataclass
class Frames:
    """The run's data: both sides' training week and test set (same transactions, same order)."""

    summary: object  # the simulator's SimulationSummary
    feast_train: pd.DataFrame
    feast_test_week: pd.DataFrame  # before the known-compromised cards are removed
    feast_test: pd.DataFrame
    handbook_train: pd.DataFrame
    handbook_test: pd.DataFrame


def prepare(work: Workload, workdir: Path, clock: Clock) -> Frames:
    """Simulate, ingest, build both sides' features and cut both by the protocol."""
    from evergreen.features.feast_client import apply_definitions, feature_store

    protocol = work.protocol
    settings = EvergreenSettings(
        home=workdir / "home", label_delay_days=protocol.delay_days, seed=work.seed
    ).ensure_dirs()
    summary = clock.time("simulate_s", simulate, settings, work)
    clock.time("ingest_s", ingest, settings, work.start, work.last_ingested_day)
    # A transaction of day D joins the feature rows of D - 1 (the views' TTL is 2 days).
    first_feature_day = protocol.train_start - dt.timedelta(days=2)
    clock.time(
        "feature_tables_s", write_feature_tables, settings, first_feature_day, protocol.test_end
    )
    clock.time("feast_apply_s", apply_definitions, settings)
    store = feature_store(settings)
    feast_train, feast_test_week = clock.time(
        "feast_training_sets_s",
        lambda: (
            feast_week(settings, store, protocol.train_start, protocol.train_days),
            feast_week(settings, store, protocol.test_start, protocol.test_days),
        ),
    )
    everything = clock.time("handbook_features_s", handbook_frame, settings, protocol)
    hb_train, hb_test = train_test_split(everything, protocol)
    feast_test = feast_test_week[feast_test_week["transaction_id"].isin(hb_test["transaction_id"])]
    _same_transactions("training week", feast_train, hb_train)
    _same_transactions("test set", feast_test, hb_test)
    return Frames(summary, feast_train, feast_test_week, feast_test, hb_train, hb_test)


def train_models(frames: Frames, validation_days: int, seed: int) -> dict[str, ModelRun]:
    """Ours, the handbook's two baselines, and CatBoost on the handbook's features."""
    from evergreen.models.features import DAILY_ONLY_FEATURES

    train, test = frames.feast_train, frames.feast_test
    runs = {
        "catboost_feast": run_catboost(train, test, validation_days, seed),
        "catboost_feast_daily_only": run_catboost(
            train, test, validation_days, seed, DAILY_ONLY_FEATURES
        ),
    }
    for name, classifier in handbook_classifiers(seed).items():
        runs[f"{name}_handbook"] = run_sklearn(
            classifier, frames.handbook_train, frames.handbook_test
        )
    runs["catboost_handbook"] = run_catboost_on_handbook(
        frames.handbook_train, frames.handbook_test, validation_days, seed
    )
    return runs


def data_figures(work: Workload, frames: Frames) -> dict:
    """What was simulated, and the rows and frauds of the training week and the test set."""
    train, test = frames.handbook_train, frames.handbook_test
    return {
        "customers": work.customers,
        "terminals": work.terminals,
        "simulated_days": work.days,
        "seed": work.seed,
        "simulated_transactions": frames.summary.transactions,
        "simulated_fraud_share": round(frames.summary.fraud_share, 5),
        "train_first_day": str(work.protocol.train_start),
        "test_first_day": str(work.protocol.test_start),
        "train_rows": len(train),
        "train_frauds": int(train["label"].sum()),
        "train_fraud_share": round(_share(train), 5),
        "test_week_rows": len(frames.feast_test_week),
        "test_known_compromised_removed_rows": len(frames.feast_test_week) - len(test),
        "test_rows": len(test),
        "test_frauds": int(test["label"].sum()),
        "test_fraud_share": round(_share(test), 5),
    }


def model_figures(frames: Frames, runs: dict[str, ModelRun]) -> dict:
    """Each model's metrics on the one test set, its timings and notes."""
    scored = frames.feast_test.reset_index(drop=True)  # ids, labels, days, segments
    figures = {}
    for name, result in runs.items():
        scored[name] = result.scores  # every side scored the test set in transaction order
        for key, value in model_metrics(scored, name, result.threshold).items():
            figures[f"{name}_{key}"] = None if value is None else round(value, 4)
        figures[f"{name}_train_s"] = round(result.train_s, 3)
        figures[f"{name}_train_cpu_s"] = round(result.train_cpu_s, 3)
        figures[f"{name}_predict_s"] = round(result.predict_s, 6)
        figures.update({f"{name}_{key}": value for key, value in result.notes.items()})
    return figures


def run(work: Workload, workdir: Path, validation_days: int) -> dict:
    """The whole comparison in one process; returns the flat figures."""
    clock = Clock()
    frames = prepare(work, workdir, clock)
    runs = train_models(frames, validation_days, work.seed)
    figures = {**data_figures(work, frames), **model_figures(frames, runs)}
    figures.update(_ratios(figures))
    figures.update({name: round(seconds, 2) for name, seconds in clock.seconds.items()})
    for name, published in PUBLISHED.items():
        for key, value in published.items():
            figures[f"{name}_published_{key}"] = value
    return figures


# Issue 14's goals: ours at least this much above the best baseline on each metric.
MARGINS = {"roc_auc": 0.01, "average_precision": 0.03, "card_precision_at_100": 0.0}


def _ratios(figures: dict) -> dict:
    """Ours over the better handbook baseline, for each metric (> 1: ours is better), the
    margin over it, and whether the margin meets the goal."""
    out = {}
    for key in METRICS:
        ours = figures["catboost_feast_" + key]
        best = max(figures[f"{b}_{key}"] or 0 for b in BASELINES)
        out[f"best_baseline_{key}"] = best
        out[f"catboost_feast_over_best_baseline_{key}_ratio"] = (
            round(ours / best, 3) if ours is not None and best else None
        )
        margin = None if ours is None else round(ours - best, 4)
        out[f"catboost_feast_minus_best_baseline_{key}"] = margin
        out[f"goal_{key}_margin_ge_{MARGINS[key]}"] = margin is not None and (
            margin >= MARGINS[key] - 1e-9
        )
    return out


def print_table(f: dict, reference: bool) -> None:
    print(
        f"\nHandbook baseline protocol: {f['customers']:,} customers, {f['terminals']:,} "
        f"terminals, {f['simulated_days']} days (seed {f['seed']}); "
        f"{f['simulated_transactions']:,} transactions, fraud share "
        f"{f['simulated_fraud_share']:.2%}"
    )
    if reference:
        print(
            f"  handbook reference run: {REFERENCE_TRANSACTIONS:,} transactions, "
            f"fraud share {REFERENCE_FRAUDS / REFERENCE_TRANSACTIONS:.2%}"
        )
    print(
        f"train from {f['train_first_day']}: {f['train_rows']:,} rows, {f['train_frauds']:,} "
        f"frauds ({f['train_fraud_share']:.2%})"
    )
    print(
        f"test from {f['test_first_day']}: {f['test_rows']:,} rows, {f['test_frauds']:,} frauds "
        f"({f['test_fraud_share']:.2%}); {f['test_known_compromised_removed_rows']:,} rows of "
        "known-compromised cards removed"
    )
    if reference:
        p = PUBLISHED_ROWS
        print(
            f"  handbook: train {p['train']:,} rows, {p['train_frauds']} frauds; "
            f"test {p['test']:,} rows, {p['test_frauds']} frauds"
        )
    print(
        f"CatBoost fit on {f['catboost_feast_fit_days']}, early stopping and threshold on "
        f"{f['catboost_feast_validation_days']} ({f['catboost_feast_trees']} trees)\n"
    )
    header = f"{'model':<42}" + "".join(f"{label:>9}" for label in METRICS.values())
    print(header + f"{'train s':>10}{'(cpu s)':>9}{'predict s':>11}")
    print("-" * (len(header) + 30))
    for name, label in MODELS.items():
        cells = "".join(f"{_fmt(f[f'{name}_{key}']):>9}" for key in METRICS)
        times = f"{f[name + '_train_s']:>10.2f}{f[name + '_train_cpu_s']:>9.1f}"
        print(f"{label:<42}{cells}{times}{f[name + '_predict_s']:>11.3f}")
    for name in PUBLISHED:
        cells = "".join(f"{_fmt(f[f'{name}_published_{key}']):>9}" for key in METRICS)
        print(f"{'  handbook published: ' + name:<42}{cells}")
    ratios = ", ".join(
        f"{METRICS[k]} {_fmt(f[f'catboost_feast_over_best_baseline_{k}_ratio'])}" for k in METRICS
    )
    print(f"\nours / better baseline: {ratios}")
    margins = ", ".join(
        f"{METRICS[k]} {f[f'catboost_feast_minus_best_baseline_{k}']:+.4f} "
        f"(goal >= {MARGINS[k]}: {'met' if f[f'goal_{k}_margin_ge_{MARGINS[k]}'] else 'NOT met'})"
        for k in METRICS
    )
    print(f"ours - better baseline: {margins}")
    stages = ("simulate", "ingest", "feature_tables", "feast_apply", "feast_training_sets")
    print(
        "stages (s): "
        + ", ".join(f"{s} {f[s + '_s']:.1f}" for s in stages)
        + f"; handbook features {f['handbook_features_s']:.1f}"
    )


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _days(first: dt.date, last: dt.date):
    for i in range((last - first).days + 1):
        yield first + dt.timedelta(days=i)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small bank: a smoke test")
    parser.add_argument("--seed", type=int, default=0, help="simulator and model seed")
    parser.add_argument(
        "--validation-days", type=int, default=2, help="last training days for early stopping"
    )
    parser.add_argument("--workdir", type=Path, help="keep the run's home here (else a temp dir)")
    parser.add_argument("--json", type=Path, help="Write the figures to this JSON file.")
    args = parser.parse_args(argv)
    work = Workload.quick(args.seed) if args.quick else Workload.reference(args.seed)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-handbook-"))
    if args.workdir and workdir.exists() and any(workdir.iterdir()):
        parser.error(f"--workdir {workdir} is not empty")
    try:
        figures = run(work, workdir, args.validation_days)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print_table(figures, reference=not args.quick)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
