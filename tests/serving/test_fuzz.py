"""A property-based fuzz of the real bento from its own OpenAPI document (schemathesis).

``/predict`` is called with generated bodies that fit the published schema (``positive``), with
bodies that break it (``negative``), and with fitting bodies whose times are drawn from the
served days and the request-time state's bounds around its data time (``served_days``: a schema
cannot say which times a home scores, so a plain positive body is nearly always refused for its
time and never reaches scoring), on cards and terminals no real payment has. No answer may be a 5xx,
and every answer must be one the document lists, of its content type and shape.

Bounded in examples (``FUZZ_EXAMPLES`` per mode, derandomized: the same cases every run) and in
time (the test's timeout; hypothesis's per-example deadline is off, as a ``bentoml serve`` on a
busy 2-core machine has outliers).

Not checked: ``positive_data_acceptance``: a schema-valid time outside the served days gets a
documented 400.
"""

import datetime as dt

import pytest

FUZZ_EXAMPLES = 150
OFFSETS = [dt.timezone(dt.timedelta(minutes=m)) for m in (-720, -90, 0, 0, 0, 330, 840)]


def _served_times(body, data, first: dt.datetime, last: dt.datetime) -> None:
    """Give every transaction of a generated body a time between ``first`` and ``last`` (naive
    UTC) and a card and terminal of the probes' own range (in place): the served home is
    shared, and its request-time state must not count a generated payment on a real card."""
    from hypothesis import strategies as st

    from evergreen.rollout.load import PROBE_ENTITY_BASE

    base = 3 * PROBE_ENTITY_BASE  # apart from the probes' and other tests' unseen cards too
    txs = body.get("transactions", [body]) if isinstance(body, dict) else []
    for tx in txs if isinstance(txs, list) else []:
        if isinstance(tx, dict) and "tx_datetime" in tx:
            moment = data.draw(st.datetimes(first, last, timezones=st.sampled_from(OFFSETS)))
            tx["tx_datetime"] = moment.isoformat()
        for key in ("customer_id", "terminal_id"):
            if isinstance(tx, dict) and type(tx.get(key)) is int and tx[key] >= 0:
                tx[key] = base + tx[key] % PROBE_ENTITY_BASE


def _scorable_span(settings) -> tuple[dt.datetime, dt.datetime]:
    """Times a request may carry and be scored: on a served day and within the request-time
    state's bounds around its data time (naive UTC)."""
    from evergreen.features.realtime import MAX_BEHIND
    from evergreen.rollout.load import state_data_time
    from evergreen.serving.runtime import served_days

    first_day, last_day = served_days(settings)
    first = dt.datetime.combine(first_day, dt.time())
    last = dt.datetime.combine(last_day, dt.time(23, 59, 59))
    data_time = state_data_time(settings)
    if data_time is not None:
        # Before the data time, never after: an accepted payment ahead of it would move it, and
        # later draws would fall behind the bound. The drawn local times carry offsets (-12 h
        # to +14 h), hence the margins.
        now = data_time.astimezone(dt.UTC).replace(tzinfo=None)
        first = max(first, now - MAX_BEHIND + dt.timedelta(hours=15))
        last = min(last, now - dt.timedelta(hours=12))
    return first, last


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["positive", "negative", "served_days"])
def test_no_generated_request_gets_a_5xx_or_an_undocumented_answer(served, serving_home, mode):
    import requests
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    first, last = _scorable_span(serving_home.settings)
    schema = schemathesis.openapi.from_url(f"{served.url}/docs.json").include(path="/predict")
    generation = GenerationMode.NEGATIVE if mode == "negative" else GenerationMode.POSITIVE
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    statuses: dict[int, int] = {}
    session = requests.Session()

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=schema.as_strategy(generation_mode=generation), data=st.data())
    def fuzz(case, data):
        if mode == "served_days":
            _served_times(case.body, data, first, last)
        response = case.call(base_url=served.url, session=session, timeout=30)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=checks)

    fuzz()

    print(mode, statuses)
    assert sum(statuses.values()) >= FUZZ_EXAMPLES // 2, statuses
    assert not any(status >= 500 for status in statuses), statuses
    if mode == "served_days":  # the scoring path was reached, not only the validation
        assert statuses.get(200, 0) >= FUZZ_EXAMPLES // 4, statuses
