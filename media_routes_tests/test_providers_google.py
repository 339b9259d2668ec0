"""Google adapters (Gemini image, Veo), typed errors and retry policy against the local stub over real sockets."""

from __future__ import annotations

import base64
import io
import json
import logging
import pickle
import random
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from PIL import Image

from media_routes.providers.errors import (
    AuthError,
    BadRequest,
    ContentBlocked,
    PermissionDenied,
    ProviderError,
    ProviderTimeout,
    QuotaExhausted,
    RateLimited,
    ServerError,
    redact,
)
from media_routes.providers.gemini import (
    API_KEY_HEADER,
    GeminiImageClient,
    ImageResult,
    VeoClient,
    parse_retry_after,
)
from media_routes.providers.retry import backoff_delay, call_with_retries
from media_routes.testing.stubs.google_stub import (
    API_KEY_INVALID_BODY,
    DRAFT_IMAGE_SIZE,
    THOUGHT_IMAGE_SIZE,
    GoogleStub,
    image_size_for,
)
from media_routes_tests.fakes import FakeTime

KEY = "test-key-123"
PRO = "gemini-3-pro-image-preview"
FLASH = "gemini-2.5-flash-image"
VEO = "veo-3.1-generate-preview"


# --------------------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------------------


@pytest.fixture
def stub() -> Iterator[GoogleStub]:
    with GoogleStub(api_key=KEY) as server:
        yield server


@pytest.fixture
def images(stub: GoogleStub) -> Iterator[GeminiImageClient]:
    with GeminiImageClient(KEY, base_url=stub.url, timeout=10.0) as client:
        yield client


@pytest.fixture
def veo(stub: GoogleStub) -> Iterator[VeoClient]:
    with VeoClient(KEY, base_url=stub.url, timeout=10.0) as client:
        yield client


def png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def generate(client: GeminiImageClient, prompt: str = "a red sneaker on black", **kwargs: Any) -> ImageResult:
    kwargs.setdefault("model", PRO)
    kwargs.setdefault("aspect_ratio", "1:1")
    kwargs.setdefault("image_size", "1K")
    return client.generate(prompt, **kwargs)


def raw_post(stub: GoogleStub, path: str, content: bytes | str, *, key: str | None = KEY) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers[API_KEY_HEADER] = key
    return httpx.post(f"{stub.url}{path}", content=content, headers=headers, timeout=5.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------------------
# Gemini image: success paths
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "aspect_ratio", "image_size", "expected"),
    [
        (PRO, "16:9", "1K", (1376, 768)),
        (PRO, "1:1", "1K", (1024, 1024)),
        (PRO, "9:16", "2K", (1536, 2752)),
        (PRO, "4:5", "1K", image_size_for("4:5", "1K")),
        (FLASH, "1:1", None, (1024, 1024)),
    ],
)
def test_generate_returns_a_png_of_the_requested_size(
    stub: GoogleStub,
    images: GeminiImageClient,
    model: str,
    aspect_ratio: str,
    image_size: str | None,
    expected: tuple[int, int],
) -> None:
    result = images.generate("a red sneaker", model=model, aspect_ratio=aspect_ratio, image_size=image_size, seed=7)

    img = decode(result.data)
    assert img.format == "PNG" and img.size == expected
    assert (result.width, result.height) == expected
    assert result.mime_type == "image/png"
    assert result.model == model and result.model_version == model
    assert result.finish_reason == "STOP"
    assert result.request_id and result.request_id.startswith("stub")
    assert result.usage["totalTokenCount"] > result.usage["promptTokenCount"] > 0
    assert result.text == "Here is the image you asked for."

    (request,) = stub.requests
    assert request.method == "POST"
    assert request.path == f"/v1beta/models/{model}:generateContent"
    assert request.auth == "header" and request.key_valid
    image_config = {"aspectRatio": aspect_ratio} | ({"imageSize": image_size} if image_size else {})
    assert request.body == {
        "contents": [{"role": "user", "parts": [{"text": "a red sneaker"}]}],
        "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": image_config, "seed": 7},
    }


def test_generate_is_deterministic_for_prompt_and_seed(images: GeminiImageClient) -> None:
    first = generate(images, seed=1)
    assert generate(images, seed=1).data == first.data
    assert generate(images, seed=2).data != first.data
    assert first.request_id != generate(images, seed=1).request_id


def test_api_version_is_configurable(stub: GoogleStub) -> None:
    with GeminiImageClient(KEY, base_url=stub.url + "/", api_version="v1") as client:
        generate(client)
    assert stub.requests[0].path == f"/v1/models/{PRO}:generateContent"


def test_the_last_non_thought_image_part_is_used(stub: GoogleStub, images: GeminiImageClient) -> None:
    # The stub's 3 Pro answer really carries a thought image before the final one (checked on the raw body).
    body = {"contents": [{"parts": [{"text": "a lamp"}]}], "generationConfig": {"imageConfig": {"aspectRatio": "1:1"}}}
    raw = raw_post(stub, f"/v1beta/models/{PRO}:generateContent", json.dumps(body)).json()
    parts = raw["candidates"][0]["content"]["parts"]
    kinds = [("thought " if p.get("thought") else "") + ("image" if "inlineData" in p else "text") for p in parts]
    assert kinds == ["thought text", "thought image", "text", "image"]

    assert generate(images).width == 1024  # not the 64 px thought image

    stub.fail_next("two_images")  # a non-thought draft image before the final one
    result = generate(images)
    assert (result.width, result.height) == (1024, 1024)
    assert (result.width, result.height) not in (DRAFT_IMAGE_SIZE, THOUGHT_IMAGE_SIZE)


def test_edit_sends_image_and_mask_and_follows_the_input_ratio(stub: GoogleStub, images: GeminiImageClient) -> None:
    source = png((300, 200), (220, 20, 20))
    mask = png((300, 200), (255, 255, 255))
    result = images.edit("make the background warmer", model=FLASH, image_png=source, mask_png=mask, seed=3)

    img = decode(result.data).convert("RGB")
    assert img.size == image_size_for("3:2", "1K")  # no aspectRatio sent: follows the 300x200 input
    red, green, blue = np.asarray(img, dtype=np.float64).mean(axis=(0, 1))
    assert red > green + 60 and red > blue + 60  # the stub blends 90 % of the input into its output

    (request,) = stub.requests
    parts = request.body["contents"][0]["parts"]
    assert parts[0] == {"text": "make the background warmer"}
    assert parts[1]["inlineData"]["mimeType"] == "image/png"
    assert base64.b64decode(parts[1]["inlineData"]["data"]) == source
    assert "mask" in parts[2]["text"]
    assert base64.b64decode(parts[3]["inlineData"]["data"]) == mask
    assert request.body["generationConfig"] == {"responseModalities": ["TEXT", "IMAGE"], "seed": 3}


def test_invalid_arguments_are_rejected_before_sending(stub: GoogleStub, images: GeminiImageClient) -> None:
    with pytest.raises(ValueError, match="aspect_ratio"):
        generate(images, aspect_ratio="7:3")
    with pytest.raises(ValueError, match="image_size"):
        generate(images, image_size="2k")
    with pytest.raises(ValueError, match="model"):
        generate(images, model="../files/x")
    with pytest.raises(ValueError, match="prompt"):
        generate(images, prompt="  ")
    assert stub.calls() == 0


# --------------------------------------------------------------------------------------------------------
# Gemini image: every failure mode -> typed error
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "options", "error_type", "status", "retryable", "in_message"),
    [
        ("rate_limit", {}, RateLimited, 429, True, "PerMinute"),
        ("quota_exhausted", {}, QuotaExhausted, 429, False, "PerDay"),
        ("permission_denied", {}, PermissionDenied, 403, False, "PERMISSION_DENIED"),
        ("server_error", {}, ServerError, 500, True, "INTERNAL"),
        ("unavailable", {}, ServerError, 503, True, "overloaded"),
        ("deadline", {}, ServerError, 504, True, "DEADLINE_EXCEEDED"),
        ("truncated", {}, ServerError, None, True, "not JSON"),
        ("blocked_prompt", {"block_reason": "PROHIBITED_CONTENT"}, ContentBlocked, 200, False, "PROHIBITED_CONTENT"),
        ("image_safety", {}, ContentBlocked, 200, False, "IMAGE_SAFETY"),
        ("image_safety", {"with_thoughts": True}, ContentBlocked, 200, False, "IMAGE_SAFETY"),  # thought image only
        ("image_safety", {"finish_reason": "NO_IMAGE"}, ContentBlocked, 200, True, "NO_IMAGE"),
        ("text_only", {}, ContentBlocked, 200, True, "finishReason=STOP"),
    ],
)
def test_failures_map_to_typed_errors(
    stub: GoogleStub,
    images: GeminiImageClient,
    kind: str,
    options: dict[str, Any],
    error_type: type[ProviderError],
    status: int | None,
    retryable: bool,
    in_message: str,
) -> None:
    stub.fail_next(kind, **options)
    with pytest.raises(error_type) as info:
        generate(images)
    err = info.value
    assert type(err) is error_type
    assert err.provider == "google" and err.model == PRO
    assert err.retryable is retryable
    if status is not None:
        assert err.status_code == status
    message = str(err)
    assert error_type.__name__ in message and "provider=google" in message and f"model={PRO}" in message
    assert in_message in message
    if status == 200:  # 200 answers carry a responseId, which becomes the request id
        assert err.request_id and err.request_id.startswith("stub")
        assert f"request_id={err.request_id}" in message
    assert KEY not in message and KEY not in repr(err)
    assert generate(images).width == 1024  # the fault was used up; the next call succeeds
    assert stub.calls("generateContent") == 2


def test_rate_limit_carries_retry_delay_and_content_block_its_reason(
    stub: GoogleStub, images: GeminiImageClient
) -> None:
    stub.fail_next("rate_limit", retry_delay="1.5s")
    with pytest.raises(RateLimited) as limited:
        generate(images)
    assert limited.value.retry_after == 1.5 and "retry_after=1.5s" in str(limited.value)

    stub.fail_next("rate_limit", retry_delay=None, retry_after_header=4)  # no RetryInfo: the header is used
    with pytest.raises(RateLimited) as limited:
        generate(images)
    assert limited.value.retry_after == 4.0

    stub.fail_next("blocked_prompt")
    with pytest.raises(ContentBlocked) as blocked:
        generate(images)
    assert blocked.value.block_reason == "SAFETY"


def test_wrong_key_is_an_auth_error_with_the_documented_body(stub: GoogleStub) -> None:
    wrong = "wrong-key-456"
    with GeminiImageClient(wrong, base_url=stub.url) as client, pytest.raises(AuthError) as info:
        generate(client)
    assert info.value.status_code == 400 and not info.value.retryable
    assert "API_KEY_INVALID" in str(info.value) and "API key not valid" in str(info.value)
    assert wrong not in str(info.value)

    body = json.dumps({"contents": [{"parts": [{"text": "x"}]}]})
    answer = raw_post(stub, f"/v1beta/models/{PRO}:generateContent", body, key=wrong)
    assert answer.status_code == 400 and answer.json() == API_KEY_INVALID_BODY

    missing = raw_post(stub, f"/v1beta/models/{PRO}:generateContent", body, key=None)
    assert missing.status_code == 403 and missing.json()["error"]["status"] == "PERMISSION_DENIED"
    with pytest.raises(AuthError):
        GeminiImageClient("", base_url=stub.url)


def test_stub_accepts_a_query_key_and_records_it_so_a_leak_is_visible(stub: GoogleStub) -> None:
    body = json.dumps({"contents": [{"parts": [{"text": "x"}]}]})
    answer = raw_post(stub, f"/v1beta/models/{PRO}:generateContent?key={KEY}", body, key=None)
    assert answer.status_code == 200
    (request,) = stub.requests
    assert request.auth == "query" and request.key_valid and KEY in request.path


def test_unknown_model_is_a_bad_request(stub: GoogleStub, images: GeminiImageClient) -> None:
    with pytest.raises(BadRequest) as info:
        generate(images, model="gemini-9-ultra-image")
    assert info.value.status_code == 404 and "NOT_FOUND" in str(info.value) and not info.value.retryable
    with pytest.raises(BadRequest):  # a video model on the image method
        generate(images, model=VEO)


_TEXT = {"contents": [{"parts": [{"text": "x"}]}]}
_BAD_IMAGE = {"contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": "AAAA"}}]}]}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ("{not json", "Invalid JSON payload"),
        ("{}", "contents is not specified"),
        (json.dumps(_TEXT | {"foo": 1}), 'Unknown name "foo"'),
        (json.dumps(_TEXT | {"generationConfig": {"imageConfig": {"aspectRatio": "7:3"}}}), "7:3"),
        (json.dumps(_BAD_IMAGE), "input image"),
        (json.dumps(_TEXT | {"generationConfig": {"responseModalities": ["VIDEO"]}}), "VIDEO"),
    ],
)
def test_stub_rejects_malformed_bodies(stub: GoogleStub, body: str, fragment: str) -> None:
    answer = raw_post(stub, f"/v1beta/models/{PRO}:generateContent", body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT" and fragment in error["message"]


def test_malformed_request_maps_to_bad_request(stub: GoogleStub, images: GeminiImageClient) -> None:
    # An image that is not decodable reaches the stub (the adapter does not decode inputs) and comes back as 400.
    with pytest.raises(BadRequest) as info:
        images.edit("fix it", model=PRO, image_png=b"not a png")
    assert info.value.status_code == 400 and "INVALID_ARGUMENT" in str(info.value)


def test_slow_answer_is_a_provider_timeout(stub: GoogleStub) -> None:
    stub.fail_next("slow", delay_s=2.0)
    with GeminiImageClient(KEY, base_url=stub.url, timeout=httpx.Timeout(5.0, read=0.2)) as client:
        started = time.monotonic()
        with pytest.raises(ProviderTimeout) as info:
            generate(client)
        assert time.monotonic() - started < 1.5
    assert info.value.retryable and "ReadTimeout" in str(info.value)


def test_connection_refused_is_a_retryable_server_error() -> None:
    with (
        GeminiImageClient(KEY, base_url=f"http://127.0.0.1:{free_port()}") as client,
        pytest.raises(ServerError) as info,
    ):
        generate(client)
    assert info.value.retryable and "ConnectError" in str(info.value)


# --------------------------------------------------------------------------------------------------------
# retry policy
# --------------------------------------------------------------------------------------------------------


def test_retries_honour_retry_delay(stub: GoogleStub, images: GeminiImageClient) -> None:
    stub.fail_next("rate_limit", 2, retry_delay="7s")
    fake = FakeTime()
    result = call_with_retries(
        lambda: generate(images),
        max_attempts=4,
        base_delay=0.5,
        max_delay=2.0,
        total_budget_s=60.0,
        sleep=fake.sleep,
        clock=fake.clock,
        rng=random.Random(1),
    )
    assert result.width == 1024
    assert fake.sleeps == [7.0, 7.0]  # jitter is at most 2 s here, retryDelay wins
    assert stub.calls("generateContent") == 3


def test_retry_after_header_is_a_floor_and_jitter_can_exceed_it(stub: GoogleStub, images: GeminiImageClient) -> None:
    stub.fail_next("rate_limit", retry_delay=None, retry_after_header=3)
    fake = FakeTime()
    call_with_retries(
        lambda: generate(images), base_delay=1.0, sleep=fake.sleep, clock=fake.clock, rng=random.Random(0)
    )
    assert fake.sleeps == [3.0]

    stub.fail_next("rate_limit", retry_delay="0.001s")
    fake = FakeTime()
    rng_copy = random.Random(5)
    expected = backoff_delay(1, base_delay=10.0, max_delay=60.0, rng=rng_copy)
    assert expected > 0.001
    call_with_retries(
        lambda: generate(images), base_delay=10.0, sleep=fake.sleep, clock=fake.clock, rng=random.Random(5)
    )
    assert fake.sleeps == [expected]


def test_server_errors_back_off_with_full_jitter(stub: GoogleStub, images: GeminiImageClient) -> None:
    stub.fail_next("unavailable", 3)
    fake = FakeTime()
    call_with_retries(
        lambda: generate(images),
        max_attempts=5,
        base_delay=1.0,
        max_delay=3.0,
        sleep=fake.sleep,
        clock=fake.clock,
        rng=random.Random(42),
    )
    replica = random.Random(42)
    assert fake.sleeps == [replica.uniform(0, cap) for cap in (1.0, 2.0, 3.0)]  # caps 1, 2, then max_delay
    assert stub.calls("generateContent") == 4


@pytest.mark.parametrize(
    ("kind", "error_type"), [("quota_exhausted", QuotaExhausted), ("image_safety", ContentBlocked)]
)
def test_non_retryable_errors_are_not_retried(
    stub: GoogleStub, images: GeminiImageClient, kind: str, error_type: type[ProviderError]
) -> None:
    stub.fail_next(kind, 3)
    fake = FakeTime()
    with pytest.raises(error_type) as info:
        call_with_retries(lambda: generate(images), max_attempts=5, sleep=fake.sleep, clock=fake.clock)
    assert fake.sleeps == [] and info.value.attempts == 1
    assert stub.calls("generateContent") == 1


def test_total_budget_bounds_the_retries(stub: GoogleStub, images: GeminiImageClient) -> None:
    stub.fail_next("rate_limit", 10, retry_delay="7s")
    fake = FakeTime()
    with pytest.raises(RateLimited) as info:
        call_with_retries(
            lambda: generate(images),
            max_attempts=10,
            base_delay=0.1,
            max_delay=1.0,
            total_budget_s=20.0,
            sleep=fake.sleep,
            clock=fake.clock,
        )
    assert fake.sleeps == [7.0, 7.0]  # a third 7 s wait would end at 21 s > 20 s
    assert info.value.attempts == 3 and "attempts=3" in str(info.value)
    assert stub.calls("generateContent") == 3


def test_max_attempts_bounds_the_retries(stub: GoogleStub, images: GeminiImageClient) -> None:
    stub.fail_next("server_error", 5)
    fake = FakeTime()
    with pytest.raises(ServerError) as info:
        call_with_retries(lambda: generate(images), max_attempts=3, base_delay=0.1, sleep=fake.sleep, clock=fake.clock)
    assert info.value.attempts == 3 and len(fake.sleeps) == 2
    assert stub.calls("generateContent") == 3
    assert stub.pending_faults() == 2


def test_retry_with_real_sleep_and_clock(stub: GoogleStub, images: GeminiImageClient) -> None:
    stub.fail_next("rate_limit", retry_delay="0.05s")
    started = time.monotonic()
    assert call_with_retries(lambda: generate(images), base_delay=0.001, max_delay=0.01).width == 1024
    assert time.monotonic() - started >= 0.05


def test_call_with_retries_unit_behaviour() -> None:
    rng = random.Random(3)
    for attempt in range(1, 8):
        delay = backoff_delay(attempt, base_delay=0.5, max_delay=4.0, rng=rng)
        assert 0.0 <= delay <= min(4.0, 0.5 * 2 ** (attempt - 1))

    def boom() -> None:
        raise KeyError("not a provider error")

    fake = FakeTime()
    with pytest.raises(KeyError):
        call_with_retries(boom, sleep=fake.sleep, clock=fake.clock)
    assert fake.sleeps == []

    results: Iterator[ServerError | str] = iter([ServerError("x", provider="p", model="m"), "ok"])

    def flaky() -> str:
        item = next(results)
        if isinstance(item, ServerError):
            raise item
        return item

    seen: list[tuple[int, float]] = []
    assert (
        call_with_retries(flaky, sleep=fake.sleep, clock=fake.clock, on_retry=lambda e, n, d: seen.append((n, d)))
        == "ok"
    )
    assert len(seen) == 1 and seen[0][0] == 1 and seen[0][1] == fake.sleeps[0]
    with pytest.raises(ValueError):
        call_with_retries(flaky, max_attempts=0)


# --------------------------------------------------------------------------------------------------------
# concurrency: the machine-wide provider slots
# --------------------------------------------------------------------------------------------------------


def test_provider_slots_bound_concurrent_requests_to_the_provider(tmp_path: Path) -> None:
    """The machine-wide slots (the limit every paid call takes in ``routing/execute.py``, beside its Dagster pool)
    keep the provider from seeing more requests at once than the limit, across threads."""
    from media_routes.providers.slots import ProviderSlots

    def burst(limit: int | None) -> int:
        with GoogleStub(api_key=KEY) as server:
            server.fail_next("slow", 8, route="generateContent", delay_s=0.15)
            with GeminiImageClient(KEY, base_url=server.url) as client:

                def one(i: int) -> int:
                    if limit is None:
                        return generate(client, f"shot {i}").width
                    with ProviderSlots(tmp_path / "slots", "google", limit):
                        return generate(client, f"shot {i}").width

                with ThreadPoolExecutor(max_workers=8) as pool:
                    widths = list(pool.map(one, range(8)))
            assert widths == [1024] * 8
            return server.peak_in_flight

    assert burst(None) > 2  # control: without the slots the stub sees more than two requests at once
    assert burst(2) == 2


def test_provider_slots_refuse_a_limit_below_one(tmp_path: Path) -> None:
    from media_routes.providers.slots import ProviderSlots

    with pytest.raises(ValueError, match="limit must be >= 1"):
        ProviderSlots(tmp_path, "google", 0)


# --------------------------------------------------------------------------------------------------------
# Veo
# --------------------------------------------------------------------------------------------------------


def test_veo_start_poll_wait_download(stub: GoogleStub, veo: VeoClient) -> None:
    still = png((90, 160), (30, 90, 200))
    name = veo.start("slow dolly-in", model=VEO, image_png=still, duration_s=4, aspect_ratio="9:16")
    assert name.startswith(f"models/{VEO}/operations/")
    submit = stub.requests[0]
    assert submit.path == f"/v1beta/models/{VEO}:predictLongRunning"
    assert submit.body == {
        "instances": [
            {
                "prompt": "slow dolly-in",
                "image": {"bytesBase64Encoded": base64.b64encode(still).decode(), "mimeType": "image/png"},
            }
        ],
        "parameters": {"aspectRatio": "9:16", "durationSeconds": 4},
    }

    assert not veo.poll(name).done
    fake = FakeTime()
    operation = veo.wait(name, poll_interval_s=10.0, timeout_s=120.0, sleep=fake.sleep, clock=fake.clock)
    assert operation.done and operation.video_uri and operation.model == VEO
    assert fake.sleeps == [10.0]  # one more pending poll, then done
    assert stub.calls("operation") == 3

    video = veo.video_bytes(operation)
    with av.open(io.BytesIO(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.width, stream.height) == (72, 128)
        assert stream.frames == 4 * 24
    download, media = stub.requests[-2:]
    assert download.route == "download" and download.auth == "header" and download.key_valid
    assert download.path.endswith(":download?alt=media")
    assert media.route == "media"  # the 302 target was followed


def test_veo_download_redirect_to_another_host_gets_no_key() -> None:
    with GoogleStub(api_key=KEY, download_redirect_host="localhost") as stub:
        with VeoClient(KEY, base_url=stub.url) as client:
            name = client.start("pan left", model=VEO, duration_s=4)
            operation = client.wait(name, poll_interval_s=0.001, timeout_s=5.0)
            video = client.video_bytes(operation)
        assert video[4:8] == b"ftyp"
        media = [r for r in stub.requests if r.route == "media"]
        assert len(media) == 1 and media[0].auth is None and "x-goog-api-key" not in media[0].headers
        assert media[0].headers["host"].startswith("localhost:")


def test_veo_rai_filter_is_content_blocked(stub: GoogleStub, veo: VeoClient) -> None:
    stub.fail_next("rai_filtered", reasons=["Audio could not be generated. You have not been charged."])
    name = veo.start("a crowd cheering", model=VEO, duration_s=8)
    with pytest.raises(ContentBlocked) as info:
        veo.wait(name, poll_interval_s=0.001, timeout_s=5.0)
    err = info.value
    assert err.request_id == name and err.block_reason == "RAI_MEDIA_FILTERED" and err.model == VEO
    assert f"request_id={name}" in str(err) and "not been charged" in str(err)
    assert stub.calls("download") == 0


@pytest.mark.parametrize(("code", "error_type"), [(3, BadRequest), (13, ServerError), (8, RateLimited)])
def test_veo_failed_operation_maps_rpc_code(
    stub: GoogleStub, veo: VeoClient, code: int, error_type: type[ProviderError]
) -> None:
    stub.fail_next("veo_error", code=code, message="Video generation failed.")
    name = veo.start("a boat", model=VEO, duration_s=6)
    with pytest.raises(error_type) as info:
        veo.wait(name, poll_interval_s=0.001, timeout_s=5.0)
    assert type(info.value) is error_type
    assert info.value.request_id == name and f"rpc code {code}" in str(info.value)


def test_veo_inline_video_needs_no_download(stub: GoogleStub, veo: VeoClient) -> None:
    stub.fail_next("veo_inline")
    operation = veo.wait(veo.start("waves", model=VEO, duration_s=4), poll_interval_s=0.001, timeout_s=5.0)
    assert operation.video_uri is None and operation.mime_type == "video/mp4"
    assert veo.video_bytes(operation)[4:8] == b"ftyp"
    assert stub.calls("download") == 0


def test_veo_wait_tolerates_transient_poll_errors_and_times_out(stub: GoogleStub, veo: VeoClient) -> None:
    stub.fail_next("unavailable", route="operation")
    stub.fail_next("rate_limit", route="operation", retry_delay="30s")
    fake = FakeTime()
    operation = veo.wait(
        veo.start("rain", model=VEO, duration_s=4),
        poll_interval_s=5.0,
        timeout_s=300.0,
        sleep=fake.sleep,
        clock=fake.clock,
    )
    assert operation.done
    assert fake.sleeps == [5.0, 30.0, 5.0, 5.0]  # 503, 429 (retryDelay 30 s), then two pending polls

    stub.polls_until_done = 100
    fake = FakeTime()
    name = veo.start("snow", model=VEO, duration_s=4)
    with pytest.raises(ProviderTimeout) as info:
        veo.wait(name, poll_interval_s=10.0, timeout_s=35.0, sleep=fake.sleep, clock=fake.clock)
    assert not info.value.retryable and info.value.request_id == name and fake.sleeps == [10.0, 10.0, 10.0]

    stub.fail_next("permission_denied", route="operation")
    with pytest.raises(PermissionDenied):
        veo.wait(name, poll_interval_s=10.0, timeout_s=35.0, sleep=fake.sleep, clock=fake.clock)


def test_veo_client_side_validation(stub: GoogleStub, veo: VeoClient) -> None:
    with pytest.raises(ValueError, match="duration_s"):
        veo.start("x", model=VEO, duration_s=5)
    with pytest.raises(ValueError, match="requires duration_s=8"):
        veo.start("x", model=VEO, duration_s=4, resolution="1080p")
    with pytest.raises(ValueError, match="aspect_ratio"):
        veo.start("x", model=VEO, aspect_ratio="1:1")
    with pytest.raises(ValueError, match="operation name"):
        veo.poll("models/veo/operations/../../files/x")
    assert stub.calls() == 0

    seed = json.dumps({"instances": [{"prompt": "x"}], "parameters": {"seed": 1}})
    answer = raw_post(stub, f"/v1beta/models/{VEO}:predictLongRunning", seed)
    assert answer.status_code == 400 and "seed" in answer.json()["error"]["message"]
    with pytest.raises(BadRequest):
        veo.start("x", model=PRO, duration_s=4)  # an image model has no predictLongRunning
    with pytest.raises(BadRequest):
        veo.poll(f"models/{VEO}/operations/doesnotexist")


# --------------------------------------------------------------------------------------------------------
# the key never leaks
# --------------------------------------------------------------------------------------------------------


def test_api_key_never_appears_in_errors_logs_or_urls(stub: GoogleStub, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ProviderError] = []

    def expect_error(call: Callable[[], object]) -> None:
        with pytest.raises(ProviderError) as info:
            call()
        errors.append(info.value)

    with GeminiImageClient(KEY, base_url=stub.url, timeout=httpx.Timeout(5.0, read=0.2)) as client:
        generate(client)
        client.edit("edit", model=PRO, image_png=png((64, 64), (1, 2, 3)))
        for kind in ("rate_limit", "quota_exhausted", "permission_denied", "server_error", "blocked_prompt"):
            stub.fail_next(kind)
            expect_error(lambda: generate(client))
        stub.fail_next("slow", delay_s=1.0)
        expect_error(lambda: generate(client))
        expect_error(lambda: call_with_retries(lambda: generate(client, model="nope-model")))
        stub.fail_next("unavailable")
        call_with_retries(lambda: generate(client), base_delay=0.001, max_delay=0.001)
    with VeoClient(KEY, base_url=stub.url) as video:
        operation = video.wait(video.start("x", model=VEO, duration_s=4), poll_interval_s=0.001, timeout_s=5.0)
        video.video_bytes(operation)
        stub.fail_next("veo_error", message=f"backend echoed the key {KEY} by mistake")
        expect_error(lambda: video.wait(video.start("x", model=VEO, duration_s=4), poll_interval_s=0.001))
        assert KEY not in repr(video)

    assert len(errors) == 8 and "[REDACTED]" in str(errors[-1])
    for err in errors:
        assert KEY not in str(err) and KEY not in repr(err)
    assert "retrying" in caplog.text and "veo job submitted" in caplog.text  # the logs were captured
    assert KEY not in caplog.text

    recorded = stub.requests
    assert any(r.auth == "header" and r.key_valid for r in recorded)  # the key did reach the stub, in the header
    for request in recorded:
        assert KEY not in request.path
        assert KEY not in json.dumps(request.headers)
        assert KEY not in json.dumps(request.body)
        assert request.auth in ("header", None)


def test_errors_redact_key_shapes_and_survive_pickling() -> None:
    google_key = "AIza" + "x" * 35
    err = RateLimited(
        f"echo {google_key} and https://host/path?key=abc123&alt=media",
        provider="google",
        model="m",
        request_id="r-1",
        retry_after=7.0,
        status_code=429,
    )
    text = str(err)
    assert google_key not in text and "abc123" not in text and text.count("[REDACTED]") == 2
    assert redact("x-goog-api-key: secret-value", "other") == "x-goog-api-key: [REDACTED]"
    assert redact("my secret-key here", "secret-key") == "my [REDACTED] here"

    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is RateLimited and str(clone) == text
    assert (clone.retry_after, clone.request_id, clone.retryable, clone.status_code) == (7.0, "r-1", True, 429)


def test_parse_retry_after_header_forms() -> None:
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("12", now=now) == 12.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after(None) is None


def test_from_env_reads_key_base_url_and_version(stub: GoogleStub) -> None:
    env = {"GEMINI_API_KEY": KEY, "GEMINI_BASE_URL": stub.url, "GEMINI_API_VERSION": "v1"}
    with GeminiImageClient.from_env(env) as client:
        assert generate(client).width == 1024
    assert stub.requests[0].path.startswith("/v1/models/")
    with pytest.raises(AuthError, match="GEMINI_API_KEY"):
        VeoClient.from_env({"GEMINI_BASE_URL": stub.url})


# --------------------------------------------------------------------------------------------------------
# the official client against the stub
# --------------------------------------------------------------------------------------------------------


def test_official_google_genai_client_talks_to_the_stub(stub: GoogleStub) -> None:
    genai = pytest.importorskip("google.genai")
    from google.genai import errors as genai_errors
    from google.genai import types

    with genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=stub.url)) as client:
        config = types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"],
            image_config=types.ImageConfig(aspect_ratio="16:9", image_size="1K"),
            seed=11,
        )
        response = client.models.generate_content(model=PRO, contents="a red sneaker", config=config)
        parts = response.candidates[0].content.parts
        final = [p for p in parts if p.inline_data is not None and not p.thought][-1]
        assert decode(final.inline_data.data).size == (1376, 768)
        assert any(p.thought for p in parts) and response.response_id.startswith("stub")
        assert response.usage_metadata.total_token_count > 0

        source = types.Part.from_bytes(data=png((300, 200), (200, 10, 10)), mime_type="image/png")
        edited = client.models.generate_content(model=FLASH, contents=[source, "make it blue"])
        edited_image = [p for p in edited.parts if p.inline_data is not None][-1]
        assert decode(edited_image.inline_data.data).size == image_size_for("3:2", "1K")

        stub.fail_next("rate_limit")
        with pytest.raises(genai_errors.ClientError) as info:
            client.models.generate_content(model=PRO, contents="x")
        assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"

    with genai.Client(api_key="wrong-key", http_options=types.HttpOptions(base_url=stub.url)) as bad:
        with pytest.raises(genai_errors.ClientError) as info:
            bad.models.generate_content(model=PRO, contents="x")
        assert info.value.code == 400 and info.value.details == API_KEY_INVALID_BODY

    sent = stub.requests
    assert all(r.auth == "header" for r in sent) and sent[0].path.endswith(f"/models/{PRO}:generateContent")
    assert sent[0].path.split("/")[1] in ("v1", "v1beta")
    # the SDK's own spelling of inline images (contract section 7) passed the stub's validation
    assert "inlineData" in sent[1].body["contents"][0]["parts"][0]
