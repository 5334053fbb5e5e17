"""How customers respond to a retention contact: channel reach, acceptance, backfire and effect.

The model, as a retention analyst would describe it:

- A contact first has to reach the customer (`CHANNELS[c].reach`): an account manager or an
  outbound call gets through to more people than an SMS, an app message or an e-mail, and a
  conversation persuades more than a text once it gets through (`CHANNELS[c].persuasion`).
  Choosing the channel is a trade-off between that and its cost.
- A reached customer accepts the offer with probability
  sigmoid(base_o + responsiveness + fit_o) × persuasion_c, where
  * responsiveness is one latent trait per customer, shared by every offer (some people engage
    with their operator, some never do), plus their state at contact time: recent complaints,
    low current satisfaction and a bill shock make a customer more open to being approached;
  * fit_o is what the offer addresses: price-sensitive customers respond to a discount or a
    plan change far more than to a handset; an old handset drives the handset offer; a recent
    complaint drives the service-recovery call; plan misfit and bill shock drive rightsizing;
    only business customers respond to an account-manager visit.
- Accepting cuts the monthly churn hazard to `EFFECT[o]` of itself for `EFFECT_DAYS` (and a churn
  intent already drawn for the contact month is cancelled with probability 1 − EFFECT[o]).
- Some reached customers react badly to being contacted at all (reminded that they could leave;
  annoyed by the approach): their hazard is multiplied by `BACKFIRE` for the same window. More so
  when dissatisfied, and more so for an unprompted plan recommendation to a customer who is not
  price-sensitive, which lowers their inertia.

Sources for the sizes: a proactive retention call cut churn by about 11 % relative in a field
experiment at a European operator (Godinho de Matos, Ferreira & Belo 2018, "Target the ego or
target the group: evidence from a randomized experiment in proactive churn management",
Marketing Science 37(5));
about 4–5 % of contacted customers react negatively, and a proactive plan-recommendation
campaign *raised* churn among those it reached (Ascarza, Iyengar & Schleicher 2016, "The
perils of proactive churn prevention using plan recommendations", Journal of Marketing
Research). Reach by channel follows typical outbound contact rates (a call answered by about
half, a text acted on by a small share); these are assumptions, documented here and mirrored in
the config's channel `reach`/`persuasion`, which the policy uses to choose a channel.
`average_call_effect` measures the relative churn reduction a call achieves on a base, so the
calibration can be checked (tests/test_simulator.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

EFFECT_DAYS = 120
BACKFIRE = 2.0  # hazard multiplier for a customer who reacts badly to the contact


@dataclass(frozen=True)
class Channel:
    reach: float  # share of contacts that get through to the customer
    persuasion: float  # acceptance multiplier once reached (a conversation persuades more)


CHANNELS = {
    "account_manager": Channel(0.85, 1.2),
    "outbound_call": Channel(0.55, 1.0),
    "sms": Channel(0.30, 0.45),
    "app": Channel(0.20, 0.45),
    "email": Channel(0.12, 0.40),
}
# Hazard multiplier once an offer is accepted: a discount or a new contract binds more than a bonus.
EFFECT = {
    "service_recovery_call": 0.55,
    "plan_rightsizing": 0.45,
    "handset_upgrade": 0.35,
    "loyalty_bonus": 0.60,
    "discount": 0.40,
    "account_manager_visit": 0.40,
}
BASE_LOGIT = {
    "service_recovery_call": -1.4,
    "plan_rightsizing": -1.5,
    "handset_upgrade": -1.6,
    "loyalty_bonus": -1.0,
    "discount": -1.3,
    "account_manager_visit": -3.5,
}
RESPONSIVENESS_SD = 0.8  # the latent, per-customer part of responsiveness (unobservable)


def state_arrays(state: pl.DataFrame) -> dict[str, np.ndarray]:
    """The contact-time state the response depends on (besides the latent responsiveness)."""
    business = state["segment"].is_in(["enterprise", "government"]).to_numpy()
    return {
        "satisfaction": state["satisfaction"].to_numpy(),
        "tickets": np.minimum(state["recent_tickets"].to_numpy(), 3.0),
        "bill_shock": state["bill_shock"].to_numpy(),
        "plan_misfit": state["plan_misfit"].to_numpy(),
        "price": state["price_sensitivity"].to_numpy(),
        "handset_old": (state["handset_age_months"].to_numpy() > 24) & ~business,
        "business": business,
    }


def acceptance_logit(offer: str, st: dict[str, np.ndarray]) -> np.ndarray:
    """base + the observable part of responsiveness + the offer's fit (latent part excluded)."""
    shared = -0.35 * st["satisfaction"] + 0.35 * st["tickets"] + 0.4 * st["bill_shock"]
    business, price = st["business"], st["price"]
    fit = {
        "service_recovery_call": 0.6 * st["tickets"] + 0.5 * (st["satisfaction"] < -0.5),
        "plan_rightsizing": 2.0 * price + 0.6 * st["plan_misfit"] + 0.6 * st["bill_shock"],
        "handset_upgrade": 1.6 * st["handset_old"] - 1.5 * price - 3.0 * business,
        "loyalty_bonus": 0.3 * (st["satisfaction"] > 0) - 0.5 * price,
        "discount": 2.6 * price + 0.4 * st["bill_shock"] - 1.0 * business,
        "account_manager_visit": 4.0 * business,
    }[offer]
    return BASE_LOGIT[offer] + shared + fit


def backfire_probability(offer: str, st: dict[str, np.ndarray]) -> np.ndarray:
    """Probability that a reached customer reacts badly (about 4–5 % on average)."""
    z = -3.5 - 0.45 * st["satisfaction"] + 0.25 * st["tickets"]
    if offer == "plan_rightsizing":
        # Ascarza et al. 2016: an unprompted plan recommendation lowers inertia.
        z = z + 0.9 * (st["price"] < 0.3)
    return 1.0 / (1.0 + np.exp(-z))


def outcome_probabilities(
    offer: str, channel: str, st: dict[str, np.ndarray], latent: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per customer: P(reached), P(accepted), P(backfire) of one contact (they exclude each other)."""
    ch = CHANNELS[channel]
    q = backfire_probability(offer, st)
    p = np.clip(_sigmoid(acceptance_logit(offer, st) + latent) * ch.persuasion, 0.0, 0.95)
    reach = np.full(latent.shape, ch.reach)
    return reach, reach * (1 - q) * p, reach * q


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# Gauss–Hermite nodes for expectations over the latent responsiveness N(0, RESPONSIVENESS_SD²).
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(24)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def expected_outcomes(
    offer: str, channel: str, st: dict[str, np.ndarray], latent: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """P(accepted) and P(backfire), knowing the latent responsiveness or (None) integrating it out."""
    if latent is not None:
        _, acc, bad = outcome_probabilities(offer, channel, st, latent)
        return acc, bad
    n = st["satisfaction"].shape[0]
    acc = np.zeros(n)
    bad = np.zeros(n)
    for x, w in zip(_NODES, _WEIGHTS, strict=True):
        _, a, b = outcome_probabilities(offer, channel, st, np.full(n, x * RESPONSIVENESS_SD))
        acc += w * a
        bad = b  # backfire does not depend on the latent trait
    return acc, bad


def draw_outcomes(
    offer: np.ndarray,
    channel: np.ndarray,
    st: dict[str, np.ndarray],
    latent: np.ndarray,
    u_reach: np.ndarray,
    u_response: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Each contact's response ('no_answer', 'declined', 'accepted') and hazard multiplier."""
    n = offer.size
    response = np.full(n, "no_answer", dtype=object)
    mult = np.ones(n)
    for o in np.unique(offer):
        for c in np.unique(channel):
            sel = (offer == o) & (channel == c)
            if not sel.any() or o not in EFFECT or c not in CHANNELS:
                continue
            sub = {k: v[sel] for k, v in st.items()}
            ch = CHANNELS[c]
            q = backfire_probability(o, sub)
            p = np.clip(_sigmoid(acceptance_logit(o, sub) + latent[sel]) * ch.persuasion, 0, 0.95)
            reached = u_reach[sel] < ch.reach
            u = u_response[sel]
            bad = reached & (u < q)
            ok = reached & ~bad & (u < q + (1 - q) * p)
            response[sel] = np.where(ok, "accepted", np.where(reached, "declined", "no_answer"))
            mult[sel] = np.where(ok, EFFECT[o], np.where(bad, BACKFIRE, 1.0))
    return response, mult
