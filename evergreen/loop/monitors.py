"""The loop's monitors as plain functions: drift of what serving sees, live quality on matured
labels, and the age of the champion. Sensors call them; so can a test, a benchmark or a person.

- ``prediction_drift``: one day's logged model inputs against the training set of the model
  that served them. Both sides are sampled to ``drift_sample_rows`` with a fixed seed. Per
  feature, Evidently's drift test (``report.feature_drift``: Wasserstein distance for numbers and
  Jensen-Shannon for categories once the reference has more than 1,000 rows); per segment value
  (region, channel, card type), the share of features Evidently's default test finds drifted
  within it. Severity: the share of features drifted overall. A feature whose window was
  still filling on most of the reference's days (``warming_features``) is not judged.
- ``live_performance``: predictions whose labels have matured (landed by the day judged), per
  model version and segment (``metrics.evaluate``). Severity: the champion's relative drop in
  average precision against the AP it was promoted on.
- ``stale_model``: how many data days the champion's cut-off lags the newest labels.

A finding that cannot be judged (no rows, too few frauds, no reference) has severity None and
says why; it never raises for missing data. Findings are kept as JSON (``write_finding``); a
day's drift is judged once (``judged_drift``), by whichever asks first: the drift sensor or the
``model_monitoring`` asset.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from evergreen.features.tables import temporary_suffix
from evergreen.loop.live_data import logged_day, logged_rows, matured_predictions
from evergreen.models.features import CATEGORICAL_FEATURES, FEATURE_NAMES
from evergreen.models.metrics import SEGMENTS
from evergreen.models.registry import ModelRecord, ModelRegistry, UnknownModelError
from evergreen.settings import EvergreenSettings

# A day is a weekend day or not: its share of weekend transactions is 0 or 1 and never matches
# a multi-week reference, so this calendar feature would "drift" every single day.
DRIFT_EXEMPT = ("tx_during_weekend",)
# A window still filling (fewer days of data behind it than it spans) grows day by day, so a
# reference of such days "drifts" from any later day with no change in the data: a feature is
# judged only when its window was full on at least this share of the reference's days.
MIN_FULL_WINDOW_SHARE = 0.5
_WINDOW = re.compile(r"_(\d+)([dh])$")
MIN_SEGMENT_ROWS = 200  # fewer rows of a segment value in the day: too noisy to judge
TOP_FEATURES = 5
_P_VALUE_TESTS = ("ks", "chisquare", "z")  # Evidently's names of its p-value tests


def day_start(day: dt.date) -> dt.datetime:
    """A data day as the instant the retrain policy counts in (midnight UTC)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


@dataclass(frozen=True)
class DriftFinding:
    """Drift of one day's model inputs from the serving model's training set."""

    day: dt.date
    severity: float | None  # share of features drifted; None: not judged (see reason)
    reason: str
    model_tag: str | None = None
    reference: str = ""
    rows: int = 0
    reference_rows: int = 0
    features: dict[str, dict] = field(default_factory=dict)  # column -> FeatureDrift fields
    segments: dict[str, dict] = field(default_factory=dict)  # "region=x" -> share, drifted
    logged_rows: int = 0  # the day's logged predictions when judged (``rows`` is the sample)

    @property
    def drifted(self) -> list[str]:
        return [c for c, d in self.features.items() if d["drifted"]]

    def evidence(self) -> dict:
        """What a trigger records: sizes, the most drifted features and segments."""
        ranked = sorted(self.features.values(), key=drift_ratio, reverse=True)
        judged = {k: s for k, s in self.segments.items() if s.get("share_drifted") is not None}
        worst = sorted(judged.items(), key=lambda kv: kv[1]["share_drifted"], reverse=True)
        return {
            "day": self.day.isoformat(),
            "model_tag": self.model_tag,
            "reference": self.reference,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "share_drifted": self.severity,
            "drifted": self.drifted,
            "top_features": [
                {k: d[k] for k in ("column", "method", "score", "threshold", "drifted")}
                for d in ranked[:TOP_FEATURES]
            ],
            "segments": {k: s["share_drifted"] for k, s in judged.items()},
            "most_drifted_segments": [k for k, _ in worst[:3]],
        }

    def detail(self) -> dict:
        """What the evidence leaves out, kept beside it on disk: every feature's and every
        segment's drift, and the day's size when judged (see ``read_drift``)."""
        return {
            "features": self.features,
            "segment_detail": self.segments,
            "logged_rows": self.logged_rows,
        }

    @classmethod
    def from_record(cls, data: dict) -> DriftFinding:
        """The finding back from what ``write_finding`` kept (evidence and detail)."""
        return cls(
            day=dt.date.fromisoformat(data["day"]),
            severity=data["severity"],
            reason=data["reason"],
            model_tag=data.get("model_tag"),
            reference=data.get("reference", ""),
            rows=data.get("rows", 0),
            reference_rows=data.get("reference_rows", 0),
            features=data["features"],
            segments=data.get("segment_detail", {}),
            logged_rows=data.get("logged_rows", 0),
        )


def drift_ratio(d: dict) -> float:
    """How far past (or short of) its threshold a column is, comparable across methods (above 1:
    drifted): distance-like scores drift above the threshold, p-values below it."""
    method = d["method"].lower()
    if "p_value" in method or method in _P_VALUE_TESTS:
        return d["threshold"] / max(d["score"], 1e-12)
    return d["score"] / max(d["threshold"], 1e-12)


def prediction_drift(
    settings: EvergreenSettings,
    day: dt.date,
    max_rows: int | None = None,
    seed: int | None = None,
) -> DriftFinding:
    """Drift of ``day``'s logged model inputs from the training set of the model that served
    most of that day's predictions (the ledger's champion if that model is unknown)."""
    from evergreen.warehouse import warehouse

    max_rows = max_rows or settings.drift_sample_rows
    seed = settings.seed if seed is None else seed
    with warehouse(settings, read_only=True) as conn:
        current = logged_day(conn, day, max_rows, seed)
        logged = logged_rows(conn, day)
    if current.empty:
        return DriftFinding(day, None, f"no logged predictions on {day}")
    record = _serving_record(settings, current)
    if record is None:
        return DriftFinding(day, None, "no registered model served that day and no champion")
    path = settings.training_set_path(record.cutoff)
    if not path.exists():
        return DriftFinding(day, None, f"no training set of {record.tag} at {path}", record.tag)
    reference = _reference_sample(path, max_rows, seed)
    warming = warming_features(settings, reference_days(path))
    features = [f for f in FEATURE_NAMES if f not in DRIFT_EXEMPT and f not in warming]
    features = [f for f in features if current[f].notna().any() and reference[f].notna().any()]
    drift = _feature_drift(reference, current, features, max_rows, seed)
    drifted = [c for c, d in drift.items() if d["drifted"]]
    more = ", ..." if len(drifted) > TOP_FEATURES else ""
    named = f" ({', '.join(drifted[:TOP_FEATURES])}{more})"
    unjudged = f"; {len(warming)} with windows still filling in the reference not judged"
    return DriftFinding(
        day=day,
        severity=len(drifted) / len(drift) if drift else None,
        reason=f"{len(drifted)} of {len(drift)} features drifted"
        + (named if drifted else "")
        + (unjudged if warming else ""),
        model_tag=record.tag,
        reference=str(path),
        rows=len(current),
        reference_rows=len(reference),
        features=drift,
        segments=segment_drift(reference, current, features),
        logged_rows=logged,
    )


def window_warmup_days(feature: str, label_delay_days: int) -> int:
    """Days of data a feature's window needs behind a day to be full: its span (``_7d``,
    ``_24h``; the card's seconds since its previous transaction: the longest card window), plus
    the label delay for every feature of landed labels (the terminal risk table), whose
    features without a window in their name (the fraud run's) span the table's whole look-back
    of landed labels; 0 for a feature of the transaction alone."""
    from evergreen.features.realtime import LONGEST_S, SECONDS_SINCE_PREVIOUS
    from evergreen.features.terminal_risk import LONGEST as LABEL_LOOKBACK_DAYS
    from evergreen.features.terminal_risk import TERMINAL_RISK

    if feature == SECONDS_SINCE_PREVIOUS:
        return LONGEST_S // 86_400
    labelled = feature in TERMINAL_RISK.features
    match = _WINDOW.search(feature)
    if match is None:
        return LABEL_LOOKBACK_DAYS + label_delay_days if labelled else 0
    size, unit = int(match[1]), match[2]
    days = size if unit == "d" else -(-size // 24)
    return days + (label_delay_days if labelled else 0)


def warming_features(settings: EvergreenSettings, days: list[dt.date]) -> list[str]:
    """Features whose window was full on fewer than ``MIN_FULL_WINDOW_SHARE`` of the reference's
    transaction ``days`` (the data begins on ``settings.start_date``)."""
    if not days:
        return []
    out = []
    for feature in FEATURE_NAMES:
        need = window_warmup_days(feature, settings.label_delay_days)
        full_from = settings.start_date + dt.timedelta(days=need)
        if sum(d >= full_from for d in days) < MIN_FULL_WINDOW_SHARE * len(days):
            out.append(feature)
    return out


def reference_days(path: Path) -> list[dt.date]:
    """The transaction days a training set holds."""
    import pyarrow.parquet as pq

    if "tx_datetime" not in pq.read_schema(path).names:
        return []
    times = pq.read_table(path, columns=["tx_datetime"]).column("tx_datetime").to_pandas()
    return sorted(set(pd.to_datetime(times).dt.date))


def _serving_record(settings: EvergreenSettings, current: pd.DataFrame) -> ModelRecord | None:
    registry = ModelRegistry(settings)
    tag = str(current["model_version"].value_counts().idxmax())
    try:
        return registry.get(tag)
    except UnknownModelError:
        return registry.champion()


def _reference_sample(path: Path, max_rows: int, seed: int) -> pd.DataFrame:
    from evergreen.models.report import sample_rows

    return sample_rows(pd.read_parquet(path, columns=FEATURE_NAMES), max_rows, seed)


def _feature_drift(reference, current, features, max_rows, seed) -> dict[str, dict]:
    from evergreen.models.report import feature_drift

    cats = [c for c in CATEGORICAL_FEATURES if c in features]
    found = feature_drift(reference, current, features, cats, max_rows=max_rows, seed=seed)
    return {column: d.to_dict() for column, d in found.items()}


def segment_drift(
    reference: pd.DataFrame, current: pd.DataFrame, features: list[str]
) -> dict[str, dict]:
    """Per value of each segment column: the share of the other features drifted within it.

    Evidently's default test for each column (as ``ValueDrift`` picks it, without building a
    report: a report renders a chart per column, seconds per segment). Values with fewer than
    ``MIN_SEGMENT_ROWS`` rows on either side are listed, not judged."""
    out = {}
    for column in SEGMENTS:
        others = [f for f in features if f != column]
        for value, part in current.groupby(column, sort=True):
            base = reference[reference[column].astype(str) == str(value)]
            key = f"{column}={value}"
            if min(len(part), len(base)) < MIN_SEGMENT_ROWS:
                out[key] = {"rows": len(part), "reference_rows": len(base), "share_drifted": None}
                continue
            drifted = [f for f in others if _column_drifted(base[f], part[f], f)]
            out[key] = {
                "rows": len(part),
                "reference_rows": len(base),
                "share_drifted": len(drifted) / len(others),
                "drifted": drifted,
            }
    return out


def _column_drifted(reference: pd.Series, current: pd.Series, name: str) -> bool:
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Categorical if name in CATEGORICAL_FEATURES else ColumnType.Numerical
    if kind is ColumnType.Categorical:
        reference, current = reference.astype(str), current.astype(str)
    reference, current = reference.dropna(), current.dropna()
    if reference.empty or current.empty:
        return False
    test = get_stattest(reference, current, kind, None)
    return bool(test(reference, current, kind, None).drifted)


@dataclass(frozen=True)
class PerformanceFinding:
    """Live quality of the served models on matured labels, and the champion's decay."""

    through_day: dt.date
    first_day: dt.date
    last_day: dt.date
    severity: float | None  # relative AP drop of the champion; None: not judged (see reason)
    reason: str
    model_tag: str | None = None
    reference_ap: float | None = None
    reference_source: str = ""
    live: dict[str, dict] = field(default_factory=dict)  # model version -> overall metrics
    segments: dict[str, dict] = field(default_factory=dict)  # champion's, "region=x" -> metrics
    # The champion's relative AP drop on each day of the window (days with enough frauds).
    daily_drops: dict[str, float] = field(default_factory=dict)

    def decay_start(self, enter: float) -> dt.date:
        """The decay's estimated first day: the earliest day of the window from which every
        judged day dropped by at least ``enter``; the window's last day when none did. A
        follow-up is dated from it: dated from the window's last day instead, it waits for
        the labels of days after ones already showing the decay."""
        start = self.last_day
        for day, drop in sorted(self.daily_drops.items(), reverse=True):
            if drop < enter:
                break
            start = dt.date.fromisoformat(day)
        return start

    def evidence(self) -> dict:
        """What a trigger records: the window, the champion's AP then and now, per version
        and per segment."""
        return {
            "through_day": self.through_day.isoformat(),
            "window": f"{self.first_day}..{self.last_day}",
            "model_tag": self.model_tag,
            "reference_ap": self.reference_ap,
            "reference_source": self.reference_source,
            "relative_ap_drop": self.severity,
            "live": self.live,
            "segments": self.segments,
            "daily_drops": self.daily_drops,
        }


def _headline(metrics) -> dict:
    keys = ("rows", "positives", "average_precision", "roc_auc")
    return {k: getattr(metrics, k) for k in keys}


def live_performance(
    settings: EvergreenSettings,
    through_day: dt.date,
    window_days: int | None = None,
    min_frauds: int | None = None,
) -> PerformanceFinding:
    """Live AP/AUC, per model version and (champion) per segment, of the transactions of the
    ``window_days`` newest days whose labels have matured by ``through_day``."""
    from evergreen.models.metrics import evaluate
    from evergreen.warehouse import warehouse

    window_days = window_days or settings.performance_window_days
    min_frauds = min_frauds or settings.monitor_min_frauds
    last = through_day - dt.timedelta(days=settings.label_delay_days)
    first = last - dt.timedelta(days=window_days - 1)
    with warehouse(settings, read_only=True) as conn:
        frame = matured_predictions(conn, first, last, through_day)
    evaluations = {
        str(version): evaluate(part, "fraud_probability", float(part["threshold"].median()))
        for version, part in frame.groupby("model_version", sort=True)
    }
    live = {version: _headline(e.overall) for version, e in evaluations.items()}
    finding = PerformanceFinding(through_day, first, last, None, "", live=live)
    champion = ModelRegistry(settings).champion()
    if champion is None:
        return _with(finding, reason="no champion to judge")
    mine = evaluations.get(champion.tag)
    if mine is None or mine.overall.positives < min_frauds:
        frauds = mine.overall.positives if mine else 0
        why = f"{champion.tag} has {frauds} matured fraud(s) in {first}..{last}, < {min_frauds}"
        return _with(finding, model_tag=champion.tag, reason=why)
    reference, source = evaluation_ap(settings, champion)
    segments = {name: _headline(m) for name, m in mine.rows()[1:]}
    live_ap = mine.overall.average_precision
    if not reference or live_ap is None:
        why = f"no reference AP for {champion.tag}"
        return _with(finding, model_tag=champion.tag, reason=why, segments=segments)
    drop = max(0.0, (reference - live_ap) / reference)
    mine_rows = frame[frame["model_version"] == champion.tag]
    return _with(
        finding,
        severity=drop,
        daily_drops=_daily_drops(mine_rows, reference, min_frauds),
        model_tag=champion.tag,
        reference_ap=reference,
        reference_source=source,
        segments=segments,
        reason=f"live AP {live_ap:.3f} on {mine.overall.rows:,} matured transactions "
        f"({mine.overall.positives} frauds, {first}..{last}) against {reference:.3f} "
        f"({source}): relative drop {drop:.1%}",
    )


def _daily_drops(rows: pd.DataFrame, reference: float, min_frauds: int) -> dict[str, float]:
    """Relative AP drop against ``reference`` per transaction day with ``min_frauds`` frauds."""
    from sklearn.metrics import average_precision_score

    days = pd.to_datetime(rows["partition_date"]).dt.date
    out = {}
    for day, part in rows.groupby(days, sort=True):
        if part["label"].sum() < min_frauds or part["label"].nunique() < 2:
            continue
        ap = float(average_precision_score(part["label"], part["fraud_probability"]))
        out[day.isoformat()] = round(max(0.0, (reference - ap) / reference), 4)
    return out


def _with(finding: PerformanceFinding, **changes) -> PerformanceFinding:
    return PerformanceFinding(**{**finding.__dict__, **changes})


def evaluation_ap(settings: EvergreenSettings, record: ModelRecord) -> tuple[float | None, str]:
    """The AP a model was promoted on: its evaluation on the held-out days of its cut-off, or,
    when that evaluation is gone, its validation AP recorded in the ledger."""
    from evergreen.models.comparison import EvaluationFiles

    if record.cutoff:
        files = EvaluationFiles.for_cutoff(settings, dt.date.fromisoformat(record.cutoff))
        if files.summary.exists():
            summary = files.read_summary()
            if summary.get("candidate", {}).get("tag") == record.tag:
                ap = summary["candidate_metrics"]["overall"]["average_precision"]
                return ap, f"evaluation of cut-off {record.cutoff}"
    ap = (record.metrics.get("validation") or {}).get("average_precision")
    return ap, "validation days (ledger)"


@dataclass(frozen=True)
class StaleFinding:
    """Whether the champion's data is too old: its cut-off against the newest labels."""

    stale: bool
    reason: str
    model_tag: str | None = None
    cutoff: str | None = None
    age_days: int | None = None

    def evidence(self) -> dict:
        return asdict(self)


def stale_model(
    settings: EvergreenSettings, newest_label_day: dt.date, max_age_days: int | None = None
) -> StaleFinding:
    """Stale when the champion's cut-off is ``max_age_days`` (default ``retrain_floor_days``)
    or more data days behind ``newest_label_day`` and no retrain was accepted within as many
    days (a retrain the gate rejected still counts: the floor asks once a period, not daily).
    No champion is not stale: the first model is trained on purpose, not by the floor."""
    from evergreen.loop.retrain_policy import RetrainGovernor

    max_age = max_age_days or settings.retrain_floor_days
    champion = ModelRegistry(settings).champion()
    if champion is None:
        return StaleFinding(False, "no champion yet: the floor retrains champions only")
    if not champion.cutoff:
        return StaleFinding(False, f"{champion.tag} records no cut-off", champion.tag)
    age = (newest_label_day - dt.date.fromisoformat(champion.cutoff)).days
    said = (
        f"{champion.tag} was cut off on {champion.cutoff}, {age} day(s) before the newest "
        f"labels ({newest_label_day}); the floor is {max_age} days"
    )
    found = StaleFinding(age >= max_age, said, champion.tag, champion.cutoff, age)
    accepted = [
        dt.datetime.fromisoformat(t["data_time"]).date()
        for t in RetrainGovernor(settings).history()
        if t["outcome"] == "accepted"
    ]
    last = max(accepted, default=None)
    if found.stale and last is not None and (newest_label_day - last).days < max_age:
        return StaleFinding(False, f"{said}; but a retrain was requested on {last}", **_ids(found))
    return found


def _ids(found: StaleFinding) -> dict:
    return {"model_tag": found.model_tag, "cutoff": found.cutoff, "age_days": found.age_days}


def finding_path(settings: EvergreenSettings, kind: str, day: dt.date) -> Path:
    """Where the finding of ``kind`` about ``day`` is kept."""
    return settings.reports_dir / "monitoring" / kind / f"{day.isoformat()}.json"


def write_finding(settings: EvergreenSettings, kind: str, day: dt.date, finding) -> Path:
    """Keep a finding as JSON under ``reports/monitoring/<kind>/<day>.json``: its severity,
    reason and evidence (what the sensor's log points to), and for drift every feature's and
    segment's drift (what the monitoring history plots and reads back)."""
    path = finding_path(settings, kind, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"severity": finding.severity, "reason": finding.reason, **finding.evidence()}
    if isinstance(finding, DriftFinding):
        data |= finding.detail()
    # Whole or not at all: the sensor and the monitoring asset may read it while it is written.
    partial = path.with_name(f".{path.name}.{temporary_suffix()}")
    partial.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    partial.replace(path)
    return path


def read_drift(settings: EvergreenSettings, day: dt.date) -> DriftFinding | None:
    """The kept drift finding of ``day`` if it is whole (judged, with every feature's drift);
    None when there is none, it was not judged, or it predates the per-feature detail."""
    path = finding_path(settings, "drift", day)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if data.get("severity") is None or not data.get("features"):
        return None
    return DriftFinding.from_record(data)


def judged_drift(settings: EvergreenSettings, day: dt.date) -> DriftFinding:
    """The drift finding of ``day``, judged once: the kept one while the day's logged rows are
    those it judged, else ``prediction_drift`` computed now and kept (``write_finding``).

    The drift sensor and the ``model_monitoring`` asset both ask; whichever comes first pays
    for Evidently. A day not judged (no rows, no reference) is cheap and always asked again."""
    from evergreen.warehouse import warehouse

    kept = read_drift(settings, day)
    if kept is not None:
        with warehouse(settings, read_only=True) as conn:
            if logged_rows(conn, day) == kept.logged_rows:
                return kept
    finding = prediction_drift(settings, day)
    write_finding(settings, "drift", day, finding)
    return finding
