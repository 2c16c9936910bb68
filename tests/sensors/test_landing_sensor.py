"""The landing-zone sensor on a real instance: new or changed files request their partition."""

import os

from dagster import build_sensor_context

from evergreen.ingest.landing import list_files
from evergreen.resources import EvergreenResource
from sensors.landing_sensor import landing_zone_sensor
from tests.conftest import day


def _tick(settings, instance, cursor=None):
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"evergreen": EvergreenResource(home=str(settings.home))},
    )
    result = landing_zone_sensor(context)
    return result, result.cursor


def _requested(result):
    return sorted(
        (r.asset_selection[0].to_user_string(), r.partition_key) for r in result.run_requests
    )


def test_first_tick_requests_every_landed_partition(settings, instance):
    result, _ = _tick(settings, instance)
    requested = _requested(result)
    assert ("raw_transactions", day(0).isoformat()) in requested
    assert ("raw_labels", day(3).isoformat()) in requested  # labels land after the 3-day delay
    # No label file lands before the delay: those days are requested as empty label days.
    assert ("raw_labels", day(0).isoformat()) in requested
    assert len(requested) == len({r.run_key for r in result.run_requests})
    # Runs go day by day, transactions first: labels refer to transactions already loaded.
    order = [(r.partition_key, r.asset_selection[0].to_user_string()) for r in result.run_requests]
    assert order == sorted(order, key=lambda o: (o[0], o[1] != "raw_transactions"))


def test_nothing_new_means_no_run(settings, instance):
    _, cursor = _tick(settings, instance)
    result, _ = _tick(settings, instance, cursor)
    assert result.run_requests == []
    assert "No new or changed files" in result.skip_reason.skip_message


def test_a_changed_file_requests_only_its_partition(settings, instance):
    _, cursor = _tick(settings, instance)
    path = list_files(settings.landing_dir, "transactions", day(5))[0]
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # re-delivered

    result, cursor = _tick(settings, instance, cursor)
    # Its labels partition was never loaded in this instance, so it comes along.
    assert _requested(result) == [
        ("raw_labels", day(5).isoformat()),
        ("raw_transactions", day(5).isoformat()),
    ]
    again, _ = _tick(settings, instance, cursor)
    assert again.run_requests == []


def test_labels_already_loaded_are_not_requested_again_for_a_transactions_change(
    settings, instance
):
    from dagster import AssetMaterialization

    _, cursor = _tick(settings, instance)
    instance.report_runless_asset_event(
        AssetMaterialization("raw_labels", partition=day(5).isoformat())
    )
    path = list_files(settings.landing_dir, "transactions", day(5))[0]
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    result, _ = _tick(settings, instance, cursor)
    assert _requested(result) == [("raw_transactions", day(5).isoformat())]
