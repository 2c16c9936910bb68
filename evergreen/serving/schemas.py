"""The serving API's request and response bodies (pydantic, no BentoML).

``POST /predict`` takes either ONE transaction (its fields at the top level) or a batch
(``{"transactions": [...]}``) and always answers ``{"request_id", "predictions": [...]}``.
Every field is typed and checked, and unknown fields are refused, so a malformed body gets a 400
whose ``detail[].loc`` names the bad field (``["transactions", 0, "amount"]``).

Parsing is strict: an id is a JSON integer that fits a signed 64-bit column (SQLite, DuckDB), an
amount a JSON number (not ``"12"``, not ``true``), a time an ISO 8601 string inside the range
the stores can key (1970 to 2100): anything else is a 400 naming the field, never a 500 further
down.

The response is a plain ``BaseModel``, never a root model such as ``list[float]``: BentoML 1.4
builds a JSON schema for every root-model response it serialises, which cost about a sixth of
the server's CPU in a trial.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_BATCH = 1_000
MAX_ID = 2**63 - 1  # SQLite's and DuckDB's BIGINT: a larger id overflows the log and the store
# Feature rows are keyed by epoch instants and a lookup subtracts the views' TTL: outside this
# range the arithmetic overflows (years 1 and 9999 did); no card payment lies outside it.
EARLIEST_TX = dt.datetime(1970, 1, 2, tzinfo=dt.UTC)
LATEST_TX = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)

Segment = Annotated[str, Field(min_length=1, max_length=64, strict=True)]
EntityId = Annotated[int, Field(ge=0, le=MAX_ID, strict=True)]


class Transaction(BaseModel):
    """One payment to score: what the payment request itself carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transaction_id: EntityId = Field(description="Unique id of the transaction.")
    customer_id: EntityId = Field(description="Card holder (Feast entity `customer`).")
    terminal_id: EntityId = Field(description="Terminal (Feast entity `terminal`).")
    amount: float = Field(ge=0, allow_inf_nan=False, strict=True, description="Amount, >= 0.")
    tx_datetime: dt.datetime = Field(
        description=(
            "When the payment happened; ISO 8601, UTC when no offset is given; between 1970 and "
            "2100, on a served day, and at most 2 days after or before the data's current time "
            "(the newest transaction the online state holds; evergreen.features.realtime), else "
            "a 400 naming this field."
        )
    )
    region: Segment = Field(description="Customer's region (segment).")
    channel: Segment = Field(description="pos, web or mobile (segment).")
    card_type: Segment = Field(description="debit, credit or prepaid (segment).")

    @field_validator("tx_datetime", mode="before")
    @classmethod
    def _a_time_not_a_number(cls, value: Any) -> Any:
        """A time is an ISO 8601 string: a bare number would be read as epoch seconds."""
        if not isinstance(value, str | dt.datetime):
            raise ValueError("must be an ISO 8601 date-time string")
        return value

    @field_validator("tx_datetime")
    @classmethod
    def _in_utc(cls, value: dt.datetime) -> dt.datetime:
        """Features are keyed by UTC instants: a naive time is UTC, an offset is converted."""
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        try:
            value = value.astimezone(dt.UTC)
        except OverflowError:  # 9999-12-31T23:59:59-01:00 has no UTC form
            raise ValueError("the time has no UTC equivalent") from None
        if not EARLIEST_TX <= value < LATEST_TX:
            raise ValueError(f"must lie between {EARLIEST_TX:%Y-%m-%d} and {LATEST_TX:%Y-%m-%d}")
        return value


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
