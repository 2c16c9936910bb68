"""Automation conditions shared by the assets.

Dagster's ``eager()`` looks only at the latest time partition, which is yesterday by the wall
clock; Evergreen's days are data days (a simulated 2018, a late correction to last week), so a
new or corrected upstream partition must refresh its own partition wherever it lies in time.
"""

from dagster import AutomationCondition


def refresh_on_upstream_change() -> AutomationCondition:
    """``eager()`` for every partition: run a partition when an upstream partition it reads is
    updated, or when it goes missing, once all of its upstream partitions exist."""
    return (
        (
            AutomationCondition.newly_missing() | AutomationCondition.any_deps_updated()
        ).since_last_handled()
        & ~AutomationCondition.any_deps_missing()
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label("refresh on upstream change (any partition)")


def refresh_on_any_upstream_partition() -> AutomationCondition:
    """For an unpartitioned asset that reads every partition of daily upstreams: run when any
    upstream partition is updated, once the upstream has settled: nothing upstream running, and
    no upstream partition about to be refreshed because its own upstream just changed (one run
    after a day's loads, not one per load). Missing upstream partitions do not hold it back, as
    they do in ``eager()`` and ``refresh_on_upstream_change``: most days of a daily asset never
    exist (e.g. the days before serving began)."""
    # Dagster's will_be_requested() only sees upstreams that can run in the same run (the same
    # partitions), never a daily partition under an unpartitioned asset: hence one level up.
    upstream_unsettled = AutomationCondition.any_deps_match(
        AutomationCondition.in_progress()
        | AutomationCondition.any_deps_match(AutomationCondition.newly_updated())
    )
    return (
        AutomationCondition.any_deps_updated().since_last_handled()
        & ~upstream_unsettled
        & ~AutomationCondition.in_progress()
    ).with_label("refresh when any upstream partition changes, once settled")
