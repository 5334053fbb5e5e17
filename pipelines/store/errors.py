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


# What storage failures say (OS errors, and DuckDB's wording of them).
_STORAGE_ERRNOS = {13, 27, 28, 30, 122}  # EACCES, EFBIG, ENOSPC, EROFS, EDQUOT
_STORAGE_WORDS = (
    "could not write",
    "no space left",
    "file too large",
    "read-only file system",
    "permission denied",
    "disk quota",
)


def storage_failure(exc: BaseException) -> WorkdirError | None:
    """A full disk or unwritable work directory as one readable error, else None.

    The chain is searched: a failed commit is often followed by a failed rollback.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        found = _storage_one(exc)
        if found is not None:
            return found
        exc = exc.__cause__ or exc.__context__
    return None


def _storage_one(exc: BaseException) -> WorkdirError | None:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS:
        where = f" {exc.filename}" if exc.filename else ""
        return WorkdirError(
            f"cannot write{where}: {exc.strerror}; free disk space or fix permissions, then re-run "
            "(nothing half-written was kept)"
        )
    if any(w in first.lower() for w in _STORAGE_WORDS):
        return WorkdirError(
            f"cannot write to the work directory ({first[:300]}); free disk space or fix "
            "permissions, then re-run (the transaction was rolled back)"
        )
    return None
