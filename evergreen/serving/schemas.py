"""The serving API's request and response bodies (pydantic, no BentoML).

``POST /predict`` takes either ONE transaction (its fields at the top level) or a batch
(``{"transactions": [...]}``) and always answers ``{"request_id", "predictions": [...]}``.
Every field is typed and checked, and unknown fields are refused, so a malformed body gets a 400
whose ``detail[].loc`` names the bad field (``["transactions", 0, "amount"]``).

The response is a plain ``BaseModel``, never a root model such as ``list[float]``: BentoML 1.4
builds a JSON schema for every root-model response it serialises, which cost about a sixth of
the server's CPU in a trial.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_BATCH = 1_000

Segment = Annotated[str, Field(min_length=1, max_length=64)]


class Transaction(BaseModel):
    """One payment to score: what the payment request itself carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transaction_id: int = Field(ge=0, description="Unique id of the transaction.")
    customer_id: int = Field(ge=0, description="Card holder (Feast entity `customer`).")
    terminal_id: int = Field(ge=0, description="Terminal (Feast entity `terminal`).")
    amount: float = Field(ge=0, allow_inf_nan=False, description="Amount, >= 0.")
    tx_datetime: dt.datetime = Field(
        description=(
            "When the payment happened; ISO 8601, UTC when no offset is given. At most 2 days "
            "after and 2 days before the data's current time (the newest transaction the "
            "online state holds; evergreen.features.realtime), else a 400 naming this field."
        )
    )
    region: Segment = Field(description="Customer's region (segment).")
    channel: Segment = Field(description="pos, web or mobile (segment).")
    card_type: Segment = Field(description="debit, credit or prepaid (segment).")

    @field_validator("tx_datetime")
    @classmethod
    def _in_utc(cls, value: dt.datetime) -> dt.datetime:
        """Features are keyed by UTC instants: a naive time is UTC, an offset is converted."""
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class PredictRequest(BaseModel):
    """A batch of transactions; a bare transaction object is accepted as a batch of one."""

    model_config = ConfigDict(extra="forbid")

    transactions: list[Transaction] = Field(min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="before")
    @classmethod
    def _one_or_many(cls, data: Any) -> Any:
        if isinstance(data, dict) and "transactions" not in data:
            return {"transactions": [data]}
        return data


class Prediction(BaseModel):
    """The verdict on one transaction."""

    transaction_id: int
    fraud_probability: float = Field(description="The model's score, in [0, 1].")
    decision: bool = Field(description="fraud_probability >= the model's operating threshold.")
    threshold: float
    model_version: str = Field(description="The BentoML tag of the model that scored it.")
    request_id: str
    features_missing: list[str] = Field(
        default_factory=list,
        description=(
            "Feature views with no row for this entity within the TTL (unknown customer or "
            "terminal, or stale features): their features were scored as missing (NaN)."
        ),
    )


class PredictResponse(BaseModel):
    """All predictions of one request, in the request's order."""

    request_id: str
    model_version: str
    predictions: list[Prediction]
