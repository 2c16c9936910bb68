"""Infra validation: the built bento, started for real, must serve what the registry's model
computes offline on the same features, within a latency budget.

Recent transactions (the newest raw day the online store serves) are replayed one per request
against ``bentoml serve <bento>`` on a free loopback port. Offline, the registry's verified copy
of the same model (``ModelRegistry.load``: sha256 checked) scores the same transactions on the
features ``OnlineReader`` reads at the same instants, through the same ``scoring`` code. The
bento passes when every request answered 200 with the expected model version, every served
score equals the offline score within ``TOLERANCE``, and the p99 latency is within budget.
The replay's own prediction log goes to a folder of its own, not the live log.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evergreen.metadata import markdown_table
from evergreen.serving.process import BentoProcess
from evergreen.serving.runtime import PREDICTIONS_DIR_ENV, STATE_WRITES_ENV
from evergreen.serving.schemas import Transaction
from evergreen.settings import EvergreenSettings

if TYPE_CHECKING:
    from evergreen.models.registry import LoadedModel

TOLERANCE = 1e-6
WARMUP_REQUESTS = 5


@dataclass
class ValidationResult:
    """What the replay found; ``passed`` only when ``reasons`` is empty."""

    bento_tag: str
    model_tag: str
    requests: int
    reasons: list[str] = field(default_factory=list)
    max_abs_diff: float = float("nan")
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    budget_ms: float = float("nan")
    served_versions: list[str] = field(default_factory=list)
    ready_s: float = float("nan")
    sample: str = ""
    log_path: str = ""

    @property
    def passed(self) -> bool:
        return not self.reasons

    def markdown(self) -> str:
        verdict = "**passed**" if self.passed else "**FAILED**: " + "; ".join(self.reasons)
        rows = [
            ("requests replayed", self.requests),
            ("sample", self.sample),
            ("max abs(served - offline)", f"{self.max_abs_diff:.3g} (tolerance {TOLERANCE})"),
            ("p50 latency (ms)", f"{self.p50_ms:.2f}"),
            ("p99 latency (ms)", f"{self.p99_ms:.2f} (budget {self.budget_ms:g})"),
            ("served model versions", ", ".join(self.served_versions) or "-"),
            ("seconds until ready", f"{self.ready_s:.1f}"),
        ]
        title = f"Infra validation of `{self.bento_tag}` (model `{self.model_tag}`): {verdict}"
        return title + "\n\n" + markdown_table(["figure", "value"], rows, align="lr")


def recent_transactions(settings: EvergreenSettings, n: int, seed: int) -> tuple[list, str]:
    """A seeded sample of ``n`` raw transactions of the newest day the online store serves
    (the day after the newest day online; else the newest raw day). Returns them with a
    description of the sample."""
    from evergreen.features.feast_client import feature_store, newest_online
    from evergreen.warehouse import warehouse

    newest = newest_online(feature_store(settings))
    with warehouse(settings, read_only=True) as conn:
        if newest is not None:
            served_day = newest.astimezone(dt.UTC).date()
        else:
            newest_raw = "SELECT max(partition_date) FROM raw_transactions"
            served_day = conn.execute(newest_raw).fetchone()[0]
        # The served day's payments have not landed yet: replay the newest landed day's as if
        # made on the served day, so they meet the features serving holds now.
        source_day = conn.execute(
            "SELECT max(partition_date) FROM raw_transactions WHERE partition_date <= $d",
            {"d": served_day},
        ).fetchone()[0]
        frame = conn.execute(
            "SELECT transaction_id, customer_id, terminal_id, amount, "
            "tx_datetime + to_days(CAST($d - $source AS INTEGER)) AS tx_datetime, region, "
            "channel, card_type FROM raw_transactions WHERE partition_date = $source "
            "ORDER BY hash(transaction_id + $seed) LIMIT $n",
            {"d": served_day, "source": source_day, "seed": seed, "n": n},
        )
        names = [column[0] for column in frame.description]
        rows = [dict(zip(names, values, strict=True)) for values in frame.fetchall()]
    transactions = [Transaction.model_validate(row) for row in rows]
    moved = "" if source_day == served_day else f" replayed as of {served_day}"
    described = f"{len(transactions)} raw transactions of {source_day}{moved} (seed {seed})"
    return transactions, described


def offline_scores(
    settings: EvergreenSettings, model: LoadedModel, transactions: list[Transaction]
) -> np.ndarray:
    """The registry model's scores on the online features of the transactions, read now at
    each transaction's time, through the serving path's own code."""
    from evergreen.features.feast_client import OnlineReader, feature_store
    from evergreen.serving.scoring import input_frame, read_features

    reader = OnlineReader.open(feature_store(settings))
    frame = input_frame(transactions, read_features(reader, transactions))
    return np.asarray(model.predict_proba(frame), dtype=float)


def _replay(url: str, transactions: list[Transaction]) -> tuple[list[dict], list[float], list]:
    """POST each transaction alone; returns the answers, latencies (ms) and failures."""
    import httpx

    answers, latencies, failures = [], [], []
    with httpx.Client(base_url=url, timeout=30.0) as client:
        for i, tx in enumerate(transactions[:WARMUP_REQUESTS] + transactions):
            body = tx.model_dump(mode="json")
            began = time.perf_counter()
            response = client.post("/predict", json=body)
            elapsed = (time.perf_counter() - began) * 1000
            if i < WARMUP_REQUESTS:
                continue
            if response.status_code != 200:
                failures.append((tx.transaction_id, response.status_code, response.text[:200]))
                answers.append({})
                continue
            latencies.append(elapsed)
            answers.append(response.json()["predictions"][0])
    return answers, latencies, failures


def validate_bento(
    settings: EvergreenSettings,
    bento_tag: str,
    model: LoadedModel,
    transactions: list[Transaction],
    *,
    budget_ms: float,
    work_dir: Path,
    sample: str = "",
) -> ValidationResult:
    """Serve ``bento_tag``, replay ``transactions``, compare with ``model`` offline."""
    result = ValidationResult(bento_tag, model.tag, len(transactions), budget_ms=budget_ms)
    result.sample = sample
    log_dir = work_dir / "predictions"
    process = BentoProcess(
        bento_tag,
        settings,
        # Shifted copies of landed transactions: their log and state stay out of the live ones.
        env={PREDICTIONS_DIR_ENV: str(log_dir), STATE_WRITES_ENV: "off"},
        log_path=work_dir / "serve.log",
    )
    result.log_path = str(process.log_path)
    process.start()
    try:
        result.ready_s = process.wait_ready()
        answers, latencies, failures = _replay(process.url, transactions)
    finally:
        process.stop()
    offline = offline_scores(settings, model, transactions)
    _judge(result, answers, latencies, failures, offline)
    return result


def _judge(result: ValidationResult, answers, latencies, failures, offline: np.ndarray) -> None:
    if failures:
        tx, status, text = failures[0]
        result.reasons.append(
            f"{len(failures)} of {result.requests} requests failed (first: transaction {tx} "
            f"got HTTP {status}: {text})"
        )
    result.served_versions = sorted({a["model_version"] for a in answers if a})
    wrong = [v for v in result.served_versions if v != result.model_tag]
    if wrong:
        result.reasons.append(f"the bento serves {', '.join(wrong)}, not {result.model_tag}")
    pairs = [(a["fraud_probability"], o) for a, o in zip(answers, offline, strict=True) if a]
    if pairs:
        served, expected = np.array(pairs).T
        diffs = np.abs(served - expected)
        result.max_abs_diff = float(diffs.max())
        if result.max_abs_diff > TOLERANCE:
            worst = int(diffs.argmax())
            result.reasons.append(
                f"{int((diffs > TOLERANCE).sum())} of {len(pairs)} served scores differ from "
                f"the offline scores by more than {TOLERANCE} (worst: served "
                f"{served[worst]:.6f}, offline {expected[worst]:.6f})"
            )
    if latencies:
        result.p50_ms = float(np.percentile(latencies, 50))
        result.p99_ms = float(np.percentile(latencies, 99))
        if result.p99_ms > result.budget_ms:
            result.reasons.append(
                f"p99 latency {result.p99_ms:.1f} ms is over the budget of {result.budget_ms:g} ms"
            )
