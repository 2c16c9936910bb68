"""Landing-zone sensor: a new or changed file requests its day's partition, once per change."""

import datetime as dt
import hashlib
import json

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from assets.partitions import daily_partitions
from evergreen.ingest.contracts import FEEDS
from evergreen.ingest.landing import landed_dates, list_files, stray_files
from evergreen.resources import EvergreenResource


def scan_landing(root, feeds=tuple(FEEDS)) -> dict[str, str]:
    """Signature (size and mtime) of every landed file, keyed ``feed/date/name``."""
    found = {}
    for feed in feeds:
        for day in landed_dates(root, feed):
            for path in list_files(root, feed, day):
                stat = path.stat()
                found[f"{feed}/{day.isoformat()}/{path.name}"] = (
                    f"{stat.st_size}:{stat.st_mtime_ns}"
                )
    return found


def changed_partitions(previous: dict[str, str], current: dict[str, str]) -> dict[tuple, list]:
    """(feed, date) -> files that are new or changed since ``previous``."""
    changed: dict[tuple, list] = {}
    for key, signature in sorted(current.items()):
        if previous.get(key) != signature:
            feed, day, name = key.split("/", 2)
            changed.setdefault((feed, day), []).append(f"{name}@{signature}")
    return changed


def _days_without_labels(context: SensorEvaluationContext, changed: dict) -> list[tuple]:
    """Label partitions of days whose transactions changed and whose labels were never loaded.

    Labels land days late, so early days have no label file; their partition is an empty day
    of labels, and the feature tables downstream wait for it."""
    labels = FEEDS["labels"].table
    loaded = context.instance.get_materialized_partitions(AssetKey(labels))
    return [
        ("labels", day)
        for feed, day in changed
        if feed == "transactions" and ("labels", day) not in changed and day not in loaded
    ]


@sensor(
    name="landing_zone_sensor",
    description="Materializes a raw partition when a file lands in (or changes in) its folder.",
    asset_selection=[AssetKey(c.table) for c in FEEDS.values()],
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
)
def landing_zone_sensor(context: SensorEvaluationContext, evergreen: EvergreenResource):
    """Request the partitions whose landing files are new or changed since the cursor."""
    previous = json.loads(context.cursor) if context.cursor else {}
    current = scan_landing(evergreen.settings().landing_dir)
    valid = set(daily_partitions.get_partition_keys())
    requests, skipped = [], []
    changed = changed_partitions(previous, current)
    for feed, day in _days_without_labels(context, changed):
        changed[(feed, day)] = []
    # Day by day, transactions before labels: a label refers to a transaction already loaded.
    for (feed, day), files in sorted(
        changed.items(), key=lambda kv: (kv[0][1], kv[0][0] != "transactions")
    ):
        if day not in valid:
            skipped.append(f"{feed}/{day}")
            continue
        # The run key names the exact file versions, so a repeated tick never doubles a run.
        digest = hashlib.sha256("|".join(files).encode()).hexdigest()[:16]
        requests.append(
            RunRequest(
                run_key=f"{feed}:{day}:{digest}",
                partition_key=day,
                asset_selection=[AssetKey(FEEDS[feed].table)],
                tags={
                    "evergreen/trigger": "landing_zone",
                    "evergreen/files": ",".join(files)[:1000],
                },
            )
        )
    if skipped:
        context.log.warning(f"Outside the partitions ({dt.date.today()}): {', '.join(skipped)}")
    root = evergreen.settings().landing_dir
    stray = [str(p.relative_to(root)) for p in stray_files(root, tuple(FEEDS))]
    if stray:  # no day to load them into: said on every tick until someone moves them
        context.log.warning(
            f"{len(stray)} file(s) in the landing zone outside FEED/date=YYYY-MM-DD/ folders, "
            f"never ingested: {', '.join(stray[:10])}"
        )
    skip = None if requests else SkipReason(f"No new or changed files among {len(current)} landed.")
    return SensorResult(
        run_requests=requests, skip_reason=skip, cursor=json.dumps(current, sort_keys=True)
    )
