"""A run lock in the work directory so two cycles never write at once."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from pipelines.store.errors import WorkdirError

# Locks this process already holds: stage flows called inside a cycle re-enter freely
# (a second flock on the same file from one process would otherwise refuse itself).
_HELD: set[Path] = set()


@contextlib.contextmanager
def run_lock(path: Path, purpose: str, timeout_seconds: float = 0.0) -> Iterator[None]:
    """Hold an exclusive lock on `path`; a second holder gets a clear error.

    flock is released by the kernel when the holder dies, so a killed run never leaves a stale
    lock behind — the next run simply takes it.
    """
    path = path.resolve()
    if path in _HELD:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout_seconds
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    raise WorkdirError(
                        f"another run holds the lock {path} ({holder}); "
                        "wait for it to finish or stop it first"
                    ) from None
                time.sleep(0.5)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "purpose": purpose,
            "since": datetime.now().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _HELD.add(path)
        yield
    finally:
        _HELD.discard(path)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return "holder unknown"
    if not info:
        return "holder unknown"
    return f"{info.get('purpose', '?')} by pid {info.get('pid')} since {info.get('since')}"
