"""Where the credits state lives: the database, the per-key lock and the cached results' bytes (issue #7).

Three seams, each with a local default (one machine, today's behaviour) and a shared backend (several run
workers on several machines):

* database (:class:`StateDB`): SQLite files under the state directory, or PostgreSQL;
* key lock (:class:`KeyLocks`): ``fcntl.flock`` on a lock file, or a PostgreSQL advisory lock (always, when the
  database is PostgreSQL);
* results (:class:`BlobStore`): files under ``<state>/cache``, or objects in S3.

Environment (read once, when the code location loads, into the fields of the ``providers`` resource by
``media_routes.defs.providers.provider_hub_from_env``, so the UI's Resources tab shows where state lives; the
builders here, :func:`state_db` and :func:`blob_store`, take those values and read no environment):

``MEDIA_ROUTES_STATE_DB_URL``
    unset or empty: SQLite (``calls.sqlite`` and ``ledger.sqlite`` in the state directory).
    ``postgresql://user:pass@host:5432/db`` (also ``postgres://`` or ``postgresql+psycopg2://``; libpq
    query parameters such as ``?sslmode=require`` pass through): the call cache index and the ledger tables
    go to that database, and the per-key lock becomes a PostgreSQL advisory lock. Driver: psycopg2.
``MEDIA_ROUTES_STATE_S3_BUCKET``
    unset: cached results are files under ``<state>/cache``. Set: they are objects in that bucket.
``MEDIA_ROUTES_STATE_S3_PREFIX``
    key prefix in the bucket (default ``call-cache``); objects are ``<prefix>/<key[:2]>/<key>``.
``MEDIA_ROUTES_S3_ENDPOINT_URL``, ``AWS_REGION``
    an S3-compatible endpoint and the region, shared with the S3 media store; credentials come from the
    usual boto3 chain (``AWS_ACCESS_KEY_ID``..., an instance or task role).

Several machines are safe only with all three shared: Postgres alone with local result files would make
each machine pay once for its own copy (an index row without the result bytes is a miss); S3 alone with SQLite
and flock gives no lock between machines.

SQL is written once, portable, with ``?`` placeholders; :class:`Conn` translates them to psycopg2's ``%s``
(the statements contain no literal ``?`` or ``%``). Booleans are bound as Python ``bool`` (SQLite stores
0/1, PostgreSQL needs a real ``BOOLEAN``).

The advisory lock is taken on a dedicated autocommit connection held for the whole paid call, so each
in-flight paid call (and each waiter) holds one PostgreSQL connection: size ``max_connections`` for it.
The server releases the lock when that connection ends: a killed worker's socket is closed by its kernel
at once; a machine that vanishes without closing it holds the lock until the server's TCP keepalive
(``tcp_keepalives_*`` in postgresql.conf) declares the connection dead. If the lock connection is lost
*during* a call (a Postgres restart), the lock is gone too and a concurrent identical call may pay again;
this is logged when the holder finds out at unlock.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import logging
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self

import pandas as pd

from media_routes.credits import sqlite as _sqlite
from media_routes.lib.object_store import (
    DEFAULT_WRITE_BUDGET_S,
    LocalObjectStore,
    ObjectStore,
    S3ObjectStore,
    s3_client,
)

log = logging.getLogger(__name__)

ENV_STATE_DB_URL = "MEDIA_ROUTES_STATE_DB_URL"
ENV_STATE_S3_BUCKET = "MEDIA_ROUTES_STATE_S3_BUCKET"
ENV_STATE_S3_PREFIX = "MEDIA_ROUTES_STATE_S3_PREFIX"
ENV_S3_ENDPOINT = "MEDIA_ROUTES_S3_ENDPOINT_URL"  # same variable as the S3 media store's
ENV_REGION = "AWS_REGION"
DEFAULT_S3_PREFIX = "call-cache"

_PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2")


def advisory_id(name: str) -> int:
    """A signed 64-bit advisory-lock id for ``name``, namespaced so it cannot meet another application's ids."""
    digest = hashlib.sha256(f"media_routes.credits:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# -- database ------------------------------------------------------------------------------------------------


class Conn:
    """One open connection of either backend; SQL is written with ``?`` placeholders."""

    def __init__(self, raw: Any, paramstyle: str) -> None:
        self.raw = raw
        self.paramstyle = paramstyle  # "qmark" (sqlite3) or "format" (psycopg2)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; returns a DB-API cursor (``fetchone``/``fetchall``)."""
        if self.paramstyle == "qmark":
            return self.raw.execute(sql, tuple(params))
        if "%" in sql:
            raise ValueError("credits SQL must not contain '%' (it would clash with psycopg2's placeholders)")
        cur = self.raw.cursor()
        cur.execute(sql.replace("?", "%s"), tuple(params))
        return cur

    def frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        """A query's rows as a DataFrame, built the same way on both backends (what ``pd.read_sql_query`` does)."""
        cur = self.execute(sql, params)
        columns = [d[0] for d in cur.description]
        return pd.DataFrame.from_records(cur.fetchall(), columns=columns, coerce_float=True)


class StateDB(ABC):
    """A credits database: :meth:`connect` gives a fresh connection per operation (commit, or roll back, then close)."""

    kind: str

    @abstractmethod
    def connect(self) -> contextlib.AbstractContextManager[Conn]: ...

    def create_schema(self, sql: str) -> None:
        """Run ``;``-separated ``CREATE ... IF NOT EXISTS`` statements in one transaction."""
        with self.connect() as conn:
            self._serialise_schema(conn)
            for statement in sql.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def _serialise_schema(self, conn: Conn) -> None:  # noqa: B027 - optional hook, nothing to do by default
        return None


class SQLiteDB(StateDB):
    """One SQLite file (the default: one machine)."""

    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def connect(self) -> Iterator[Conn]:
        with _sqlite.connect(self.path) as raw:
            yield Conn(raw, "qmark")

    def __repr__(self) -> str:
        return f"SQLiteDB({str(self.path)!r})"


class PostgresDB(StateDB):
    """A PostgreSQL database (psycopg2), given as ``postgresql://`` / ``postgresql+psycopg2://`` URL."""

    kind = "postgres"

    def __init__(self, url: str, *, connect_timeout: int = 10) -> None:
        import psycopg2.extensions

        scheme, sep, rest = url.strip().partition("://")
        if not sep or scheme.lower() not in _PG_SCHEMES:
            raise ValueError(
                f"{ENV_STATE_DB_URL}: unsupported database URL scheme {scheme!r}: use postgresql://user:pass@host/db"
                " (psycopg2), or leave it unset for SQLite"
            )
        self.params: dict[str, Any] = dict(psycopg2.extensions.parse_dsn(f"postgresql://{rest}"))
        self.params.setdefault("connect_timeout", str(connect_timeout))
        # the client notices a dead server on a held lock connection; the server side is postgresql.conf's
        for name, value in (("keepalives", "1"), ("keepalives_idle", "30"), ("keepalives_interval", "10")):
            self.params.setdefault(name, value)
        self.params.setdefault("keepalives_count", "3")
        self.params.setdefault("application_name", "media_routes.credits")

    def raw_connection(self) -> Any:
        import psycopg2

        return psycopg2.connect(**self.params)

    @contextmanager
    def connect(self) -> Iterator[Conn]:
        raw = self.raw_connection()
        try:
            yield Conn(raw, "format")
            raw.commit()
        except BaseException:
            with contextlib.suppress(Exception):  # a broken connection cannot roll back; closing discards it
                raw.rollback()
            raise
        finally:
            raw.close()

    def _serialise_schema(self, conn: Conn) -> None:
        # concurrent CREATE TABLE IF NOT EXISTS can fail on PostgreSQL (unique violation in pg_type): one at a time
        conn.execute("SELECT pg_advisory_xact_lock(?)", (advisory_id("schema"),))

    def __repr__(self) -> str:  # never the password
        p = self.params
        return f"PostgresDB({p.get('user', '')}@{p.get('host', '')}:{p.get('port', '5432')}/{p.get('dbname', '')})"


def as_state_db(db: Path | str | StateDB) -> StateDB:
    """A :class:`StateDB` as is; a path is a SQLite file (today's signature of CallCache/Ledger)."""
    return db if isinstance(db, StateDB) else SQLiteDB(Path(db))


def state_db(url: str | None, sqlite_path: Path) -> StateDB:
    """PostgreSQL at ``url`` (``$MEDIA_ROUTES_STATE_DB_URL``) when given, else the SQLite file ``sqlite_path``."""
    url = (url or "").strip()
    return PostgresDB(url) if url else SQLiteDB(sqlite_path)


# -- key locks -----------------------------------------------------------------------------------------------


class KeyLocks(ABC):
    """One exclusive lock per call key, held by a paying call from its re-check to its ledger row."""

    @abstractmethod
    def hold(self, key: str, timeout: float | None) -> contextlib.AbstractContextManager[None]:
        """Hold ``key``'s lock (``timeout`` None: wait as long as the holder takes; else TimeoutError)."""


class FileKeyLocks(KeyLocks):
    """``fcntl.flock`` on ``root/<key[:2]>/<key>.lock`` (per host; the kernel releases it when its holder dies)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @contextmanager
    def hold(self, key: str, timeout: float | None) -> Iterator[None]:
        lock_path = self.root / key[:2] / f"{key}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if timeout is None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() >= deadline:
                            raise TimeoutError(f"call key {key} is still locked by another caller") from None
                        time.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)  # lock files are left in place: unlinking them would race with waiters


class PgAdvisoryKeyLocks(KeyLocks):
    """``pg_advisory_lock(id(key))`` on a dedicated connection held for the call; the server frees it if we die."""

    def __init__(self, db: PostgresDB, *, poll_s: float = 0.05) -> None:
        self.db = db
        self.poll_s = poll_s

    @contextmanager
    def hold(self, key: str, timeout: float | None) -> Iterator[None]:
        import psycopg2

        lock = advisory_id(f"call_key:{key}")
        conn = self.db.raw_connection()
        try:
            conn.autocommit = True  # idle between statements, never "idle in transaction" during the call
            with conn.cursor() as cur:
                cur.execute("SET statement_timeout = 0")  # a server default must not cancel the wait
                if conn.server_version >= 140000:
                    cur.execute("SET idle_session_timeout = 0")  # nor end the session during a long call
                if timeout is None:
                    cur.execute("SELECT pg_advisory_lock(%s)", (lock,))
                else:
                    deadline = time.monotonic() + timeout
                    while True:
                        cur.execute("SELECT pg_try_advisory_lock(%s)", (lock,))
                        if cur.fetchone()[0]:
                            break
                        if time.monotonic() >= deadline:
                            raise TimeoutError(f"call key {key} is still locked by another caller")
                        time.sleep(self.poll_s)
            try:
                yield
            finally:
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT pg_advisory_unlock(%s)", (lock,))
                        still_held, why = cur.fetchone()[0], "the server no longer had it"
                except psycopg2.Error as exc:
                    still_held, why = False, f"its connection was lost ({exc})"
                if not still_held:
                    log.warning("call key %s: the advisory lock was lost while held: %s", key, why.strip())
        finally:
            conn.close()


# -- result bytes ---------------------------------------------------------------------------------------------


class BlobStore:
    """Write-once bytes per call key at ``<key[:2]>/<key>`` (that relative name is what the index records), in an
    :class:`~media_routes.lib.object_store.ObjectStore`: the same write-once store (and write rules) as the media.
    """

    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects

    @staticmethod
    def name(key: str) -> str:
        return f"{key[:2]}/{key}"

    def read(self, key: str) -> bytes | None:
        """The stored bytes, or None when nothing is stored under ``key``."""
        return self.objects.get(self.name(key))

    def exists(self, key: str) -> bool:
        return self.objects.exists(self.name(key))

    def write_once(self, key: str, data: bytes) -> None:
        """Store durably; an existing blob is never overwritten (the first stored result wins)."""
        self.objects.put(self.name(key), data)

    def created(self, key: str) -> str:
        """When the stored blob was written (ISO-8601 UTC), for repairing a lost index row."""
        return self.objects.modified(self.name(key)).isoformat(timespec="microseconds")

    def uri(self, key: str) -> str:
        return self.objects.uri(self.name(key))

    def beside(self, name: str) -> Self:
        """A store of the same kind next to this one's blobs, under ``name`` (kept answers live there)."""
        twin = copy.copy(self)  # results sit in two-hex-digit folders: no name clash
        twin.objects = self.objects.under(name)
        return twin

    def delete(self, key: str) -> None:
        """Remove ``key``'s blob if there is one (only for blobs that are no longer needed: a kept answer whose
        result is stored)."""
        self.objects.delete(self.name(key))

    def local_path(self, key: str) -> Path | None:
        return self.objects.local_path(self.name(key))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.objects!r})"


class LocalBlobStore(BlobStore):
    """Files under ``root`` (:class:`~media_routes.lib.object_store.LocalObjectStore`: temp file, fsync, hard link
    into place, never overwriting, fsync the directory)."""

    objects: LocalObjectStore

    def __init__(self, root: Path) -> None:
        Path(root).mkdir(parents=True, exist_ok=True)
        super().__init__(LocalObjectStore(root))

    @property
    def root(self) -> Path:
        return self.objects.root

    def local_path(self, key: str) -> Path:
        return self.objects.local_path(self.name(key))


class S3BlobStore(BlobStore):
    """Objects ``s3://bucket/<prefix>/<key[:2]>/<key>`` (:class:`~media_routes.lib.object_store.S3ObjectStore`):
    written once, ``head_object`` before ``put_object``; transient write failures retried for ``write_budget_s``.

    The check-then-put is race-free because the writer holds the key's lock (the cache only writes under it).
    """

    objects: S3ObjectStore

    def __init__(
        self,
        bucket: str,
        prefix: str = DEFAULT_S3_PREFIX,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
        write_budget_s: float = DEFAULT_WRITE_BUDGET_S,
    ) -> None:
        if not bucket:
            raise ValueError("S3BlobStore needs a bucket")
        parts = [p for p in prefix.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError(f"invalid call cache prefix {prefix!r}")
        self.endpoint_url = endpoint_url
        self.region = region
        super().__init__(
            S3ObjectStore(
                bucket,
                "/".join(parts),
                client=client,
                make_client=lambda: s3_client(endpoint_url, region),
                write_budget_s=write_budget_s,
            )
        )

    @property
    def bucket(self) -> str:
        return self.objects.bucket

    @property
    def prefix(self) -> str:
        return self.objects.prefix

    @property
    def client(self) -> Any:
        return self.objects.client

    def object_key(self, key: str) -> str:
        return self.objects.key(self.name(key))


def blob_store(
    bucket: str | None,
    local_root: Path,
    *,
    prefix: str | None = None,
    endpoint_url: str | None = None,
    region: str | None = None,
) -> BlobStore:
    """S3 when a ``bucket`` (``$MEDIA_ROUTES_STATE_S3_BUCKET``) is given, else files under ``local_root``."""
    bucket = (bucket or "").strip()
    if not bucket:
        return LocalBlobStore(local_root)
    return S3BlobStore(
        bucket,
        (prefix or "").strip() or DEFAULT_S3_PREFIX,
        endpoint_url=endpoint_url or None,
        region=region or None,
    )


def default_locks(db: StateDB, local_root: Path | None) -> KeyLocks:
    """Advisory locks when the database is PostgreSQL, else flock files under ``local_root/.locks``."""
    if isinstance(db, PostgresDB):
        return PgAdvisoryKeyLocks(db)
    if local_root is None:
        raise ValueError("a local key lock needs the cache's local root directory")
    return FileKeyLocks(Path(local_root) / ".locks")


__all__ = [
    "BlobStore",
    "Conn",
    "FileKeyLocks",
    "KeyLocks",
    "LocalBlobStore",
    "PgAdvisoryKeyLocks",
    "PostgresDB",
    "S3BlobStore",
    "SQLiteDB",
    "StateDB",
    "advisory_id",
    "as_state_db",
    "blob_store",
    "default_locks",
    "state_db",
]
