"""Errors that reach the user as one readable line and a non-zero exit code, never a traceback."""

from __future__ import annotations


class ChurnError(Exception):
    """Base for problems the user can fix (bad input, bad config, unusable work directory)."""

    exit_code = 1


class ConfigError(ChurnError, ValueError):
    """A configuration problem, worded for the person who wrote the config."""

    exit_code = 2


class WorkdirError(ChurnError, RuntimeError):
    """The work directory cannot be used (missing, read-only, full, locked)."""


class InputError(ChurnError, ValueError):
    """Input data (a file, a column, a date) is not usable as given."""


class ServiceError(ChurnError, RuntimeError):
    """A service the pipeline needs (Prefect API, MLflow tracking server) cannot be reached."""
