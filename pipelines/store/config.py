"""Load the one typed configuration from configs/*.yaml, extra files and CHURN_* environment."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

import configs
from configs.schema import Settings
from pipelines.store.errors import ConfigError

CONFIG_DIR = Path(configs.__file__).parent
ENV_PREFIX = "CHURN_"
ENV_DELIMITER = "__"


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}".splitlines()[0]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """CHURN_MODELS__TRIALS=5 -> {"models": {"trials": 5}}; values parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "CHURN_HOME":
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split(ENV_DELIMITER) if p]
        if not path:
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError:
            value = raw
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} conflicts with another override")
        node[path[-1]] = value
    if "CHURN_HOME" in environ:
        out["home"] = environ["CHURN_HOME"]
    return out


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in error["loc"]) or "(top level)"
    msg = error["msg"]
    if error["type"] == "extra_forbidden":
        msg = "unknown key"
    elif error["type"] == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        msg = f"got {error.get('input')!r}; allowed values: {expected}"
    return f"{key}: {msg}"


def load_settings(
    files: Iterable[Path] = (),
    home: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve defaults < extra YAML files < CHURN_* environment < explicit overrides."""
    environ = os.environ if environ is None else environ
    data = _read_yaml(CONFIG_DIR / "default.yaml")
    for path in files:
        data = _deep_merge(data, _read_yaml(Path(path)))
    data = _deep_merge(data, _env_overrides(environ))
    if overrides:
        data = _deep_merge(data, overrides)
    if home is not None:
        data["home"] = str(home)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e) for e in exc.errors()]
        raise ConfigError("invalid configuration: " + "; ".join(lines)) from None


def features_hash(settings: Settings) -> str:
    """A short fingerprint of what a feature snapshot depends on: the features section only.

    A snapshot built under it stays reusable when anything else changes (a budget, a new
    config key of a later release): rebuilding a 1M history costs minutes for nothing.
    """
    return _fingerprint(settings.features.model_dump(mode="json"))


def config_hash(settings: Settings) -> str:
    """A short fingerprint of the resolved business configuration (home excluded)."""
    # Who may open the cockpit is not business configuration: setting a password must not
    # invalidate the cycle ledger.
    payload = settings.model_dump(
        mode="json",
        exclude={"home": True, "security": {"dashboard_password", "marketing_password"}},
    )
    return _fingerprint(payload)


def _fingerprint(payload: dict) -> str:
    """12 hex digits of the SHA-256 of a settings dump with sorted keys."""
    blob = json.dumps(payload, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]
