"""Blocking data-quality checks of the raw feeds: their specs and their results from an ingest."""

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, MetadataValue

from assets.partitions import daily_partitions
from evergreen.ingest.partition import IngestReport

CHECKS = {
    "schema_contract": "Every delivered file has the contract's column names and types.",
    "non_null_keys": "No key column (ids, timestamp, label) is null.",
    "value_ranges": "Amounts are >= 0 and finite, timestamps fall inside the partition's day, "
    "labels are 0 or 1.",
    "unique_transaction_ids": "No transaction id repeats in the day or in the days before it.",
    "known_transactions": "Every label refers to a transaction already loaded.",
    "volume_within_band": "The day's row count lies in an adaptive band around the trailing days.",
    "rows_reconciled": "Nothing is lost: files, bytes and rows landed = loaded + quarantined "
    "(an unreadable file's rows are unknown, and said so).",
}

FEED_CHECKS = {
    "transactions": [c for c in CHECKS if c != "known_transactions"],
    "labels": list(CHECKS),
}

# Post-load re-verification counts (evergreen.ingest.verify) that back each row-level rule.
_LOADED_COUNT = {
    "non_null_keys": "null_keys",
    "value_ranges": "out_of_range",
    "unique_transaction_ids": "duplicate_ids",
}


def check_specs(feed: str, asset_name: str) -> list[AssetCheckSpec]:
    """The blocking check specs of one raw asset, partitioned like the asset."""
    return [
        AssetCheckSpec(
            name,
            asset=asset_name,
            description=CHECKS[name],
            blocking=True,
            partitions_def=daily_partitions,
        )
        for name in FEED_CHECKS[feed]
    ]


def _rule_result(report: IngestReport, rule: str, asset_name: str) -> AssetCheckResult:
    found = [(v, x) for v in report.verdicts for x in v.violations if x.rule == rule]
    stored_bad = report.loaded_checks.get(_LOADED_COUNT.get(rule, ""), 0)
    blocking = [x for _, x in found if x.blocking]
    passed = not found and stored_bad == 0
    severity = AssetCheckSeverity.ERROR if (blocking or stored_bad) else AssetCheckSeverity.WARN
    if passed:
        description = (
            f"Passed on {len(report.verdicts)} file(s), {report.rows_loaded:,} rows loaded."
        )
    else:
        lines = [x.message for _, x in found]
        if stored_bad:
            lines.append(f"{stored_bad:,} rows in the warehouse break this rule after loading")
        where = f"quarantine/{report.feed}/date={report.day}/"
        if not (blocking or stored_bad):
            return _warning(rule, asset_name, lines, where, found)
        description = (
            "; ".join(lines) + f". Set aside in {where} with a .reason.json beside each file. "
            "Fix it upstream and re-deliver the file under the same name, then re-materialize "
            f"{report.day}."
        )
    return AssetCheckResult(
        check_name=rule,
        asset_key=asset_name,
        passed=passed,
        severity=severity,
        description=description,
        metadata={
            "violating_rows": sum(x.count for _, x in found),
            "quarantined_files": MetadataValue.json(
                [v.file.name for v, x in found if not v.accepted]
            ),
            "examples": MetadataValue.json(sorted({e for _, x in found for e in x.examples})[:10]),
            "rows_breaking_rule_after_load": stored_bad,
        },
    )


def _warning(rule, asset_name, lines, where, found) -> AssetCheckResult:
    """A finding that loses nothing (an exact copy): said, set aside, and not blocking."""
    return AssetCheckResult(
        check_name=rule,
        asset_key=asset_name,
        passed=False,
        severity=AssetCheckSeverity.WARN,
        description="; ".join(lines) + f". The copy is kept in {where}; nothing was lost.",
        metadata={
            "violating_rows": sum(x.count for _, x in found),
            "quarantined_files": MetadataValue.json([v.file.name for v, _ in found]),
        },
    )


def _volume_result(report: IngestReport, asset_name: str) -> AssetCheckResult:
    vol = report.volume
    return AssetCheckResult(
        check_name="volume_within_band",
        asset_key=asset_name,
        passed=vol.passed,
        description=vol.message[0].upper() + vol.message[1:] + ".",
        metadata={
            "rows": vol.rows,
            "history_days": vol.history_days,
            "median": vol.median,
            "band_low": vol.low,
            "band_high": vol.high,
        },
    )


def _reconciliation_result(report: IngestReport, asset_name: str) -> AssetCheckResult:
    verb = "Reconciled" if report.reconciled else "Something went missing"
    return AssetCheckResult(
        check_name="rows_reconciled",
        asset_key=asset_name,
        passed=report.reconciled,
        description=f"{verb}: {report.reconciliation()}.",
        metadata={
            "files_landed": len(report.verdicts),
            "files_loaded": len(report.accepted),
            "files_quarantined": len(report.rejected),
            "bytes_landed": report.bytes_landed,
            "bytes_loaded": report.bytes_loaded,
            "bytes_quarantined": report.bytes_quarantined,
            "rows_landed": report.rows_landed,
            "rows_loaded": report.rows_loaded,
            "rows_quarantined": report.rows_quarantined,
            "files_rows_unknown": MetadataValue.json(
                [v.file.name for v in report.files_rows_unknown]
            ),
        },
    )


def check_results(report: IngestReport, asset_name: str) -> list[AssetCheckResult]:
    """One result per check of the feed, from what the ingest found and re-verified."""
    results = []
    for rule in FEED_CHECKS[report.feed]:
        if rule == "volume_within_band":
            results.append(_volume_result(report, asset_name))
        elif rule == "rows_reconciled":
            results.append(_reconciliation_result(report, asset_name))
        else:
            results.append(_rule_result(report, rule, asset_name))
    return results
