"""Quarantine: bad files are moved aside with a reason file, never deleted."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from evergreen.ingest.landing import REASON_SUFFIX, list_files, partition_dir


@dataclass(frozen=True)
class QuarantinedFile:
    """A file in quarantine and why it is there."""

    path: Path
    reason: dict

    @property
    def message(self) -> str:
        return self.reason.get("message", "")


def quarantine(file: Path, quarantine_root: Path, feed: str, day: dt.date, reason: dict) -> Path:
    """Move ``file`` into quarantine beside a reason file; returns its new path."""
    target_dir = partition_dir(quarantine_root, feed, day)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / file.name
    reason = {**reason, "quarantined_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    (target_dir / (file.name + REASON_SUFFIX)).write_text(json.dumps(reason, indent=2) + "\n")
    if file.resolve() != target.resolve():
        shutil.move(str(file), str(target))
    return target


def release(file: Path, landing_root: Path, feed: str, day: dt.date) -> Path:
    """Move a quarantined file back to its landing folder (it now passes) and drop its reason."""
    target_dir = partition_dir(landing_root, feed, day)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / file.name
    shutil.move(str(file), str(target))
    file.with_name(file.name + REASON_SUFFIX).unlink(missing_ok=True)
    return target


def supersede(file: Path) -> Path:
    """Keep a quarantined file that a re-delivery of the same name replaces, out of the way."""
    archive = file.parent / "superseded"
    archive.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    target = archive / f"{stamp}-{file.name}"
    shutil.move(str(file), str(target))
    reason = file.with_name(file.name + REASON_SUFFIX)
    if reason.exists():
        shutil.move(str(reason), str(archive / f"{stamp}-{reason.name}"))
    return target


def list_quarantined(quarantine_root: Path, feed: str, day: dt.date) -> list[QuarantinedFile]:
    """Files of one feed and day that sit in quarantine, with their reasons."""
    found = []
    for path in list_files(quarantine_root, feed, day):
        reason_path = path.with_name(path.name + REASON_SUFFIX)
        reason = json.loads(reason_path.read_text()) if reason_path.exists() else {}
        found.append(QuarantinedFile(path, reason))
    return found
