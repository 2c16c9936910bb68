"""The landing zone: layout, schemas, landing times, label timing, determinism, append mode."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evergreen.simulator import (
    BadData,
    SimulatorConfig,
    append_day,
    append_days,
    build_population,
    generate_day,
    simulate,
)
from evergreen.simulator.landing import LABELS_SCHEMA, TRANSACTIONS_SCHEMA, landing_time

START = dt.date(2018, 4, 1)
SMALL = {"customers": 200, "terminals": 400, "label_delay_days": 3}


def snapshot(out: Path) -> dict[str, tuple[bytes, float | None]]:
    """Every file's bytes and, for data files, its mtime."""
    return {
        str(path.relative_to(out)): (
            path.read_bytes(),
            None if path.suffix == ".json" else path.stat().st_mtime,
        )
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }


def day(index: int) -> dt.date:
    return START + dt.timedelta(days=index)


def test_layout_schemas_and_landing_times(tmp_path: Path) -> None:
    cfg = SimulatorConfig(**SMALL, days=6)
    summary = simulate(cfg, tmp_path)
    transactions = sorted(tmp_path.glob("transactions/date=*/part-*.parquet"))
    labels = sorted(tmp_path.glob("labels/date=*/part-*.parquet"))
    assert [p.parent.name for p in transactions] == [f"date={day(i)}" for i in range(6)]
    assert [p.parent.name for p in labels] == [f"date={day(i)}" for i in range(3, 6)]
    assert summary.days == 6 and summary.files == 9
    for path in transactions:
        table = pq.read_table(path)
        assert table.schema.equals(TRANSACTIONS_SCHEMA, check_metadata=False)
        assert table.schema.metadata is None or b"pandas" not in table.schema.metadata
        date = dt.date.fromisoformat(path.parent.name.removeprefix("date="))
        landed = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        assert landed == dt.datetime.combine(date + dt.timedelta(1), dt.time(0, 5), dt.UTC)
        rows = table.to_pandas()
        assert rows.equals(rows.sort_values(["tx_datetime", "transaction_id"]))
    for path in labels:
        assert pq.read_table(path).schema.equals(LABELS_SCHEMA, check_metadata=False)
    assert pq.ParquetFile(transactions[0]).metadata.row_group(0).column(0).compression == "ZSTD"
    state = json.loads((tmp_path / "_simulator.json").read_text())
    assert state["days_generated"] == 6 and state["config"]["customers"] == 200


def test_transactions_file_matches_truth(tmp_path: Path) -> None:
    cfg = SimulatorConfig(**SMALL, days=2)
    simulate(cfg, tmp_path)
    truth = generate_day(cfg, build_population(cfg), 1)
    landed = pq.read_table(tmp_path / f"transactions/date={day(1)}/part-0.parquet").to_pandas()
    expected = truth[[field.name for field in TRANSACTIONS_SCHEMA]].astype(
        {"region": str, "channel": str, "card_type": str}
    )
    assert landed.equals(expected)


@pytest.mark.parametrize("delay", [0, 3])
def test_labels_landing_on_d_are_those_of_d_minus_delay(tmp_path: Path, delay: int) -> None:
    cfg = SimulatorConfig(**{**SMALL, "label_delay_days": delay}, days=8)
    simulate(cfg, tmp_path)
    population = build_population(cfg)
    landed_dates = sorted(p.parent.name for p in tmp_path.glob("labels/date=*/part-0.parquet"))
    assert landed_dates == [f"date={day(i)}" for i in range(delay, 8)]
    for landing in range(delay, 8):
        labels = pq.read_table(tmp_path / f"labels/date={day(landing)}/part-0.parquet")
        truth = generate_day(cfg, population, landing - delay)
        assert labels["transaction_id"].to_pylist() == truth["transaction_id"].tolist()
        assert labels["label"].to_pylist() == truth["tx_fraud"].tolist()
        mtime = (tmp_path / f"labels/date={day(landing)}/part-0.parquet").stat().st_mtime
        assert mtime == landing_time(day(landing))


def test_same_config_gives_identical_bytes(tmp_path: Path) -> None:
    cfg = SimulatorConfig(**SMALL, days=5, bad_data=[("late_file", day(2))])
    simulate(cfg, tmp_path / "a")
    simulate(cfg, tmp_path / "b")
    simulate(cfg.model_copy(update={"seed": 1}), tmp_path / "c")
    a, b, c = (snapshot(tmp_path / name) for name in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[name][0] != c[name][0] for name in a if name.endswith(".parquet"))


def test_simulate_refuses_an_existing_zone(tmp_path: Path) -> None:
    cfg = SimulatorConfig(**SMALL, days=1)
    simulate(cfg, tmp_path)
    with pytest.raises(FileExistsError):
        simulate(cfg, tmp_path)


def test_append_one_day_at_a_time_equals_batch(tmp_path: Path) -> None:
    bad = [("repeated_file", day(1)), ("late_file", day(4)), ("unknown_label_refs", day(6))]
    batch = SimulatorConfig(**SMALL, days=10, bad_data=bad + [("late_file", day(9))])
    simulate(batch, tmp_path / "batch")
    simulate(batch.model_copy(update={"days": 3}), tmp_path / "append")
    for index in range(3, 10):
        # The last late file is scheduled on the fly, as a bare kind for the appended day.
        summary = append_day(tmp_path / "append", ["late_file"] if index == 9 else [])
        assert summary.days == 1
    assert snapshot(tmp_path / "batch") == snapshot(tmp_path / "append")


def test_append_days_equals_batch_and_lands_withheld_part(tmp_path: Path) -> None:
    batch = SimulatorConfig(**SMALL, days=6, bad_data=[BadData.parse(f"late_file@{day(3)}")])
    simulate(batch, tmp_path / "batch")
    simulate(batch.model_copy(update={"days": 4}), tmp_path / "append")
    withheld = tmp_path / f"append/transactions/date={day(3)}/part-1.parquet"
    assert not withheld.exists()
    append_days(tmp_path / "append", 2)
    assert withheld.stat().st_mtime == landing_time(day(4))
    assert snapshot(tmp_path / "batch") == snapshot(tmp_path / "append")


def test_append_refuses_missing_zone_and_past_bad_data(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="_simulator.json"):
        append_day(tmp_path)
    simulate(SimulatorConfig(**SMALL, days=2), tmp_path)
    with pytest.raises(ValueError, match="already generated"):
        append_day(tmp_path, [BadData(kind="empty_day", date=day(0))])


def test_labels_table_is_small_and_typed(tmp_path: Path) -> None:
    simulate(SimulatorConfig(**SMALL, days=4), tmp_path)
    table = pq.read_table(tmp_path / f"labels/date={day(3)}/part-0.parquet")
    assert table.schema.field("label").type == pa.int8()
    assert set(table["label"].to_pylist()) <= {0, 1}
