"""Configuration: defaults load, overrides layer in order, bad values give one readable line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.store.config import config_hash, load_settings
from pipelines.store.errors import ConfigError


def test_defaults_load_and_offers_are_configured():
    s = load_settings(environ={})
    assert s.features.horizons_days == [30, 90]
    assert {o.name for o in s.retention.offers} >= {"discount", "service_recovery_call"}
    assert s.features.tiers.diamond > s.features.tiers.gold > s.features.tiers.silver


def test_environment_overrides_nested_keys():
    s = load_settings(environ={"CHURN_MODELS__TRIALS": "3", "CHURN_HOME": "/tmp/x"})
    assert s.models.trials == 3
    assert str(s.home) == "/tmp/x"


def test_yaml_file_then_env_then_explicit_home(tmp_path: Path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("models:\n  trials: 7\nretention:\n  budget: 5\n")
    s = load_settings([extra], home=tmp_path / "h", environ={"CHURN_RETENTION__BUDGET": "9"})
    assert s.models.trials == 7
    assert s.retention.budget == 9
    assert s.home == tmp_path / "h"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        (
            {"CHURN_EXECUTOR__KIND": "spark"},
            "executor.kind: got 'spark'; allowed values: 'local' or 'dask'",
        ),
        ({"CHURN_MODELS__TRIALS": "0"}, "models.trials"),
        ({"CHURN_MODELS__TRIALZ": "3"}, "models.trialz: unknown key"),
        ({"CHURN_FEATURES__TIERS__GOLD": "500"}, "diamond > gold > silver"),
        ({"CHURN_SCORING__CREDIT_GRADE_CUTOFFS": "[0.3, 0.1, 0.2, 0.4]"}, "credit_grade_cutoffs"),
    ],
)
def test_bad_values_name_the_key(env, fragment):
    with pytest.raises(ConfigError) as info:
        load_settings(environ=env)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_yaml_file_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings([bad], environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings([tmp_path / "missing.yaml"], environ={})


def test_config_hash_ignores_home_but_not_rules(tmp_path: Path):
    a = load_settings(home=tmp_path / "a", environ={})
    b = load_settings(home=tmp_path / "b", environ={})
    c = load_settings(home=tmp_path / "a", environ={"CHURN_RETENTION__BUDGET": "1"})
    assert config_hash(a) == config_hash(b) != config_hash(c)


def test_cli_bad_config_exits_2_without_traceback(tmp_path: Path):
    env = {"CHURN_EXECUTOR__KIND": "spark", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines", "config", "show"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "executor.kind" in proc.stderr


def test_unreachable_services_fail_fast_with_one_line(tmp_path: Path):
    import time

    env = {
        "PATH": "/usr/bin:/bin",
        "CHURN_TRACKING__TRACKING_URI": "http://127.0.0.1:9",
    }
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines", "--home", str(tmp_path), "doctor"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "MLflow tracking server at http://127.0.0.1:9/health is unreachable" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - started < 30
    env = {"PATH": "/usr/bin:/bin", "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines", "--home", str(tmp_path), "doctor"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert proc.returncode == 1 and "Prefect API" in proc.stderr


def _schema_fields(model, path=()):
    """Every (dotted path, field) of the typed config, sections included."""
    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        yield (*path, name), field
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _schema_fields(field.annotation, (*path, name))


def _differences(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(k, "<missing>"), b.get(k, "<missing>"), f"{path}.{k}")
        return out
    return [] if a == b else [f"{path}: schema {a!r} vs default.yaml {b!r}"]


def test_schema_defaults_equal_default_yaml():
    """One value per rule: a default in the schema never disagrees with default.yaml."""
    from configs.schema import Settings

    from_yaml = load_settings(environ={}, home="/tmp/x")
    required = {
        name for name, f in Settings.model_fields.items() if f.is_required() and name != "home"
    }
    defaults = Settings(home="/tmp/x", **{k: getattr(from_yaml, k) for k in required})
    assert _differences(defaults.model_dump(), from_yaml.model_dump()) == []


def test_every_config_key_is_read_somewhere():
    """A key nobody reads is a promise the system does not keep (the config test finds them)."""
    import re

    from configs.schema import Settings

    root = Path(__file__).resolve().parents[1]
    source = "\n".join(
        p.read_text()
        for folder in ("pipelines", "features", "models", "retention", "simulator", "dashboards")
        for p in (root / folder).rglob("*.py")
    )
    unread = []
    for path, _ in _schema_fields(Settings):
        name = path[-1]
        # A section handed on whole (`section.model_dump()`) is read by its receiver's arguments.
        whole = len(path) > 1 and re.search(rf"\.{path[-2]}\.model_dump\(\)", source)
        if not whole and not re.search(rf"\.{name}\b|[\"']{name}[\"']", source):
            unread.append(".".join(path))
    assert unread == []
