"""A broken store is an error, never "no data": only a missing table or model means "none yet"."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from pipelines.store.config import load_settings


def test_a_damaged_build_log_is_not_read_as_not_stale(tmp_path):
    from pipelines.run.flows import _snapshots_stale

    settings = load_settings(home=tmp_path, environ={})
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("CREATE SCHEMA feat")
    assert _snapshots_stale(settings, date(2025, 6, 30)) is False  # no build log yet: fine
    con.execute("CREATE TABLE feat.build_log (as_of DATE, stale VARCHAR)")
    con.execute("INSERT INTO feat.build_log VALUES ('2025-05-31', 'perhaps')")
    con.close()
    with pytest.raises(duckdb.ConversionException):
        _snapshots_stale(settings, date(2025, 6, 30))


def test_an_unreadable_model_registry_is_not_read_as_no_champion(tmp_path):
    from mlflow.exceptions import MlflowException

    from pipelines.store.registry import has_champions as _has_champions
    from pipelines.store.tracking import experiment_client

    settings = load_settings(home=tmp_path, environ={})
    experiment_client(settings)
    assert _has_champions(settings) is False  # a whole, empty registry: no champion yet
    store = Path(tmp_path) / "mlflow" / "mlflow.db"
    store.write_bytes(b"this is not a database" * 100)
    with pytest.raises(MlflowException):
        _has_champions(settings)
