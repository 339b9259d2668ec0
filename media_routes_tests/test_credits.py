"""Tests for the credits storage core: call keys, the call cache (threads, processes, crashes) and the ledger."""

from __future__ import annotations

import multiprocessing as mp
import os
import sqlite3
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from media_routes.credits import (
    CacheCorruptError,
    CallCache,
    Ledger,
    PriceTable,
    Units,
    UnknownPriceError,
    cached_call,
    call_key,
)
from media_routes.credits.ledger import DEFAULT_PRICES

H1 = "a" * 64
H2 = "b" * 64


def _key(**overrides: object) -> str:
    args: dict[str, object] = {
        "provider": "google",
        "model": "gemini-2.5-flash-image",
        "model_version": "001",
        "params": {"prompt": "a red bottle", "strength": 0.3, "steps": 30, "style": None},
        "input_hashes": {"base": H1},
        "seed": 7,
    }
    args.update(overrides)
    return call_key(**args)  # type: ignore[arg-type]


def _cache(tmp_path: Path, **kwargs: float) -> CallCache:
    return CallCache(tmp_path / "cache", tmp_path / "cache.sqlite", **kwargs)


class Counter:
    """Thread-safe call counter standing in for a paid provider call."""

    def __init__(self, payload: bytes = b"provider-bytes", delay: float = 0.0) -> None:
        self.calls = 0
        self.payload = payload
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self) -> bytes:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        return self.payload


# -- keys ---------------------------------------------------------------------------------------------------


def test_key_normalisation_gives_same_key() -> None:
    base = _key()
    assert len(base) == 64
    # parameter order, float formatting (0.1 + 0.2 vs 0.3, 30.0 vs 30), None-valued params dropped, hash case
    assert _key(params={"steps": 30.0, "strength": 0.1 + 0.2, "prompt": "a red bottle"}) == base
    assert _key(input_hashes={"base": H1.upper()}) == base
    nested_a = _key(params={"opts": {"b": 1, "a": None, "c": 2.50}})
    nested_b = _key(params={"opts": {"c": 2.5, "b": 1}})
    assert nested_a == nested_b


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 8},
        {"seed": None},
        {"input_hashes": {"base": H2}},
        {"input_hashes": {"mask": H1}},
        {"model_version": "002"},
        {"model": "gemini-3-pro-image-preview"},
        {"provider": "fal"},
        {"params": {"prompt": "a red bottle", "strength": 0.31, "steps": 30}},
        {"params": {"prompt": "a red bottle", "strength": 0.3, "steps": 30, "flag": True}},
    ],
)
def test_key_changes_with_any_real_difference(change: dict[str, object]) -> None:
    assert _key(**change) != _key()


def test_key_bool_is_not_int_and_bad_values_rejected() -> None:
    assert _key(params={"x": True}) != _key(params={"x": 1})
    with pytest.raises(ValueError, match="non-finite"):
        _key(params={"x": float("nan")})
    with pytest.raises(TypeError, match="content hashes"):
        _key(params={"image": b"raw bytes"})


# -- cache basics -------------------------------------------------------------------------------------------


def test_miss_then_hit_and_stored_layout(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    key = _key()
    fn = Counter()
    first = cache.get_or_call(key, fn, meta={"stage": "base"})
    assert (first.hit, first.data, fn.calls) == (False, b"provider-bytes", 1)
    path = tmp_path / "cache" / key[:2] / key
    assert first.path == path and path.read_bytes() == b"provider-bytes"
    assert [p.name for p in path.parent.iterdir()] == [key]  # no temp files left behind

    second = _cache(tmp_path).get_or_call(key, fn)  # a fresh instance, as after a restart
    assert (second.hit, second.data, fn.calls) == (True, b"provider-bytes", 1)
    assert second.meta == {"stage": "base"}

    other = cache.get_or_call(_key(seed=8), Counter(b"re-roll"))  # a re-roll changes the seed: a miss
    assert (other.hit, other.data) == (False, b"re-roll")


def test_result_is_stored_before_post_processing_crash(tmp_path: Path) -> None:
    key = _key()
    fn = Counter()

    def stage() -> bytes:
        raw = _cache(tmp_path).get_or_call(key, fn).data
        raise RuntimeError(f"post-processing crashed after the paid call ({len(raw)} bytes)")

    with pytest.raises(RuntimeError, match="post-processing"):
        stage()
    rerun = _cache(tmp_path).get_or_call(key, fn)
    assert rerun.hit and rerun.data == b"provider-bytes"
    assert fn.calls == 1


def _crash_after_call(root: str, db: str, key: str, count_file: str) -> None:
    def fn() -> bytes:
        with open(count_file, "a") as fh:
            fh.write("call\n")
        return b"paid"

    CallCache(Path(root), Path(db)).get_or_call(key, fn)
    os._exit(3)  # a hard crash: no cleanup, no finally blocks, no interpreter shutdown


def test_hard_crash_in_another_process_never_pays_twice(tmp_path: Path) -> None:
    key = _key()
    count_file = tmp_path / "calls.txt"
    ctx = mp.get_context("spawn")
    proc = ctx.Process(
        target=_crash_after_call, args=(str(tmp_path / "cache"), str(tmp_path / "cache.sqlite"), key, str(count_file))
    )
    proc.start()
    proc.join(30)
    assert proc.exitcode == 3
    fn = Counter()
    rerun = _cache(tmp_path).get_or_call(key, fn)
    assert rerun.hit and rerun.data == b"paid" and fn.calls == 0
    assert count_file.read_text().count("call") == 1


def test_fn_raising_stores_nothing_and_releases_lock(tmp_path: Path) -> None:
    cache = _cache(tmp_path, lock_timeout=2.0)  # a leaked lock would raise TimeoutError instead of hanging
    key = _key()

    def boom() -> bytes:
        raise ConnectionError("provider down")

    with pytest.raises(ConnectionError):
        cache.get_or_call(key, boom)
    assert key not in cache and cache.get(key) is None
    shard = tmp_path / "cache" / key[:2]
    assert not shard.exists() or list(shard.iterdir()) == []
    with sqlite3.connect(tmp_path / "cache.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM cache_entries").fetchone()[0] == 0

    fn = Counter()
    again = cache.get_or_call(key, fn)
    assert (again.hit, fn.calls) == (False, 1)


def test_non_bytes_result_is_not_stored(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    with pytest.raises(TypeError, match="nothing stored"):
        cache.get_or_call(_key(), lambda: "text")  # type: ignore[arg-type, return-value]
    assert _key() not in cache


def test_index_repair_and_corruption_detection(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    key = _key()
    cache.get_or_call(key, Counter())
    with sqlite3.connect(tmp_path / "cache.sqlite") as conn:
        conn.execute("DELETE FROM cache_entries")
    fn = Counter()
    assert cache.get_or_call(key, fn).hit and fn.calls == 0  # file present, row missing: still a hit
    with sqlite3.connect(tmp_path / "cache.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM cache_entries").fetchone()[0] == 1  # row repaired
    (tmp_path / "cache" / key[:2] / key).write_bytes(b"tampered")
    with pytest.raises(CacheCorruptError):
        cache.get_or_call(key, fn)
    assert fn.calls == 0


# -- concurrency --------------------------------------------------------------------------------------------


def test_eight_threads_make_one_call(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    key = _key()
    fn = Counter(delay=0.2)
    barrier = threading.Barrier(8)
    results: list[bool] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            res = cache.get_or_call(key, fn)
            assert res.data == b"provider-bytes"
            results.append(res.hit)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert fn.calls == 1
    assert sorted(results) == [False] + [True] * 7


def _process_worker(root: str, db: str, key: str, count_file: str, start: object, out: object) -> None:
    def fn() -> bytes:
        with open(count_file, "a") as fh:
            fh.write("call\n")
        time.sleep(0.5)  # long enough for the other process to arrive while this one holds the key
        return b"shared-result"

    cache = CallCache(Path(root), Path(db))
    start.wait(20)  # type: ignore[attr-defined]
    res = cache.get_or_call(key, fn)
    out.put((res.hit, res.data))  # type: ignore[attr-defined]


def test_two_processes_make_one_call(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    out = ctx.Queue()
    key = _key()
    count_file = tmp_path / "calls.txt"
    args = (str(tmp_path / "cache"), str(tmp_path / "cache.sqlite"), key, str(count_file), start, out)
    procs = [ctx.Process(target=_process_worker, args=args) for _ in range(2)]
    for p in procs:
        p.start()
    time.sleep(0.3)  # let both children import and open their caches before releasing them together
    start.set()
    got = sorted(out.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert count_file.read_text().count("call") == 1
    assert got == [(False, b"shared-result"), (True, b"shared-result")]


# -- prices and ledger --------------------------------------------------------------------------------------


def test_price_table_from_yaml() -> None:
    prices = PriceTable.from_yaml()
    assert prices.price("google", "gemini-2.5-flash-image", Units(images=2)) == (7.8, 0.078)
    assert prices.price("fal", "fal-ai/clarity-upscaler", Units(megapixels=4)) == (12.0, 0.12)
    assert prices.price("local", "any-engine", Units(compute_seconds=90)) == (0.0, 0.0)
    for p in prices._prices.values():
        assert p.source and p.as_of


def test_price_table_requires_source_and_date(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text("usd_per_credit: 0.01\nprices:\n  - {provider: x, model: y, unit: image, usd_per_unit: 1}\n")
    with pytest.raises(ValueError, match=r"as_of.*source|source.*as_of"):
        PriceTable.from_yaml(bad)


def test_unknown_model_names_provider_and_model(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite", PriceTable.from_yaml())
    fn = Counter()
    with pytest.raises(UnknownPriceError) as info:
        cached_call(
            _cache(tmp_path),
            ledger,
            key=_key(),
            fn=fn,
            run_id="r1",
            campaign="c",
            stage="base",
            provider="google",
            model="imagen-9-ultra",
            units=Units(images=1),
        )
    message = str(info.value)
    assert "provider='google'" in message and "model='imagen-9-ultra'" in message
    assert str(DEFAULT_PRICES) in message
    assert fn.calls == 0  # refused before paying
    assert ledger.frame().empty


def test_ledger_records_miss_and_hit_with_prices(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    ledger = Ledger(tmp_path / "ledger.sqlite", PriceTable.from_yaml())
    fn = Counter()
    common = dict(
        key=_key(),
        fn=fn,
        campaign="spring",
        stage="base",
        provider="google",
        model="gemini-2.5-flash-image",
        units=Units(images=2),
        format="story",
    )
    assert not cached_call(cache, ledger, run_id="run-1", **common).hit  # type: ignore[arg-type]
    assert cached_call(cache, ledger, run_id="run-2", **common).hit  # type: ignore[arg-type]
    assert fn.calls == 1

    df = ledger.frame()
    assert list(df["run_id"]) == ["run-1", "run-2"]
    assert list(df["hit"]) == [False, True]
    assert list(df["credits"]) == [7.8, 0.0] and list(df["usd"]) == [0.078, 0.0]
    assert list(df["saved_credits"]) == [0.0, 7.8] and list(df["saved_usd"]) == [0.0, 0.078]
    assert list(df["call_key"]) == [_key(), _key()]
    assert df["units"][0] == {"images": 2}
    assert set(df["format"]) == {"story"}
    ts = pd.to_datetime(df["ts"])
    assert all(t.tzinfo is not None and t.utcoffset().total_seconds() == 0 for t in ts)


def test_a_paid_call_whose_ledger_row_was_lost_is_recorded_as_paid_on_the_next_use(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    ledger = Ledger(tmp_path / "ledger.sqlite", PriceTable.from_yaml())
    fn = Counter()
    cache.get_or_call(_key(), fn)  # paid and stored, then the process died before the ledger insert
    common = dict(key=_key(), fn=fn, campaign="spring", stage="base", provider="google", units=Units(images=1))
    first = cached_call(cache, ledger, run_id="run-2", model="gemini-2.5-flash-image", **common)  # type: ignore[arg-type]
    again = cached_call(cache, ledger, run_id="run-3", model="gemini-2.5-flash-image", **common)  # type: ignore[arg-type]
    assert fn.calls == 1  # never paid twice
    assert (first.hit, again.hit) == (False, True)  # the first use after the crash carries the payment
    assert list(ledger.frame()["credits"]) == [3.9, 0.0]


def test_a_concurrent_identical_call_is_a_hit_in_the_ledger_not_a_second_payment(tmp_path: Path) -> None:
    # The payer stores its result, then writes its ledger row; a second caller arriving in between must still be
    # recorded as a hit (it used to read "stored but unpaid" as the payer's crash and book a second payment).
    cache = _cache(tmp_path)
    prices = PriceTable.from_yaml()
    stored = threading.Event()
    release = threading.Event()

    class SlowLedger(Ledger):
        def record(self, **kwargs):  # type: ignore[no-untyped-def, override]
            if not kwargs["hit"] and threading.current_thread().name == "payer":
                stored.set()  # the result is in the store, the ledger row is not written yet
                release.wait(10)
            return super().record(**kwargs)

    ledger = SlowLedger(tmp_path / "ledger.sqlite", prices)
    fn = Counter()
    common = dict(key=_key(), fn=fn, campaign="spring", stage="base", provider="google", units=Units(images=1))
    hits: dict[str, bool] = {}

    def use(name: str) -> None:
        hits[name] = cached_call(cache, ledger, run_id=name, model="gemini-2.5-flash-image", **common).hit  # type: ignore[arg-type]

    payer = threading.Thread(target=use, args=("payer",), name="payer")
    payer.start()
    assert stored.wait(10)
    waiter = threading.Thread(target=use, args=("waiter",), name="waiter")
    waiter.start()
    time.sleep(0.3)  # the waiter has found the stored result and is waiting for the payer's ledger row
    release.set()
    payer.join(10)
    waiter.join(10)
    assert fn.calls == 1
    assert hits == {"payer": False, "waiter": True}
    frame = ledger.frame().sort_values("run_id")
    assert list(frame["hit"]) == [False, True] and list(frame["credits"]) == [3.9, 0.0]


def test_totals_and_hit_rate(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite", PriceTable.from_yaml())
    assert ledger.hit_rate() is None
    assert ledger.totals().empty
    rows = [
        ("spring", "base", "google", "gemini-2.5-flash-image", Units(images=1), False, "story"),
        ("spring", "base", "google", "gemini-2.5-flash-image", Units(images=1), True, "story"),
        ("spring", "motion", "kling", "kling-v2-5-turbo", Units(video_seconds=5), False, None),
        ("summer", "upscale", "fal", "fal-ai/clarity-upscaler", Units(megapixels=2), False, "feed"),
    ]
    for campaign, stage, provider, model, units, hit, fmt in rows:
        ledger.record(
            run_id="r",
            campaign=campaign,
            stage=stage,
            provider=provider,
            model=model,
            units=units,
            hit=hit,
            call_key=None,
            format=fmt,
        )

    by_campaign = ledger.totals("campaign").set_index("campaign")
    assert by_campaign.loc["spring", "calls"] == 3 and by_campaign.loc["spring", "hits"] == 1
    assert by_campaign.loc["spring", "misses"] == 2
    assert by_campaign.loc["spring", "usd"] == pytest.approx(0.039 + 0.35)
    assert by_campaign.loc["spring", "credits"] == pytest.approx(3.9 + 35)
    assert by_campaign.loc["spring", "saved_credits"] == pytest.approx(3.9)
    assert by_campaign.loc["summer", "usd"] == pytest.approx(0.06)

    by_provider = ledger.totals("provider").set_index("provider")
    assert by_provider.loc["kling", "credits"] == pytest.approx(35)
    assert by_provider.loc["google", "hit_rate"] == pytest.approx(0.5)

    by_format = ledger.totals(["campaign", "format"], campaign="spring")
    assert len(by_format) == 2  # the missing format is its own group, not dropped
    assert by_format["format"].isna().sum() == 1
    assert set(ledger.totals("stage")["stage"]) == {"base", "motion", "upscale"}

    assert ledger.hit_rate() == pytest.approx(0.25)
    assert ledger.hit_rate("spring") == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="choose from"):
        ledger.totals("model")
