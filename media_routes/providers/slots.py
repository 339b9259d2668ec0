"""Provider concurrency slots shared by every process on a machine (run workers of a backfill).

``ProviderSlots(root, "fal", 4)`` is a context manager holding one of four slot files locked with
``fcntl.flock`` for the duration of one provider job (submit, wait, download). Locks die with their
process, so a killed run worker never leaks a slot. Inside a Dagster run each provider job also holds a
slot of its provider's Dagster pool (``defs/provider_pools.py``); these slots are the machine-wide guard
that applies to any caller (see docs/routing.md, "Concurrency").
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType


class ProviderSlots:
    def __init__(self, root: Path, name: str, limit: int, *, poll_s: float = 0.02) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.dir = Path(root) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.limit = limit
        self.poll_s = poll_s
        self._fd: int | None = None
        self.waited_s = 0.0

    def __enter__(self) -> ProviderSlots:
        start = time.monotonic()
        while True:
            for i in range(self.limit):
                fd = os.open(self.dir / f"slot-{i}", os.O_CREAT | os.O_RDWR, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self._fd = fd
                self.waited_s = time.monotonic() - start
                return self
            time.sleep(self.poll_s)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
