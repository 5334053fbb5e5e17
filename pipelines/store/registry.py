"""The model registry: champion and challenger models by name, loaded from MLflow."""

from __future__ import annotations

import mlflow
import pandas as pd
import polars as pl

from configs.contracts import CHURN_MODEL, CREDIT_MODEL
from configs.schema import Settings
from models import lgbm
from pipelines.store.errors import InputError
from pipelines.store.tracking import alias_missing, experiment_client
from pipelines.store.workdir import Workdir


def as_polars(model_input: pd.DataFrame | pl.DataFrame) -> pl.DataFrame:
    """A registered model's input as polars: scoring passes polars, MLflow serving pandas."""
    return model_input if isinstance(model_input, pl.DataFrame) else pl.from_pandas(model_input)


def load_bundle(settings: Settings, name: str, alias: str) -> tuple[lgbm.TrainedModel, str]:
    """The trained model behind a registry alias, and its version."""
    client, _ = experiment_client(settings)
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException as exc:
        if not alias_missing(exc):
            raise
        raise InputError(
            f"no {alias} version of model {name!r}: run `churn train --model ...` first"
        ) from None
    # The package-requirements check costs seconds on every load; the registered models are
    # trained and scored from the same locked environment (`churn doctor` checks the registry).
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@{alias}", suppress_warnings=True)
    return loaded.unwrap_python_model().trained, str(mv.version)


def has_champions(settings: Settings, names: tuple[str, ...] = (CHURN_MODEL, CREDIT_MODEL)) -> bool:
    """True when every named model has a champion version."""
    wd = Workdir.from_settings(settings)
    if wd.no_mlflow_store(settings):
        return False  # a client would create the store here, outside experiment_client
    client = mlflow.MlflowClient(tracking_uri=wd.tracking_uri(settings))
    for name in names:
        try:
            client.get_model_version_by_alias(name, "champion")
        except mlflow.exceptions.MlflowException as exc:
            if not alias_missing(exc):
                raise  # a broken or locked store is not "no champion": retraining would hide it
            return False
    return True
