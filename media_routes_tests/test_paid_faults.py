"""Paid calls under faults (issue #14): count what the stub received per run and per re-run, the ledger rows (billed
or not, outcome), what was materialized and the one-line failure reason the command line prints.

Targets: sends per run at most 1 for an unusable 2xx, at most 1 for a quota, auth or content block, at most 4
(``ProviderHub.max_attempts``) for a 429 or a 5xx; 0 on a re-run of a call already paid and stored; every billed
answer in the ledger. Still faults run ``base_composition`` on the brand-safe profile (Nano Banana Pro, then the
local engine); Veo faults run ``motion`` on high-drama (Veo, then Kling, then local) with stages 1-5 local.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from media_routes.cli import main
from media_routes.definitions import build_resources
from media_routes.defs.providers import GeminiResource, KlingResource, ProviderHub
from media_routes.lineage import trace
from media_routes.pipeline import materialize_stages, register_campaigns
from media_routes.run_report import failure_reasons
from media_routes.stages import CAMPAIGN_STAGES, campaign_format_key
from media_routes.testing.campaigns import FAST, write_campaign
from media_routes.testing.stubs.fal_stub import FalStub
from media_routes.testing.stubs.google_stub import GoogleStub
from media_routes.testing.stubs.kling_stub import KlingStub
from media_routes_tests.test_hosted_routes import KEYS, VIDEO_LONG_SIDE, _hub

pytestmark = pytest.mark.integration

BASE = "google/gemini-3-pro-image-preview"
VEO = "google/veo-3.1-generate-preview"
KLING = "kling/kling-v2-5-turbo"
VEO_GROUP = pytest.mark.xdist_group("paid_faults_veo")  # one worker renders the template once for them all


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


@pytest.fixture
def hosted(tmp_path: Path, stubs: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "campaigns").mkdir()
    return _hosted(tmp_path, stubs)


def _hosted(tmp_path: Path, stubs: Any) -> dict[str, Any]:
    """Resources for the campaigns, media and credits under ``tmp_path``, the providers on ``stubs`` (keys set)."""
    root = tmp_path / "campaigns"
    resources: dict[str, Any] = build_resources(campaigns_dir=str(root), media_root=str(tmp_path / "media"))
    google = stubs[0]
    hub = _hub(stubs, tmp_path / "credits")
    # a short read timeout, so the stub's late answer (held back 2.5 s after it was generated) is given up on
    gemini = GeminiResource(
        api_key=dg.EnvVar("GEMINI_API_KEY"), base_url=google.url, poll_interval_s=0.05, image_read_timeout_s=1.0
    )
    resources["providers"] = ProviderHub(
        gemini=gemini,
        fal=hub.fal,
        kling=hub.kling,
        state_dir=hub.state_dir,
        retry_base_delay_s=hub.retry_base_delay_s,
        retry_budget_s=hub.retry_budget_s,
    )
    return {"root": root, "resources": resources}


@dataclass(frozen=True)
class Run:
    success: bool
    sends: int  # requests the stub received for the route's billable endpoint in this run
    route: str | None  # the route of the stage's materialization made by this run (None: nothing materialized)
    ledger: list[tuple[bool, str]] = field(default_factory=list)  # (billed, outcome) of this run's provider rows
    lines: list[str] = field(default_factory=list)  # the one-line failure reasons the command line prints


def _ledger_rows(hub: Any, run_id: str, provider: str) -> list[tuple[bool, str]]:
    frame = hub.ledger().frame("shoe")
    rows = frame[(frame["run_id"] == run_id) & (frame["provider"] == provider) & ~frame["hit"]]
    return [(bool(b), str(o)) for b, o in zip(rows["billed"], rows["outcome"], strict=True)]


def _run(instance: dg.DagsterInstance, hosted: dict[str, Any], stage: str, partition: str, count: Any) -> Run:
    before = count()
    summary = materialize_stages(instance, hosted["resources"], [stage], partition, raise_on_error=False)
    sends = count() - before
    row = next((r for r in trace(instance, "shoe") if r["stage"] == stage and r["partition"] == partition), None)
    route = row["route"]["route"] if row is not None and row["run_id"] == summary.run_id else None
    provider = "google"
    return Run(
        success=summary.success,
        sends=sends,
        route=route,
        ledger=_ledger_rows(hosted["resources"]["providers"], summary.run_id, provider),
        lines=failure_reasons(instance, summary.run_id),
    )


# --------------------------------------------------------------------------------------------------------
# stills: base_composition on Nano Banana Pro (brand-safe: falls back to the local engine on an outage only)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StillFault:
    kind: str
    options: dict[str, Any]
    first: Run
    again: Run  # the same call re-run (a new Dagster run of the stage)
    line: tuple[str, ...] = ()  # what the one-line reason of the first run says


STILL_FAULTS = {
    "truncated 200": StillFault(
        "truncated",
        {"route": "generateContent"},
        first=Run(False, 1, None, [(True, "unparseable")]),
        again=Run(False, 0, None, []),  # paid and unusable: refused before it is sent, re-roll to pay again
        line=("base_composition: google gemini-3-pro-image-preview: ServerError", "not JSON", "request id"),
    ),
    "200 with an empty candidate list": StillFault(
        "no_candidates",
        {},
        first=Run(False, 1, None, [(True, "failed")]),
        again=Run(False, 0, None, []),
        line=("ContentBlocked [NO_CANDIDATES]", "without candidates", "request id stub"),
    ),
    "per-minute 429 with RetryInfo": StillFault(
        "rate_limit",
        {"route": "generateContent", "retry_delay": "1s"},
        first=Run(True, 2, BASE, [(True, "usable")]),  # waited out, then answered
        again=Run(True, 0, BASE, []),  # a cache hit
    ),
    "per-minute 429 that does not clear": StillFault(
        "rate_limit",
        {"route": "generateContent", "retry_delay": "0.1s", "count": 10},
        first=Run(True, 4, "local", []),  # 4 sends, then the outage falls back to the local engine
        again=Run(True, 4, "local", []),  # the next run tries again (health: one run's outage, not 4)
    ),
    "per-day quota": StillFault(
        "quota_exhausted",
        {"route": "generateContent"},
        first=Run(True, 1, "local", []),  # not retried, not billed; the fallback made it
        again=Run(True, 1, BASE, [(True, "usable")]),  # the route was not marked down: tried again once, answered
    ),
    "503 twice then OK": StillFault(
        "unavailable",
        {"route": "generateContent", "count": 2},
        first=Run(True, 3, BASE, [(True, "usable")]),
        again=Run(True, 0, BASE, []),
    ),
    "read timeout after the server finished": StillFault(
        "late_answer",
        {"delay_s": 2.5},
        first=Run(True, 1, "local", [(True, "lost")]),  # maybe billed: booked; not re-sent in the run; fell back
        again=Run(True, 1, BASE, [(True, "usable")]),  # a later run may send it again (the answer was never seen)
    ),
    "permission denied (a leaked key)": StillFault(
        "permission_denied",
        {"route": "generateContent"},
        first=Run(False, 1, None, []),  # configuration, not an outage: no retry, no fallback, nothing billed
        again=Run(True, 1, BASE, [(True, "usable")]),  # not billed, so a later run sends it again (here it answers)
        line=("base_composition: google gemini-3-pro-image-preview: PermissionDenied", "leaked"),
    ),
    "image safety with usage metadata": StillFault(
        "image_safety",
        {"route": "generateContent"},
        first=Run(False, 1, None, [(True, "blocked")]),
        again=Run(False, 0, None, []),  # the blocked, billed call is not re-sent
        line=("ContentBlocked [IMAGE_SAFETY]", "request id stub"),
    ),
}


@pytest.mark.parametrize("name", list(STILL_FAULTS))
def test_still_fault_sends_accounts_and_reports(instance, hosted, stubs, name: str) -> None:  # type: ignore[no-untyped-def]
    fault = STILL_FAULTS[name]
    google = stubs[0]
    write_campaign(hosted["root"], "noir-sneaker", "shoe", formats=["1x1"], route={"profile": "brand-safe"})
    register_campaigns(instance, ["shoe"])
    options = dict(fault.options)
    google.fail_next(fault.kind, options.pop("count", 1), **options)
    count = lambda: google.calls("generateContent")  # noqa: E731

    first = _run(instance, hosted, "base_composition", "shoe", count)
    assert (first.success, first.sends, first.route, first.ledger) == (
        fault.first.success,
        fault.first.sends,
        fault.first.route,
        fault.first.ledger,
    ), first
    if not first.success:
        (line,) = first.lines
        assert "\n" not in line and "Traceback" not in line
        for part in fault.line:
            assert part in line, (part, line)
    else:
        assert first.lines == []
    again = _run(instance, hosted, "base_composition", "shoe", count)
    assert (again.success, again.sends, again.route, again.ledger) == (
        fault.again.success,
        fault.again.sends,
        fault.again.route,
        fault.again.ledger,
    ), again
    if not again.success:
        (line,) = again.lines
        assert "already paid" in line and "media-routes reroll base_composition --campaign shoe" in line
    hub = hosted["resources"]["providers"]
    assert hub.health().status(BASE) is None  # one run's outcome never marks the route down
    # every answer the stub made that the live service may bill is in the ledger as billed (the late one included)
    google.wait_idle()  # the late answer's hold may outlast both runs on a quiet machine
    frame = hub.ledger().frame("shoe")
    billed = frame[(frame["provider"] == "google") & frame["billed"]]
    assert len(billed) == google.billable_answers == len(fault.first.ledger) + len(fault.again.ledger)
    assert float(billed["credits"].sum()) == pytest.approx(13.4 * len(billed))
    assert hub.ledger().spent("shoe") == pytest.approx(13.4 * len(billed))  # budgets see every billed answer
    # the actual cost beside the estimate: every answer that could be read carried usageMetadata (a blocked one and
    # an empty candidate list too); a truncated or lost answer reports nothing
    for outcome, actual in zip(billed["outcome"], billed["actual_credits"], strict=True):
        reported = outcome in ("usable", "blocked", "failed")
        assert (actual == actual) is reported, (outcome, actual)  # NaN = not reported
        assert not reported or 13.0 < actual < 14.5, actual  # ~1120 image tokens at $120/M plus text and input


def test_a_failed_paid_answer_is_in_the_failure_metadata(instance, hosted, stubs) -> None:  # type: ignore[no-untyped-def]
    google = stubs[0]
    write_campaign(hosted["root"], "noir-sneaker", "shoe", formats=["1x1"], route={"profile": "brand-safe"})
    register_campaigns(instance, ["shoe"])
    google.fail_next("truncated", route="generateContent")
    summary = materialize_stages(instance, hosted["resources"], ["base_composition"], "shoe", raise_on_error=False)
    (event,) = [e for e in instance.all_logs(summary.run_id) if e.dagster_event and e.dagster_event.is_step_failure]
    meta = event.dagster_event.step_failure_data.user_failure_data.metadata  # type: ignore[union-attr]
    calls = meta["calls"].value
    assert calls["calls"] == 1 and calls["unusable"] == 1 and calls["credits"] == pytest.approx(13.4)
    (detail,) = calls["detail"]
    assert detail["outcome"] == "unparseable" and detail["billed"] is True and detail["route"] == BASE


def test_a_step_retry_continues_the_send_count(instance, hosted, stubs, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """503 x4 falls back to the local engine, which then fails once (a transient error Dagster retries): the retried
    step does not send the hosted call again, its 4 sends of this run are spent."""
    import importlib

    stage_module = importlib.import_module("media_routes.defs.stages.base_composition")  # (the package exports the
    # asset under the module's name)
    google = stubs[0]
    write_campaign(hosted["root"], "noir-sneaker", "shoe", formats=["1x1"], route={"profile": "brand-safe"})
    register_campaigns(instance, ["shoe"])
    google.fail_next("unavailable", 10, route="generateContent")
    original = stage_module.compose
    failures: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append(1)
            raise OSError("disk hiccup (injected into the local engine)")
        return original(*args, **kwargs)

    monkeypatch.setattr(stage_module, "compose", flaky)
    summary = materialize_stages(instance, hosted["resources"], ["base_composition"], "shoe", raise_on_error=False)
    assert summary.success and failures == [1]
    assert google.calls("generateContent") == 4  # not 8: the step retry found the send budget spent
    (row,) = trace(instance, "shoe")
    assert row["route"]["route"] == "local"


# --------------------------------------------------------------------------------------------------------
# Veo: motion on high-drama (Veo, Kling, local), stages 1-5 on the local engine
# --------------------------------------------------------------------------------------------------------


@VEO_GROUP
def test_veo_faults_send_once_and_account(veo_shoe, stubs) -> None:  # type: ignore[no-untyped-def]
    google, _, kling = stubs
    instance, hosted = veo_shoe
    part = VEO_PART
    submits = lambda: google.calls("predictLongRunning")  # noqa: E731

    # an operation that ends with an error (rpc 13) after it started: booked, not resubmitted, not re-routed
    google.fail_next("veo_error")
    first = _run(instance, hosted, "motion", part, submits)
    assert (first.success, first.sends, first.route, first.ledger) == (False, 1, None, [(True, "failed")])
    (line,) = first.lines
    assert line.startswith("motion: google veo-3.1-generate-preview: ServerError: operation failed (rpc code 13)")
    assert "request id models/veo-3.1-generate-preview/operations/" in line
    again = _run(instance, hosted, "motion", part, submits)
    assert (again.success, again.sends, again.route, again.ledger) == (False, 0, None, [])
    assert "already paid" in again.lines[0]

    # RAI filter on a re-roll (a new seed, a new call): not charged, a block; high-drama re-routes to Kling
    seeds = {"motion": 11}
    google.fail_next("rai_filtered")
    before, kling_before = submits(), kling.calls("create")
    summary = materialize_stages(instance, hosted["resources"], ["motion"], part, seeds=seeds)
    assert summary.success and submits() - before == 1 and kling.calls("create") - kling_before == 1
    (row,) = [r for r in trace(instance, "shoe") if r["stage"] == "motion"]
    assert row["route"]["route"] == KLING and row["run_id"] == summary.run_id
    assert _ledger_rows(hosted["resources"]["providers"], summary.run_id, "google") == [(False, "blocked")]
    assert _ledger_rows(hosted["resources"]["providers"], summary.run_id, "kling") == [(True, "usable")]
    # re-run of the re-roll: Veo was not charged, so it is asked again once (and answers); nothing is re-paid twice
    summary = materialize_stages(instance, hosted["resources"], ["motion"], part, seeds=seeds)
    assert summary.success and submits() - before == 2
    assert _ledger_rows(hosted["resources"]["providers"], summary.run_id, "google") == [(True, "usable")]
    # and once more: both calls are stored, nothing is sent
    summary = materialize_stages(instance, hosted["resources"], ["motion"], part, seeds=seeds)
    assert summary.success and submits() - before == 2 and kling.calls("create") - kling_before == 1


def _write_veo_spec(campaigns: Path, motion_route: str | None = None) -> None:
    """noir-sneaker with stages 1-5 on the local engine; motion on high-drama (Veo first) or on ``motion_route``."""
    local = {s: "local" for s in CAMPAIGN_STAGES} | {"aspect_outpaint": "local"}
    if motion_route is not None:
        local["motion"] = motion_route
    write_campaign(
        campaigns, "noir-sneaker", "shoe", formats=["9x16"], route={"profile": "high-drama", **local},
        motion={"duration_s": 4.0, "fps": 3, "camera": "push_in", "strength": 0.1},
    )  # fmt: skip


VEO_PART = str(campaign_format_key("shoe", "9x16"))


@pytest.fixture(scope="module")
def veo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Stages 1-5 of the Veo spec, rendered once per module on the local engine (no provider is called: the stubs
    here only fill the resources), in an on-disk instance the tests copy."""
    root = tmp_path_factory.mktemp("veo-template")
    (root / "campaigns").mkdir()
    (root / "instance").mkdir()
    _write_veo_spec(root / "campaigns")
    with (
        GoogleStub(api_key=KEYS["GEMINI_API_KEY"]) as google,
        FalStub(api_key=KEYS["FAL_KEY"]) as fal,
        KlingStub(access_key=KEYS["KLING_ACCESS_KEY"], secret_key=KEYS["KLING_SECRET_KEY"]) as kling,
        pytest.MonkeyPatch.context() as mp,
    ):
        for name, value in KEYS.items():
            mp.setenv(name, value)
        resources = _hosted(root, (google, fal, kling))["resources"]
        with dg.instance_for_test(temp_dir=str(root / "instance"), set_dagster_home=False) as instance:
            register_campaigns(instance, ["shoe"])
            assert materialize_stages(instance, resources, list(CAMPAIGN_STAGES), "shoe").success
            assert materialize_stages(instance, resources, ["aspect_outpaint"], VEO_PART).success
        assert google.calls() == fal.calls() == kling.calls() == 0
    return root


@pytest.fixture
def veo_shoe(
    veo_template: Path, tmp_path: Path, stubs: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[dg.DagsterInstance, dict[str, Any]]]:
    """A fresh instance, media store and credits state holding a copy of :func:`veo_template` (stages 1-5 made, as
    if this test had rendered them), with the providers on this test's stubs: the motion stage is next."""
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    for folder in ("instance", "campaigns", "credits"):
        if (veo_template / folder).exists():
            shutil.copytree(veo_template / folder, tmp_path / folder)
    shutil.copytree(veo_template / "media", tmp_path / "media", copy_function=os.link)  # write-once files
    with dg.instance_for_test(temp_dir=str(tmp_path / "instance")) as instance:
        yield instance, _hosted(tmp_path, stubs)


def _motion_on(hosted: dict[str, Any], motion_route: str) -> None:
    """Route the copied spec's motion to ``motion_route`` (stages 1-5 stay as made)."""
    shutil.rmtree(hosted["root"] / "shoe")
    _write_veo_spec(hosted["root"], motion_route)


def _google_rows(hub: Any) -> list[tuple[str, bool, str]]:
    """(row id, billed, outcome) of every Google provider row in the ledger, whatever run wrote it."""
    frame = hub.ledger().frame("shoe")
    rows = frame[(frame["provider"] == "google") & ~frame["hit"]]
    return [(str(i), bool(b), str(o)) for i, b, o in zip(rows["id"], rows["billed"], rows["outcome"], strict=True)]


@VEO_GROUP
def test_a_veo_job_that_outlived_its_poll_is_resumed_not_resubmitted(veo_shoe, stubs) -> None:  # type: ignore[no-untyped-def]
    """A poll that times out leaves a job the provider finishes and bills. The run fails without falling back to
    another route (that would pay twice), saying the job is kept; the next run waits on that job and fetches its
    video: 1 submission, 1 billed answer, 1 ledger row, across both runs."""
    google, _, kling = stubs
    instance, hosted = veo_shoe
    part = VEO_PART
    hub = hosted["resources"]["providers"]
    impatient = ProviderHub(
        gemini=GeminiResource(
            api_key=dg.EnvVar("GEMINI_API_KEY"), base_url=google.url, poll_interval_s=0.05, video_timeout_s=0.5
        ),
        fal=hub.fal,
        kling=hub.kling,
        state_dir=hub.state_dir,
        retry_base_delay_s=hub.retry_base_delay_s,
        retry_budget_s=hub.retry_budget_s,
    )
    google.polls_until_done = 10_000  # the job runs longer than this run is willing to wait
    summary = materialize_stages(
        instance, {**hosted["resources"], "providers": impatient}, ["motion"], part, raise_on_error=False
    )
    assert not summary.success
    assert google.calls("predictLongRunning") == 1 and kling.calls("create") == 0  # no fallback while it runs
    assert _google_rows(hub) == []  # not finished: nothing billed yet
    (line,) = failure_reasons(instance, summary.run_id)
    assert "ProviderTimeout" in line and "may still be running; it is kept" in line, line
    assert "it is not submitted or paid again" in line
    (job,) = hub.cache().jobs(next(iter(_job_keys(hub))))
    assert job.state == "submitted" and job.job_id.startswith("models/veo-3.1-generate-preview/operations/")
    # the route's health is untouched: a slow job is not an outage
    assert hub.health().status(VEO) is None

    assert google.finish_jobs() == 1  # the service finished it meanwhile (and bills it)
    summary = materialize_stages(instance, hosted["resources"], ["motion"], part, raise_on_error=False)
    assert summary.success
    assert google.calls("predictLongRunning") == 1  # waited on, not submitted again
    assert google.billable_answers == 1
    (row,) = [r for r in trace(instance, "shoe") if r["stage"] == "motion"]
    assert row["run_id"] == summary.run_id and row["route"]["route"] == VEO
    ((_, billed, outcome),) = _google_rows(hub)
    assert (billed, outcome) == (True, "usable")
    (job,) = hub.cache().jobs(job.call_key)
    assert job.state == "stored"


@VEO_GROUP
def test_a_kling_task_that_outlived_its_poll_is_resumed_not_resubmitted(veo_shoe, stubs) -> None:  # type: ignore[no-untyped-def]
    """The same for a Kling task (motion routed to Kling): kept, waited on by the next run, billed once."""
    google, _, kling = stubs
    instance, hosted = veo_shoe
    part = VEO_PART
    _motion_on(hosted, KLING)
    hub = hosted["resources"]["providers"]
    impatient = ProviderHub(
        gemini=hub.gemini,
        fal=hub.fal,
        kling=KlingResource(
            access_key=dg.EnvVar("KLING_ACCESS_KEY"),
            secret_key=dg.EnvVar("KLING_SECRET_KEY"),
            base_url=kling.url,
            poll_interval_s=0.05,
            video_timeout_s=0.5,
        ),
        state_dir=hub.state_dir,
        retry_base_delay_s=hub.retry_base_delay_s,
        retry_budget_s=hub.retry_budget_s,
    )
    kling.polls_before_done = 200  # longer than this run waits
    summary = materialize_stages(
        instance, {**hosted["resources"], "providers": impatient}, ["motion"], part, raise_on_error=False
    )
    assert not summary.success and kling.calls("create") == 1 and google.calls("predictLongRunning") == 0
    (line,) = failure_reasons(instance, summary.run_id)
    assert "may still be running; it is kept" in line, line
    kling.polls_before_done = 0  # it finished meanwhile
    summary = materialize_stages(instance, hosted["resources"], ["motion"], part, raise_on_error=False)
    assert summary.success and kling.calls("create") == 1
    (row,) = [r for r in trace(instance, "shoe") if r["stage"] == "motion"]
    assert row["run_id"] == summary.run_id and row["route"]["route"] == KLING
    frame = hub.ledger().frame("shoe")
    paid = frame[(frame["provider"] == "kling") & ~frame["hit"]]
    assert [(bool(b), str(o)) for b, o in zip(paid["billed"], paid["outcome"], strict=True)] == [(True, "usable")]


def test_a_demo_killed_while_veo_runs_then_re_run_waits_on_the_same_job(  # type: ignore[no-untyped-def]
    cli_env, tmp_path: Path
) -> None:
    """`media-routes demo` with motion on Veo, SIGKILLed while it polls the job; the job finishes at the provider;
    the re-run (which marks the killed run failed and frees its slots) waits on that job: 1 submission in all."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    google = cli_env["google"]
    root = tmp_path / "campaigns"
    shutil.rmtree(root / "shoe")  # cli_env's campaign, with motion on Veo instead
    local = {s: "local" for s in CAMPAIGN_STAGES} | {"aspect_outpaint": "local", "motion": VEO}
    write_campaign(root, "noir-sneaker", "shoe", formats=["9x16"], route={"profile": "high-drama", **local}, **FAST)
    google.polls_until_done = 100_000
    cmd = [sys.executable, "-m", "media_routes.cli", *cli_env["demo"]]
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 900
        while google.calls("operation") < 2:  # submitted (and kept: the job row is written before the first poll)
            assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the demo never reached the Veo job"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert google.calls("predictLongRunning") == 1
    assert google.finish_jobs() == 1  # the provider finished it after the process died
    google.polls_until_done = 2  # (a new job would finish quickly too: the count below tells them apart)
    again = subprocess.run(cmd, env=dict(os.environ), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "marked failed, its pool slots freed" in again.stdout + again.stderr
    assert google.calls("predictLongRunning") == 1  # waited on, not submitted again
    assert google.billable_answers == 1
    assert "motion [shoe|9x16]: hosted google/veo-3.1-generate-preview" in again.stdout, again.stdout


@pytest.mark.parametrize("failed_downloads", [2, 4])
def test_a_finished_fal_request_whose_output_download_failed_is_fetched_again(  # type: ignore[no-untyped-def]
    instance, hosted, stubs, failed_downloads: int
) -> None:
    """fal's queue: k_upscale on SeedVR, its output file's download fails. The request is kept with the URLs fal gave
    (``call_jobs.resume_with``) and waited on again: in the same run (2 failures) or the next (4): 1 submission, 1
    billed row."""
    _, fal, _ = stubs
    route = {s: "local" for s in CAMPAIGN_STAGES} | {"k_upscale": "fal/fal-ai/seedvr/upscale/image"}
    write_campaign(hosted["root"], "noir-sneaker", "shoe", formats=["1x1"], route={"profile": "brand-safe", **route})
    register_campaigns(instance, ["shoe"])
    hub = hosted["resources"]["providers"]
    stills = ["base_composition", "lighting_iteration", "inpaint_fix"]
    assert materialize_stages(instance, hosted["resources"], stills, "shoe").success
    fal.fail_next("server_error", failed_downloads, route="cdn")
    summary = materialize_stages(instance, hosted["resources"], ["k_upscale"], "shoe", raise_on_error=False)
    assert fal.calls("submit") == 1
    if failed_downloads == 4:
        assert not summary.success
        (line,) = failure_reasons(instance, summary.run_id)
        assert "finished, its result not fetched; it is kept" in line, line
        summary = materialize_stages(instance, hosted["resources"], ["k_upscale"], "shoe", raise_on_error=False)
        assert fal.calls("submit") == 1
    assert summary.success
    assert fal.calls("cdn") == failed_downloads + 1
    frame = hub.ledger().frame("shoe")
    paid = frame[(frame["provider"] == "fal") & ~frame["hit"]]
    assert [(bool(b), str(o)) for b, o in zip(paid["billed"], paid["outcome"], strict=True)] == [(True, "usable")]
    (row,) = [r for r in trace(instance, "shoe") if r["stage"] == "k_upscale"]
    assert row["run_id"] == summary.run_id and row["route"]["route"] == "fal/fal-ai/seedvr/upscale/image"


def _job_keys(hub: Any) -> set[str]:
    with hub.cache().db.connect() as conn:
        return {r[0] for r in conn.execute("SELECT call_key FROM call_jobs").fetchall()}


@VEO_GROUP
@pytest.mark.parametrize("failed_downloads", [2, 4])
def test_a_finished_veo_video_whose_download_failed_is_fetched_again_not_paid_again(  # type: ignore[no-untyped-def]
    veo_shoe, stubs, failed_downloads: int
) -> None:
    """The job finished (billed) and its download failed: the same run fetches it again (2 failures, then it comes),
    or, once the run's 4 sends are spent (4 failures), the next run does. Never a second job, never a second billed
    row, and no other route paid meanwhile."""
    google, _, kling = stubs
    instance, hosted = veo_shoe
    part = VEO_PART
    hub = hosted["resources"]["providers"]
    google.fail_next("server_error", failed_downloads, route="download")
    summary = materialize_stages(instance, hosted["resources"], ["motion"], part, raise_on_error=False)
    assert google.calls("predictLongRunning") == 1 and kling.calls("create") == 0
    assert google.billable_answers == 1
    if failed_downloads == 2:
        assert summary.success
        assert google.calls("download") == 3
    else:
        assert not summary.success
        assert hub.max_attempts == 4 and google.calls("download") == 4  # one per send of the run's budget
        ((row_id, billed, outcome),) = _google_rows(hub)
        assert billed and outcome == "failed"
        (line,) = failure_reasons(instance, summary.run_id)
        assert "finished, its result not fetched; it is kept" in line, line
        assert google.pending_faults() == 0  # the storage host is back
        summary = materialize_stages(instance, hosted["resources"], ["motion"], part, raise_on_error=False)
        assert summary.success
        assert google.calls("predictLongRunning") == 1 and google.billable_answers == 1
        ((again_id, _, _),) = _google_rows(hub)
        assert again_id == row_id  # the row the finished job wrote, now settled usable
    ((_, billed, outcome),) = _google_rows(hub)
    assert (billed, outcome) == (True, "usable")
    (row,) = [r for r in trace(instance, "shoe") if r["stage"] == "motion"]
    assert row["run_id"] == summary.run_id and row["route"]["route"] == VEO


# --------------------------------------------------------------------------------------------------------
# the command line: exit status, the one-line reason, the routes that ran, strict JSON costs
# --------------------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, stubs: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """`media-routes` pointed at the Google stub (only the Gemini key set: the other providers' routes are rejected,
    so every other stage runs on the local engine)."""
    google = stubs[0]
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", KEYS["GEMINI_API_KEY"])
    monkeypatch.setenv("GEMINI_BASE_URL", google.url)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDIA_ROUTES_MEDIA_ROOT", str(tmp_path / "media"))
    monkeypatch.setenv("MEDIA_ROUTES_STATE_DIR", str(tmp_path / "credits"))
    root = tmp_path / "campaigns"
    root.mkdir()
    write_campaign(root, "noir-sneaker", "shoe", formats=["1x1"], route={"profile": "brand-safe"}, **FAST)
    args = ["demo", "--campaign", "shoe", "--campaigns-dir", str(root), "--out", str(tmp_path / "out")]
    return {"google": google, "demo": args}


def test_cli_failure_prints_one_line_reason_and_no_stack_trace(cli_env, capfd) -> None:  # type: ignore[no-untyped-def]
    google = cli_env["google"]
    google.fail_next("truncated", route="generateContent")
    assert main(cli_env["demo"]) == 1
    captured = capfd.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text and "Stack Trace" not in text and "dagster._core" not in text
    failed = [ln for ln in captured.err.splitlines() if ln.startswith("FAILED ")]
    assert failed == [
        "FAILED base_composition: google gemini-3-pro-image-preview: ServerError: HTTP 200 with a body that is not "
        "JSON (truncated?) (no request id in the answer)"
    ]
    assert "base_composition [shoe]: not materialized" in captured.out
    assert "credits spent by these runs: 13.4 (1 billed answer(s) unusable" in captured.out
    assert google.calls("generateContent") == 1
    # --verbose shows Dagster's error with its stack; the re-run refuses to re-send the paid call
    assert main([*cli_env["demo"], "--verbose"]) == 1
    captured = capfd.readouterr()
    assert "Stack Trace" in captured.out + captured.err
    assert any("already paid" in ln for ln in captured.err.splitlines() if ln.startswith("FAILED "))
    assert google.calls("generateContent") == 1


def test_cli_summary_names_the_routes_that_ran_and_costs_json_is_strict(cli_env, capfd) -> None:  # type: ignore[no-untyped-def]
    google = cli_env["google"]
    google.fail_next("unavailable", 2, route="generateContent")  # 503 twice, then the answer
    assert main(cli_env["demo"]) == 0
    out = capfd.readouterr().out
    # brand-safe with only the Gemini key: fal's routes are rejected, so inpaint and outpaint also go to Gemini
    hosted = "hosted google/gemini-3-pro-image-preview (1 paid call(s)), 13.4 credits"
    for stage in ("base_composition [shoe]", "inpaint_fix [shoe]", "aspect_outpaint [shoe|1x1]"):
        assert f"{stage}: {hosted}" in out, out
    for stage in ("lighting_iteration [shoe]", "k_upscale [shoe]", "motion [shoe|1x1]"):
        assert f"{stage}: local engine, 0 credits" in out, out
    assert "credits spent by these runs: 40.2\n" in out and "on the local engine" not in out
    assert google.calls("generateContent") == 5  # 3 for the base (503, 503, answer), 1 inpaint fix, 1 outpaint

    assert main(cli_env["demo"]) == 0  # everything again: the paid calls are cache hits
    out = capfd.readouterr().out
    assert "base_composition [shoe]: cache hit google/gemini-3-pro-image-preview (1 call(s) from the cache)" in out
    assert "credits spent by these runs: 0\n" in out
    assert google.calls("generateContent") == 5

    assert main(["costs", "--json"]) == 0
    text = capfd.readouterr().out

    def no_constants(name: str) -> None:
        raise AssertionError(f"not strict JSON: {name}")

    report = json.loads(text, parse_constant=no_constants)
    assert report["hit_rate"] == pytest.approx(0.5)  # hosted rows only: 3 paid calls, 3 hits
    assert report["local_rows"] == 6  # 3 local stages x 2 runs, reported apart
    assert report["spent_credits"] == pytest.approx(40.2)
    (google_cost,) = report["actual_vs_estimate"]
    assert google_cost["provider"] == "google" and google_cost["billed"] == google_cost["reported"] == 3
    assert google_cost["estimated_credits"] == pytest.approx(40.2) and google_cost["not_reported"] == 0
    assert google_cost["difference_credits"] == pytest.approx(google_cost["actual_credits"] - 40.2)
