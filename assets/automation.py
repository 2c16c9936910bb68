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
