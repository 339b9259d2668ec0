"""A process that dies after a paid answer arrived never makes the next attempt pay again (issue #14).

Gemini's ``generateContent`` is paid when it answers 200 and has no job to wait on again: the answer is the product.
The production rehearsal once killed a run worker after the answer's ledger row was written and before its result
was stored, and the retry paid again. Now the answer is kept (``CallCache.keep_answer``) before its row is written,
and the next attempt parses the kept answer instead of sending the request (``receipts.take_replay``).

Each case runs one call in a child process against the Google stub and kills it (SIGKILL: nothing runs after) at one
point, then makes the same call in this process and counts what the stub received and what the ledger says.
"""

from __future__ import annotations

import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from media_routes.credits.ledger import Units
from media_routes.defs.providers import FalResource, GeminiResource, KlingResource, ProviderHub
from media_routes.providers import receipts
from media_routes.routing.execute import HostedCalls, PaidAnswerUnusable
from media_routes.routing.router import Candidate
from media_routes.testing.stubs.google_stub import DEFAULT_API_KEY, GoogleStub

log = logging.getLogger(__name__)
MODEL = "gemini-3-pro-image-preview"
BASE = Candidate(route=f"google/{MODEL}", provider="google", model=MODEL, units=Units(images=1), credits=13.4)

# the child: one call through HostedCalls, killed at KILL_AT (argv: state dir, stub url, kill point)
CHILD = r"""
import logging, os, signal, sys
from media_routes.credits.call_cache import CallCache
from media_routes.credits.ledger import Ledger
from media_routes_tests.test_kept_answers import call, hub

state, url, kill_at = sys.argv[1:4]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if kill_at == "before_row":  # the answer is kept, its ledger row not yet written
    record = Ledger.record
    def record_or_die(self, **kw):
        if kw.get("billed") and kw.get("outcome") == "received":
            die()
        return record(self, **kw)
    Ledger.record = record_or_die
if kill_at == "keep_fails":  # the store refuses the kept answer (a full disk), then the process dies
    def refuse(self, key, answer):
        raise OSError(28, "No space left on device")
    CallCache.keep_answer = refuse
    kill_at = "after_answer"

def then_die(result):
    if kill_at == "after_answer":  # the adapter returned the image: the row is written, the result not stored
        die()
    return result

call(hub(state, url), "run-killed", then=then_die)
print("not killed")
"""


def hub(state: str, url: str) -> ProviderHub:
    return ProviderHub(
        gemini=GeminiResource(api_key=DEFAULT_API_KEY, base_url=url, poll_interval_s=0.05),
        fal=FalResource(api_key="k"),
        kling=KlingResource(access_key="a", secret_key="s"),
        state_dir=state,
        retry_base_delay_s=0.0,
        retry_budget_s=5.0,
    )


def calls_of(hub_: ProviderHub, run_id: str) -> HostedCalls:
    return HostedCalls(hub=hub_, run_id=run_id, campaign="c", stage="base_composition", format_key=None, log=log)


def call(hub_: ProviderHub, run_id: str, then: Any = lambda result: result) -> bytes:
    def generate() -> bytes:
        image = hub_.gemini.image_client().generate("a red shoe", model=MODEL, aspect_ratio="1:1", image_size=None)
        return then(image.data)

    return calls_of(hub_, run_id).call(
        BASE, op="generate", params={"prompt": "a red shoe"}, inputs={}, seed=7, units=Units(images=1), fn=generate
    )


@pytest.fixture
def google() -> Iterator[GoogleStub]:
    with GoogleStub() as stub:
        yield stub


def _killed(tmp_path: Path, google: GoogleStub, kill_at: str) -> ProviderHub:
    state = str(tmp_path / "state")
    child = subprocess.run(
        [sys.executable, "-c", CHILD, state, google.url, kill_at], capture_output=True, text=True, timeout=120
    )
    assert child.returncode == -9, child.stdout + child.stderr  # SIGKILLed where it was told to die
    assert google.calls("generateContent") == 1 and google.billable_answers == 1
    return hub(state, google.url)


def _rows(hub_: ProviderHub) -> list[tuple[str, bool, bool, str]]:
    frame = hub_.ledger().frame("c")
    return list(zip(frame["run_id"], frame["hit"], frame["billed"], frame["outcome"], strict=True))


def test_killed_after_the_answer_arrived_the_retry_parses_the_kept_answer(tmp_path: Path, google: GoogleStub) -> None:
    hub_ = _killed(tmp_path, google, "after_answer")
    assert _rows(hub_) == [("run-killed", False, True, "received")]  # paid, and nothing came of it yet
    data = call(hub_, "run-retry")
    assert google.calls("generateContent") == 1  # not sent again
    assert Image.open(io.BytesIO(data)).size == (1024, 1024)  # the image the killed run was paid for
    # one billed row (the killed run's, now usable) and a hit for the retry, which paid nothing
    assert _rows(hub_) == [("run-killed", False, True, "usable"), ("run-retry", True, False, "usable")]
    assert hub_.ledger().spent("c") == pytest.approx(13.4)
    assert not hub_.cache().kept_answer_exists(_key(hub_))  # settled: the kept answer is gone
    assert call(hub_, "run-3") == data and google.calls("generateContent") == 1  # and now a plain cache hit


def test_killed_between_keeping_the_answer_and_its_row_the_retry_books_it_once(
    tmp_path: Path, google: GoogleStub
) -> None:
    hub_ = _killed(tmp_path, google, "before_row")
    assert _rows(hub_) == []  # the answer was kept, its row never written
    call(hub_, "run-retry")
    assert google.calls("generateContent") == 1
    assert _rows(hub_) == [("run-retry", False, True, "usable")]  # the payment is booked once, by the run using it


def test_a_paid_answer_that_could_not_be_kept_is_refused_not_paid_again(tmp_path: Path, google: GoogleStub) -> None:
    hub_ = _killed(tmp_path, google, "keep_fails")
    assert _rows(hub_) == [("run-killed", False, True, "received")]
    with pytest.raises(PaidAnswerUnusable, match=r"already paid .*\(run run-kill\).*re-roll the stage"):
        call(hub_, "run-retry")
    assert google.calls("generateContent") == 1


def test_an_interrupted_parse_keeps_the_answer_for_the_next_attempt(tmp_path: Path, google: GoogleStub) -> None:
    hub_ = hub(str(tmp_path / "state"), google.url)

    def interrupted(result: bytes) -> bytes:
        raise KeyboardInterrupt  # a run terminated while the answer was read (not an unusable answer)

    with pytest.raises(KeyboardInterrupt):
        call(hub_, "run-1", then=interrupted)
    assert _rows(hub_) == [("run-1", False, True, "received")]
    call(hub_, "run-2")
    assert google.calls("generateContent") == 1
    assert _rows(hub_) == [("run-1", False, True, "usable"), ("run-2", True, False, "usable")]


def test_a_kept_answer_that_turns_out_unusable_is_booked_and_never_re_sent(tmp_path: Path, google: GoogleStub) -> None:
    hub_ = _killed(tmp_path, google, "after_answer")
    cache, key = hub_.cache(), _key(hub_)
    kept = receipts.KeptAnswer.from_bytes(cache.kept_answer(key) or b"")
    assert kept.status == 200 and kept.content_type.startswith("application/json")
    cache.drop_answer(key)
    cache.keep_answer(key, receipts.KeptAnswer(200, kept.content_type, kept.body[: len(kept.body) // 2]).to_bytes())
    with pytest.raises(Exception, match="not JSON"):
        call(hub_, "run-retry")  # parsed again: truncated (as the answer could have been when it arrived)
    assert _rows(hub_) == [("run-killed", False, True, "unparseable")]
    with pytest.raises(PaidAnswerUnusable, match="already paid"):
        call(hub_, "run-3")
    assert google.calls("generateContent") == 1


def test_kept_answer_round_trip_and_a_torn_one_is_rejected() -> None:
    answer = receipts.KeptAnswer(200, "application/json; charset=UTF-8", b'{"a":\n1}')
    assert receipts.KeptAnswer.from_bytes(answer.to_bytes()) == answer
    for torn in (b"", b'{"status": 200', b'{"status": 200}\n{}'):
        with pytest.raises(ValueError, match="not a kept answer"):
            receipts.KeptAnswer.from_bytes(torn)


def _key(hub_: ProviderHub) -> str:
    (key,) = set(hub_.ledger().frame("c")["call_key"])
    return str(key)
