"""The simulated bank: its days generated ahead into a staging folder and delivered to the
landing zone one day at a time, as the bank's feeds would deliver them."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from evergreen.settings import EvergreenSettings

FEEDS = ("transactions", "labels")


@dataclass
class SimulatedWorld:
    """Days of a ``SimulatorConfig`` in ``staging``, released into the landing zone on demand."""

    settings: EvergreenSettings
    config: object  # evergreen.simulator.SimulatorConfig (imported lazily)

    @property
    def staging(self) -> Path:
        return self.settings.home / "demo" / "staging"

    def day(self, i: int) -> dt.date:
        """The i-th simulated day."""
        return self.config.start + dt.timedelta(days=i)

    def generate(self, progress=None) -> None:
        """Simulate every day into the staging folder (nothing lands yet)."""
        from evergreen.simulator import simulate

        shutil.rmtree(self.staging, ignore_errors=True)
        simulate(self.config, self.staging, progress=progress)

    def release(self, day: dt.date, feeds: tuple[str, ...] = FEEDS) -> list[Path]:
        """Deliver the day's files (landing times kept) into the landing zone."""
        moved = []
        for feed in feeds:
            source = self._folder(self.staging, feed, day)
            if source.exists():
                target = self._folder(self.settings.landing_dir, feed, day)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(source), str(target))
                moved.append(target)
        return moved

    def transactions(self, day: dt.date) -> list[dict]:
        """The day's payment requests, in time order, as serving receives them."""
        folder = self._folder(self.staging, "transactions", day)
        if not folder.exists():
            folder = self._folder(self.settings.landing_dir, "transactions", day)
        table = pq.read_table(folder).sort_by("tx_datetime")
        rows = table.to_pylist()
        for row in rows:
            row["tx_datetime"] = row["tx_datetime"].isoformat()
        return rows

    @staticmethod
    def _folder(root: Path, feed: str, day: dt.date) -> Path:
        return root / feed / f"date={day.isoformat()}"
