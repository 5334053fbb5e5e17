"""What every CLI command shares: the resolved global options and the settings they load."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from configs.schema import Settings


@dataclass
class State:
    """What the global options resolve to; settings load lazily so --help never reads config."""

    home: Path | None = None
    config_files: list[Path] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    def settings(self, **overrides: Any) -> Settings:
        """The resolved settings; keyword overrides (nested dicts) layer on top for one command."""
        from pipelines.store.config import load_settings

        if overrides:
            merged = merge(self.overrides, overrides)
            return load_settings(self.config_files, home=self.home, overrides=merged)
        if self._settings is None:
            self._settings = load_settings(
                self.config_files, home=self.home, overrides=self.overrides
            )
            check_services(self._settings)
        return self._settings


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def state(ctx: typer.Context) -> State:
    return ctx.ensure_object(State)


def check_services(settings: Settings) -> None:
    """Fail fast with one line when a configured remote service is unreachable (never hang)."""
    import os
    import urllib.error
    import urllib.request

    from pipelines.store.errors import ServiceError

    checks = []
    if (uri := settings.tracking.tracking_uri) and uri.startswith(("http://", "https://")):
        checks.append(("MLflow tracking server", uri.rstrip("/") + "/health"))
    if (api := os.environ.get("PREFECT_API_URL")) and api.startswith(("http://", "https://")):
        checks.append(("Prefect API", api.rstrip("/") + "/health"))
    for name, url in checks:
        try:
            with urllib.request.urlopen(url, timeout=5):  # noqa: S310 - URL from config
                pass
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ServiceError(f"{name} at {url} is unreachable: {reason}") from None
