"""The landing zone: files delivered per feed and day, and their fingerprints."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LandedFile:
    """A delivered file and its provenance."""

    path: Path
    sha256: str
    size_bytes: int
    landed_at: dt.datetime  # file modification time, UTC

    @property
    def name(self) -> str:
        return self.path.name

    @classmethod
    def read(cls, path: Path) -> LandedFile:
        """Fingerprint a file on disk."""
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        stat = path.stat()
        landed = dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC).replace(tzinfo=None)
        return cls(path, digest.hexdigest(), stat.st_size, landed)


def partition_dir(root: Path, feed: str, day: dt.date) -> Path:
    """Folder holding one feed's files for one day: ``ROOT/FEED/date=YYYY-MM-DD``."""
    return root / feed / f"date={day.isoformat()}"


REASON_SUFFIX = ".reason.json"  # beside a quarantined file: why it is there


def is_delivery(path: Path) -> bool:
    """A delivered file, whatever its name ends in (a ``part-2.csv`` was silently skipped;
    now it is validated and quarantined like any unreadable file). Not one: a hidden file
    (a writer's temporary, renamed into place when complete), a control file named with a
    leading underscore (``_SUCCESS``, the simulator's ``_simulator.json``: Hadoop's and
    Spark's convention) or a quarantine reason."""
    name = path.name
    return path.is_file() and name[:1] not in "._" and not name.endswith(REASON_SUFFIX)


def list_files(root: Path, feed: str, day: dt.date) -> list[Path]:
    """Delivered files of one feed and day under ``root``, sorted by name."""
    folder = partition_dir(root, feed, day)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if is_delivery(p))


def stray_files(root: Path, feeds: tuple[str, ...]) -> list[Path]:
    """Files in the landing zone that no partition will read: outside ``FEED/date=DAY/``
    folders, in a folder whose name is no date, or under no known feed. Reported, never
    loaded (no day to load them into), never moved."""
    if not root.is_dir():
        return []
    stray = []
    for path in sorted(root.rglob("*")):
        if not is_delivery(path):
            continue
        parts = path.relative_to(root).parts
        if len(parts) != 3 or parts[0] not in feeds or not _is_day_folder(parts[1]):
            stray.append(path)
    return stray


def _is_day_folder(name: str) -> bool:
    try:
        dt.date.fromisoformat(name.removeprefix("date="))
    except ValueError:
        return False
    return name.startswith("date=")


def landed_dates(root: Path, feed: str) -> list[dt.date]:
    """Days for which a feed has a folder in the landing zone."""
    base = root / feed
    if not base.is_dir():
        return []
    days = []
    for child in base.iterdir():
        if child.is_dir() and child.name.startswith("date="):
            try:
                days.append(dt.date.fromisoformat(child.name.removeprefix("date=")))
            except ValueError:
                continue  # a stray folder is not a partition
    return sorted(days)
