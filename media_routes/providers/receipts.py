"""Receipts: an adapter reports "the provider answered a billable request" before it parses the answer.

A paid answer must be accounted before anything can go wrong with it (issue #14): a truncated 200, a 200 with
no candidates, a blocked image that carried usage metadata and a Veo job that finished with an error were all
billed by the provider while the caller saw only an exception. So every adapter calls :func:`answered` at the
moment the provider's billable answer arrives (a 2xx of a generation request, a long-running job that is done,
a read timeout after the request was sent) and before it parses a byte of it. Whoever made the call and wants
to account for it (``routing.execute.HostedCalls``) listens with :func:`listening`; without a listener
:func:`answered` does nothing, so adapters stay usable on their own.

Once the answer has been read far enough to know what the provider says it used (Gemini's ``usageMetadata``, the
seconds of a Veo video, Kling's ``final_unit_deduction``), the adapter reports that too with :func:`usage_reported`,
so the ledger can put the actual cost beside the price-table estimate. A usage report is only what the contract
documents: an adapter never invents one (fal's queue contract reports no usage or cost).

A long-running job (a Veo operation, a Kling task) is paid once, when it finishes, but lives longer than the
request that started it: a poll that timed out, a process that was killed while it waited, or a download that failed
after the job was done all leave a job the provider finishes and bills. So an adapter also reports the job's id as
soon as it has one (:func:`job_submitted`) and when its result is ready to fetch (:func:`job_ready`), and the caller
keeps both under the call's key. A later attempt of the same call asks :func:`submit_or_resume` instead of
submitting: it waits on the earlier job (:func:`resuming` tells it which) and fetches its result, so a finished video
is fetched again instead of being paid for again.

A synchronous answer (Gemini's ``generateContent`` 200) has no job to wait on again: the answer itself is what was
paid for. So its receipt carries the answer (:class:`KeptAnswer`: status, content type and body, as it arrived) and
the caller keeps it before it writes the ledger row. When the process dies after the answer arrived and before its
result was stored, a later attempt of the same call hands the kept answer back with ``listening(replay=...)``: the
transport returns it (:func:`take_replay`) instead of sending the request again, and the adapter parses it as if
it had just arrived. The receipt it reports then says ``replayed``, so it is not billed a second time.

The seam is a context variable (one listener per thread / task), so this module needs nothing from the layers
above the adapters.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

# outcome of a receipt as first reported; the listener settles it once parsing is done
RECEIVED = "received"  # a 2xx (or a finished job) arrived; parsing follows
LOST = "lost"  # the request was sent but its answer never arrived (a read timeout): the provider may bill it


@dataclass(frozen=True)
class KeptAnswer:
    """A synchronous billable answer as it arrived, kept so that it can be parsed again instead of paid again."""

    status: int
    content_type: str
    body: bytes

    def to_bytes(self) -> bytes:
        """One blob: a JSON header line, then the body unchanged."""
        head = json.dumps({"status": self.status, "content_type": self.content_type}, sort_keys=True)
        return head.encode() + b"\n" + self.body

    @classmethod
    def from_bytes(cls, data: bytes) -> KeptAnswer:
        head, sep, body = data.partition(b"\n")
        try:
            fields = json.loads(head) if sep else {}
            return cls(status=int(fields["status"]), content_type=str(fields["content_type"]), body=body)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"not a kept answer ({len(data)} bytes): {exc}") from None


@dataclass(frozen=True)
class Receipt:
    """One billable answer (or a lost one). ``billed``: whether the provider may charge for it.

    ``answer``: the synchronous answer itself, to keep before anything else happens to it (None for jobs and lost
    answers). ``replayed``: the answer is a kept one handed back (:func:`take_replay`), already billed once.
    """

    provider: str
    model: str
    what: str  # e.g. "generateContent 200", "operation done", "read timeout"
    billed: bool = True
    outcome: str = RECEIVED
    request_id: str | None = None
    reason: str = ""
    answer: KeptAnswer | None = None
    replayed: bool = False


@dataclass(frozen=True)
class Usage:
    """What the provider reported it used for one billable answer (issue #14 item 4).

    ``counts`` are the contract's own figures under stable names: ``input_tokens``, ``output_image_tokens``,
    ``output_text_tokens``, ``thoughts_tokens`` (Gemini ``usageMetadata``), ``video_seconds`` (a Veo video's
    length), ``units_deducted`` (Kling ``final_unit_deduction``), ``inference_time_s`` (fal ``metrics``, no cost).
    ``source`` says where they were read, e.g. ``"usageMetadata"``. ``request_id`` ties it to its receipt.
    """

    provider: str
    model: str
    counts: Mapping[str, float]
    source: str
    request_id: str | None = None


SUBMITTED = "submitted"  # the provider accepted the job and gave its id; it may still be running
READY = "ready"  # the job finished with a result to fetch (a video URL or bytes)
JOB_STATES = (SUBMITTED, READY)


@dataclass(frozen=True)
class JobEvent:
    """A long-running job's id, reported when it was submitted and again when its result is ready."""

    provider: str
    model: str
    job_id: str  # as the provider's receipts name it (their request_id)
    state: str  # SUBMITTED or READY
    resume_with: str | None = None  # what the adapter needs to wait on it again, when more than the id (fal's URLs)


_listener: contextvars.ContextVar[Callable[[Receipt], None] | None] = contextvars.ContextVar(
    "media_routes_receipt_listener", default=None
)


_usage_listener: contextvars.ContextVar[Callable[[Usage], None] | None] = contextvars.ContextVar(
    "media_routes_usage_listener", default=None
)


_job_listener: contextvars.ContextVar[Callable[[JobEvent], None] | None] = contextvars.ContextVar(
    "media_routes_job_listener", default=None
)
_resume: contextvars.ContextVar[str | None] = contextvars.ContextVar("media_routes_resume_job", default=None)
# a one-element list so that taking the kept answer empties it for the rest of the context (it is used once)
_replay: contextvars.ContextVar[list[KeptAnswer] | None] = contextvars.ContextVar("media_routes_replay", default=None)


def answered(receipt: Receipt) -> None:
    """Report a billable answer to the current listener (if any). Called before the answer is parsed."""
    listener = _listener.get()
    if listener is not None:
        listener(receipt)


def usage_reported(usage: Usage) -> None:
    """Report what the provider says a billable answer used (after its receipt) to the current listener, if any."""
    listener = _usage_listener.get()
    if listener is not None:
        listener(usage)


def _job_event(provider: str, model: str, job_id: str, state: str, resume_with: str | None = None) -> None:
    listener = _job_listener.get()
    if listener is not None:
        listener(JobEvent(provider, model, job_id, state, resume_with))


def job_submitted(provider: str, model: str, job_id: str, *, resume_with: str | None = None) -> None:
    """Report a long-running job the provider accepted (called as soon as its id is known, before any poll).
    ``resume_with``: what :func:`resuming` should hand back to wait on it again, if not ``job_id`` itself."""
    _job_event(provider, model, job_id, SUBMITTED, resume_with)


def job_ready(provider: str, model: str, job_id: str) -> None:
    """Report that a job finished with a result to fetch (before it is fetched): fetching it again costs nothing."""
    _job_event(provider, model, job_id, READY)


def resuming() -> str | None:
    """This call's earlier job, which the caller wants waited on instead of a new submission (or None): its id, or
    the ``resume_with`` it was submitted with."""
    return _resume.get()


def submit_or_resume(submit: Callable[[], str]) -> str:
    """The job to wait on: the earlier job of this call when there is one to resume (:func:`resuming`), else a new
    one from ``submit()`` (which reports it with :func:`job_submitted`)."""
    earlier = resuming()
    return earlier if earlier is not None else submit()


def take_replay() -> KeptAnswer | None:
    """The kept answer the caller wants returned instead of the next billable request being sent, or None.

    Called by the transport for a billable request; the answer is handed out once (a second billable request of the
    same call is sent for real)."""
    kept = _replay.get()
    return kept.pop() if kept else None


@contextlib.contextmanager
def listening(
    listener: Callable[[Receipt], None],
    on_usage: Callable[[Usage], None] | None = None,
    *,
    on_job: Callable[[JobEvent], None] | None = None,
    resume: str | None = None,
    replay: KeptAnswer | None = None,
) -> Iterator[None]:
    """Send every :func:`answered` receipt in this context to ``listener`` (usage reports to ``on_usage``, job ids
    to ``on_job``); ``resume``: an earlier job of this call for :func:`submit_or_resume` to wait on; ``replay``: a
    kept answer of this call for the transport to return instead of sending (:func:`take_replay`)."""
    token = _listener.set(listener)
    usage_token = _usage_listener.set(on_usage)
    job_token = _job_listener.set(on_job)
    resume_token = _resume.set(resume)
    replay_token = _replay.set([replay] if replay is not None else None)
    try:
        yield
    finally:
        _replay.reset(replay_token)
        _resume.reset(resume_token)
        _job_listener.reset(job_token)
        _usage_listener.reset(usage_token)
        _listener.reset(token)
