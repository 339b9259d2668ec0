"""Accounting of paid answers, the shared send budget, health per run and quota scope, without Dagster (issue #14).

The end-to-end counts against the stubs are in test_paid_faults.py; these pin the pieces: the ledger's billed and
outcome columns (and the migration of an older ledger), the call cache's send count, HostedCalls with receipts,
run_plan's decisions, the health book, strict JSON and the command line's one-line reason.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from media_routes.cli import strict_json
from media_routes.credits.call_cache import CallCache
from media_routes.credits.ledger import Ledger, PriceTable, Units
from media_routes.defs.providers import FalResource, GeminiResource, KlingResource, ProviderHub
from media_routes.providers import receipts
from media_routes.providers.errors import ContentBlocked, QuotaExhausted, ServerError
from media_routes.providers.gemini import quota_is_provider_wide
from media_routes.routing.execute import (
    HostedCalls,
    PaidAnswerUnusable,
    RouteFailed,
    SendBudgetSpent,
    failure_line,
    run_plan,
)
from media_routes.routing.health import HealthBook
from media_routes.routing.profiles import RouteProfile
from media_routes.routing.router import Candidate, RoutePlan
from media_routes.run_report import describe
from media_routes.stages import STAGES

log = logging.getLogger(__name__)
KEY = "ab" * 32
BASE = Candidate(
    route="google/gemini-3-pro-image-preview",
    provider="google",
    model="gemini-3-pro-image-preview",
    units=Units(images=1),
    credits=13.4,
)
LOCAL = Candidate(route="local", provider="local", model="local-engine", credits=0.0)


def _ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.sqlite", PriceTable.from_yaml())


def _row(ledger: Ledger, **kw: Any) -> Any:
    args: dict[str, Any] = dict(
        run_id="r1",
        campaign="c",
        stage="base_composition",
        provider="google",
        model="gemini-3-pro-image-preview",
        units=Units(images=1),
        hit=False,
        call_key=KEY,
    )
    return ledger.record(**(args | kw))


# -- ledger ---------------------------------------------------------------------------------------------------


def test_billed_rows_cost_their_price_whatever_the_outcome_and_free_ones_nothing(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    row = _row(ledger, outcome="received")
    assert row.billed and row.credits == pytest.approx(13.4)
    assert ledger.has_paid(KEY)  # received, not yet settled: paid
    ledger.settle(row.id, outcome="unparseable", reason="HTTP 200 with a body that is not JSON", request_id="rq")
    assert not ledger.has_paid(KEY)  # nothing usable was paid for under this key
    assert ledger.paid_unusable(KEY) == {
        "ts": row.ts,
        "run_id": "r1",
        "outcome": "unparseable",
        "reason": "HTTP 200 with a body that is not JSON",
        "request_id": "rq",
    }
    free = _row(ledger, billed=False, outcome="blocked", call_key="cd" * 32)
    assert free.credits == 0 and ledger.paid_unusable("cd" * 32) is None  # not billed: may be asked again
    assert ledger.spent("c") == pytest.approx(13.4)  # budgets count the unusable paid answer
    frame = ledger.frame("c")
    assert list(zip(frame["billed"], frame["outcome"], strict=True)) == [(True, "unparseable"), (False, "blocked")]
    with pytest.raises(ValueError, match="unknown ledger outcome"):
        _row(ledger, outcome="maybe")


def test_a_ledger_from_before_the_outcome_columns_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as conn:  # the table as the previous release created it
        conn.execute(
            "CREATE TABLE ledger_calls (id VARCHAR(32) PRIMARY KEY, ts VARCHAR(40) NOT NULL, run_id TEXT NOT NULL,"
            " campaign TEXT NOT NULL, format TEXT NULL, stage TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT"
            " NULL, units TEXT NOT NULL, credits DOUBLE PRECISION NOT NULL, usd DOUBLE PRECISION NOT NULL,"
            " saved_credits DOUBLE PRECISION NOT NULL, saved_usd DOUBLE PRECISION NOT NULL, hit BOOLEAN NOT NULL,"
            " call_key VARCHAR(64) NULL)"
        )
        for i, (provider, hit) in enumerate([("google", 0), ("google", 1), ("local", 0)]):
            conn.execute(
                "INSERT INTO ledger_calls VALUES (?, ?, 'r', 'c', NULL, 's', ?, 'm', '{}', 1, 0.01, 0, 0, ?, ?)",
                (f"id{i}", f"2026-01-0{i + 1}", provider, hit, KEY if provider == "google" else None),
            )
    ledger = _ledger(tmp_path)
    frame = ledger.frame()
    assert list(zip(frame["billed"], frame["outcome"], strict=True)) == [
        (True, "usable"),
        (False, "usable"),
        (False, "usable"),
    ]
    assert ledger.has_paid(KEY)
    _ledger(tmp_path)  # opening again changes nothing


def test_hit_rate_counts_hosted_rows_only_and_totals_report_local_and_unusable_apart(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)
    _row(ledger)
    _row(ledger, hit=True)
    _row(ledger, outcome="failed", call_key="cd" * 32)
    for stage in ("lighting_iteration", "k_upscale", "motion"):
        _row(ledger, stage=stage, provider="local", model="local-engine", units=Units(compute_seconds=2), call_key=None)
    assert ledger.hit_rate() == pytest.approx(1 / 3)  # not 1/6: local stage runs are no provider call
    by_provider = ledger.totals("provider").set_index("provider")
    assert by_provider.loc["local", "local"] == 3 and by_provider.loc["local", "hit_rate"] is None
    assert by_provider.loc["google", "unusable"] == 1 and by_provider.loc["google", "hit_rate"] == pytest.approx(1 / 3)
    text = strict_json({"by": ledger.totals("format").to_dict(orient="records"), "nan": float("nan")})
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"not strict JSON: {name}"))
    assert data["nan"] is None and data["by"][0]["format"] is None and data["by"][0]["calls"] == 6


# -- the send budget ------------------------------------------------------------------------------------------


def test_sends_are_counted_per_call_key_and_run(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "cache", tmp_path / "calls.sqlite")
    assert cache.sends(KEY, "run-1") == 0
    assert [cache.count_send(KEY, "run-1") for _ in range(3)] == [1, 2, 3]
    assert cache.sends(KEY, "run-2") == 0 and cache.count_send(KEY, "run-2") == 1
    assert CallCache(tmp_path / "cache", tmp_path / "calls.sqlite").sends(KEY, "run-1") == 3  # persisted


def _hub(tmp_path: Path) -> ProviderHub:
    return ProviderHub(
        gemini=GeminiResource(api_key="k"),
        fal=FalResource(api_key="k"),
        kling=KlingResource(access_key="a", secret_key="s"),
        state_dir=str(tmp_path / "state"),
        retry_base_delay_s=0.0,
        retry_budget_s=5.0,
    )


def _calls(hub: ProviderHub, run_id: str) -> HostedCalls:
    return HostedCalls(hub=hub, run_id=run_id, campaign="c", stage="base_composition", format_key=None, log=log)


def _call(calls: HostedCalls, fn: Any, seed: int = 1) -> bytes:
    return calls.call(BASE, op="edit", params={"prompt": "p"}, inputs={}, seed=seed, units=Units(images=1), fn=fn)


def _answer(billed: bool = True, request_id: str | None = None) -> None:
    receipts.answered(
        receipts.Receipt(provider="google", model=BASE.model, what="200", billed=billed, request_id=request_id)
    )


def test_a_paid_unusable_answer_is_booked_once_and_never_re_sent(tmp_path: Path) -> None:
    hub, sent = _hub(tmp_path), []

    def truncated() -> bytes:
        sent.append(1)
        _answer()
        raise ServerError("HTTP 200 with a body that is not JSON", provider="google", model=BASE.model, status_code=200)

    calls = _calls(hub, "run-1")
    with pytest.raises(ServerError) as info:
        _call(calls, truncated)
    assert len(sent) == 1  # retryable by class, but paid: not re-sent
    assert info.value.retryable is False and info.value.paid_outcome == "unparseable"  # type: ignore[attr-defined]
    frame = hub.ledger().frame("c")
    assert list(zip(frame["billed"], frame["outcome"], frame["credits"], strict=True)) == [(True, "unparseable", 13.4)]
    assert calls.summary()["unusable"] == 1 and calls.summary()["credits"] == pytest.approx(13.4)
    with pytest.raises(PaidAnswerUnusable, match="already paid .* re-roll the stage"):
        _call(_calls(hub, "run-2"), truncated)  # a later run: refused before anything is sent
    assert len(sent) == 1
    assert _call(_calls(hub, "run-2"), lambda: b"ok", seed=2) == b"ok"  # a re-roll (new seed) is a new call


def test_one_send_budget_per_call_key_and_run(tmp_path: Path) -> None:
    hub, sent = _hub(tmp_path), []

    def down() -> bytes:
        sent.append(1)
        raise ServerError("HTTP 503", provider="google", model=BASE.model, status_code=503)

    with pytest.raises(ServerError):
        _call(_calls(hub, "run-1"), down)
    assert len(sent) == hub.max_attempts == 4
    with pytest.raises(SendBudgetSpent):  # a step retry of the same run: the budget is spent
        _call(_calls(hub, "run-1"), down)
    assert len(sent) == 4
    assert hub.ledger().frame("c").empty  # a 503 is not billed
    with pytest.raises(ServerError):
        _call(_calls(hub, "run-2"), down)  # the next run has its own budget
    assert len(sent) == 8


def test_a_usable_answer_has_one_row_settled_usable(tmp_path: Path) -> None:
    hub = _hub(tmp_path)

    def ok() -> bytes:
        _answer(request_id="op-1")
        _answer(request_id="op-1")  # the same finished job polled twice: one row
        return b"png"

    assert _call(_calls(hub, "run-1"), ok) == b"png"
    assert _call(_calls(hub, "run-2"), ok) == b"png"  # a hit
    frame = hub.ledger().frame("c")
    assert list(zip(frame["hit"], frame["billed"], frame["outcome"], strict=True)) == [
        (False, True, "usable"),
        (True, False, "usable"),
    ]


# -- run_plan, health, quota scope ----------------------------------------------------------------------------


def _plan(reroute_on_block: bool = False) -> RoutePlan:
    profile = RouteProfile(
        description="d",
        intent="high-drama",
        reroute_on_block=reroute_on_block,
        stages={stage: ["local"] for stage in STAGES} | {"base_composition": [BASE.route, "local"]},
    )
    return RoutePlan(
        stage="base_composition", format_key=None, source="test", profile=profile, ranked=(BASE, LOCAL), rejected=()
    )


def _raise(err: Exception) -> Any:
    def attempt(cand: Candidate) -> str:
        if cand.provider == "local":
            return "local"
        raise err

    return attempt


def test_run_plan_fails_a_paid_unusable_answer_at_once_and_nothing_is_step_retried(tmp_path: Path) -> None:
    err = ContentBlocked("HTTP 200 without candidates", provider="google", model=BASE.model, retryable=True)
    err.paid_outcome = "failed"  # type: ignore[attr-defined]
    with pytest.raises(RouteFailed) as info:
        run_plan(_plan(reroute_on_block=True), _raise(err), log=log)  # no fallback even where blocks re-route
    assert info.value.retryable is False and "a paid answer that is unusable" in str(info.value)
    assert info.value.line.startswith("base_composition: google gemini-3-pro-image-preview: ContentBlocked")
    blocked = ContentBlocked("IMAGE_SAFETY", provider="google", model=BASE.model, block_reason="IMAGE_SAFETY")
    with pytest.raises(RouteFailed) as info:
        run_plan(_plan(), _raise(blocked), log=log)
    assert info.value.retryable is False
    assert run_plan(_plan(reroute_on_block=True), _raise(blocked), log=log)[0] == "local"


def test_health_counts_runs_and_quota_scope_decides_who_is_marked_down(tmp_path: Path) -> None:
    book = HealthBook(tmp_path / "h.sqlite", threshold=3)
    outage = ServerError("HTTP 503", provider="google", model=BASE.model)
    for _ in range(3):  # three failures of one run (its step retries): one outage
        run_plan(_plan(), _raise(outage), log=log, health=book, run_id="run-1")
    assert book.status(BASE.route) is None
    for run_id in ("run-2", "run-3"):
        run_plan(_plan(), _raise(outage), log=log, health=book, run_id=run_id)
    assert "3 outages" in str(book.status(BASE.route))

    book = HealthBook(tmp_path / "h2.sqlite", threshold=3)
    per_model = QuotaExhausted("per day", provider="google", model=BASE.model, provider_wide=False)
    assert run_plan(_plan(), _raise(per_model), log=log, health=book, run_id="r")[0] == "local"  # fell back
    assert book.status(BASE.route) is None  # not marked down for the other campaigns
    wide = QuotaExhausted("balance", provider="google", model=BASE.model)
    run_plan(_plan(), _raise(wide), log=log, health=book, run_id="r")
    assert "provider-wide" in str(book.status("google/veo-3.1-generate-preview"))  # every google route, at once
    assert book.status("fal/fal-ai/esrgan") is None
    book.record("google/gemini-3.1-flash-image-preview", ok=True, run_id="r2")  # a success clears it
    assert book.status(BASE.route) is None


def test_gemini_quota_scope_from_the_quota_ids() -> None:
    assert not quota_is_provider_wide(["GenerateRequestsPerDayPerProjectPerModel-FreeTier"])
    assert quota_is_provider_wide(["GenerateRequestsPerDayPerProject"])
    assert quota_is_provider_wide([])


# -- what the command line prints -------------------------------------------------------------------------------


def test_failure_line_and_route_descriptions() -> None:
    err = ContentBlocked(
        "HTTP 200 without an image\n(finishReason=IMAGE_SAFETY)",
        provider="google",
        model=BASE.model,
        request_id="resp-1",
        block_reason="IMAGE_SAFETY",
    )
    assert failure_line("inpaint_fix", err) == (
        "inpaint_fix: google gemini-3-pro-image-preview: ContentBlocked [IMAGE_SAFETY]: HTTP 200 without an image "
        "(finishReason=IMAGE_SAFETY) (request id resp-1)"
    )

    def row(route: str, provider: str, calls: int, hits: int, attempts: list[dict[str, str]], credits: float) -> Any:
        detail = {"route": route, "attempts": attempts, "calls": {"calls": calls, "cache_hits": hits}}
        return {"stage": "s", "partition": "p", "provider": provider, "route": detail, "credits": credits}

    ok = [{"route": BASE.route, "outcome": "ok"}]
    assert (
        describe(row(BASE.route, "google", 1, 0, ok, 13.4)).line()
        == f"s [p]: hosted {BASE.route} (1 paid call(s)), 13.4 credits"
    )
    assert describe(row(BASE.route, "google", 0, 1, ok, 0)).kind == "cache hit"
    assert describe(row("local", "local", 0, 0, [{"route": "local", "outcome": "ok"}], 0)).line() == (
        "s [p]: local engine, 0 credits"
    )
    fell = [{"route": BASE.route, "outcome": "fallback"}, {"route": "local", "outcome": "ok"}]
    assert (
        describe(row("local", "local", 0, 0, fell, 0)).line()
        == f"s [p]: fallback local (after {BASE.route}), 0 credits"
    )
