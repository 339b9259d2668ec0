"""Shared credits state (issue #7): the call cache index and the ledger on a real PostgreSQL, the cached results
on moto's S3 server, the per-key lock a PostgreSQL advisory lock; all on 127.0.0.1.

PostgreSQL is Debian's package, started once for this file by ``postgres()`` of
``media_routes.testing.rehearsal``; every test gets its own database and bucket. Skipped where PostgreSQL's
server binaries are missing, except when ``MEDIA_ROUTES_REQUIRE_POSTGRES=1``.

The helpers run in spawned processes import this module again, so nothing here starts at import time.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from media_routes.credits import CacheCorruptError, CallCache, Ledger, PriceTable, Units, cached_call, call_key
from media_routes.credits.backends import (
    ENV_S3_ENDPOINT,
    ENV_STATE_DB_URL,
    ENV_STATE_S3_BUCKET,
    ENV_STATE_S3_PREFIX,
    FileKeyLocks,
    LocalBlobStore,
    PgAdvisoryKeyLocks,
    PostgresDB,
    S3BlobStore,
    SQLiteDB,
    StateDB,
)
from media_routes.testing import rehearsal
from media_routes_tests.services import require_postgres

pytestmark = pytest.mark.xdist_group("credits_shared")  # one PostgreSQL + moto server for the module, one worker
MODEL = "gemini-2.5-flash-image"  # 3.9 credits per image in prices.yaml
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _key(seed: int = 7) -> str:
    return call_key("google", MODEL, "001", {"prompt": "a red bottle"}, {"base": "a" * 64}, seed)


class Counter:
    def __init__(self, payload: bytes = b"provider-bytes") -> None:
        self.calls = 0
        self.payload = payload
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        with self._lock:
            self.calls += 1
        return self.payload


# -- servers (one PostgreSQL and one moto S3 server for the whole file) ---------------------------------------


@pytest.fixture(scope="module")
def pg() -> Iterator[Any]:
    require_postgres()
    logs = Path(tempfile.mkdtemp(prefix="media-routes-credits-pg-"))  # not under pytest's root-only temp dir
    try:
        with rehearsal.postgres(logs) as server:
            yield server
    finally:
        shutil.rmtree(logs, ignore_errors=True)


@pytest.fixture(scope="module")
def s3_url(pg: Any) -> Iterator[str]:  # after pg: skipped with it
    port = rehearsal.free_port()
    with pytest.MonkeyPatch.context() as mp_env:
        for name, value in AWS.items():
            mp_env.setenv(name, value)  # this process and the ones it spawns
        log = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            [str(rehearsal.BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            rehearsal.wait_until(lambda: proc.poll() is not None or rehearsal.port_open(port), 60, "moto_server")
            assert proc.poll() is None, "moto_server exited"
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            log.close()


def _s3(url: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=url, region_name="us-east-1")


@pytest.fixture
def pg_url(pg: Any) -> Iterator[str]:
    """A fresh database on the shared server for this test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = pg.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://{rehearsal.PG_USER}:{pg.password}@127.0.0.1:{pg.port}/{name}"
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.close()


@pytest.fixture
def bucket(s3_url: str) -> str:
    name = f"t-{uuid.uuid4().hex[:12]}"
    _s3(s3_url).create_bucket(Bucket=name)
    return name


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    with PostgresDB(url).connect() as conn:
        return list(conn.execute(sql).fetchall())


def _shared_cache(url: str, bucket: str, s3_url: str, **kwargs: Any) -> CallCache:
    blobs = S3BlobStore(bucket, "call-cache", endpoint_url=s3_url, region="us-east-1")
    return CallCache(None, PostgresDB(url), blobs=blobs, **kwargs)


# -- the headline: two machines, one call ---------------------------------------------------------------------


def _machine(state_dir: str, key: str, count_file: str, barrier: Any, out: Any) -> None:
    """One run worker on its own machine: its own state dir; Postgres and S3 only through the environment."""
    from media_routes.defs.providers import provider_hub_from_env

    hub = provider_hub_from_env(state_dir)
    cache_, ledger = hub.cache(), hub.ledger()

    def paid() -> bytes:
        start = time.time()
        time.sleep(1.0)  # a slow provider call: the other machine arrives while this one holds the key
        with open(count_file, "a") as fh:
            fh.write(f"call {start} {time.time()}\n")
        return b"one result, paid once"

    backends = (type(ledger.db).__name__, type(cache_.db).__name__, type(cache_.locks).__name__)
    barrier.wait(120)
    started = time.time()
    res = cached_call(
        cache_,
        ledger,
        key=key,
        fn=paid,
        run_id=os.path.basename(state_dir),
        campaign="spring",
        stage="base",
        provider="google",
        model=MODEL,
        units=Units(images=1),
    )
    out.put((res.hit, res.data, started, backends + (type(cache_.blobs).__name__,), res.uri))


@pytest.mark.deployment
def test_two_machines_sharing_postgres_and_s3_make_one_call(
    pg_url: str, bucket: str, s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_STATE_DB_URL, pg_url.replace("postgresql://", "postgresql+psycopg2://"))
    monkeypatch.setenv(ENV_STATE_S3_BUCKET, bucket)
    monkeypatch.setenv(ENV_STATE_S3_PREFIX, "shared/call-cache")
    monkeypatch.setenv(ENV_S3_ENDPOINT, s3_url)
    key = _key()
    count_file = tmp_path / "provider-calls.txt"
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    machines = [tmp_path / "machine-a", tmp_path / "machine-b"]
    procs = [ctx.Process(target=_machine, args=(str(m), key, str(count_file), barrier, out)) for m in machines]
    for p in procs:
        p.start()
    got = sorted((out.get(timeout=120) for _ in procs), key=lambda r: r[0])
    for p in procs:
        p.join(30)
        assert p.exitcode == 0

    calls = count_file.read_text().splitlines()
    assert len(calls) == 1  # exactly one provider call
    (miss, hit) = got
    assert (miss[0], hit[0]) == (False, True)
    assert miss[1] == hit[1] == b"one result, paid once"
    assert miss[3] == hit[3] == ("PostgresDB", "PostgresDB", "PgAdvisoryKeyLocks", "S3BlobStore")
    paid_end = float(calls[0].split()[2])
    assert hit[2] < paid_end  # the hit started while the paid call was running: it waited on the lock
    assert miss[4] == hit[4] == f"s3://{bucket}/shared/call-cache/{key[:2]}/{key}"

    ledger_rows = _query(pg_url, "SELECT hit, credits, saved_credits, call_key FROM ledger_calls ORDER BY hit")
    assert ledger_rows == [(False, 3.9, 0.0, key), (True, 0.0, 3.9, key)]  # one paid row, one hit row
    assert _query(pg_url, "SELECT call_key, size FROM cache_entries") == [(key, len(b"one result, paid once"))]
    objects = _s3(s3_url).list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in objects] == [f"shared/call-cache/{key[:2]}/{key}"]
    for m in machines:  # nothing of the shared state was written to either machine's local state dir
        assert not (m / "calls.sqlite").exists() and not (m / "ledger.sqlite").exists()
        assert not (m / "cache").exists() or not any(p.is_file() for p in (m / "cache").rglob("*"))


# -- the ledger gives the same answers on both databases -----------------------------------------------------


def _fill(ledger: Ledger) -> None:
    rows = [
        ("spring", "base", "google", MODEL, Units(images=1), False, "story", _key(1)),
        ("spring", "base", "google", MODEL, Units(images=1), True, "story", _key(1)),
        ("spring", "motion", "kling", "kling-v2-5-turbo", Units(video_seconds=5), False, None, _key(2)),
        ("summer", "upscale", "fal", "fal-ai/clarity-upscaler", Units(megapixels=2), False, "feed", None),
        ("summer", "base", "google", MODEL, Units(images=2), True, None, _key(3)),
    ]
    for campaign, stage, provider, model, units, hit, fmt, key in rows:
        ledger.record(
            run_id="r",
            campaign=campaign,
            stage=stage,
            provider=provider,
            model=model,
            units=units,
            hit=hit,
            call_key=key,
            format=fmt,
        )
    ledger.refuse(
        run_id="r", campaign="spring", stage="motion", provider="kling", model="kling-v2-5-turbo", credits=35.0,
        scope="campaign", budget=40.0, spent=38.9,
    )  # fmt: skip


def _answers(ledger: Ledger) -> dict[str, Any]:
    frame = ledger.frame().drop(columns=["id", "ts"])
    return {
        "has_paid": [ledger.has_paid(_key(i)) for i in (1, 2, 3, 4)],
        "spent": (ledger.spent(), ledger.spent("spring"), ledger.spent("summer"), ledger.spent("winter")),
        "hit_rate": (ledger.hit_rate(), ledger.hit_rate("spring"), ledger.hit_rate("winter")),
        "frame": frame,
        "frame_spring": ledger.frame("spring").drop(columns=["id", "ts"]),
        "totals": {by: ledger.totals(by) for by in ("campaign", "stage", "provider", "format")},
        "totals_2": ledger.totals(["campaign", "format"], campaign="spring"),
        "refusals": ledger.refusals().drop(columns=["id", "ts"]),
        "refusals_none": ledger.refusals("summer").drop(columns=["id", "ts"]),
    }


def _frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.deployment)])
def test_ledger_answers_are_the_same_on_sqlite_and_postgres(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    prices = PriceTable.from_yaml()
    url = request.getfixturevalue("pg_url") if backend == "postgres" else ""
    db: StateDB = PostgresDB(url) if url else SQLiteDB(tmp_path / "ledger.sqlite")
    ledger = Ledger(db, prices)
    assert ledger.frame().empty and ledger.hit_rate() is None and ledger.spent() == 0.0 and ledger.totals().empty
    _fill(ledger)
    got = _answers(ledger)

    # the same rows on SQLite (today's backend) give the same answers, dtypes included
    reference = Ledger(tmp_path / "reference.sqlite", prices)
    _fill(reference)
    want = _answers(reference)
    assert got["has_paid"] == want["has_paid"] == [True, True, False, False]
    assert got["spent"] == pytest.approx(want["spent"]) and got["spent"] == pytest.approx((3.9 + 35 + 6, 38.9, 6, 0))
    assert got["hit_rate"] == pytest.approx((0.4, 1 / 3, None)) and got["hit_rate"] == pytest.approx(want["hit_rate"])
    for name in ("frame", "frame_spring", "totals_2", "refusals", "refusals_none"):
        _frames_equal(got[name], want[name])
    for by, frame in got["totals"].items():
        _frames_equal(frame, want["totals"][by])
    assert list(got["frame"]["hit"]) == [False, True, False, False, True]
    assert got["frame"]["hit"].dtype == bool and got["frame"]["units"][2] == {"video_seconds": 5}
    assert got["totals_2"]["format"].isna().sum() == 1  # a missing format is its own group on both
    assert got["refusals"].loc[0, "spent"] == 38.9 and len(got["refusals_none"]) == 0
    if url:  # real booleans, not 0/1
        assert dict(_query(url, _HIT_TYPE)) == {"ledger_calls": "boolean"}
        assert Ledger(db, prices).spent() == pytest.approx(44.9)  # a second instance: schema creation is idempotent


_HIT_TYPE = (
    "SELECT table_name, data_type FROM information_schema.columns WHERE column_name = 'hit' AND table_schema = 'public'"
)


# -- orphan repair, concurrency inside one process -----------------------------------------------------------


@pytest.mark.deployment
def test_a_paid_result_whose_ledger_row_was_lost_is_booked_once_on_postgres(
    pg_url: str, bucket: str, s3_url: str
) -> None:
    cache_ = _shared_cache(pg_url, bucket, s3_url)
    ledger = Ledger(PostgresDB(pg_url), PriceTable.from_yaml())
    fn = Counter()
    cache_.get_or_call(_key(), fn)  # paid and stored, then the worker died before its ledger insert
    common = dict(
        key=_key(), fn=fn, campaign="spring", stage="base", provider="google", model=MODEL, units=Units(images=1)
    )
    first = cached_call(cache_, ledger, run_id="run-2", **common)  # type: ignore[arg-type]
    again = cached_call(_shared_cache(pg_url, bucket, s3_url), ledger, run_id="run-3", **common)  # type: ignore[arg-type]
    assert fn.calls == 1  # never paid twice
    assert (first.hit, again.hit) == (False, True)  # the first use after the crash carries the payment
    assert _query(pg_url, "SELECT run_id, hit, credits FROM ledger_calls ORDER BY ts") == [
        ("run-2", False, 3.9),
        ("run-3", True, 0.0),
    ]


@pytest.mark.deployment
def test_threads_of_one_worker_pay_once_with_the_advisory_lock(pg_url: str, bucket: str, s3_url: str) -> None:
    cache_ = _shared_cache(pg_url, bucket, s3_url)
    ledger = Ledger(PostgresDB(pg_url), PriceTable.from_yaml())
    fn_calls: list[int] = []

    def fn(i: int) -> bytes:
        fn_calls.append(i)
        time.sleep(0.5)  # the other threads arrive while this one holds the key
        return b"threaded"

    barrier = threading.Barrier(4)
    hits: list[bool] = []

    def use(i: int) -> None:
        barrier.wait()
        res = cached_call(
            cache_, ledger, key=_key(), fn=lambda: fn(i), run_id=f"t{i}", campaign="c",
            stage="base", provider="google", model=MODEL, units=Units(images=1),
        )  # fmt: skip
        hits.append(res.hit)

    threads = [threading.Thread(target=use, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(fn_calls) == 1 and sorted(hits) == [False, True, True, True]
    assert _query(pg_url, "SELECT hit, COUNT(*) FROM ledger_calls GROUP BY hit ORDER BY hit") == [(False, 1), (True, 3)]


@pytest.mark.deployment
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_kept_job_reads_back_the_same_on_sqlite_and_postgres(
    backend: str, pg_url: str, bucket: str, s3_url: str, tmp_path: Path
) -> None:
    """The call_jobs table (long-running jobs kept per call key, docs/routing.md "Retries"): upsert, state moves,
    ``resume_with`` kept from the first report, the latest resumable job, on both databases."""
    cache_ = _shared_cache(pg_url, bucket, s3_url) if backend == "postgres" else CallCache(tmp_path, tmp_path / "i.db")
    key = _key(11)
    common = {"provider": "fal", "model": "fal-ai/esrgan"}
    cache_.record_job(key, "req-1", state="submitted", run_id="r1", resume_with='{"request_id": "req-1"}', **common)
    cache_.record_job(key, "req-1", state="ready", run_id="r2", **common)  # no handle this time: the first is kept
    job = cache_.resumable_job(key)
    assert job is not None and (job.job_id, job.state, job.run_id) == ("req-1", "ready", "r2")
    assert job.handle == '{"request_id": "req-1"}'
    cache_.record_job(key, "req-1", state="failed", run_id="r2", **common)
    assert cache_.resumable_job(key) is None
    cache_.record_job(key, "req-2", state="submitted", run_id="r3", **common)
    assert [(j.job_id, j.state) for j in cache_.jobs(key)] == [("req-1", "failed"), ("req-2", "submitted")]
    assert cache_.resumable_job(key).handle == "req-2"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="unknown job state"):
        cache_.record_job(key, "req-2", state="done", run_id="r3", **common)


# -- the bytes on S3 -----------------------------------------------------------------------------------------


@pytest.mark.deployment
def test_a_tampered_s3_object_raises_and_is_never_paid_again(pg_url: str, bucket: str, s3_url: str) -> None:
    cache_ = _shared_cache(pg_url, bucket, s3_url)
    ledger = Ledger(PostgresDB(pg_url), PriceTable.from_yaml())
    fn = Counter()
    common = dict(key=_key(), fn=fn, campaign="c", stage="base", provider="google", model=MODEL, units=Units(images=1))
    assert not cached_call(cache_, ledger, run_id="r1", **common).hit  # type: ignore[arg-type]
    object_key = f"call-cache/{_key()[:2]}/{_key()}"
    _s3(s3_url).put_object(Bucket=bucket, Key=object_key, Body=b"tampered")
    with pytest.raises(CacheCorruptError, match=f"s3://{bucket}/{object_key}"):
        cache_.get_or_call(_key(), fn)
    with pytest.raises(CacheCorruptError):
        cached_call(_shared_cache(pg_url, bucket, s3_url), ledger, run_id="r2", **common)  # type: ignore[arg-type]
    assert fn.calls == 1  # never re-paid
    assert len(ledger.frame()) == 1  # and nothing booked for the refused use
    assert _s3(s3_url).get_object(Bucket=bucket, Key=object_key)["Body"].read() == b"tampered"  # left as evidence


@pytest.mark.deployment
def test_s3_results_are_write_once_and_a_deleted_object_is_a_clean_miss(pg_url: str, bucket: str, s3_url: str) -> None:
    cache_ = _shared_cache(pg_url, bucket, s3_url)
    key = _key()
    blobs = cache_.blobs
    assert isinstance(blobs, S3BlobStore) and key not in cache_
    assert not cache_.get_or_call(key, Counter(b"first"), meta={"stage": "base"}).hit
    blobs.write_once(key, b"second")  # a writer that bypassed the lock still cannot overwrite
    hit = cache_.get(key)
    assert hit is not None and (hit.data, hit.meta, hit.path) == (b"first", {"stage": "base"}, None)
    # an object removed behind the index's back (a lifecycle rule): a miss that pays once and re-indexes
    _s3(s3_url).delete_object(Bucket=bucket, Key=blobs.object_key(key))
    assert key not in cache_ and cache_.get(key) is None
    fn = Counter(b"re-made")
    assert not cache_.get_or_call(key, fn).hit
    again = cache_.get_or_call(key, fn)
    assert again.hit and again.data == b"re-made" and fn.calls == 1  # not CacheCorruptError from the stale row


# -- the advisory lock is released when its holder is killed -------------------------------------------------


def _hold_and_hang(url: str, bucket: str, s3_url: str, key: str, held: Any) -> None:
    def paid() -> bytes:
        held.set()
        time.sleep(120)  # killed long before this returns
        return b"never stored"

    _shared_cache(url, bucket, s3_url).get_or_call(key, paid)


@pytest.mark.deployment
def test_a_killed_lock_holder_frees_the_key_within_seconds(pg_url: str, bucket: str, s3_url: str) -> None:
    key = _key()
    ctx = mp.get_context("spawn")
    held = ctx.Event()
    proc = ctx.Process(target=_hold_and_hang, args=(pg_url, bucket, s3_url, key, held))
    proc.start()
    try:
        assert held.wait(60), "the holder never got into its paid call"
        advisory = _query(pg_url, "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        assert advisory == [(1,)]
        with pytest.raises(TimeoutError, match="still locked"):  # really held, across processes
            _shared_cache(pg_url, bucket, s3_url, lock_timeout=0.5).get_or_call(key, Counter())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(10)
    assert proc.exitcode == -signal.SIGKILL
    start = time.monotonic()
    fn = Counter(b"paid by the survivor")
    res = _shared_cache(pg_url, bucket, s3_url, lock_timeout=10).get_or_call(key, fn)
    waited = time.monotonic() - start
    print(f"lock acquired {waited:.3f} s after the holder was killed")
    assert waited < 5
    assert (res.hit, res.data, fn.calls) == (False, b"paid by the survivor", 1)  # the killed call stored nothing


# -- configuration -------------------------------------------------------------------------------------------


@pytest.mark.deployment
def test_provider_hub_picks_the_backends_from_the_environment(
    pg_url: str, bucket: str, s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment is read once, when the resources are built (the code location loads), into the hub's
    fields, which the UI's Resources tab shows; cache() and ledger() do not read it again (issue #12)."""
    from media_routes.defs.providers import provider_hub_from_env

    for name in (ENV_STATE_DB_URL, ENV_STATE_S3_BUCKET, ENV_STATE_S3_PREFIX, ENV_S3_ENDPOINT):
        monkeypatch.delenv(name, raising=False)
    hub = provider_hub_from_env(str(tmp_path / "state"))
    assert hub.state_db_url is None and hub.state_s3_bucket is None
    local_cache, local_ledger = hub.cache(), hub.ledger()
    assert isinstance(local_cache.db, SQLiteDB) and local_cache.db.path == tmp_path / "state" / "calls.sqlite"
    assert isinstance(local_cache.locks, FileKeyLocks) and isinstance(local_cache.blobs, LocalBlobStore)
    assert isinstance(local_ledger.db, SQLiteDB) and local_ledger.db.path == tmp_path / "state" / "ledger.sqlite"

    monkeypatch.setenv(ENV_STATE_DB_URL, pg_url)
    monkeypatch.setenv(ENV_STATE_S3_BUCKET, bucket)
    monkeypatch.setenv(ENV_S3_ENDPOINT, s3_url)
    assert isinstance(hub.ledger().db, SQLiteDB)  # a built hub keeps the state it was built with
    shared = provider_hub_from_env(str(tmp_path / "state"))
    assert shared.state_db_url == ENV_STATE_DB_URL  # bound as dg.EnvVar: the UI shows the name, not the password
    assert shared.state_s3_bucket == bucket and shared.s3_endpoint_url == s3_url
    shared_cache, shared_ledger = shared.cache(), shared.ledger()
    assert isinstance(shared_cache.db, PostgresDB) and isinstance(shared_ledger.db, PostgresDB)
    assert isinstance(shared_cache.locks, PgAdvisoryKeyLocks)
    assert isinstance(shared_cache.blobs, S3BlobStore) and shared_cache.blobs.prefix == "call-cache"
    password = pg_url.split(":")[2].split("@")[0]
    assert password not in repr(shared_cache.db)
    assert password not in repr(shared)

    monkeypatch.setenv(ENV_STATE_DB_URL, "mysql://u:p@127.0.0.1/db")
    with pytest.raises(ValueError, match=f"{ENV_STATE_DB_URL}: unsupported database URL scheme 'mysql'"):
        provider_hub_from_env(str(tmp_path / "state")).ledger()


class _FlakyS3:
    """A stand-in boto3 client whose first ``failures`` puts meet an unreachable endpoint."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error
        self.puts = 0
        self.objects: dict[str, bytes] = {}

    def head_object(self, Bucket: str, Key: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        from botocore.exceptions import ClientError

        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "404"}, "ResponseMetadata": {"HTTPStatusCode": 404}}, "HeadObject")
        return {}

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:  # noqa: N803
        from botocore.exceptions import EndpointConnectionError

        self.puts += 1
        if self.puts <= self.failures:
            raise self.error or EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
        self.objects[Key] = Body


def test_a_paid_result_outlives_a_blip_of_the_object_store() -> None:
    from media_routes.credits.backends import S3BlobStore

    flaky = _FlakyS3(failures=2)
    store = S3BlobStore("bucket", client=flaky, write_budget_s=10)
    store.write_once(_key(), b"paid result")
    assert flaky.puts == 3 and list(flaky.objects.values()) == [b"paid result"]


def test_a_refusal_of_the_object_store_is_not_retried() -> None:
    from botocore.exceptions import ClientError

    from media_routes.credits.backends import S3BlobStore

    denied = ClientError({"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")
    flaky = _FlakyS3(failures=5, error=denied)
    with pytest.raises(ClientError):
        S3BlobStore("bucket", client=flaky, write_budget_s=10).write_once(_key(), b"x")
    assert flaky.puts == 1
