"""The I/O shell: CLI (`cli/`), stages (`stages/`), running them (`run/`), storage (`store/`)."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# Models registered in MLflow before the layout change were pickled with these module paths
# (cloudpickle stores a class by module and name); they must keep loading.
LEGACY_MODULES = {
    "pipelines.training": "pipelines.stages.train",
    "pipelines.uplift": "pipelines.stages.uplift",
}


class _LegacyAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Import an old module path as the module that now holds its code."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in LEGACY_MODULES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(LEGACY_MODULES[spec.name])

    def exec_module(self, module):
        pass  # the real module ran when create_module imported it


sys.meta_path.append(_LegacyAlias())
