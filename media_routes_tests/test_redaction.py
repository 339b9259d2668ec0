"""Secrets never reach a message, a log line or a chained cause (issue #15 item 8).

One case per credential shape a provider, a proxy or a library may echo back, and the transport errors the
HTTP client raises: their message is redacted and the httpx exception (which holds the request, its URL and
its headers) is not chained, so Dagster never stores it with a step failure.
"""

from __future__ import annotations

import pickle

import httpx
import pytest

from media_routes.providers.errors import REDACTED, ProviderError, ServerError, redact
from media_routes.providers.http import HttpProviderClient

GOOGLE_KEY = "AIzaSyD-0123456789abcdefghijklmnopqrstu"
FAL_KEY = "1a2b3c4d-1111-2222-3333-444455556666:0123456789abcdef0123456789abcdef"
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJhay0xMjMiLCJleHAiOjE3OTk5OTk5OTl9.c2lnbmF0dXJlLWJ5dGVz"

# (name, text containing the secret, the secret that must be gone, text that must stay)
CASES = [
    ("google key bare", f"API key {GOOGLE_KEY} not valid", GOOGLE_KEY, "not valid"),
    (
        "google key in ?key=",
        "POST https://g.example/v1beta/models/x:generate?key=abc123def&alt=sse",
        "abc123def",
        "alt=sse",
    ),
    ("x-goog-api-key header", "x-goog-api-key: s3cr3t-value", "s3cr3t-value", "x-goog-api-key"),
    ("authorization bearer", "Authorization: Bearer sk-live-998877", "sk-live-998877", "Authorization: Bearer"),
    ("authorization bearer without digits", "authorization: Bearer abcdefghij", "abcdefghij", "Bearer"),
    ("authorization key (fal)", f"Authorization: Key {FAL_KEY}", FAL_KEY, "Authorization: Key"),
    ("authorization basic", "Authorization: Basic dXNlcjpwYXNzMTIz", "dXNlcjpwYXNzMTIz", "Basic"),
    ("bearer in prose", "request sent with Bearer tok_55aa", "tok_55aa", "request sent"),
    ("headers repr", f"headers={{'Authorization': 'Bearer {JWT}'}}", JWT, "headers="),
    ("json api_key", '{"error": "bad", "api_key": "sk-abc-123"}', "sk-abc-123", '"error": "bad"'),
    ("json key", '{"key": "k-998877", "model": "veo"}', "k-998877", '"model": "veo"'),
    ("json token", "{'token': 'tok-1a2b', 'ok': false}", "tok-1a2b", "'ok': false"),
    ("?access_token=", "GET https://cdn.example/v.mp4?access_token=ya29.a0Af&x=1", "ya29.a0Af", "x=1"),
    ("?token=", "GET https://cdn.example/v.mp4?token=9f8e7d", "9f8e7d", "cdn.example"),
    ("signed S3 URL", "GET https://b.s3/x?X-Amz-Signature=deadbeef01&X-Amz-Expires=60", "deadbeef01", "X-Amz-Expires"),
    ("user:pass@ in a URL", "connect to postgresql://media:hunter2@db:5432/dagster failed", "hunter2", "@db:5432"),
    ("JWT (Kling)", f"token {JWT} expired", JWT, "expired"),
    ("fal id:secret bare", f"FAL_KEY={FAL_KEY}", FAL_KEY, "FAL_KEY"),
    ("x-api-key header", "x-api-key: 0a1b2c3d4e", "0a1b2c3d4e", "x-api-key"),
    ("password field", "password=correct-horse-9", "correct-horse-9", "password="),
]


@pytest.mark.parametrize(("name", "text", "secret", "kept"), CASES, ids=[c[0] for c in CASES])
def test_every_secret_form_is_redacted(name: str, text: str, secret: str, kept: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned and REDACTED in cleaned, cleaned
    assert kept in cleaned, cleaned
    assert redact(cleaned) == cleaned  # idempotent: no "[REDACTED]]" from a second pass


@pytest.mark.parametrize(
    "text",
    [
        "the key light sits at 30 degrees",
        "request_id=1a2b3c4d-1111-2222-3333-444455556666",  # a bare uuid is an id, not a key
        "token budget exceeded: 12 tokens",
        "Bearer token expired",
        "call key=ab12cd34 already paid",  # the project's own call keys stay readable
        '{"key": null}',
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert redact(text) == text


def test_a_provider_error_redacts_its_reason_and_survives_pickling() -> None:
    err = ServerError(f"HTTP 500: upstream said Authorization: Key {FAL_KEY}", provider="fal", model="m")
    assert FAL_KEY not in str(err) and FAL_KEY not in err.reason
    assert FAL_KEY not in str(pickle.loads(pickle.dumps(err)))


class _Client(HttpProviderClient):
    provider = "stub"

    def get(self, url: str) -> httpx.Response:
        return self._request("GET", url, model="m", headers={"x-goog-api-key": GOOGLE_KEY})


@pytest.mark.parametrize(
    "raised",
    [
        lambda r: httpx.ConnectError(f"cannot connect to {r.url} with key={GOOGLE_KEY}", request=r),
        lambda r: httpx.ReadTimeout(f"timed out reading {r.url} (x-goog-api-key: {GOOGLE_KEY})", request=r),
        lambda r: httpx.RemoteProtocolError(f"peer closed; Authorization: Bearer {JWT}", request=r),
    ],
    ids=["connect error", "read timeout", "protocol error"],
)
def test_a_transport_error_is_redacted_and_its_cause_not_chained(raised) -> None:  # type: ignore[no-untyped-def]
    def fail(request: httpx.Request) -> httpx.Response:
        raise raised(request)

    client = _Client(timeout=1.0, trusted_urls=["http://127.0.0.1:9"], transport=httpx.MockTransport(fail))
    with pytest.raises(ProviderError) as info:
        client.get(f"http://127.0.0.1:9/v1/x?key={GOOGLE_KEY}")
    err = info.value
    assert err.__cause__ is None and err.__suppress_context__  # `from None`: the httpx exception is not kept
    for text in (str(err), repr(err), err.reason):
        assert GOOGLE_KEY not in text and JWT not in text
    assert type(raised(httpx.Request("GET", "http://x"))).__name__ in str(err)  # the useful part stays
