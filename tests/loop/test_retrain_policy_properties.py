"""Properties of the retrain policy over generated sequences of triggers (hypothesis), on a
real ledger: whatever asks, in whatever mix,

- no two retrains are closer than the cooldown, and no day has more than its budget;
- a measured signal (drift, performance) retrains again only after it fell to its exit level;
- each answer is the one a plain reading of the rules gives (a model of the policy, written
  here without the ledger), and the ledger records exactly the answers given.

Derandomized and bounded in examples and in triggers per example.
"""

import datetime as dt
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from evergreen.loop.retrain_policy import RetrainGovernor, RetrainPolicy, Trigger
from tests.conftest import make_settings

PROPERTY = settings(max_examples=40, deadline=None, derandomize=True, database=None)
T0 = dt.datetime(2018, 5, 1, tzinfo=dt.UTC)
MEASURED = ("drift", "performance")

policies = st.builds(
    RetrainPolicy,
    cooldown=st.sampled_from([dt.timedelta(0), dt.timedelta(hours=12), dt.timedelta(days=2)]),
    max_per_day=st.integers(1, 3),
    drift_enter=st.just(0.3),
    drift_exit=st.just(0.15),
    performance_enter=st.just(0.2),
    performance_exit=st.just(0.1),
    follow_up_days=st.sampled_from([(), (2,)]),
)
# Severities at, around and between the levels: the edges are where hysteresis goes wrong.
severities = st.sampled_from([0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.9])


@st.composite
def trigger_sequences(draw) -> list[Trigger]:
    """Triggers in data-time order, hours apart (several on one day, some at the same time)."""
    triggers, hours = [], 0
    for _ in range(draw(st.integers(1, 14))):
        hours += draw(st.sampled_from([0, 1, 6, 12, 24, 49]))
        kind = draw(st.sampled_from(["drift", "performance", "schedule", "manual", "fresh_data"]))
        severity = draw(severities) if kind in MEASURED else None
        triggers.append(Trigger(kind, T0 + dt.timedelta(hours=hours), severity))
    return triggers


class PolicyModel:
    """The rules as the module's docstring states them, kept in memory."""

    def __init__(self, policy: RetrainPolicy) -> None:
        self.policy = policy
        self.last: dt.datetime | None = None
        self.per_day: dict[dt.date, int] = {}
        self.armed = dict.fromkeys(MEASURED, True)

    def answer(self, trigger: Trigger) -> tuple[str, str]:
        """The outcome, and the word its reason must contain."""
        if trigger.kind in MEASURED:
            enter, exit_ = self.policy.levels(trigger.kind)
            if trigger.severity < enter:
                if not self.armed[trigger.kind] and trigger.severity <= exit_:
                    self.armed[trigger.kind] = True
                    return "rearmed", "re-armed"
                return "below_threshold", "below"
            if not self.armed[trigger.kind]:
                return "suppressed", "hysteresis"
        if self.last is not None and trigger.data_time - self.last < self.policy.cooldown:
            return "suppressed", "cooldown"
        day = trigger.data_time.date()
        if self.per_day.get(day, 0) >= self.policy.max_per_day:
            return "suppressed", "budget"
        self.last = trigger.data_time
        self.per_day[day] = self.per_day.get(day, 0) + 1
        if trigger.kind in MEASURED:
            self.armed[trigger.kind] = False
        return "accepted", "retrain requested"


@PROPERTY
@given(policy=policies, triggers=trigger_sequences())
def test_the_policy_answers_as_its_rules_say_and_records_every_answer(policy, triggers):
    with tempfile.TemporaryDirectory() as folder:
        governor = RetrainGovernor(make_settings(Path(folder) / "home"), policy)
        model = PolicyModel(policy)
        decisions = [governor.consider(t) for t in triggers]
        history = governor.history()

    expected = [model.answer(t) for t in triggers]
    assert [d.outcome for d in decisions] == [outcome for outcome, _ in expected]
    for decision, (_, why) in zip(decisions, expected, strict=True):
        assert why in decision.reason, (decision.reason, why)
    assert all(d.accepted == (d.outcome == "accepted") for d in decisions)

    accepted = [t for t, d in zip(triggers, decisions, strict=True) if d.accepted]
    for before, after in zip(accepted, accepted[1:], strict=False):
        assert after.data_time - before.data_time >= policy.cooldown
    for day in {t.data_time.date() for t in accepted}:
        assert sum(t.data_time.date() == day for t in accepted) <= policy.max_per_day
    for kind in MEASURED:  # between two retrains of a signal, it re-armed
        outcomes = [d.outcome for t, d in zip(triggers, decisions, strict=True) if t.kind == kind]
        fired = [i for i, o in enumerate(outcomes) if o == "accepted"]
        for a, b in zip(fired, fired[1:], strict=False):
            assert "rearmed" in outcomes[a + 1 : b], outcomes

    # The ledger holds every answer but "below threshold", in order, plus the follow-ups.
    answered = [
        (t.kind, d.outcome) for t, d in zip(triggers, decisions, strict=True)
        if d.outcome != "below_threshold"
    ]  # fmt: skip
    recorded = [(r["kind"], r["outcome"]) for r in history if r["kind"] != "follow_up"]
    assert recorded == answered
