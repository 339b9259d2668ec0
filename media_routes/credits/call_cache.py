"""Persistent, content-addressed cache of provider call results: an identical call is never paid twice.

Key
---
:func:`call_key` is the sha256 of a canonical JSON document built from provider, model, model version,
parameters, input content hashes and seed. Normalisation (format version ``1``):

* dict keys are sorted (so parameter order never matters); tuples become lists;
* parameters whose value is ``None`` are dropped, recursively in nested dicts ("not sent" == "sent as null");
  ``None`` inside lists is kept because list positions are meaningful;
* floats are rounded to 12 significant digits (``0.1 + 0.2`` and ``0.3`` give the same key), and a float with
  an integral value becomes an int (``1.0`` and ``1`` give the same key); NaN and infinities are rejected;
* booleans stay booleans (``True`` is not ``1``); strings are used verbatim (no case or Unicode folding);
* input hashes are lower-cased; ``model_version`` and ``seed`` are kept even when ``None`` (an unseeded call
  is its own key; a deliberate re-roll must change the seed so it misses the cache);
* bytes or other objects are rejected: pass content hashes in ``input_hashes`` instead.

Storage
-------
Results live in ``root/<key[:2]>/<key>``: written to a temp file in the same directory, flushed, fsynced,
hard-linked into place (``os.link`` fails if the target exists, so a stored result is never overwritten), then
the directory is fsynced. A SQLite index (``db``) holds size, sha256, creation time and caller metadata. The
file is the source of truth: a file without an index row (crash between the two writes) is a hit and the row is
repaired; a row without a file is a miss. A hit whose bytes no longer match the indexed sha256 raises
:class:`CacheCorruptError` instead of silently paying again.

:meth:`CallCache.get_or_call` stores the raw provider result *before* returning it, so a crash in the caller's
post-processing never pays twice on re-run.

Locking
-------
One exclusive ``fcntl.flock`` per key on ``root/.locks/<key[:2]>/<key>.lock``. A miss takes the lock, checks the
store again, calls ``fn`` once, stores the result and releases the lock; a concurrent identical call blocks on
the lock and then finds the stored result (a hit). flock locks belong to the open file description, so they
exclude both other processes and other threads of this process (each call opens its own descriptor).

Chosen over claiming a SQLite row in a transaction because the kernel releases a flock when its holder dies
(a crashed or killed worker cannot leave a key claimed forever, no lease/timeout recovery is needed), waiters
block without polling, and the lock never holds a SQLite write lock open during a minutes-long provider call
(which would stall every other writer of the index). If ``fn`` raises, nothing is stored, the lock is released
and the next identical call calls ``fn`` again. Limits: flock is per host; sharing a store between machines
needs a filesystem with working flock (local disk, or NFSv4 where Linux emulates it with POSIX locks) and
SQLite is not safe on every network filesystem, so a multi-machine store wants Postgres for the index.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from media_routes.credits.sqlite import connect

KEY_FORMAT_VERSION = 1
_FLOAT_DIGITS = 12

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cache_entries (
    call_key   VARCHAR(64) PRIMARY KEY,
    path       TEXT NOT NULL,
    size       BIGINT NOT NULL,
    sha256     VARCHAR(64) NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    meta       TEXT NOT NULL
)
"""


class CacheCorruptError(RuntimeError):
    """A stored result no longer matches the sha256 recorded when it was written."""


def _normalise(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"call_key: non-finite float at {where}: {value!r}")
        rounded = float(f"{value:.{_FLOAT_DIGITS}g}")
        return int(rounded) if rounded.is_integer() else rounded
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"call_key: non-string key {k!r} at {where}")
            if v is None:
                continue
            out[k] = _normalise(v, f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [_normalise(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise TypeError(f"call_key: unsupported type {type(value).__name__} at {where}; pass content hashes instead")


def canonical_json(
    provider: str,
    model: str,
    model_version: str | None,
    params: Mapping[str, Any],
    input_hashes: Mapping[str, str],
    seed: int | None,
) -> str:
    """The canonical JSON document that :func:`call_key` hashes (exposed for debugging key mismatches)."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"call_key: seed must be an int or None, got {seed!r}")
    doc = {
        "v": KEY_FORMAT_VERSION,
        "provider": provider,
        "model": model,
        "model_version": model_version,
        "params": _normalise(params, "params"),
        "inputs": {str(k): str(v).lower() for k, v in input_hashes.items()},
        "seed": seed,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def call_key(
    provider: str,
    model: str,
    model_version: str | None,
    params: Mapping[str, Any],
    input_hashes: Mapping[str, str],
    seed: int | None,
) -> str:
    """sha256 (hex) of the canonical call description; see the module docstring for the normalisation."""
    doc = canonical_json(provider, model, model_version, params, input_hashes, seed)
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CacheResult:
    """Outcome of :meth:`CallCache.get_or_call`: ``hit`` is False only for the call that actually ran ``fn``."""

    hit: bool
    data: bytes
    key: str
    path: Path
    created_at: str
    meta: dict[str, Any] = field(default_factory=dict)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _check_key(key: str) -> None:
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise ValueError(f"not a call key (64 lower-case hex characters): {key!r}")


class CallCache:
    """Content-addressed result store under ``root`` with a SQLite index at ``db``; safe across threads/processes."""

    def __init__(self, root: Path, db: Path, *, lock_timeout: float | None = None) -> None:
        self.root = Path(root)
        self.db = Path(db)
        self.lock_timeout = lock_timeout  # None: wait as long as the call holding the key takes
        self.root.mkdir(parents=True, exist_ok=True)
        self.db.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(_SCHEMA)

    def _connect(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return connect(self.db)

    def path_for(self, key: str) -> Path:
        _check_key(key)
        return self.root / key[:2] / key

    # -- reads -------------------------------------------------------------------------------------------

    def get(self, key: str) -> CacheResult | None:
        """The stored result for ``key`` as a hit, or None. Never calls anything."""
        path = self.path_for(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        with self._connect() as conn:
            row = conn.execute(
                "SELECT sha256, created_at, meta FROM cache_entries WHERE call_key = ?", (key,)
            ).fetchone()
        digest = hashlib.sha256(data).hexdigest()
        if row is None:  # crash between the file rename and the index insert: the file is the truth
            created = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="microseconds")
            self._index(key, path, data, digest, created, {})
            return CacheResult(hit=True, data=data, key=key, path=path, created_at=created, meta={})
        sha, created, meta = row
        if sha != digest:
            raise CacheCorruptError(f"cached result {path} does not match its recorded sha256 {sha}")
        return CacheResult(hit=True, data=data, key=key, path=path, created_at=created, meta=json.loads(meta))

    def __contains__(self, key: str) -> bool:
        return self.path_for(key).exists()

    # -- the central method ------------------------------------------------------------------------------

    def get_or_call(
        self,
        key: str,
        fn: Callable[[], bytes],
        *,
        meta: Mapping[str, Any] | None = None,
        on_stored: Callable[[CacheResult], None] | None = None,
    ) -> CacheResult:
        """Return the stored result for ``key``, or call ``fn`` once, store its bytes durably, then return them.

        Concurrent identical calls (threads or processes sharing ``root``) wait for the one holding the key's
        lock and then return its stored result as a hit. If ``fn`` raises, nothing is stored. ``on_stored`` runs
        after the result is stored and before the lock is released (the ledger records the paid call there, so
        a waiter never sees a stored result whose payment is not yet written down).
        """
        found = self.get(key)
        if found is not None:
            return found
        with self.key_lock(key):
            found = self.get(key)  # another caller may have paid while we waited
            if found is not None:
                return found
            data = fn()
            if not isinstance(data, bytes | bytearray | memoryview):
                raise TypeError(f"cache fn must return bytes, got {type(data).__name__}; nothing stored")
            data = bytes(data)
            meta_dict = dict(meta or {})
            path, created = self._store(key, data, meta_dict)
            result = CacheResult(hit=False, data=data, key=key, path=path, created_at=created, meta=meta_dict)
            if on_stored is not None:
                on_stored(result)
            return result

    # -- internals -----------------------------------------------------------------------------------------

    @contextmanager
    def key_lock(self, key: str) -> Iterator[None]:
        """Hold ``key``'s exclusive lock (the one a paying call holds from its check to its ledger row)."""
        lock_path = self.root / ".locks" / key[:2] / f"{key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if self.lock_timeout is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                self._flock_with_timeout(fd, key)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)  # lock files are left in place: unlinking them would race with waiters

    def _flock_with_timeout(self, fd: int, key: str) -> None:
        assert self.lock_timeout is not None
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"call key {key} is still locked by another caller") from None
                time.sleep(0.05)

    def _store(self, key: str, data: bytes, meta: dict[str, Any]) -> tuple[Path, str]:
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp_name, path)  # never overwrites an existing result
            except FileExistsError:
                pass  # only reachable if someone bypassed the lock; the first stored result wins
        finally:
            os.unlink(tmp_name)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        created = _utc_now()
        self._index(key, path, data, hashlib.sha256(data).hexdigest(), created, meta)
        return path, created

    def _index(self, key: str, path: Path, data: bytes, digest: str, created: str, meta: dict[str, Any]) -> None:
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO cache_entries (call_key, path, size, sha256, created_at, meta) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (call_key) DO NOTHING",
                (key, str(path.relative_to(self.root)), len(data), digest, created, json.dumps(meta, sort_keys=True)),
            )
