"""Hosted routes end to end: every stage on hosted models through the contract stubs (real sockets).

The stubs stand in for Gemini/Veo, fal and Kling (media_routes/testing/stubs); their pictures are
placeholders, so these tests check routing, accounting, fallbacks and failures, not image quality.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from media_routes.definitions import build_resources
from media_routes.defs.providers import FalResource, GeminiResource, KlingResource, ProviderHub
from media_routes.lineage import trace
from media_routes.pipeline import materialize_stages, plan_runs, register_campaigns
from media_routes.stages import STAGES
from media_routes.testing.campaigns import write_campaign
from media_routes.testing.stubs.fal_stub import FalStub
from media_routes.testing.stubs.google_stub import GoogleStub
from media_routes.testing.stubs.kling_stub import KlingStub

pytestmark = pytest.mark.integration

KEYS = {
    "GEMINI_API_KEY": "gm-test-KEY-5c0ffee5c0ffee5c0ffee",
    "FAL_KEY": "fal-test-id:fal-test-SECRET-1234567890abcdef",
    "KLING_ACCESS_KEY": "kling-test-ACCESS-0a1b2c3d4e",
    "KLING_SECRET_KEY": "kling-test-SECRET-9f8e7d6c5b4a",
}
MOTION = {"duration_s": 10.0, "fps": 3, "camera": "push_in", "strength": 0.1}


# the stubs' videos at a size a brand can be seen in (640 px long side; Veo's own 720p is 1280): the motion stage
# restores brand colour only where it finds the brand in the provider's frames (quality.alignment), which a 64 px
# placeholder video cannot show
VIDEO_LONG_SIDE = 640


@pytest.fixture
def stubs() -> Iterator[tuple[GoogleStub, FalStub, KlingStub]]:
    with (
        GoogleStub(api_key=KEYS["GEMINI_API_KEY"], video_long_side=VIDEO_LONG_SIDE) as google,
        FalStub(api_key=KEYS["FAL_KEY"]) as fal,
        KlingStub(
            access_key=KEYS["KLING_ACCESS_KEY"], secret_key=KEYS["KLING_SECRET_KEY"], video_long_side=VIDEO_LONG_SIDE
        ) as kling,
    ):
        yield google, fal, kling


def _hub(stubs: tuple[GoogleStub, FalStub, KlingStub], state: Path) -> ProviderHub:
    google, fal, kling = stubs
    return ProviderHub(
        gemini=GeminiResource(api_key=dg.EnvVar("GEMINI_API_KEY"), base_url=google.url, poll_interval_s=0.05),
        fal=FalResource(api_key=dg.EnvVar("FAL_KEY"), queue_url=fal.url, base_url=fal.url, poll_interval_s=0.05),
        kling=KlingResource(
            access_key=dg.EnvVar("KLING_ACCESS_KEY"),
            secret_key=dg.EnvVar("KLING_SECRET_KEY"),
            base_url=kling.url,
            poll_interval_s=0.05,
        ),
        state_dir=str(state),
        retry_base_delay_s=0.05,
        retry_budget_s=10.0,
    )


@pytest.fixture
def hosted(
    tmp_path: Path, stubs: tuple[GoogleStub, FalStub, KlingStub], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    root = tmp_path / "campaigns"
    root.mkdir()
    resources: dict[str, Any] = build_resources(campaigns_dir=str(root), media_root=str(tmp_path / "media"))
    resources["providers"] = _hub(stubs, tmp_path / "credits")
    return {"root": root, "resources": resources, "tmp": tmp_path}


def _paid_calls(stubs: tuple[GoogleStub, FalStub, KlingStub]) -> dict[str, int]:
    google, fal, kling = stubs
    return {
        "google": google.calls("generateContent") + google.calls("predictLongRunning"),
        "fal": fal.calls("submit"),
        "kling": kling.calls("create"),
    }


def _run(instance: dg.DagsterInstance, resources: dict[str, Any], cid: str, formats: list[str]) -> None:
    register_campaigns(instance, [cid])
    for run in plan_runs(cid, formats):
        assert materialize_stages(instance, resources, run.stages, run.partition).success


def test_six_stages_on_hosted_routes_then_all_from_cache(instance, hosted, stubs) -> None:  # type: ignore[no-untyped-def]
    write_campaign(
        hosted["root"],
        "noir-sneaker",
        "shoe",
        formats=["9x16", "4x5"],
        upscale={"target": "2K"},
        motion=MOTION,
        route={"profile": "high-drama"},
    )
    resources = hosted["resources"]
    _run(instance, resources, "shoe", ["9x16", "4x5"])
    rows = {(r["stage"], r["partition"]): r for r in trace(instance, "shoe")}
    expected = {
        ("base_composition", "shoe"): "google/gemini-3-pro-image-preview",
        ("lighting_iteration", "shoe"): "google/gemini-3-pro-image-preview",
        ("inpaint_fix", "shoe"): "google/gemini-3-pro-image-preview",
        ("k_upscale", "shoe"): "fal/fal-ai/clarity-upscaler",
        ("aspect_outpaint", "shoe|9x16"): "google/gemini-3-pro-image-preview",
        ("aspect_outpaint", "shoe|4x5"): "google/gemini-3-pro-image-preview",
        ("motion", "shoe|9x16"): "google/veo-3.1-generate-preview",  # Veo makes 9:16
        ("motion", "shoe|4x5"): "kling/kling-v2-5-turbo",  # Veo has no 4:5: rejected, Kling chosen
    }
    assert {k: r["route"]["route"] for k, r in rows.items()} == expected
    no_call = ("aspect_outpaint", "shoe|4x5")  # the 4:5 master needs no expansion for 4x5: no call, no cost
    assert rows[no_call]["route"]["calls"]["detail"] == [] and rows[no_call]["credits"] == 0
    for key, row in rows.items():
        assert row["provider"] != "local", key
        assert row["credits"] > 0 or key == no_call, key
        assert row["checks"]["output_not_blank"] == "passed", key
        assert row["checks"]["brand_colours_locked"] == "passed", key
    veo = rows[("motion", "shoe|9x16")]
    assert veo["route"]["calls"]["calls"] == 2  # 10 s through Veo: 6 s + 4 s chained
    assert veo["metrics"]["hosted"]["segments_s"] == [6, 4]
    assert veo["duration_s"] == pytest.approx(10.0, abs=0.34)
    assert rows[("motion", "shoe|4x5")]["route"]["calls"]["calls"] == 1  # one 10 s Kling call
    assert rows[("inpaint_fix", "shoe")]["checks"]["outside_mask_unchanged"] == "passed"
    assert rows[("aspect_outpaint", "shoe|9x16")]["checks"]["original_pixels_preserved"] == "passed"
    rejected = [c for c in rows[("motion", "shoe|4x5")]["route"]["plan"]["candidates"] if c.get("rejected")]
    assert rejected[0]["route"] == "google/veo-3.1-generate-preview" and "4:5" in rejected[0]["rejected"][0]

    first = _paid_calls(stubs)
    # google: base, lighting, one remove fix, the 9x16 outpaint, 2 Veo segments; fal: upscale; kling: one video
    assert first == {"google": 6, "fal": 1, "kling": 1}
    ledger = resources["providers"].ledger().frame("shoe")
    assert int((~ledger["hit"] & (ledger["provider"] != "local")).sum()) == sum(first.values())

    # re-materialize everything unchanged: every call is a cache hit, nothing is paid again
    _run(instance, resources, "shoe", ["9x16", "4x5"])
    assert _paid_calls(stubs) == first
    again = {(r["stage"], r["partition"]): r for r in trace(instance, "shoe")}
    assert all(r["credits"] == 0 for r in again.values())
    assert all(r["route"]["calls"]["cache_hits"] >= 1 for k, r in again.items() if k != no_call)
    stills = [k for k in rows if k[0] != "motion"]  # (videos are re-encoded from the cached clip)
    assert {k: again[k]["output_hash"] for k in stills} == {k: rows[k]["output_hash"] for k in stills}

    _assert_no_key_anywhere(instance, hosted["tmp"])


def _assert_no_key_anywhere(instance: dg.DagsterInstance, tmp: Path) -> None:
    """No key (or its secret half) in the event log, the metadata, the instance's files or any written file."""
    secrets = [*KEYS.values(), KEYS["FAL_KEY"].split(":")[1]]
    records = [r for key in instance.get_asset_keys() for r in instance.fetch_materializations(key, limit=1000).records]
    assert records
    texts = []
    for run in instance.get_runs():
        texts.extend(str(e) for e in instance.all_logs(run.run_id))
        texts.append(str(run.run_config))
    texts.extend(str(r.asset_materialization.metadata) for r in records if r.asset_materialization)
    blob = "\n".join(texts)
    for secret in secrets:
        assert secret not in blob
    roots = [tmp, Path(instance.root_directory)]
    scanned = 0
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                scanned += 1
                for secret in secrets:
                    assert secret.encode() not in data, path
    assert scanned > 20


def test_outage_falls_back_to_the_next_route_and_is_recorded(instance, hosted, stubs) -> None:  # type: ignore[no-untyped-def]
    google, fal, kling = stubs
    write_campaign(
        hosted["root"], "noir-sneaker", "shoe", formats=["1x1"], upscale={"target": "2K"}, motion=MOTION,
        route={"profile": "brand-safe"},
    )  # fmt: skip
    resources = hosted["resources"]
    register_campaigns(instance, ["shoe"])
    assert materialize_stages(instance, resources, STAGES[:3], "shoe").success
    # SeedVR answers 503 to every one of its 4 attempts (an outage); the next submit, ESRGAN's, succeeds
    fal.fail_next("unavailable", count=resources["providers"].max_attempts, route="submit")
    assert materialize_stages(instance, resources, ["k_upscale"], "shoe").success
    row = next(r for r in trace(instance, "shoe") if r["stage"] == "k_upscale")
    attempts = row["route"]["attempts"]
    assert [a["outcome"] for a in attempts] == ["fallback", "ok"]
    assert attempts[0]["route"] == "fal/fal-ai/seedvr/upscale/image" and "503" in attempts[0]["reason"]
    assert row["route"]["route"] == "fal/fal-ai/esrgan" and row["provider"] == "fal"
    assert "after falling back from fal/fal-ai/seedvr/upscale/image" in row["route"]["reason"]
    assert resources["providers"].health().status("fal/fal-ai/seedvr/upscale/image") is None  # one outage < 3


def test_safety_block_fails_the_stage_clearly_and_materializes_nothing(instance, hosted, stubs) -> None:  # type: ignore[no-untyped-def]
    google, _, _ = stubs
    write_campaign(hosted["root"], "noir-sneaker", "shoe", formats=["1x1"], route={"profile": "brand-safe"})
    register_campaigns(instance, ["shoe"])
    google.fail_next("image_safety", route="generateContent")
    summary = materialize_stages(instance, hosted["resources"], ["base_composition"], "shoe", raise_on_error=False)
    assert not summary.success
    failures = [e for e in instance.all_logs(summary.run_id) if e.dagster_event and e.dagster_event.is_step_failure]
    assert len(failures) == 1  # not retried: a block is not an outage and brand-safe does not re-route
    message = str(failures[0].dagster_event.step_failure_data.error)
    assert "ContentBlocked" in message and "google" in message and "gemini-3-pro-image-preview" in message
    assert "IMAGE_SAFETY" in message
    assert trace(instance, "shoe") == []  # nothing materialized
    assert google.calls("generateContent") == 1


def test_rate_limit_is_waited_out_then_the_call_succeeds(instance, hosted, stubs) -> None:  # type: ignore[no-untyped-def]
    google, _, _ = stubs
    write_campaign(hosted["root"], "noir-sneaker", "shoe", formats=["1x1"], route={"profile": "brand-safe"})
    register_campaigns(instance, ["shoe"])
    google.fail_next("rate_limit", route="generateContent", retry_delay="1s")
    import time

    t0 = time.monotonic()
    assert materialize_stages(instance, hosted["resources"], ["base_composition"], "shoe").success
    assert time.monotonic() - t0 >= 1.0  # RetryInfo.retryDelay honoured before the second attempt
    assert google.calls("generateContent") == 2
    row = trace(instance, "shoe")[0]
    assert row["route"]["route"] == "google/gemini-3-pro-image-preview"
    assert row["route"]["attempts"] == [{"route": "google/gemini-3-pro-image-preview", "outcome": "ok", "reason": ""}]


def test_provider_jobs_wait_for_a_slot_of_the_providers_dagster_pool(instance, hosted, stubs) -> None:  # type: ignore[no-untyped-def]
    import threading
    import time

    from media_routes.defs.provider_pools import provider_pool

    google, _, _ = stubs
    write_campaign(hosted["root"], "noir-sneaker", "shoe", formats=["1x1"], route={"profile": "brand-safe"})
    register_campaigns(instance, ["shoe"])
    storage = instance.event_log_storage
    pool = provider_pool("google")
    assert pool == "provider_google"
    storage.set_concurrency_slots(pool, 1)  # an operator's limit (UI / `dagster instance concurrency set`)
    assert storage.claim_concurrency_slot(pool, "another-run", "another-step").is_claimed  # the one slot is taken
    done: dict[str, bool] = {}

    def run() -> None:  # one Dagster run in one thread (the main thread only watches)
        done["ok"] = materialize_stages(instance, hosted["resources"], ["base_composition"], "shoe").success

    worker = threading.Thread(target=run)
    worker.start()

    def waiting() -> list[str]:
        return [p.step_key for p in storage.get_concurrency_info(pool).pending_steps if p.run_id != "another-run"]

    deadline = time.monotonic() + 60
    while not waiting() and time.monotonic() < deadline:
        time.sleep(0.1)
    (step_key,) = waiting()
    assert step_key.startswith("base_composition:google:")
    time.sleep(1.5)
    assert google.calls("generateContent") == 0  # held back by the pool, not by the provider
    storage.free_concurrency_slot_for_step("another-run", "another-step")
    worker.join(120)
    assert done == {"ok": True}
    assert google.calls("generateContent") == 1
    info = storage.get_concurrency_info(pool)
    assert info.slot_count == 1 and info.claimed_slots == [] and info.pending_steps == []  # freed after the job
    assert storage.get_concurrency_info("provider_fal").slot_count == 0  # no fal job, no fal pool yet


def test_a_providers_pool_starts_at_the_resources_limit(instance, hosted, stubs) -> None:  # type: ignore[no-untyped-def]
    write_campaign(hosted["root"], "noir-sneaker", "shoe", formats=["1x1"], route={"profile": "brand-safe"})
    register_campaigns(instance, ["shoe"])
    assert materialize_stages(instance, hosted["resources"], ["base_composition"], "shoe").success
    info = instance.event_log_storage.get_concurrency_info("provider_google")
    assert info.slot_count == hosted["resources"]["providers"].gemini.max_concurrent
    assert info.claimed_slots == []


# --------------------------------------------------------------------------------------------------------
# credits: budgets, crash safety, concurrent identical calls (counted at the stub)
# --------------------------------------------------------------------------------------------------------


def _step_failures(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [
        str(e.dagster_event.step_failure_data.error)
        for e in instance.all_logs(run_id)
        if e.dagster_event and e.dagster_event.is_step_failure
    ]


def test_budget_refuses_a_call_before_it_is_made_and_records_it(instance, hosted, stubs) -> None:  # type: ignore[no-untyped-def]
    google, _, _ = stubs
    write_campaign(
        hosted["root"], "noir-sneaker", "shoe", formats=["1x1"], route={"profile": "brand-safe"}, budget={"credits": 10}
    )  # fmt: skip
    register_campaigns(instance, ["shoe"])
    summary = materialize_stages(instance, hosted["resources"], ["base_composition"], "shoe", raise_on_error=False)
    assert not summary.success
    (message,) = _step_failures(instance, summary.run_id)  # refused once, not retried
    assert "budget exceeded, call refused before it was made" in message and "13.4 credits" in message
    assert google.calls("generateContent") == 0
    refusals = hosted["resources"]["providers"].ledger().refusals("shoe")
    assert list(refusals[["stage", "scope", "credits", "budget"]].itertuples(index=False, name=None)) == [
        ("base_composition", "campaign", 13.4, 10.0)
    ]
    assert trace(instance, "shoe") == []


def test_crash_after_a_paid_call_costs_nothing_on_the_retry(instance, hosted, stubs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from media_routes.defs.resources import LocalMediaStore

    google, _, _ = stubs
    write_campaign(hosted["root"], "noir-sneaker", "shoe", formats=["1x1"], route={"profile": "brand-safe"})
    register_campaigns(instance, ["shoe"])
    original = LocalMediaStore.put_bytes
    crashes = []

    def crash_once(self, data, *, prefix, ext):  # type: ignore[no-untyped-def]
        if not crashes:
            crashes.append(prefix)
            raise OSError("disk full (injected after the paid call, before the output is written)")
        return original(self, data, prefix=prefix, ext=ext)

    monkeypatch.setattr(LocalMediaStore, "put_bytes", crash_once)
    summary = materialize_stages(instance, hosted["resources"], ["base_composition"], "shoe")
    # the first write after the paid call failed once (a layer or the output), then Dagster's retry succeeded
    assert summary.success and len(crashes) == 1 and crashes[0].startswith("base_composition/shoe")
    assert google.calls("generateContent") == 1  # the retry found the paid result in the call cache
    ledger = hosted["resources"]["providers"].ledger().frame("shoe")
    paid = ledger[ledger["provider"] == "google"]
    assert list(paid["hit"]) == [False, True]


def _base_in_own_process(
    urls: tuple[str, str, str], tmp: str, cid: str, barrier: Any, results: Any
) -> None:  # pragma: no cover - runs in a spawned child
    """One Dagster run of ``base_composition`` in its own process, as a run worker would make it."""
    root = Path(tmp)
    google_url, fal_url, kling_url = urls
    hub = ProviderHub(
        gemini=GeminiResource(api_key=dg.EnvVar("GEMINI_API_KEY"), base_url=google_url, poll_interval_s=0.05),
        fal=FalResource(api_key=dg.EnvVar("FAL_KEY"), queue_url=fal_url, base_url=fal_url, poll_interval_s=0.05),
        kling=KlingResource(
            access_key=dg.EnvVar("KLING_ACCESS_KEY"),
            secret_key=dg.EnvVar("KLING_SECRET_KEY"),
            base_url=kling_url,
            poll_interval_s=0.05,
        ),
        state_dir=str(root / "credits"),
        retry_base_delay_s=0.05,
        retry_budget_s=10.0,
    )
    resources = build_resources(campaigns_dir=str(root / "campaigns"), media_root=str(root / "media"))
    resources["providers"] = hub
    with dg.instance_for_test() as inst:
        register_campaigns(inst, [cid])
        barrier.wait(timeout=120)  # both runs reach the provider call together
        ok = materialize_stages(inst, resources, ["base_composition"], cid, raise_on_error=False).success
        row = trace(inst, cid)[0] if ok else {}
        results.put((cid, ok, row.get("route", {}).get("calls", {}).get("cache_hits"), row.get("output_hash")))


def test_two_runs_making_the_identical_call_at_once_pay_once(hosted, stubs) -> None:  # type: ignore[no-untyped-def]
    # Two runs in two processes, as Dagster's run workers are (two in-process runs in threads deadlock in
    # Python's logging setup inside Dagster, which is not what a deployment does).
    import multiprocessing

    google, fal, kling = stubs
    for cid in ("twin-a", "twin-b"):  # same spec, other campaign: the same call (prompt, layout, seed, model)
        write_campaign(hosted["root"], "noir-sneaker", cid, formats=["1x1"], route={"profile": "brand-safe"})
    google.fail_next("slow", route="generateContent", delay_s=3.0)  # the first call is in flight a while
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    queue = ctx.Queue()
    urls = (google.url, fal.url, kling.url)
    procs = [
        ctx.Process(target=_base_in_own_process, args=(urls, str(hosted["tmp"]), cid, barrier, queue))
        for cid in ("twin-a", "twin-b")
    ]
    for proc in procs:
        proc.start()
    results = {}
    try:
        for _ in procs:
            cid, ok, hits, output_hash = queue.get(timeout=300)
            results[cid] = (ok, hits, output_hash)
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
    assert results["twin-a"][0] and results["twin-b"][0]
    assert google.calls("generateContent") == 1
    assert sorted(r[1] for r in results.values()) == [0, 1], results
    assert results["twin-a"][2] == results["twin-b"][2]


def test_estimate_matches_the_ledger_and_knows_what_is_cached(instance, hosted, stubs) -> None:  # type: ignore[no-untyped-def]
    from media_routes.credits.report import cost_report
    from media_routes.estimate import estimate
    from media_routes.spec import load_campaign

    spec = write_campaign(
        hosted["root"], "noir-sneaker", "shoe", formats=["1x1"], upscale={"target": "2K"}, motion=MOTION,
        route={"profile": "brand-safe"},
    )  # fmt: skip
    hub = hosted["resources"]["providers"]
    campaign = load_campaign(spec)

    def est(**kw: Any) -> dict[tuple[str, str | None], Any]:
        rows = estimate(instance, campaign, hub.router_context(), hub.cache(), **kw)
        return {(r.stage, r.format): r for r in rows}

    before = est()
    assert {k: r.status for k, r in before.items()} == {
        ("base_composition", None): "to pay",
        ("lighting_iteration", None): "local",
        ("inpaint_fix", None): "to pay",
        ("k_upscale", None): "to pay",
        ("aspect_outpaint", "1x1"): "to pay",
        ("motion", "1x1"): "to pay",
    }
    to_pay = sum(r.credits for r in before.values())
    _run(instance, hosted["resources"], "shoe", ["1x1"])
    ledger = hub.ledger()
    assert ledger.spent("shoe") == pytest.approx(to_pay)  # the estimate is what the run paid

    after = est()
    assert {r.status for r in after.values()} == {"cached", "local"}, {k: r.why for k, r in after.items()}
    assert sum(r.credits for r in after.values()) == 0

    plan = est(reroll="k_upscale")
    assert [k[0] for k, r in plan.items() if r.status == "to pay"] == ["k_upscale", "aspect_outpaint", "motion"]
    reroll_price = sum(r.credits for r in plan.values())

    # the re-roll itself, tagged as `media-routes reroll` tags it
    tags = {"media_routes/command": "reroll", "media_routes/reroll_stage": "k_upscale", "media_routes/seed": "7"}
    for run in plan_runs("shoe", ["1x1"], from_stage="k_upscale"):
        seeds = {"k_upscale": 7} if "k_upscale" in run.stages else None
        assert materialize_stages(
            instance, hosted["resources"], run.stages, run.partition, seeds=seeds, tags=tags
        ).success
    report = cost_report(ledger, instance, "shoe")
    (row,) = report.rerolls.to_dict(orient="records")
    assert row["stage"] == "k_upscale" and row["paid"] == pytest.approx(reroll_price)
    assert row["naive"] == pytest.approx(to_pay) and row["saved"] == pytest.approx(to_pay - reroll_price)
    assert report.spent_credits == pytest.approx(to_pay + reroll_price)


def test_a_profile_that_reroutes_blocks_falls_back_and_records_why(instance, hosted, stubs) -> None:  # type: ignore[no-untyped-def]
    google, _, _ = stubs
    write_campaign(hosted["root"], "noir-sneaker", "shoe", formats=["1x1"], route={"profile": "high-drama"})
    register_campaigns(instance, ["shoe"])
    google.fail_next("image_safety", route="generateContent")  # high-drama: reroute_on_block: true
    assert materialize_stages(instance, hosted["resources"], ["base_composition"], "shoe").success
    (row,) = trace(instance, "shoe")
    assert row["provider"] == "local" and row["route"]["route"] == "local"
    (blocked, ok) = row["route"]["attempts"]
    assert blocked["route"] == "google/gemini-3-pro-image-preview" and blocked["outcome"] == "fallback"
    assert "ContentBlocked" in blocked["reason"] and "IMAGE_SAFETY" in blocked["reason"]
    assert ok == {"route": "local", "outcome": "ok", "reason": ""}
    assert google.calls("generateContent") == 1  # a block is not retried
    # a block is not an outage: the route's health is untouched
    assert hosted["resources"]["providers"].health().status("google/gemini-3-pro-image-preview") is None


# --------------------------------------------------------------------------------------------------------
# hosted motion: brand colour restored only where the alignment is verified (issue #14 item 5)
# --------------------------------------------------------------------------------------------------------


def _yellow_pixels(frame: Any) -> int:
    """Pixels within 5 CIEDE2000 of noir-sneaker's electric yellow (what a painted headline adds)."""
    import numpy as np

    from media_routes.lib.imaging import srgb_to_lab
    from media_routes.quality.delta_e import delta_e00, hex_to_lab

    target = hex_to_lab("#F5D90A")
    lab = srgb_to_lab(frame).astype(np.float64)
    candidates = np.abs(lab[..., 0] - target[0]) <= 9  # CIEDE2000 >= |dL*| / 1.75
    return int((delta_e00(lab[candidates], target[None, :]) <= 5).sum())


def test_hosted_motion_restores_brand_only_where_the_alignment_is_verified(instance, hosted, stubs) -> None:  # type: ignore[no-untyped-def]
    """Veo clips of the delivered still: a push-in (verified in every frame: brand restored, check passes) and a
    hard cut, a whip pan and a wrap-around scroll (the frames the warp cannot follow are delivered as the provider
    made them, and the blocking brand check fails naming them). Delivered frames are compared to the provider's."""
    from media_routes.engine.motion import decode_frames
    from media_routes.hosted.motion import HostedClip
    from media_routes.stages import CAMPAIGN_STAGES, campaign_format_key

    google = stubs[0]
    local = {s: "local" for s in CAMPAIGN_STAGES} | {"aspect_outpaint": "local"}
    motion = {"duration_s": 4.0, "fps": 6, "camera": "push_in", "strength": 0.1}
    write_campaign(
        hosted["root"],
        "noir-sneaker",
        "shoe",
        formats=["9x16"],
        route={"profile": "high-drama", **local},
        motion=motion,
    )
    register_campaigns(instance, ["shoe"])
    resources = hosted["resources"]
    assert materialize_stages(instance, resources, list(CAMPAIGN_STAGES), "shoe").success
    part = str(campaign_format_key("shoe", "9x16"))
    assert materialize_stages(instance, resources, ["aspect_outpaint"], part).success
    hub = resources["providers"]
    results = {}
    for seed, camera in enumerate(["push_in", "hard_cut", "whip_pan", "wrap_scroll"], start=100):
        google.video_motion = camera  # the next Veo job's clip
        summary = materialize_stages(
            instance, resources, ["motion"], part, seeds={"motion": seed}, raise_on_error=False
        )
        (row,) = [r for r in trace(instance, "shoe") if r["stage"] == "motion"]
        assert row["run_id"] == summary.run_id and row["route"]["route"] == "google/veo-3.1-generate-preview", camera
        (call,) = [c for c in row["route"]["calls"]["detail"] if c["cache"] == "miss"]
        provider_video = hosted["tmp"] / f"provider-{camera}.mp4"
        provider_video.write_bytes(hub.cache().get(call["call_key"]).data)
        clip = HostedClip(segments=[provider_video], fps=6, n_frames=24, size=(1080, 1920))
        provider = list(clip.frames())  # the provider's frames as the stage resampled them
        delivered = list(decode_frames(Path(row["path"])))
        assert len(provider) == len(delivered) == 24
        alignment = row["metrics"]["brand_alignment"]
        lost = _frames(alignment["frames_lost"])
        extra = [_yellow_pixels(d) - _yellow_pixels(p) for p, d in zip(provider, delivered, strict=True)]
        results[camera] = (summary.success, row["checks"]["brand_colours_locked"], lost, extra)

    ok, check, lost, extra = results["push_in"]
    assert ok and check == "passed" and lost == []
    assert max(extra) > 0  # the correction still happens: the headline is pulled to the exact yellow
    for camera in ("hard_cut", "whip_pan", "wrap_scroll"):
        ok, check, lost, extra = results[camera]
        assert lost, camera
        assert not ok and check.startswith("FAILED: brand region not found in the provider's own pixels"), check
        assert f"at frame(s) {_ranges(lost)} of 24" in check
        # nothing painted in the lost frames: no more brand yellow than the provider's own, up to H.264 re-encoding
        # noise at the 5-CIEDE2000 boundary. That noise was under 150 px; the protected sneaker's accent (held at its
        # source colour 244,216,14, itself within 5 of the brand yellow) doubles the near-yellow area, and with it the
        # noise (231 measured). A painted frame adds 3,000-6,600 (the verified frames above).
        worst = max(extra[i - 1] for i in lost)
        assert worst <= 300, (camera, worst, extra)


def _frames(ranges: str) -> list[int]:
    out: list[int] = []
    for part in filter(None, (p.strip() for p in ranges.split(","))):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def _ranges(frames: list[int]) -> str:
    from media_routes.quality.alignment import frame_ranges

    return frame_ranges(frames)
