"""While a drift is confirmed, training adapts: fewer held-out days, validation on a share of
customers of the older days, the drift's days weighted up; recorded with the model."""

import datetime as dt

import numpy as np

from evergreen.models.training import Adaptation, split_by_customers, train_candidate
from tests.model_fixtures import FAST


def _days(frame):
    return frame["tx_datetime"].dt.tz_convert("UTC").dt.date


def test_the_drift_split_trains_on_all_but_the_newest_day(training_frame):
    days = sorted(_days(training_frame).unique())
    split = split_by_customers(training_frame, 1, 0.2)
    assert set(_days(split.evaluation)) == {days[-1]}
    assert max(_days(split.train)) == days[-2]  # the newest labelled day before it trains
    # Validation is a fixed set of customers, none of whom trains.
    assert not set(split.train["customer_id"]) & set(split.validation["customer_id"])
    share = split.validation["customer_id"].nunique() / (
        split.validation["customer_id"].nunique() + split.train["customer_id"].nunique()
    )
    assert 0.1 < share < 0.3
    assert split_by_customers(training_frame, 1, 0.2).validation.equals(split.validation)


def test_the_drifts_days_weigh_more_and_the_adaptation_is_recorded(training_frame):
    days = sorted(_days(training_frame).unique())
    recent = days[-4]
    adaptation = Adaptation.for_drift(recent, 1, 0.2, 10.0, reason="drift from day -4")
    weights = adaptation.weights(training_frame)
    assert set(np.unique(weights)) == {1.0, 10.0}
    assert ((weights == 10.0) == (_days(training_frame) >= recent).to_numpy()).all()
    assert Adaptation.standard(7, 4).weights(training_frame) is None

    split = adaptation.split(training_frame)
    model = train_candidate(split.train, split.validation, 0, FAST, adaptation)
    plain = train_candidate(split.train, split.validation, 0, FAST)
    assert model.adaptation["recent_from"] == recent.isoformat()
    assert model.input_hash != plain.input_hash  # the weights are part of the inputs
    assert Adaptation.from_dict(model.adaptation) == adaptation
    assert None not in model.adaptation.values()  # BentoML's metadata refuses None
    assert Adaptation.from_dict(Adaptation.standard(7, 4).to_dict()).recent_from is None
    assert isinstance(recent, dt.date)
