"""The Dagster UI as a person uses it, in a real browser: launch a partition from the asset graph,
watch the run succeed, read the metadata it left. Screenshots land in `tests/ui/artifacts/`."""

import datetime as dt
import logging
import re
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, DagsterRunStatus
from playwright.sync_api import Page, expect

from evergreen.ingest.landing import list_files
from tests.conftest import day
from tests.ui.conftest import ARTIFACTS

log = logging.getLogger(__name__)
PARTITION = day(1).isoformat()
RUN_TIMEOUT_MS = 120_000


def landed_rows(landing_dir: Path, partition: str) -> int:
    """Transactions landed for one day, read from the Parquet footers (independent of Dagster)."""
    files = list_files(landing_dir, "transactions", dt.date.fromisoformat(partition))
    assert files, f"no transactions landed for {partition}"
    return sum(pq.read_metadata(f).num_rows for f in files)


def launch_partition_from_graph(page: Page, url: str, partition: str) -> str:
    """Select raw_transactions in the `raw` group's graph and launch one partition; the run id."""
    page.goto(f"{url}/locations/evergreen/asset-groups/raw")
    expect(page.get_by_text("raw_labels", exact=True).first).to_be_visible()
    page.get_by_text("raw_transactions", exact=True).first.click()
    page.get_by_role("button", name="Materialize selected…").click()

    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Launch runs to materialize raw_transactions")
    partitions = dialog.get_by_placeholder(re.compile(r"^ex: "))
    partitions.fill(partition)
    partitions.press("Enter")
    expect(dialog).to_contain_text("1 partition")
    dialog.get_by_role("button", name="Launch 1 run").click()

    # The toast that confirms the launch links to the new run.
    view_run = page.get_by_role("link", name="View", exact=True)
    expect(view_run).to_have_attribute("href", re.compile(r"/runs/[0-9a-f-]{36}$"))
    page.screenshot(path=ARTIFACTS / "asset_graph_launched.png")
    return view_run.get_attribute("href").rsplit("/", 1)[-1]


def wait_for_run_outcome(page: Page, url: str, run_id: str) -> str:
    """Open the run's page and wait until its status tag shows an end state; that state."""
    page.goto(f"{url}/runs/{run_id}")
    expect(page.get_by_text(run_id[:8], exact=True).first).to_be_visible()
    outcome = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    outcome.wait_for(timeout=RUN_TIMEOUT_MS)
    page.screenshot(path=ARTIFACTS / "run_finished.png")
    return outcome.inner_text()


def metadata_row(page: Page, key: str):
    """The row of the materialization's metadata table whose label is ``key``."""
    return page.get_by_role("row").filter(has=page.get_by_text(key, exact=True))


def metadata_value(page: Page, key: str) -> str:
    """The text of the value cell next to ``key`` in the metadata table."""
    row = metadata_row(page, key)
    expect(row).to_have_count(1)
    return row.locator("td").nth(1).inner_text().strip()


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_materialize_a_partition_from_the_asset_graph(page, dagster_ui):
    # Sensors and automation are on when a person first opens the UI.
    defaults = dagster_ui.default_sensor_status
    assert {"landing_zone_sensor", "evergreen_automation"} <= set(defaults)
    assert set(defaults.values()) == {"RUNNING"}, defaults
    ARTIFACTS.mkdir(exist_ok=True)
    # A fresh instance greets a person with a newsletter dialog; dismiss it whenever it shows.
    page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda skip: skip.click())

    started = time.monotonic()
    run_id = launch_partition_from_graph(page, dagster_ui.url, PARTITION)
    log.info("run %s launched from the graph after %.1f s", run_id, time.monotonic() - started)
    outcome = wait_for_run_outcome(page, dagster_ui.url, run_id)
    log.info("run %s: %s after %.1f s", run_id, outcome, time.monotonic() - started)
    assert outcome == "Success", dagster_ui.log_tail()

    # Second witness: the instance itself.
    with DagsterInstance.from_config(str(dagster_ui.dagster_home)) as instance:
        run = instance.get_run_by_id(run_id)
    assert run.status == DagsterRunStatus.SUCCESS
    assert run.tags["dagster/partition"] == PARTITION
    assert {k.to_user_string() for k in run.asset_selection} == {"raw_transactions"}

    rows = landed_rows(dagster_ui.home / "landing", PARTITION)
    page.goto(f"{dagster_ui.url}/assets/raw_transactions?view=events&partition={PARTITION}")
    event = page.get_by_text(re.compile(r"materialized in run")).first
    expect(event.locator("xpath=..")).to_contain_text(f"Partition {PARTITION}")
    expect(event.locator("xpath=..")).to_contain_text(run_id[:8])
    assert metadata_value(page, "dagster/row_count").replace(",", "") == str(rows)
    assert metadata_value(page, "rows_landed").replace(",", "") == str(rows)
    assert metadata_value(page, "rows_quarantined") == "0"
    # The markdown summary renders as text and a table, not as raw markdown.
    summary = metadata_row(page, "summary")
    expect(summary).to_contain_text(f"transactions {PARTITION}:")
    expect(summary).to_contain_text("rows loaded from 1 file(s)")
    expect(summary).not_to_contain_text("|---|")
    page.screenshot(path=ARTIFACTS / "raw_transactions_metadata.png", full_page=True)
