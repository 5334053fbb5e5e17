"""Shared fixtures: every test gets its own work directory; nothing touches the repo's .churn/."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Set before prefect/mlflow are imported anywhere in the session.
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="churn-tests-"))
os.environ.setdefault("PREFECT_HOME", str(_SESSION_TMP / "prefect"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
for _name in list(os.environ):
    if _name.startswith("CHURN_"):
        del os.environ[_name]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh work directory."""
    return tmp_path / "home"


@pytest.fixture
def make_settings(home: Path):
    """Build Settings for a test's work directory, with optional overrides."""
    from pipelines.store.config import load_settings

    def _make(**overrides):
        return load_settings(home=home, environ={}, overrides=overrides)

    return _make


@pytest.fixture
def settings(make_settings):
    return make_settings()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


# Tests of the pure core (features/, models/, retention/, configs/): no work directory, no
# services, nothing from the shell. `pytest -m unit` runs them alone in well under a minute.
_IO_FIXTURES = {"home", "settings", "make_settings", "tmp_path", "tmp_path_factory", "shared_data"}
_IO_MARKS = {"integration", "browser", "faults", "slow"}
_SHELL_WORDS = ("pipelines", "simulator", "dashboards", "subprocess", "duckdb.connect")


def _is_unit(item) -> bool:
    import inspect

    if _IO_FIXTURES & set(getattr(item, "fixturenames", ())):
        return False
    if any(item.get_closest_marker(m) for m in _IO_MARKS):
        return False
    try:
        source = inspect.getsource(item.function)
    except (OSError, TypeError, AttributeError):
        return False
    return not any(word in source for word in _SHELL_WORDS)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _is_unit(item):
            item.add_marker(pytest.mark.unit)
