"""The champion/challenger rule: promote only a model that clears the quality floor and is
better than the champion on the same data and the same horizon."""

from __future__ import annotations

from dataclasses import dataclass

from configs.schema import PromotionConfig


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    explanation: str


def below_floor(scores: dict[str, float], rule: PromotionConfig) -> str | None:
    """Why a model is too weak to rank customers at all, or None when it clears the floor."""
    auc, pr, rate = scores["roc_auc"], scores["pr_auc"], scores["positive_rate"]
    if auc < rule.min_roc_auc:
        return f"out-of-time ROC-AUC {auc:.3f} is below the floor {rule.min_roc_auc}"
    if pr < rule.min_pr_auc_lift * rate:
        return (
            f"out-of-time PR-AUC {pr:.3f} is below {rule.min_pr_auc_lift}× the positive rate "
            f"{rate:.3f} (a random ranking scores the rate)"
        )
    return None


def decide(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    rule: PromotionConfig,
    challenger_horizon: int | None = None,
    champion_horizon: int | None = None,
) -> GateDecision:
    """The challenger must clear the quality floor; then beat the champion by `margin` on the
    primary metric (higher is better) with a Brier score worse by at most `brier_tolerance`.

    Models for different horizons predict different events: their scores are not compared, and
    the challenger (trained for the configured horizon) is judged by the floor alone.
    """
    weak = below_floor(challenger, rule)
    if weak:
        return GateDecision(False, f"not promoted: {weak}")
    metric = rule.primary_metric
    if champion is None:
        return GateDecision(
            True, f"no champion yet: the challenger clears the floor ({_floor(challenger)})"
        )
    if champion_horizon is not None and champion_horizon != challenger_horizon:
        return GateDecision(
            True,
            f"champion predicts {champion_horizon}-day outcomes, the challenger "
            f"{challenger_horizon}-day: not compared; the challenger clears the floor "
            f"({_floor(challenger)})",
        )
    c_new, c_old = challenger[metric], champion[metric]
    # A tie keeps the champion: a retrain on the same data from its parameters reproduces it,
    # and "0.2933 beats 0.2933" only churns versions.
    if c_new <= c_old + rule.margin:
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


def _floor(scores: dict[str, float]) -> str:
    return f"ROC-AUC {scores['roc_auc']:.3f}, PR-AUC {scores['pr_auc']:.3f} at rate {scores['positive_rate']:.3f}"
