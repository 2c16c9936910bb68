"""Each bad-data kind corrupts the files of its date as documented, and nothing else."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evergreen.simulator import BadData, SimulatorConfig, build_population, generate_day, simulate
from evergreen.simulator.landing import TRANSACTIONS_SCHEMA, landing_time

START = dt.date(2018, 4, 1)
DELAY = 2
KIND_DAYS = {  # one kind per day, so each day's files show exactly one corruption
    "renamed_column": 2,
    "missing_column": 3,
    "wrong_type": 4,
    "null_keys": 5,
    "duplicate_rows": 6,
    "negative_amounts": 7,
    "misdated": 8,
    "empty_day": 9,
    "late_file": 10,
    "repeated_file": 11,
    "unknown_label_refs": 12,
}
DAYS = 14


def day(index: int) -> dt.date:
    return START + dt.timedelta(days=index)


def config(with_bad_data: bool) -> SimulatorConfig:
    bad = [BadData(kind=k, date=day(i)) for k, i in KIND_DAYS.items()] if with_bad_data else []
    return SimulatorConfig(
        customers=300, terminals=600, days=DAYS, label_delay_days=DELAY, bad_data=bad
    )


@pytest.fixture(scope="module")
def zones(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A run with one bad-data kind per day, and the same run without bad data."""
    root = tmp_path_factory.mktemp("bad_data")
    simulate(config(True), root / "bad")
    simulate(config(False), root / "clean")
    return {"bad": root / "bad", "clean": root / "clean"}


@pytest.fixture(scope="module")
def truths() -> dict[int, pd.DataFrame]:
    cfg = config(False)
    population = build_population(cfg)
    return {i: generate_day(cfg, population, i) for i in range(DAYS)}


def read(zone: Path, index: int, part: int = 0) -> pa.Table:
    return pq.read_table(zone / f"transactions/date={day(index)}/part-{part}.parquet")


def expected(truth: pd.DataFrame) -> pd.DataFrame:
    return truth[TRANSACTIONS_SCHEMA.names].astype(
        {"region": str, "channel": str, "card_type": str}
    )


def corrupted_count(n: int) -> int:
    return max(1, round(0.01 * n))


def test_renamed_column(zones: dict, truths: dict) -> None:
    table = read(zones["bad"], KIND_DAYS["renamed_column"])
    assert "amount" not in table.column_names and "amt" in table.column_names
    assert table["amt"].to_pylist() == truths[2]["amount"].tolist()


def test_missing_column(zones: dict, truths: dict) -> None:
    table = read(zones["bad"], KIND_DAYS["missing_column"])
    assert table.column_names == [n for n in TRANSACTIONS_SCHEMA.names if n != "terminal_id"]
    assert table["customer_id"].to_pylist() == truths[3]["customer_id"].tolist()


def test_wrong_type(zones: dict, truths: dict) -> None:
    table = read(zones["bad"], KIND_DAYS["wrong_type"])
    assert table.schema.field("amount").type == pa.string()
    assert [float(v) for v in table["amount"].to_pylist()] == truths[4]["amount"].tolist()


def test_null_keys(zones: dict, truths: dict) -> None:
    landed = read(zones["bad"], KIND_DAYS["null_keys"]).to_pandas()
    truth = expected(truths[5])
    nulls = landed["customer_id"].isna()
    assert nulls.sum() == corrupted_count(len(truth))
    assert (
        landed.loc[~nulls, "customer_id"].astype("int64").equals(truth.loc[~nulls, "customer_id"])
    )
    assert landed.drop(columns="customer_id").equals(truth.drop(columns="customer_id"))


def test_duplicate_rows(zones: dict, truths: dict) -> None:
    landed = read(zones["bad"], KIND_DAYS["duplicate_rows"]).to_pandas()
    truth = expected(truths[6])
    assert len(landed) == len(truth) + corrupted_count(len(truth))
    assert landed.drop_duplicates().reset_index(drop=True).equals(truth)
    repeated = landed["transaction_id"].duplicated()
    assert (landed.index[repeated] - 1).isin(landed.index[~repeated]).all()  # copy follows original


def test_negative_amounts(zones: dict, truths: dict) -> None:
    landed = read(zones["bad"], KIND_DAYS["negative_amounts"]).to_pandas()
    truth = expected(truths[7])
    assert (landed["amount"] < 0).sum() == corrupted_count(len(truth))
    assert np.array_equal(landed["amount"].abs(), truth["amount"])


def test_misdated(zones: dict, truths: dict) -> None:
    landed = read(zones["bad"], KIND_DAYS["misdated"]).to_pandas()
    truth = expected(truths[8]).set_index("transaction_id")
    moved = landed["tx_datetime"].dt.date == day(9)
    assert moved.sum() == corrupted_count(len(truth))
    assert landed["tx_datetime"].is_monotonic_increasing
    shift = landed.set_index("transaction_id")["tx_datetime"] - truth["tx_datetime"]
    assert set(shift.dt.days) == {0, 1}


def test_empty_day_keeps_schema_and_labels(zones: dict, truths: dict) -> None:
    index = KIND_DAYS["empty_day"]
    table = read(zones["bad"], index)
    assert table.num_rows == 0 and table.schema.equals(TRANSACTIONS_SCHEMA, check_metadata=False)
    labels = pq.read_table(zones["bad"] / f"labels/date={day(index + DELAY)}/part-0.parquet")
    assert labels["transaction_id"].to_pylist() == truths[index]["transaction_id"].tolist()


def test_late_file(zones: dict, truths: dict) -> None:
    index = KIND_DAYS["late_file"]
    folder = zones["bad"] / f"transactions/date={day(index)}"
    morning, afternoon = read(zones["bad"], index, 0), read(zones["bad"], index, 1)
    assert (folder / "part-0.parquet").stat().st_mtime == landing_time(day(index))
    assert (folder / "part-1.parquet").stat().st_mtime == landing_time(day(index + 1))
    assert max(t.hour for t in morning["tx_datetime"].to_pylist()) < 12
    assert min(t.hour for t in afternoon["tx_datetime"].to_pylist()) >= 12
    both = pa.concat_tables([morning, afternoon]).to_pandas()
    assert both.equals(expected(truths[index]))


def test_late_part_is_withheld_until_the_next_day(tmp_path: Path) -> None:
    cfg = config(True).model_copy(update={"days": KIND_DAYS["late_file"] + 1})
    simulate(cfg, tmp_path)
    folder = tmp_path / f"transactions/date={day(KIND_DAYS['late_file'])}"
    assert sorted(p.name for p in folder.iterdir()) == ["part-0.parquet"]


def test_repeated_file(zones: dict) -> None:
    folder = zones["bad"] / f"transactions/date={day(KIND_DAYS['repeated_file'])}"
    first, second = folder / "part-0.parquet", folder / "part-1.parquet"
    assert first.read_bytes() == second.read_bytes()
    assert second.stat().st_mtime > first.stat().st_mtime


def test_unknown_label_refs(zones: dict, truths: dict) -> None:
    index = KIND_DAYS["unknown_label_refs"]
    labels = pq.read_table(zones["bad"] / f"labels/date={day(index)}/part-0.parquet").to_pandas()
    truth = truths[index - DELAY]
    known = labels["transaction_id"].isin(truth["transaction_id"])
    assert (~known).sum() == corrupted_count(len(truth))
    assert labels.loc[known, "transaction_id"].tolist() == truth["transaction_id"].tolist()
    every_id = pd.concat([t["transaction_id"] for t in truths.values()])
    assert not labels.loc[~known, "transaction_id"].isin(every_id).any()


def test_other_days_are_untouched(zones: dict) -> None:
    corrupted = {f"transactions/date={day(i)}" for i in KIND_DAYS.values()}
    corrupted.add(f"labels/date={day(KIND_DAYS['unknown_label_refs'])}")
    compared = 0
    for path in sorted(zones["clean"].rglob("*.parquet")):
        name = path.relative_to(zones["clean"])
        if str(name.parent) not in corrupted:
            assert (zones["bad"] / name).read_bytes() == path.read_bytes(), name
            compared += 1
    assert compared == DAYS - len(KIND_DAYS) + (DAYS - DELAY) - 1


def test_bad_data_before_start_or_first_labels_is_refused() -> None:
    with pytest.raises(ValueError, match="before the start"):
        SimulatorConfig(bad_data=[("empty_day", dt.date(2018, 3, 31))])
    with pytest.raises(ValueError, match="no labels land"):
        SimulatorConfig(bad_data=[("unknown_label_refs", dt.date(2018, 4, 2))])
    with pytest.raises(ValueError):
        BadData.parse("no_such_kind@2018-04-02")
