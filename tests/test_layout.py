"""The layout change keeps users' state working: models registered under old module paths load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

LOAD = """
import sys
import mlflow
model = mlflow.pyfunc.load_model(sys.argv[1])
python_model = model.unwrap_python_model()
print(type(python_model).__module__, type(python_model).__name__, python_model.label)
"""


@pytest.mark.parametrize(
    ("old_module", "cls_path"),
    [
        ("pipelines.training", "pipelines.stages.train.BundleModel"),
        ("pipelines.uplift", "pipelines.stages.uplift.UpliftBundle"),
    ],
)
def test_model_pickled_under_the_old_module_path_still_loads(
    tmp_path: Path, old_module: str, cls_path: str
):
    """MLflow cloudpickles a PythonModel by module and class name; before the layout change those
    names were pipelines.training / pipelines.uplift. A model saved that way loads in a fresh
    process (no module cached) as the class that now holds the code."""
    import importlib

    import mlflow

    module_name, cls_name = cls_path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module_name), cls_name)
    wrapper = cls.__new__(cls)  # the state is irrelevant here: only the class reference is
    wrapper.label = "churn_90d"
    importlib.import_module(old_module)  # in sys.modules, so cloudpickle saves a reference
    cls.__module__ = old_module  # pickled as the old layout did
    try:
        mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=wrapper)
    finally:
        cls.__module__ = module_name
    assert old_module.encode() in (tmp_path / "model" / "python_model.pkl").read_bytes()
    out = subprocess.run(
        [sys.executable, "-c", LOAD, str(tmp_path / "model")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == [module_name, cls_name, "churn_90d"]
