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


def list_files(root: Path, feed: str, day: dt.date) -> list[Path]:
    """Parquet files of one feed and day under ``root``, sorted by name."""
    folder = partition_dir(root, feed, day)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".parquet" and p.is_file())


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
