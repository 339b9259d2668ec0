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
Results live in a :class:`~media_routes.credits.backends.BlobStore` under ``<key[:2]>/<key>``. Locally (the
default) that is ``root/<key[:2]>/<key>``: written to a temp file in the same directory, flushed, fsynced,
hard-linked into place (``os.link`` fails if the target exists, so a stored result is never overwritten), then
the directory is fsynced. On S3 it is ``s3://bucket/<prefix>/<key[:2]>/<key>``, put only when ``head_object``
finds nothing (write-once; the key lock makes the check-then-put race-free). An index (``db``: a SQLite file,
or any :class:`~media_routes.credits.backends.StateDB` such as PostgreSQL) holds size, sha256, creation time and
caller metadata. The stored bytes are the source of truth: bytes without an index row (crash between the two
writes) are a hit and the row is repaired; a row without bytes is a miss (the new payment's row replaces it).
A hit whose bytes no longer match the indexed sha256 raises :class:`CacheCorruptError` instead of silently
paying again.

:meth:`CallCache.get_or_call` stores the raw provider result *before* returning it, so a crash in the caller's
post-processing never pays twice on re-run.

Locking
-------
One exclusive lock per key (a :class:`~media_routes.credits.backends.KeyLocks`): by default an ``fcntl.flock``
on ``root/.locks/<key[:2]>/<key>.lock``; when the index is on PostgreSQL, ``pg_advisory_lock`` on a connection
held for the call (the server releases it when the holder's connection ends, so it works across machines and a
killed holder frees it, like flock). The rest of this section describes the flock default.

A miss takes the lock, checks the store again, calls ``fn`` once, stores the result and releases the lock; a
concurrent identical call blocks on the lock and then finds the stored result (a hit). flock locks belong to the
open file description, so they exclude both other processes and other threads of this process (each call opens
its own descriptor; each advisory lock has its own connection, so the same holds there).

Chosen over claiming a SQLite row in a transaction because the kernel releases a flock when its holder dies
(a crashed or killed worker cannot leave a key claimed forever, no lease/timeout recovery is needed), waiters
block without polling, and the lock never holds a SQLite write lock open during a minutes-long provider call
(which would stall every other writer of the index). If ``fn`` raises, nothing is stored, the lock is released
and the next identical call calls ``fn`` again. Limits: flock is per host; sharing a store between machines
needs a filesystem with working flock (local disk, or NFSv4 where Linux emulates it with POSIX locks) and
SQLite is not safe on every network filesystem, so a multi-machine store wants Postgres for the index (and
then the advisory lock) and S3 for the bytes; see :mod:`media_routes.credits.backends`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from media_routes.credits.backends import (
    BlobStore,
    Conn,
    KeyLocks,
    LocalBlobStore,
    StateDB,
    as_state_db,
    default_locks,
)

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
);
CREATE TABLE IF NOT EXISTS call_sends (
    call_key   VARCHAR(64) NOT NULL,
    run_id     VARCHAR(64) NOT NULL,
    sends      INTEGER NOT NULL,
    updated_at VARCHAR(40) NOT NULL,
    PRIMARY KEY (call_key, run_id)
);
CREATE TABLE IF NOT EXISTS call_jobs (
    call_key   VARCHAR(64) NOT NULL,
    job_id     VARCHAR(300) NOT NULL,
    provider   VARCHAR(40) NOT NULL,
    model      VARCHAR(200) NOT NULL,
    state      VARCHAR(16) NOT NULL,
    run_id     VARCHAR(64) NOT NULL,
    created_at VARCHAR(40) NOT NULL,
    updated_at VARCHAR(40) NOT NULL,
    resume_with TEXT NULL,
    PRIMARY KEY (call_key, job_id)
)
"""

# states of a provider's long-running job kept under its call key (call_jobs): a job ``submitted`` or ``ready`` is
# resumable (a later attempt of the call waits on it and fetches its result instead of paying for a new one)
JOB_SUBMITTED, JOB_READY = "submitted", "ready"
JOB_STORED = "stored"  # its result is in the cache
JOB_FAILED = "failed"  # it finished with an error (or its result was blocked): waiting on it again gives the same
JOB_GONE = "gone"  # the provider no longer knows it (expired): a later attempt submits a new job
JOB_STATES = (JOB_SUBMITTED, JOB_READY, JOB_STORED, JOB_FAILED, JOB_GONE)
RESUMABLE_JOB_STATES = (JOB_SUBMITTED, JOB_READY)
# where a synchronous paid answer is kept, beside the results, from its arrival until its result is stored
KEPT_ANSWERS = "kept-answers"


@dataclass(frozen=True)
class CallJob:
    """A provider's long-running job (a Veo operation, a Kling task) made for one call key."""

    call_key: str
    job_id: str
    provider: str
    model: str
    state: str
    run_id: str  # the run that last reported it
    created_at: str
    updated_at: str
    resume_with: str | None = None  # what the adapter waits on it with, when more than the id (fal: its URLs)

    @property
    def resumable(self) -> bool:
        return self.state in RESUMABLE_JOB_STATES

    @property
    def handle(self) -> str:
        """What :func:`providers.receipts.resuming` hands the adapter: ``resume_with``, else the job id."""
        return self.resume_with or self.job_id


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
    """Outcome of :meth:`CallCache.get_or_call`: ``hit`` is False only for the call that actually ran ``fn``.

    ``path`` is the local file (None when the results are on S3); ``uri`` names the stored result either way.
    """

    hit: bool
    data: bytes
    key: str
    path: Path | None
    created_at: str
    meta: dict[str, Any] = field(default_factory=dict)
    uri: str = ""


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _check_key(key: str) -> None:
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise ValueError(f"not a call key (64 lower-case hex characters): {key!r}")


class CallCache:
    """Content-addressed result store with an index; safe across threads, processes and (shared backends) machines.

    ``CallCache(root, db)`` is today's local store: files under ``root``, a SQLite index at ``db``, flock locks.
    ``db`` may be any :class:`StateDB` (PostgreSQL: the lock becomes an advisory lock), ``blobs`` another
    :class:`BlobStore` (S3; ``root`` is then only needed for local locks), ``locks`` another :class:`KeyLocks`.
    """

    def __init__(
        self,
        root: Path | None,
        db: Path | StateDB,
        *,
        lock_timeout: float | None = None,
        blobs: BlobStore | None = None,
        locks: KeyLocks | None = None,
    ) -> None:
        self.root = Path(root) if root is not None else None
        self.db = as_state_db(db)
        self.lock_timeout = lock_timeout  # None: wait as long as the call holding the key takes
        if blobs is None:
            if self.root is None:
                raise ValueError("CallCache needs a root directory for local results (or a blob store)")
            blobs = LocalBlobStore(self.root)
        self.blobs = blobs
        self.answers = blobs.beside(KEPT_ANSWERS)
        self.locks = locks if locks is not None else default_locks(self.db, self.root)
        self.db.create_schema(_SCHEMA)

    def _connect(self) -> contextlib.AbstractContextManager[Conn]:
        return self.db.connect()

    def path_for(self, key: str) -> Path:
        """The local file of ``key``'s result (local blob store only)."""
        _check_key(key)
        path = self.blobs.local_path(key)
        if path is None:
            raise TypeError(f"results are not local files here: {self.blobs.uri(key)}")
        return path

    # -- reads -------------------------------------------------------------------------------------------

    def get(self, key: str) -> CacheResult | None:
        """The stored result for ``key`` as a hit, or None. Never calls anything."""
        _check_key(key)
        data = self.blobs.read(key)
        if data is None:
            return None
        path, uri = self.blobs.local_path(key), self.blobs.uri(key)
        with self._connect() as conn:
            row = conn.execute(
                "SELECT sha256, created_at, meta FROM cache_entries WHERE call_key = ?", (key,)
            ).fetchone()
        digest = hashlib.sha256(data).hexdigest()
        if row is None:  # crash between storing the bytes and the index insert: the bytes are the truth
            created = self.blobs.created(key)
            self._index(key, data, digest, created, {}, repair=True)
            return CacheResult(hit=True, data=data, key=key, path=path, created_at=created, meta={}, uri=uri)
        sha, created, meta = row
        if sha != digest:
            raise CacheCorruptError(f"cached result {uri} does not match its recorded sha256 {sha}")
        return CacheResult(hit=True, data=data, key=key, path=path, created_at=created, meta=json.loads(meta), uri=uri)

    def __contains__(self, key: str) -> bool:
        _check_key(key)
        return self.blobs.exists(key)

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

        Concurrent identical calls (threads, processes or machines sharing the store and its lock) wait for the
        one holding the key's lock and then return its stored result as a hit. If ``fn`` raises, nothing is
        stored. ``on_stored`` runs after the result is stored and before the lock is released (the ledger
        records the paid call there, so a waiter never sees a stored result whose payment is not yet written
        down).
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
            created = self._store(key, data, meta_dict)
            result = CacheResult(
                hit=False,
                data=data,
                key=key,
                path=self.blobs.local_path(key),
                created_at=created,
                meta=meta_dict,
                uri=self.blobs.uri(key),
            )
            if on_stored is not None:
                on_stored(result)
            return result

    # -- the send budget: one count per call key and run, shared by every layer that may re-send ---------------

    def sends(self, key: str, run_id: str) -> int:
        """How many times ``key``'s request was sent to the provider in run ``run_id`` (every attempt, every retry)."""
        _check_key(key)
        with self._connect() as conn:
            row = conn.execute(
                "SELECT sends FROM call_sends WHERE call_key = ? AND run_id = ?", (key, run_id)
            ).fetchone()
        return int(row[0]) if row else 0

    def count_send(self, key: str, run_id: str) -> int:
        """Count one more send of ``key`` in ``run_id`` (before it is sent) and return the new count.

        The adapter's retries, the route executor and Dagster's step retries of one run all go through here, so a
        step retry continues the count instead of restarting it (docs/routing.md, "Retries").
        """
        _check_key(key)
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO call_sends (call_key, run_id, sends, updated_at) VALUES (?, ?, 1, ?)"
                " ON CONFLICT (call_key, run_id) DO UPDATE SET sends = call_sends.sends + 1,"
                " updated_at = excluded.updated_at",
                (key, run_id, _utc_now()),
            )
            row = conn.execute(
                "SELECT sends FROM call_sends WHERE call_key = ? AND run_id = ?", (key, run_id)
            ).fetchone()
        return int(row[0])

    # -- long-running jobs: the provider's job id per call key, so an attempt after a timeout, a kill or a failed
    # download waits on the job already paid for instead of submitting (and paying for) another one ------------

    def record_job(
        self,
        key: str,
        job_id: str,
        *,
        provider: str,
        model: str,
        state: str,
        run_id: str,
        resume_with: str | None = None,
    ) -> None:
        """Keep (or move on) the state of ``key``'s job ``job_id``: see :data:`JOB_STATES`. ``resume_with`` is kept
        from the first report that gives it."""
        _check_key(key)
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}: one of {JOB_STATES}")
        now = _utc_now()
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO call_jobs (call_key, job_id, provider, model, state, run_id, created_at, updated_at,"
                " resume_with) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_key, job_id) DO UPDATE SET"
                " state = excluded.state, run_id = excluded.run_id, updated_at = excluded.updated_at,"
                " resume_with = COALESCE(call_jobs.resume_with, excluded.resume_with)",
                (key, job_id[:300], provider, model, state, run_id, now, now, resume_with),
            )

    def jobs(self, key: str) -> list[CallJob]:
        """Every job made for ``key``, oldest first."""
        _check_key(key)
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT call_key, job_id, provider, model, state, run_id, created_at, updated_at, resume_with"
                " FROM call_jobs"
                " WHERE call_key = ? ORDER BY created_at, job_id",
                (key,),
            ).fetchall()
        return [CallJob(*row) for row in rows]

    def resumable_job(self, key: str) -> CallJob | None:
        """The latest job of ``key`` still worth waiting on (submitted, or ready to fetch), or None."""
        resumable = [j for j in self.jobs(key) if j.resumable]
        return resumable[-1] if resumable else None

    # -- kept answers: a synchronous paid answer (Gemini's 200) is kept the moment it arrives, before its ledger row,
    # so a process killed before the result was stored leaves the answer to parse again instead of paying again -----

    def keep_answer(self, key: str, answer: bytes) -> None:
        """Keep ``key``'s paid answer as it arrived (under the key's lock, before anything is done with it)."""
        _check_key(key)
        if self.answers.exists(key):  # an earlier kept answer of the key, booked but not removed: replaced
            self.answers.delete(key)
        self.answers.write_once(key, answer)

    def kept_answer(self, key: str) -> bytes | None:
        """``key``'s kept answer, or None."""
        _check_key(key)
        return self.answers.read(key)

    def kept_answer_exists(self, key: str) -> bool:
        _check_key(key)
        return self.answers.exists(key)

    def drop_answer(self, key: str) -> None:
        """Forget ``key``'s kept answer once what came of it is settled (its result stored, or its failure booked)."""
        _check_key(key)
        self.answers.delete(key)

    # -- internals -----------------------------------------------------------------------------------------

    def key_lock(self, key: str) -> contextlib.AbstractContextManager[None]:
        """Hold ``key``'s exclusive lock (the one a paying call holds from its check to its ledger row)."""
        return self.locks.hold(key, self.lock_timeout)

    def _store(self, key: str, data: bytes, meta: dict[str, Any]) -> str:
        self.blobs.write_once(key, data)
        created = _utc_now()
        self._index(key, data, hashlib.sha256(data).hexdigest(), created, meta, repair=False)
        return created

    def _index(self, key: str, data: bytes, digest: str, created: str, meta: dict[str, Any], *, repair: bool) -> None:
        # The payer (under the key's lock, having found no stored bytes) describes what it just stored, so its row
        # replaces any other: a repair row a lock-free reader wrote between the payer's two writes (no meta), or a
        # stale row whose bytes were deleted (an S3 lifecycle rule, a cleaned directory), which would otherwise
        # make the new bytes look corrupt. A repair never replaces anything.
        conflict = (
            "DO NOTHING"
            if repair
            else "DO UPDATE SET path = excluded.path, size = excluded.size, sha256 = excluded.sha256,"
            " created_at = excluded.created_at, meta = excluded.meta"
        )
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO cache_entries (call_key, path, size, sha256, created_at, meta) VALUES (?, ?, ?, ?, ?, ?)"
                f" ON CONFLICT (call_key) {conflict}",
                (key, BlobStore.name(key), len(data), digest, created, json.dumps(meta, sort_keys=True)),
            )
