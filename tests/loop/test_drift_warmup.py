"""A window still filling in the drift reference is not judged: it grows day by day, so it
would "drift" from any later day with nothing changed (the quick plan's 14 days of history
alarmed a day before its drift that way)."""

import datetime as dt

from evergreen.loop.monitors import warming_features, window_warmup_days
from evergreen.settings import EvergreenSettings


def days(settings, first: int, last: int) -> list[dt.date]:
    return [settings.start_date + dt.timedelta(days=i) for i in range(first, last + 1)]


def test_a_window_needs_its_span_and_labelled_windows_the_label_delay_too():
    assert window_warmup_days("amount", 7) == 0
    assert window_warmup_days("customer_n_tx_30d", 7) == 30
    assert window_warmup_days("card_tx_count_24h", 7) == 1
    assert window_warmup_days("terminal_risk_7d", 7) == 14
    assert window_warmup_days("card_seconds_since_previous", 7) == 30
    # Every landed-label feature waits for the labels; the fraud run's spans the whole feed.
    assert window_warmup_days("terminal_labelled_tx_28d", 7) == 35
    assert window_warmup_days("terminal_run_age_days", 7) == 37


def test_the_quick_plans_first_reference_leaves_its_long_windows_unjudged(tmp_path):
    settings = EvergreenSettings(home=tmp_path, label_delay_days=3)
    warming = warming_features(settings, days(settings, 1, 10))  # 14 days of history
    assert {"customer_n_tx_30d", "amount_to_avg_30d", "card_tx_count_7d"} <= set(warming)
    assert {"terminal_run_frauds", "terminal_run_age_days"} <= set(warming)  # 30 + 3 days
    assert {"amount", "tx_during_night", "card_tx_count_1h", "terminal_risk_1d"}.isdisjoint(warming)


def test_a_reference_mostly_past_its_windows_is_judged_whole(tmp_path):
    settings = EvergreenSettings(home=tmp_path, label_delay_days=7)
    # The full plan's first model: 60 days of history, label delay 7, a 28-day window.
    assert warming_features(settings, days(settings, 25, 52)) == []
