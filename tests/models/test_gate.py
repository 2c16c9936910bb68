"""The gate's outcomes on constructed score frames.

Scores are exact posteriors of a latent signal (z = d * label + noise), so a larger separation
d makes a better and still calibrated model, and two models share their noise unless a test
adds its own.
"""

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from evergreen.models.gate import GatePolicy, decide

FRAUD_SHARE = 0.04
NO_FLOORS = GatePolicy(min_roc_auc=0.0, min_average_precision=0.0)


def calibrated(labels, noise, separation):
    """P(fraud | z) for z = separation * label + noise: a calibrated fraud probability."""
    z = separation * labels + noise
    fraud = FRAUD_SHARE * norm.pdf(z - separation)
    return fraud / (fraud + (1 - FRAUD_SHARE) * norm.pdf(z))


def make_window() -> pd.DataFrame:
    """2,000 customers with 10 transactions each over 7 days; region, channel and card type
    belong to the customer; 4 % frauds; the champion has separation 2.5."""
    rng = np.random.default_rng(0)
    customers = 2000
    customer = np.repeat(np.arange(customers), 10)
    n = len(customer)

    def attribute(values):
        return np.array(values)[rng.integers(0, len(values), customers)][customer]

    frame = pd.DataFrame(
        {
            "customer_id": customer,
            "region": attribute(["north", "south", "east", "west"]),
            "channel": attribute(["pos", "web", "mobile"]),
            "card_type": attribute(["debit", "credit"]),
            "tx_datetime": pd.Timestamp("2018-05-01", tz="UTC")
            + pd.to_timedelta(rng.integers(0, 7 * 86400, n), unit="s"),
            "label": (rng.random(n) < FRAUD_SHARE).astype(int),
        }
    )
    noise = rng.normal(size=n)
    frame["champion"] = calibrated(frame["label"], noise, 2.5)
    frame.attrs["noise"], frame.attrs["extra_noise"] = noise, rng.normal(size=n)
    return frame


@pytest.fixture(scope="module")
def window() -> pd.DataFrame:
    return make_window()


def failed(verdict):
    return {r.name for r in verdict.failed}


def test_first_model_passing_the_floors_is_promoted(window):
    verdict = decide(window, "champion", None, seed=0)

    assert verdict.outcome == "promote"
    assert failed(verdict) == set()
    assert "no champion yet" in verdict.to_markdown()
    floor = next(r for r in verdict.rules if r.name == "floor_average_precision")
    assert floor.numbers["floor"] == 0.30 and floor.numbers["value"] > 0.6
    assert "the floor is 0.30: passed" in floor.text


def test_first_model_below_the_floors_is_rejected(window):
    weak = window.assign(weak=calibrated(window["label"], window.attrs["noise"], 1.0))

    verdict = decide(weak, "weak", None, seed=0)

    assert verdict.outcome == "reject"
    assert failed(verdict) == {"floor_average_precision"}
    assert "failed" in verdict.failed[0].text and "| **FAIL** |" in verdict.to_markdown()


def test_an_overconfident_model_fails_the_calibration_bound(window):
    inflated = window.assign(inflated=np.sqrt(window["champion"]))  # same ranking, scores up

    verdict = decide(inflated, "inflated", None, seed=0)

    assert verdict.outcome == "reject"
    assert failed(verdict) == {"calibration"}


def test_a_clearly_worse_candidate_is_rejected(window):
    worse = window.assign(worse=calibrated(window["label"], window.attrs["noise"], 1.5))

    verdict = decide(worse, "worse", "champion", NO_FLOORS, seed=0)

    assert verdict.outcome == "reject"
    assert {"non_inferior_roc_auc", "non_inferior_average_precision"} <= failed(verdict)
    rule = next(r for r in verdict.rules if r.name == "non_inferior_average_precision")
    assert rule.numbers["ci_high"] < -rule.numbers["margin"]
    assert "failed (clearly worse)" in rule.text and "200 customer resamples" in rule.text


def test_an_identical_candidate_is_promoted_ties_go_to_the_newer_model(window):
    twin = window.assign(twin=window["champion"])

    verdict = decide(twin, "twin", "champion", seed=0)

    assert verdict.outcome == "promote"
    assert failed(verdict) == set()


def test_a_slightly_worse_candidate_within_noise_is_kept_as_challenger(window):
    # The champion's signal blurred by a little independent noise: a little worse, not surely.
    blurred = window.attrs["noise"] + 0.1 * window.attrs["extra_noise"]
    within = window.assign(within=calibrated(window["label"], blurred, 2.5))

    verdict = decide(within, "within", "champion", seed=0)

    assert verdict.outcome == "challenger"
    assert failed(verdict) == {"improvement"}
    ap = next(r for r in verdict.rules if r.name == "non_inferior_average_precision")
    assert ap.numbers["ci_low"] < 0 < ap.numbers["ci_high"]  # zero inside: within noise
    assert ap.numbers["delta"] < 0
    assert "Kept as challenger" in verdict.summary


def test_a_regression_in_one_segment_alone_is_rejected(window):
    noise, north = window.attrs["noise"], window["region"] == "north"
    regressed = np.where(
        north, calibrated(window["label"], noise, 1.5), calibrated(window["label"], noise, 3.0)
    )

    verdict = decide(window.assign(regressed=regressed), "regressed", "champion", seed=0)

    assert verdict.outcome == "reject"
    assert failed(verdict) == {
        "non_inferior_roc_auc[region=north]",
        "non_inferior_average_precision[region=north]",
    }
    overall = next(r for r in verdict.rules if r.name == "non_inferior_average_precision")
    assert overall.passed and overall.numbers["delta"] > 0  # better overall, worse in the north


def test_segments_with_too_few_frauds_are_listed_not_judged(window):
    policy = GatePolicy(min_segment_positives=250)

    verdict = decide(window.assign(twin=window["champion"]), "twin", "champion", policy, seed=0)

    skipped = next(r for r in verdict.rules if r.name == "segments_not_judged")
    assert "region=north" in skipped.text and skipped.numbers["min_positives"] == 250
    assert not any(r.name.endswith("[region=north]") for r in verdict.rules)
    assert any(r.name.endswith("[card_type=debit]") for r in verdict.rules)


def test_the_verdict_is_reproducible_with_its_seed(window):
    within = window.assign(other=calibrated(window["label"], window.attrs["extra_noise"], 2.5))

    first = decide(within, "other", "champion", seed=3)
    again = decide(within, "other", "champion", seed=3)

    assert first.to_dict() == again.to_dict()
