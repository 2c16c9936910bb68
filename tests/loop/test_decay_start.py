"""A decay alarm dates its follow-ups from the decay's first day, estimated from the window's
days: the earliest from which every judged day dropped by the enter level."""

import datetime as dt

from evergreen.loop.monitors import PerformanceFinding

FIRST, LAST = dt.date(2018, 4, 10), dt.date(2018, 4, 12)


def finding(drops: dict[str, float]) -> PerformanceFinding:
    return PerformanceFinding(LAST, FIRST, LAST, 0.3, "", daily_drops=drops)


def test_the_decay_starts_on_the_first_day_of_its_newest_run_of_decayed_days():
    drops = {"2018-04-10": 0.05, "2018-04-11": 0.3, "2018-04-12": 0.4}
    assert finding(drops).decay_start(0.2) == dt.date(2018, 4, 11)
    everything = {"2018-04-10": 0.5, "2018-04-11": 0.3, "2018-04-12": 0.4}
    assert finding(everything).decay_start(0.2) == FIRST


def test_a_recovered_day_ends_the_run_and_no_judged_day_means_the_windows_last():
    drops = {"2018-04-10": 0.3, "2018-04-11": 0.1, "2018-04-12": 0.4}
    assert finding(drops).decay_start(0.2) == LAST
    assert finding({}).decay_start(0.2) == LAST
