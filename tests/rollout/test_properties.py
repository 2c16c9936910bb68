"""Properties of the router's pure pieces, over generated inputs (hypothesis): the replica
weights the router is given, and the latency quantile the canary analysis reads from a
Prometheus histogram.

Derandomized (the same cases every run) and bounded in examples, as ``make test`` runs them.
"""

import math
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from evergreen.rollout.metrics import histogram_quantile
from evergreen.rollout.revisions import RevisionSpec
from evergreen.rollout.state import (
    DRAINING,
    FAILED,
    READY,
    STARTING,
    STOPPED,
    ReplicaState,
    RevisionState,
    ServingState,
)
from evergreen.rollout.supervisor import replica_weights

PROPERTY = settings(max_examples=300, deadline=None, derandomize=True, database=None)

# -- replica weights ------------------------------------------------------------------------


@st.composite
def serving_states(draw) -> ServingState:
    """Up to four revisions (any phase), up to four replicas each, any of them ready, with
    weights in percent summing to at most 100 (a rollout step, or a revision that died)."""
    count = draw(st.integers(1, 4))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=count - 1, max_size=count - 1)))
    weights = [b - a for a, b in zip([0, *cuts], [*cuts, 100], strict=True)]
    if draw(st.booleans()):  # not every state sums to 100: a revision may have been dropped
        weights[draw(st.integers(0, count - 1))] = 0
    revisions, port = {}, 9000
    for i, weight in enumerate(weights):
        ready = draw(st.lists(st.booleans(), min_size=1, max_size=4))
        replicas = []
        for j, up in enumerate(ready):
            replicas.append(ReplicaState(index=j, port=port, log="", started_at="", ready=up))
            port += 1
        spec = RevisionSpec(serve_target="s:S", model_version=f"m{i}", source="x")
        phase = draw(st.sampled_from([READY, READY, STARTING, DRAINING, STOPPED, FAILED]))
        name = f"r{i:04d}"
        revisions[name] = RevisionState(
            name, spec, "process", "", weight, phase=phase, replicas=replicas
        )
    return ServingState(revisions=revisions)


def _intended_shares(state: ServingState) -> dict[str, Fraction]:
    """What the docstring promises, worked out the plain way: each live revision's weight
    split evenly over its ready replicas; if that leaves nothing, every ready replica of a
    READY revision equally."""
    shares = {}
    for revision in state.live():
        ready = [r for r in revision.replicas if r.ready]
        for replica in revision.replicas:
            shares[replica.dial] = (
                Fraction(revision.weight, len(ready)) if replica.ready else Fraction(0)
            )
    if not any(shares.values()):
        for revision in state.live():
            for replica in revision.replicas:
                shares[replica.dial] = Fraction(int(revision.phase == READY and replica.ready))
    return shares


@PROPERTY
@given(state=serving_states())
def test_replica_weights_are_the_smallest_integers_in_the_revisions_proportions(state):
    upstreams = replica_weights(state)
    intended = _intended_shares(state)

    # One upstream per replica of every live revision, none of a stopped or failed one.
    assert [u.dial for u in upstreams] == list(intended)
    weights = [u.weight for u in upstreams]
    assert all(isinstance(w, int) and w >= 0 for w in weights)
    total, meant = sum(weights), sum(intended.values())
    if meant == 0:  # nothing ready anywhere: nothing is routed
        assert total == 0
        return
    # The same proportions as intended, exactly...
    assert {u.dial: Fraction(u.weight, total) for u in upstreams} == {
        dial: share / meant for dial, share in intended.items()
    }
    # ...in the smallest integers (9:1, not 90:10), which Caddy's round robin mixes best.
    assert math.gcd(*weights) == 1
    # A replica that is not ready is never sent traffic.
    ready = {r.dial for v in state.live() for r in v.replicas if r.ready}
    assert all(u.weight == 0 for u in upstreams if u.dial not in ready)


@PROPERTY
@given(state=serving_states())
def test_something_serves_while_any_ready_revision_has_a_ready_replica(state):
    servable = any(r.ready for v in state.live() if v.phase == READY for r in v.replicas)
    routed = sum(u.weight for u in replica_weights(state))
    assert routed > 0 or not servable


# -- histogram quantiles --------------------------------------------------------------------


@st.composite
def observed_histograms(draw) -> tuple[list[float], dict[float, float]]:
    """Latencies (seconds) and the cumulative Prometheus buckets they fill, +Inf included
    (``le`` bounds as a histogram exports them)."""
    bounds = sorted(draw(st.sets(st.floats(0.001, 10.0, allow_nan=False), min_size=1, max_size=12)))
    values = draw(st.lists(st.floats(0.0, 20.0, allow_nan=False, allow_infinity=False), min_size=1))
    buckets = {b: float(sum(v <= b for v in values)) for b in [*bounds, math.inf]}
    return values, buckets


@PROPERTY
@given(
    histogram=observed_histograms(),
    q=st.floats(0.0, 1.0, exclude_min=True),  # q = 0 answers the first bucket, whatever it holds
    r=st.floats(0.0, 1.0),
)
def test_a_histogram_quantile_lies_in_the_bucket_of_the_true_quantile(histogram, q, r):
    values, buckets = histogram
    estimate = histogram_quantile(buckets, q)
    finite = sorted(b for b in buckets if math.isfinite(b))

    # The observation of rank ceil(q * n), as Prometheus ranks them.
    rank = max(1, math.ceil(q * len(values)))
    true = sorted(values)[rank - 1]
    # Its bucket: (lower, upper]; the estimate lies in it, so it is off by at most its width.
    upper = next((b for b in finite if true <= b), math.inf)
    lower = max((b for b in finite if b < upper), default=0.0)
    if math.isinf(upper):  # beyond the last finite bound: Prometheus answers that bound
        assert estimate == finite[-1]
    else:
        assert lower <= estimate <= upper, (estimate, lower, upper, true)
    assert 0.0 <= estimate <= finite[-1]
    # And a larger q never answers less.
    low, high = sorted((q, r))
    assert histogram_quantile(buckets, low) <= histogram_quantile(buckets, high)


@PROPERTY
@given(histogram=observed_histograms(), q=st.floats(0.0, 1.0))
def test_a_histogram_quantile_ignores_the_order_and_an_empty_one_is_nan(histogram, q):
    _, buckets = histogram
    shuffled = dict(reversed(list(buckets.items())))
    assert histogram_quantile(shuffled, q) == histogram_quantile(buckets, q)
    assert math.isnan(histogram_quantile({b: 0.0 for b in buckets}, q))
