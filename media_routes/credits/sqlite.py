"""One way to open the credits databases (call cache index, ledger)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def connect(db: Path) -> Iterator[sqlite3.Connection]:
    """A fresh connection per operation, usable from any thread: commit on success, roll back on error, always close."""
    conn = sqlite3.connect(db, timeout=60.0)
    try:
        with conn:
            yield conn
    finally:
        conn.close()
