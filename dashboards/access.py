"""Who may open the cockpit: one password per role from the environment, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

DATA_TEAM = "data team"  # may look customers up by their internal id
MARKETING = "marketing"  # sees masked keys only


def is_local(host: str) -> bool:
    """True for addresses only this machine can reach (loopback)."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or 0.0.0.0-like wildcard: assume reachable from outside


def role_passwords(security) -> dict[str, str]:
    """Configured passwords by role (settings.security), empty ones left out."""
    out = {}
    for role, secret in (
        (DATA_TEAM, security.dashboard_password),
        (MARKETING, security.marketing_password),
    ):
        value = secret.get_secret_value() if secret is not None else ""
        if value:
            out[role] = value
    return out


def role_for(given: str, passwords: dict[str, str]) -> str | None:
    """The role whose password was given, else None. Every role is compared, each in constant
    time over equal-length digests, so timing reveals neither the password nor which role
    matched."""
    digest = hashlib.sha256(given.encode("utf-8")).digest()
    found = None
    for role, secret in passwords.items():
        same = hmac.compare_digest(digest, hashlib.sha256(secret.encode("utf-8")).digest())
        if same and found is None:
            found = role
    return found


def bind_refusal(host: str, passwords: dict[str, str]) -> str | None:
    """Why serving on `host` must be refused, or None: beyond localhost needs a password."""
    if is_local(host) or passwords:
        return None
    return (
        f"refusing to serve the cockpit on {host} without a password: anyone on the network "
        "would see every customer's risk; set CHURN_SECURITY__DASHBOARD_PASSWORD (and "
        "CHURN_SECURITY__MARKETING_PASSWORD for masked-only access), or bind to 127.0.0.1"
    )
