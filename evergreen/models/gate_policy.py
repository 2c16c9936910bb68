"""The gate's thresholds, apart from the gate's numerics so the code location loads them cheaply
(the ``promotion_decision`` asset's run config is built from them)."""

from pydantic import BaseModel, Field

SEGMENTS = ("region", "channel", "card_type")


class GatePolicy(BaseModel):
    """The gate's thresholds. Defaults suit the handbook simulator, where the handbook's own
    baselines reach AUC ~0.87 and AP ~0.6 on its test week and a useless model has AP ~ the
    fraud share (~0.008): the floors stop a broken model, not a slightly weaker one (that is
    the champion comparison's job). A log-loss model is calibrated on its training
    distribution to an ECE well under 0.05; scores inflated by class weights or a broken input
    exceed it. The margins are the loss not worth a rollout's risk either way; segments get
    wider ones because they are smaller (noisier) and many (more chances of a false alarm)."""

    min_roc_auc: float = Field(default=0.75, description="Floor on the candidate's ROC AUC.")
    min_average_precision: float = Field(default=0.30, description="Floor on its AP.")
    max_ece: float = Field(
        default=0.05, description="Bound on expected calibration error (10 equal-width bins)."
    )
    margin_roc_auc: float = Field(
        default=0.01,
        ge=0,
        description="Reject when candidate - champion AUC is surely < -this.",
    )
    margin_average_precision: float = Field(
        default=0.02, ge=0, description="Reject when candidate - champion AP is surely < -this."
    )
    segment_margin_roc_auc: float = Field(default=0.02, ge=0, description="Same, per segment.")
    segment_margin_average_precision: float = Field(
        default=0.05, ge=0, description="Same, per segment (segments are smaller: noisier)."
    )
    min_segment_positives: int = Field(
        default=30, ge=1, description="Frauds a segment needs before it is judged on its own."
    )
    resamples: int = Field(default=200, ge=20, description="Bootstrap resamples (customers).")
    confidence: float = Field(default=0.95, gt=0, lt=1, description="Interval coverage.")
    segments: tuple[str, ...] = Field(default=SEGMENTS, description="Segment columns judged.")
