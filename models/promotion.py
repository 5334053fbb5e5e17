"""The champion/challenger rule: promote only a model that is better on the same data."""

from __future__ import annotations

from dataclasses import dataclass

from configs.schema import PromotionConfig


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    explanation: str


def decide(
    challenger: dict[str, float], champion: dict[str, float] | None, rule: PromotionConfig
) -> GateDecision:
    """Challenger must beat the champion by `margin` on the primary metric (higher is better)
    and its Brier score may be worse by at most `brier_tolerance`."""
    metric = rule.primary_metric
    if champion is None:
        return GateDecision(True, "no champion yet: the challenger becomes champion")
    c_new, c_old = challenger[metric], champion[metric]
    if c_new < c_old + rule.margin:
        return GateDecision(
            False, f"{metric} {c_new:.4f} does not beat the champion's {c_old:.4f} by {rule.margin}"
        )
    b_new, b_old = challenger["brier"], champion["brier"]
    if b_new > b_old + rule.brier_tolerance:
        return GateDecision(
            False,
            f"calibration worse: Brier {b_new:.4f} vs champion {b_old:.4f} (tolerance {rule.brier_tolerance})",
        )
    return GateDecision(
        True,
        f"{metric} {c_new:.4f} beats {c_old:.4f} (margin {rule.margin}); Brier {b_new:.4f} vs {b_old:.4f}",
    )
