"""Kling AI adapter (AK/SK JWT, image-to-video task API) against the local stub over real sockets."""

from __future__ import annotations

import base64
import io
import json
import logging
import pickle
import random
import time
from collections.abc import Iterator
from typing import Any

import av
import httpx
import jwt
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
)
from media_routes.providers.kling import (
    TOKEN_TTL_S,
    KlingClient,
    KlingTokenSigner,
    error_from_code,
    error_from_failed_task,
)
from media_routes.providers.retry import call_with_retries
from media_routes.testing.stubs.kling_stub import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    ERROR_CODES,
    KlingStub,
    fingerprint,
    sign_hs256,
    video_size_for,
)
from media_routes_tests.fakes import FakeTime

AK = DEFAULT_ACCESS_KEY
SK = DEFAULT_SECRET_KEY
MODEL = "kling-v2-5-turbo"


# --------------------------------------------------------------------------------------------------------
# fixtures and helpers
# --------------------------------------------------------------------------------------------------------


@pytest.fixture
def stub() -> Iterator[KlingStub]:
    with KlingStub() as server:
        yield server


@pytest.fixture
def client(stub: KlingStub) -> Iterator[KlingClient]:
    with KlingClient(AK, SK, base_url=stub.url, timeout=5.0) as kling:
        yield kling


def png(size: tuple[int, int] = (640, 360), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


IMAGE = png()


def submit(client: KlingClient, **kwargs: Any) -> str:
    kwargs.setdefault("prompt", "the sneaker turns slowly on a black plinth")
    kwargs.setdefault("model_name", MODEL)
    kwargs.setdefault("duration", "5")
    kwargs.setdefault("mode", "std")
    return client.image_to_video(kwargs.pop("image", IMAGE), **kwargs)


def video_info(data: bytes) -> tuple[float, int, int]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert container.duration is not None
        return container.duration / av.time_base, stream.codec_context.width, stream.codec_context.height


def raw_post(stub: KlingStub, body: dict[str, Any], token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{stub.url}/v1/videos/image2video", json=body, headers=headers, timeout=5.0)


def valid_token(now: float | None = None) -> str:
    now = time.time() if now is None else now
    return sign_hs256({"iss": AK, "exp": int(now) + 1800, "nbf": int(now) - 5}, SK)


# --------------------------------------------------------------------------------------------------------
# happy path
# --------------------------------------------------------------------------------------------------------


def test_create_sends_the_documented_body(client: KlingClient, stub: KlingStub) -> None:
    task_id = submit(client, negative_prompt="blur, distortion", model_name="kling-v1-6", cfg_scale=0.5, mode="pro")
    (create,) = [r for r in stub.requests if r.route == "create"]
    assert create.method == "POST" and create.path == "/v1/videos/image2video"
    assert set(create.body) == {"model_name", "image", "prompt", "negative_prompt", "cfg_scale", "mode", "duration"}
    assert create.body["model_name"] == "kling-v1-6"
    assert create.body["duration"] == "5" and isinstance(create.body["duration"], str)
    assert create.body["mode"] == "pro" and create.body["cfg_scale"] == 0.5
    assert not create.body["image"].startswith("data:")
    assert base64.b64decode(create.body["image"], validate=True) == IMAGE
    assert create.headers["authorization"] == "Bearer <redacted>"
    assert create.auth_code is None
    assert task_id.startswith("86")


def test_optional_fields_are_omitted_and_aspect_ratio_is_never_sent(client: KlingClient, stub: KlingStub) -> None:
    submit(client, aspect_ratio="16:9", external_task_id="job-123")
    body = stub.requests[-1].body
    assert set(body) == {"model_name", "image", "prompt", "mode", "duration", "external_task_id"}


@pytest.mark.parametrize("duration", ["5", "10"])
def test_create_poll_wait_download(client: KlingClient, stub: KlingStub, duration: str) -> None:
    task_id = submit(client, duration=duration, external_task_id=f"job-{duration}")
    assert client.poll(task_id).status == "submitted"
    assert client.poll(task_id).status == "processing"
    task = client.poll(task_id)
    assert task.status == "succeed" and task.done
    assert task.external_task_id == f"job-{duration}"
    assert task.videos[0].duration == duration and task.final_unit_deduction is not None
    assert task.video_url is not None and task.video_url.startswith(stub.cdn_url)

    data = client.video_bytes(task)
    seconds, width, height = video_info(data)
    assert seconds == pytest.approx(int(duration), abs=0.1)
    assert (width, height) == video_size_for((640, 360))
    (download,) = [r for r in stub.requests if r.route == "download"]
    assert download.server == "cdn" and "authorization" not in download.headers


def test_wait_polls_until_succeed_with_fake_sleep() -> None:
    fake = FakeTime()
    with KlingStub(polls_before_done=4) as stub, KlingClient(AK, SK, base_url=stub.url, timeout=5.0) as client:
        task_id = submit(client)
        task = client.wait(task_id, poll_interval_s=3.0, timeout_s=60.0, sleep=fake.sleep, clock=fake.clock)
        assert task.status == "succeed"
        assert stub.task_polls(task_id) == 5
        assert fake.sleeps == [3.0] * 4


def test_wait_times_out_with_the_task_id(client: KlingClient, stub: KlingStub) -> None:
    fake = FakeTime()
    task_id = submit(client)
    with pytest.raises(ProviderTimeout) as info:
        client.wait(task_id, poll_interval_s=5.0, timeout_s=7.0, sleep=fake.sleep, clock=fake.clock)
    assert info.value.task_id == task_id and task_id in str(info.value)  # type: ignore[attr-defined]
    assert info.value.retryable is False
    assert stub.task_polls(task_id) == 2


def test_wait_keeps_polling_through_retryable_poll_errors(client: KlingClient, stub: KlingStub) -> None:
    fake = FakeTime()
    task_id = submit(client)
    stub.fail_next("error", code=1302, route="query")
    stub.fail_next("error", code=5001, route="query")
    task = client.wait(task_id, poll_interval_s=1.0, timeout_s=60.0, sleep=fake.sleep, clock=fake.clock)
    assert task.status == "succeed"
    assert stub.calls("query") == 5  # 2 failed polls + submitted, processing, succeed


def test_query_by_external_task_id(client: KlingClient, stub: KlingStub) -> None:
    submit(client, external_task_id="job-ext-7")
    assert client.poll("job-ext-7").external_task_id == "job-ext-7"


# --------------------------------------------------------------------------------------------------------
# JWT
# --------------------------------------------------------------------------------------------------------


def test_jwt_has_the_documented_header_and_claims() -> None:
    fake = FakeTime(1_700_000_000.4)
    signer = KlingTokenSigner(AK, SK, clock=fake.clock)
    token = signer.token()
    assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
    claims = jwt.decode(token, SK, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})
    assert claims == {"iss": AK, "exp": 1_700_000_000 + TOKEN_TTL_S, "nbf": 1_700_000_000 - 5}
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            token, "another-secret-that-is-long-enough-0123456789", algorithms=["HS256"], options={"verify_exp": False}
        )


def test_token_is_cached_then_resigned_before_expiry() -> None:
    fake = FakeTime(1_700_000_000.0)
    signer = KlingTokenSigner(AK, SK, clock=fake.clock, refresh_margin_s=300)
    first = signer.token()
    fake.now += TOKEN_TTL_S - 301  # 301 s left: still cached
    assert signer.token() == first and signer.signed == 1
    fake.now += 2  # 299 s left: inside the margin, re-signed
    second = signer.token()
    assert second != first and signer.signed == 2
    assert jwt.decode(second, SK, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})["exp"] == (
        int(fake.now) + TOKEN_TTL_S
    )


def test_resigning_over_the_wire_keeps_the_stub_accepting() -> None:
    fake = FakeTime(time.time())
    with (
        KlingStub(clock=fake.clock, polls_before_done=0) as stub,
        KlingClient(AK, SK, base_url=stub.url, clock=fake.clock, timeout=5.0) as client,
    ):
        task_id = submit(client)
        fake.now += TOKEN_TTL_S - 60  # the first token has 60 s left (< 300 s margin)
        client.poll(task_id)
        fake.now += 120  # the first token would now be expired; the second is fine
        client.poll(task_id)
        prints = [r.token_fingerprint for r in stub.requests]
        assert prints[0] != prints[1] and prints[1] == prints[2] == fingerprint(client.signer.token())
        assert client.signer.signed == 2
        assert all(r.auth_code is None for r in stub.requests)
        assert [r.jwt_claims["iss"] for r in stub.requests if r.jwt_claims] == [AK] * 3


def test_without_resigning_the_stub_refuses_the_expired_token() -> None:
    fake = FakeTime(time.time())
    with (
        KlingStub(clock=fake.clock, polls_before_done=0) as stub,
        KlingClient(AK, SK, base_url=stub.url, clock=fake.clock, refresh_margin_s=0, timeout=5.0) as client,
    ):
        task_id = submit(client)
        stub.clock = lambda: fake.now + TOKEN_TTL_S + 1  # server time moved on, client clock did not
        with pytest.raises(AuthError) as info:
            client.poll(task_id)
    assert info.value.status_code == 401 and "code 1004" in str(info.value)
    assert info.value.request_id == stub.last_request_id
    assert info.value.task_id == task_id  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("client_clock_offset", "secret", "access_key", "code"),
    [
        (-(TOKEN_TTL_S + 60), SK, AK, 1004),  # expired
        (600, SK, AK, 1003),  # nbf in the future
        (0, "sk-wrong-but-long-enough-0123456789abcdef", AK, 1002),  # wrong signature
        (0, SK, "ak-unknown", 1000),  # unknown issuer
    ],
)
def test_bad_tokens_are_refused_and_map_to_auth_error(
    stub: KlingStub, client_clock_offset: float, secret: str, access_key: str, code: int
) -> None:
    with KlingClient(
        access_key, secret, base_url=stub.url, clock=lambda: time.time() + client_clock_offset, timeout=5.0
    ) as client:
        with pytest.raises(AuthError) as info:
            submit(client)
    assert stub.requests[-1].auth_code == code
    assert info.value.status_code == 401 and f"code {code}" in str(info.value)
    assert info.value.request_id == stub.last_request_id
    assert stub.calls("create") == 1


def test_stub_refuses_missing_malformed_and_wrong_alg_tokens(stub: KlingStub) -> None:
    body = {"model_name": MODEL, "image": base64.b64encode(IMAGE).decode(), "duration": "5"}
    assert raw_post(stub, body, None).json()["code"] == 1001
    assert raw_post(stub, body, "not-a-jwt").json()["code"] == 1002
    now = int(time.time())
    none_alg = sign_hs256({"iss": AK, "exp": now + 60, "nbf": now - 5}, SK, header={"alg": "none"})
    response = raw_post(stub, body, none_alg)
    assert response.status_code == 401 and response.json()["code"] == 1002
    assert set(response.json()) == {"code", "message", "request_id"}
    assert raw_post(stub, body, valid_token()).json()["code"] == 0


# --------------------------------------------------------------------------------------------------------
# stub validation
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"duration": "7"}, 400, 1201),
        ({"duration": 5}, 400, 1201),
        ({"image": None}, 400, 1201),
        ({"image": "data:image/png;base64," + base64.b64encode(IMAGE).decode()}, 400, 1201),
        ({"image": base64.b64encode(png((200, 200))).decode()}, 400, 1201),
        ({"mode": "ultra"}, 400, 1201),
        ({"aspect_ratio": "16:9"}, 400, 1201),
        ({"model_name": "kling-v9"}, 404, 1203),
    ],
)
def test_stub_validates_create(stub: KlingStub, change: dict[str, Any], status: int, code: int) -> None:
    body = {"model_name": MODEL, "image": base64.b64encode(IMAGE).decode(), "prompt": "x", "duration": "5"}
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    response = raw_post(stub, body, valid_token())
    assert (response.status_code, response.json()["code"]) == (status, code)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"duration": "7"},
        {"duration": 5},
        {"mode": "ultra"},
        {"cfg_scale": 0.5},  # kling-v2.x does not support cfg_scale
        {"model_name": "kling-v1", "cfg_scale": 1.5},
        {"image": png((200, 200))},
        {"image": png((1000, 300))},  # 3.3:1
        {"image": b"not an image"},
        {"aspect_ratio": "9:16"},  # the image is 16:9
        {"prompt": "x" * 2501},
    ],
)
def test_client_rejects_invalid_requests_before_sending(client: KlingClient, stub: KlingStub, kwargs: Any) -> None:
    with pytest.raises(ValueError):
        submit(client, **kwargs)
    assert stub.calls() == 0


# --------------------------------------------------------------------------------------------------------
# error mapping
# --------------------------------------------------------------------------------------------------------

EXPECTED: dict[int, type[ProviderError]] = {
    1000: AuthError,
    1001: AuthError,
    1002: AuthError,
    1003: AuthError,
    1004: AuthError,
    1100: PermissionDenied,
    1101: QuotaExhausted,
    1102: QuotaExhausted,
    1103: PermissionDenied,
    1200: BadRequest,
    1201: BadRequest,
    1202: BadRequest,
    1203: BadRequest,
    1300: BadRequest,
    1301: ContentBlocked,
    1302: RateLimited,
    1303: RateLimited,
    1304: PermissionDenied,
    5000: ServerError,
    5001: ServerError,
    5002: ServerError,
}


def test_expected_table_covers_every_documented_code() -> None:
    assert set(EXPECTED) == set(ERROR_CODES)


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_every_code_maps_on_create(client: KlingClient, stub: KlingStub, code: int) -> None:
    stub.fail_next("error", code=code)
    with pytest.raises(ProviderError) as info:
        submit(client)
    err = info.value
    assert type(err) is EXPECTED[code]
    assert err.status_code == ERROR_CODES[code][0] and f"code {code}" in str(err)
    assert err.request_id == stub.last_request_id and err.request_id in str(err)
    assert err.provider == "kling" and err.model == MODEL
    assert err.retryable is (EXPECTED[code] in (RateLimited, ServerError))
    if code == 1301:
        assert isinstance(err, ContentBlocked) and err.block_reason == "KLING_1301_CONTENT_SECURITY"


@pytest.mark.parametrize("code", [1102, 1301, 1302, 1303, 5000])
def test_codes_on_poll_carry_task_and_request_id(client: KlingClient, stub: KlingStub, code: int) -> None:
    task_id = submit(client)
    stub.fail_next("error", code=code, route="query")
    with pytest.raises(EXPECTED[code]) as info:
        client.poll(task_id)
    assert info.value.request_id == stub.last_request_id
    assert info.value.task_id == task_id and f"task {task_id}" in str(info.value)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("status", "cls"),
    [(401, AuthError), (403, PermissionDenied), (429, RateLimited), (404, BadRequest), (502, ServerError)],
)
def test_unknown_code_falls_back_to_http_status(status: int, cls: type[ProviderError]) -> None:
    err = error_from_code(9999, "new error", status_code=status, model=MODEL, request_id="r1", task_id="t1")
    assert type(err) is cls and err.request_id == "r1" and "task t1" in str(err)


def test_a_200_with_a_nonzero_code_is_an_error(client: KlingClient, stub: KlingStub) -> None:
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, json={"code": 1301, "message": "risk", "request_id": "r-200"})
    )
    with KlingClient(AK, SK, base_url="https://api-singapore.klingai.com", transport=transport) as offline:
        with pytest.raises(ContentBlocked) as info:
            submit(offline)
    assert info.value.request_id == "r-200"


def test_truncated_success_body_is_a_server_error(client: KlingClient, stub: KlingStub) -> None:
    stub.fail_next("not_json")
    with pytest.raises(ServerError):
        submit(client)


@pytest.mark.parametrize(
    ("message", "cls"),
    [
        ("Failure to pass the risk control system", ContentBlocked),
        ("The content may be sensitive", ContentBlocked),
        ("Insufficient account balance", QuotaExhausted),
        ("Task timed out", ProviderTimeout),
        ("Internal error, please retry", ServerError),
    ],
)
def test_failed_task_maps_its_status_msg(client: KlingClient, stub: KlingStub, message: str, cls: type) -> None:
    stub.fail_next("task_failed", message=message)
    task_id = submit(client)
    fake = FakeTime()
    with pytest.raises(ProviderError) as info:
        client.wait(task_id, poll_interval_s=1.0, timeout_s=60.0, sleep=fake.sleep, clock=fake.clock)
    err = info.value
    assert type(err) is cls
    assert err.task_id == task_id and f"task {task_id} failed" in str(err)  # type: ignore[attr-defined]
    assert err.request_id == stub.last_request_id and message in str(err)
    assert stub.task_polls(task_id) == 3


def test_errors_survive_pickling_with_task_id() -> None:
    err = error_from_failed_task("risk control", model=MODEL, request_id="r9", task_id="t9")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is ContentBlocked and copy.task_id == "t9" and str(copy) == str(err)


def test_slow_answer_is_a_provider_timeout(stub: KlingStub) -> None:
    stub.fail_next("slow", delay_s=1.0)
    with KlingClient(AK, SK, base_url=stub.url, timeout=0.2) as client:
        started = time.perf_counter()
        with pytest.raises(ProviderTimeout) as info:
            submit(client)
    assert time.perf_counter() - started < 1.0
    assert info.value.retryable


def test_download_of_a_missing_video_is_a_typed_error(client: KlingClient, stub: KlingStub) -> None:
    with pytest.raises(BadRequest) as info:
        client.download(f"{stub.cdn_url}/cdn/videos/deadbeef.mp4", task_id="t-x")
    assert info.value.status_code == 404 and info.value.task_id == "t-x"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------------
# retries
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [1302, 1303, 5000])
def test_retries_rate_limits_and_server_errors(client: KlingClient, stub: KlingStub, code: int) -> None:
    stub.fail_next("error", count=2, code=code)
    fake = FakeTime()
    task_id = call_with_retries(
        lambda: submit(client), sleep=fake.sleep, clock=fake.clock, rng=random.Random(1), base_delay=1.0
    )
    assert task_id and stub.calls("create") == 3 and len(fake.sleeps) == 2


@pytest.mark.parametrize("code", [1301, 1102, 1101, 1004])
def test_content_block_quota_and_auth_are_not_retried(client: KlingClient, stub: KlingStub, code: int) -> None:
    stub.fail_next("error", count=3, code=code)
    fake = FakeTime()
    with pytest.raises(EXPECTED[code]) as info:
        call_with_retries(lambda: submit(client), sleep=fake.sleep, clock=fake.clock)
    assert info.value.attempts == 1 and stub.calls("create") == 1 and fake.sleeps == []


def test_retries_give_up_after_max_attempts(client: KlingClient, stub: KlingStub) -> None:
    stub.fail_next("error", count=5, code=1302)
    fake = FakeTime()
    with pytest.raises(RateLimited) as info:
        call_with_retries(lambda: submit(client), max_attempts=3, sleep=fake.sleep, clock=fake.clock)
    assert info.value.attempts == 3 and stub.calls("create") == 3


# --------------------------------------------------------------------------------------------------------
# secrets
# --------------------------------------------------------------------------------------------------------


def test_secrets_never_leak_into_errors_logs_or_records(
    client: KlingClient, stub: KlingStub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ProviderError] = []
    stub.fail_next("echo_auth")  # the server echoes the Authorization header into its message
    stub.fail_next("error", code=1200, message=f"signed with {SK}")  # a server that echoes the secret
    for code in (1301, 1302, 1102, 5000):
        stub.fail_next("error", code=code)
    for _ in range(6):
        with pytest.raises(ProviderError) as info:
            call_with_retries(lambda: submit(client), max_attempts=1)
        errors.append(info.value)
    task_id = submit(client)
    client.wait(task_id, poll_interval_s=0.0, timeout_s=5.0)
    token = client.signer.token()
    assert token.count(".") == 2 and len(token) > 40
    assert "[REDACTED]" in str(errors[0]) and "[REDACTED]" in str(errors[1])  # echoed, then scrubbed
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [e.reason for e in errors]
    texts += [caplog.text, repr(client), repr(client.signer)]
    texts += [r.path for r in stub.requests] + [json.dumps(r.headers) for r in stub.requests]
    texts += [json.dumps(r.body) for r in stub.requests]
    for text in texts:
        assert SK not in text
        assert token not in text
        assert token.split(".")[2] not in text  # not even the signature


def test_any_jwt_or_bearer_value_is_scrubbed_even_if_not_the_current_token() -> None:
    old_token = sign_hs256({"iss": AK, "exp": 1, "nbf": 0}, SK)
    err = error_from_code(1002, f"header was Bearer {old_token}", status_code=401, model=MODEL, request_id="r")
    assert old_token not in str(err) and old_token.split(".")[2] not in str(err)
    err = error_from_code(1002, "header was bearer opaque-api-key-1234", status_code=401, model=MODEL, request_id="r")
    assert "opaque-api-key-1234" not in str(err)


def test_from_env_reads_the_three_variables(stub: KlingStub) -> None:
    env = {"KLING_ACCESS_KEY": AK, "KLING_SECRET_KEY": SK, "KLING_BASE_URL": stub.url}
    with KlingClient.from_env(env, timeout=5.0) as client:
        assert client.base_url == stub.url
        assert submit(client)
    with pytest.raises(AuthError) as info:
        KlingClient.from_env({"KLING_ACCESS_KEY": AK})
    assert "KLING_SECRET_KEY" in str(info.value) and SK not in str(info.value)
    with KlingClient.from_env({"KLING_ACCESS_KEY": AK, "KLING_SECRET_KEY": SK}) as default:
        assert default.base_url == "https://api-singapore.klingai.com"
