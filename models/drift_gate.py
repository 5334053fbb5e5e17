"""The drift gate: from drift and realised-performance figures to ok / warn / retrain."""

from __future__ import annotations

from dataclasses import dataclass, field

from configs.schema import DriftGate


@dataclass(frozen=True)
class DriftMetrics:
    drifted_share: float
    prediction_drift: float | None = None
    realised_auc: float | None = None
    reference_auc: float | None = None


@dataclass(frozen=True)
class GateDecision:
    status: str  # ok | warn | retrain
    reasons: list[str] = field(default_factory=list)


def decide(m: DriftMetrics, gate: DriftGate) -> GateDecision:
    retrain, warn = [], []
    if m.drifted_share >= gate.drifted_share_retrain:
        retrain.append(
            f"{m.drifted_share:.0%} of features drifted (retrain at {gate.drifted_share_retrain:.0%})"
        )
    elif m.drifted_share >= gate.drifted_share_warn:
        warn.append(
            f"{m.drifted_share:.0%} of features drifted (warn at {gate.drifted_share_warn:.0%})"
        )
    if m.prediction_drift is not None and m.prediction_drift >= gate.prediction_drift_retrain:
        retrain.append(
            f"prediction drift {m.prediction_drift:.3f} ≥ {gate.prediction_drift_retrain}"
        )
    if m.realised_auc is not None and m.reference_auc is not None:
        drop = m.reference_auc - m.realised_auc
        if drop >= gate.auc_drop_retrain:
            retrain.append(
                f"realised AUC {m.realised_auc:.3f} is {drop:.3f} below validation {m.reference_auc:.3f}"
            )
    if retrain:
        return GateDecision("retrain", retrain + warn)
    if warn:
        return GateDecision("warn", warn)
    return GateDecision("ok", ["no drift beyond the configured thresholds"])
