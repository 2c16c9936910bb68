"""Raw ingestion assets in real Dagster runs: idempotency, provenance, blocking, recovery."""

import hashlib
import shutil

import duckdb
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import AssetExecutionContext, asset, materialize

from assets.raw_data import raw_labels, raw_transactions
from evergreen.ingest.landing import list_files
from evergreen.ingest.partition import ingest_partition
from evergreen.ingest.quarantine import list_quarantined
from evergreen.resources import EvergreenResource
from tests.conftest import day


def _materialize(assets, settings, instance, i, **kw):
    return materialize(
        assets,
        partition_key=day(i).isoformat(),
        instance=instance,
        resources={"evergreen": EvergreenResource(home=str(settings.home))},
        **kw,
    )


def _metadata(result, key="raw_transactions"):
    events = [
        e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == key
    ]
    return {
        k: v.value for k, v in events[-1].step_materialization_data.materialization.metadata.items()
    }


def _warehouse_rows(settings, table, i):
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        return conn.execute(
            f"SELECT count(*), count(DISTINCT transaction_id) FROM {table} "
            "WHERE partition_date = ?",
            [day(i)],
        ).fetchone()


def test_rematerializing_replaces_the_partition_exactly(settings, instance):
    landed = pq.read_table(list_files(settings.landing_dir, "transactions", day(0))[0])

    first = _materialize([raw_transactions], settings, instance, 0)
    second = _materialize([raw_transactions], settings, instance, 0)

    assert first.success and second.success
    assert _warehouse_rows(settings, "raw_transactions", 0) == (landed.num_rows, landed.num_rows)
    assert _metadata(first)["data_version"] == _metadata(second)["data_version"]


def test_metadata_carries_provenance(settings, instance):
    path = list_files(settings.landing_dir, "transactions", day(0))[0]
    result = _materialize([raw_transactions], settings, instance, 0)

    meta = _metadata(result)
    assert meta["dagster/row_count"] == pq.read_metadata(path).num_rows
    assert [c.name for c in meta["dagster/column_schema"].columns][:3] == [
        "transaction_id",
        "tx_datetime",
        "customer_id",
    ]
    record = meta["source_files"].records[0].data
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["size_bytes"] == path.stat().st_size
    assert record["status"] == "loaded"
    assert "landed_at" in meta


def test_label_fraud_share_matches_the_landed_labels(settings, instance):
    delay = 3
    _materialize([raw_transactions], settings, instance, 0)
    result = _materialize([raw_labels], settings, instance, delay)

    assert result.success
    labels = pq.read_table(list_files(settings.landing_dir, "labels", day(delay))[0])
    expected = pc.mean(labels["label"].cast("float64")).as_py()
    assert abs(_metadata(result, "raw_labels")["fraud_share"] - expected) < 1e-12


def test_failing_check_blocks_downstream_in_the_same_run(settings, instance):
    seen = []

    @asset(deps=[raw_transactions], partitions_def=raw_transactions.partitions_def)
    def downstream_consumer(context: AssetExecutionContext):
        seen.append(context.partition_key)

    for i in range(10):
        ingest_partition(settings, "transactions", day(i))
    # Empty the day: the volume check fails and must stop the consumer.
    for f in list_files(settings.landing_dir, "transactions", day(10)):
        f.unlink()
    result = _materialize(
        [raw_transactions, downstream_consumer], settings, instance, 10, raise_on_error=False
    )
    assert not result.success
    assert seen == []

    ok = _materialize([raw_transactions, downstream_consumer], settings, instance, 11)
    assert ok.success and seen == [day(11).isoformat()]


def test_fixed_redelivery_releases_the_quarantine(settings, instance, tmp_path):
    path = list_files(settings.landing_dir, "transactions", day(0))[0]
    good = tmp_path / "good.parquet"
    shutil.copy(path, good)
    table = pq.read_table(path)
    amounts = table["amount"].to_pylist()
    amounts[0] = -1.0
    pq.write_table(
        table.set_column(table.schema.get_field_index("amount"), "amount", [amounts]), path
    )

    bad = _materialize([raw_transactions], settings, instance, 0, raise_on_error=False)
    again = _materialize([raw_transactions], settings, instance, 0, raise_on_error=False)
    assert not bad.success and not again.success, "an unresolved quarantine keeps failing"
    assert _warehouse_rows(settings, "raw_transactions", 0)[0] == 0

    shutil.copy(good, path)  # upstream re-delivers the fixed file under the same name
    fixed = _materialize([raw_transactions], settings, instance, 0)

    assert fixed.success
    assert _warehouse_rows(settings, "raw_transactions", 0)[0] == table.num_rows
    assert list_quarantined(settings.quarantine_dir, "transactions", day(0)) == []
