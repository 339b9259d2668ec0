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

The seam is a context variable (one listener per thread / task), so this module needs nothing from the layers
above the adapters.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

# outcome of a receipt as first reported; the listener settles it once parsing is done
RECEIVED = "received"  # a 2xx (or a finished job) arrived; parsing follows
LOST = "lost"  # the request was sent but its answer never arrived (a read timeout): the provider may bill it


@dataclass(frozen=True)
class Receipt:
    """One billable answer (or a lost one). ``billed``: whether the provider may charge for it."""

    provider: str
    model: str
    what: str  # e.g. "generateContent 200", "operation done", "read timeout"
    billed: bool = True
    outcome: str = RECEIVED
    request_id: str | None = None
    reason: str = ""


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


_listener: contextvars.ContextVar[Callable[[Receipt], None] | None] = contextvars.ContextVar(
    "media_routes_receipt_listener", default=None
)


_usage_listener: contextvars.ContextVar[Callable[[Usage], None] | None] = contextvars.ContextVar(
    "media_routes_usage_listener", default=None
)


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


@contextlib.contextmanager
def listening(listener: Callable[[Receipt], None], on_usage: Callable[[Usage], None] | None = None) -> Iterator[None]:
    """Send every :func:`answered` receipt in this context to ``listener`` (and usage reports to ``on_usage``)."""
    token = _listener.set(listener)
    usage_token = _usage_listener.set(on_usage)
    try:
        yield
    finally:
        _usage_listener.reset(usage_token)
        _listener.reset(token)
