"""fal.ai queue adapter against the local fal stub over real sockets (127.0.0.1 only, fake keys)."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
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
from media_routes.providers.fal import FalQueueClient, FalRequest
from media_routes.providers.retry import call_with_retries
from media_routes.testing.stubs.fal_stub import FalStub
from media_routes_tests.fakes import FakeTime

KEY = "fake-key-id:fake-key-secret-0123456789"
SECRET = "fake-key-secret-0123456789"
CLARITY = "fal-ai/clarity-upscaler"
FILL = "fal-ai/flux-pro/v1/fill"


@pytest.fixture
def stub() -> Iterator[FalStub]:
    with FalStub(api_key=KEY, url_prefix="/elsewhere") as server:
        yield server


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def fal(stub: FalStub, fake_time: FakeTime) -> Iterator[FalQueueClient]:
    with FalQueueClient(
        KEY, queue_url=stub.url, base_url=stub.url, timeout=5.0, poll_interval_s=0.5, sleep=fake_time.sleep,
        clock=fake_time.clock,
    ) as client:  # fmt: skip
        yield client


def png(size: tuple[int, int], colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG"
        return img.size


SRC = png((16, 12))


# --------------------------------------------------------------------------------------------------------
# success paths
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "sent"),
    [
        (CLARITY, {"upscale_factor": 2, "prompt": "crisp"}),
        ("fal-ai/esrgan", {"scale": 2}),
        ("fal-ai/seedvr/upscale/image", {"upscale_mode": "factor", "upscale_factor": 2}),
    ],
)
def test_upscale_helpers_return_the_output_png(
    stub: FalStub, fal: FalQueueClient, fake_time: FakeTime, model: str, sent: dict[str, Any]
) -> None:
    out = fal.upscale(SRC, model=model, factor=2, prompt="crisp" if model == CLARITY else None, seed=None)
    assert size_of(out) == (32, 24)
    submit = next(r for r in stub.requests if r.route == "submit")
    assert submit.path == f"/{model}" and submit.body["image_url"].startswith("data:image/png;base64,")
    assert {k: v for k, v in submit.body.items() if k != "image_url"} == sent
    assert stub.calls("status") == 3 and fake_time.sleeps == [0.5, 0.5]  # IN_QUEUE, IN_PROGRESS, COMPLETED
    assert stub.calls("result") == 1 and stub.calls("cdn") == 1


def test_outpaint_sends_the_bria_expand_geometry(stub: FalStub, fal: FalQueueClient) -> None:
    out = fal.outpaint(SRC, canvas_size=(40, 20), original_image_location=(12, 4), prompt="studio", seed=3)
    assert size_of(out) == (40, 20)
    body = next(r for r in stub.requests if r.route == "submit").body
    assert body["canvas_size"] == [40, 20] and body["original_image_size"] == [16, 12]
    assert body["original_image_location"] == [12, 4] and body["seed"] == 3 and body["prompt"] == "studio"
    with pytest.raises(ValueError, match="fit inside"):
        fal.outpaint(SRC, canvas_size=(20, 20), original_image_location=(8, 0))


def test_inpaint_sends_image_mask_and_prompt(stub: FalStub, fal: FalQueueClient) -> None:
    mask = png((16, 12), (255, 255, 255))
    out = fal.inpaint(SRC, mask, prompt="remove the logo", seed=7, safety_tolerance="2")
    assert size_of(out) == (16, 12)
    body = next(r for r in stub.requests if r.route == "submit").body
    assert body["mask_url"].startswith("data:image/png;base64,") and body["prompt"] == "remove the logo"
    assert (body["output_format"], body["num_images"], body["safety_tolerance"]) == ("png", 1, "2")
    assert stub.requests[0].path == f"/{FILL}"
    with pytest.raises(ValueError, match="sizes differ"):
        fal.inpaint(SRC, png((8, 8)), prompt="x")


def test_output_is_deterministic_and_sync_mode_data_uri_needs_no_download(stub: FalStub, fal: FalQueueClient) -> None:
    first = fal.upscale(SRC, model="fal-ai/esrgan")
    assert fal.upscale(SRC, model="fal-ai/esrgan") == first
    downloads = stub.calls("cdn")
    assert fal.upscale(SRC, model="fal-ai/esrgan", extra={"sync_mode": True}) == first
    assert stub.calls("cdn") == downloads


def test_the_urls_returned_at_submit_are_the_ones_polled(stub: FalStub, fal: FalQueueClient) -> None:
    handle = fal.submit("fal-ai/seedvr/upscale/image", {"image_url": _uri(SRC)})
    base = f"{stub.url}/elsewhere/fal-ai/seedvr/requests/{handle.request_id}"  # prefix added, subpath dropped
    assert (handle.status_url, handle.response_url, handle.cancel_url) == (base + "/status", base, base + "/cancel")
    assert handle.queue_position == 1
    first = fal.status(handle)
    assert first.status == "IN_QUEUE" and first.queue_position == 0
    second = fal.status(handle)
    assert second.status == "IN_PROGRESS" and second.logs and second.logs[0]["message"] == "running"
    done = fal.wait(handle)
    assert done.done and done.metrics == {"inference_time": 0.01}
    output = fal.result(handle)
    assert output["image"]["width"] == 32
    polled = [r.path for r in stub.requests if r.route in ("status", "result")]
    prefix = f"/elsewhere/fal-ai/seedvr/requests/{handle.request_id}"
    assert polled == [prefix + "/status?logs=1"] * 3 + [prefix]
    assert stub.calls("unknown") == 0

    # a client rebuilding the URL from the endpoint id (with the subpath) would get the contract's 405
    rebuilt = FalRequest(
        handle.request_id,
        handle.model_id,
        status_url=f"{stub.url}/fal-ai/seedvr/upscale/image/requests/{handle.request_id}/status",
        response_url=f"{stub.url}/fal-ai/seedvr/upscale/image/requests/{handle.request_id}",
    )
    with pytest.raises(BadRequest) as info:
        fal.status(rebuilt)
    assert info.value.status_code == 405 and info.value.request_id == handle.request_id


def _uri(data: bytes) -> str:
    from media_routes.providers.fal import png_data_uri

    return png_data_uri(data)


def test_cancel_uses_the_returned_cancel_url(stub: FalStub, fal: FalQueueClient) -> None:
    handle = fal.submit(CLARITY, {"image_url": _uri(SRC)})
    assert fal.cancel(handle) == "CANCELLATION_REQUESTED"
    assert stub.requests[-1].method == "PUT" and stub.requests[-1].path.startswith("/elsewhere/")
    with pytest.raises(ServerError) as info:
        fal.wait(handle)
    assert not info.value.retryable and info.value.request_id == handle.request_id

    done = fal.submit(CLARITY, {"image_url": _uri(SRC)})
    fal.wait(done)
    with pytest.raises(BadRequest, match="ALREADY_COMPLETED|HTTP 400"):
        fal.cancel(done)


# --------------------------------------------------------------------------------------------------------
# error mapping
# --------------------------------------------------------------------------------------------------------


def _raises(call: Callable[[], object], cls: type[ProviderError]) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        call()
    assert type(info.value) is cls, str(info.value)
    return info.value


@pytest.mark.parametrize(
    ("fault", "route", "cls", "code", "retryable"),
    [
        ("content_policy", "submit", ContentBlocked, 422, False),
        ("content_policy", "result", ContentBlocked, 422, False),
        ("rate_limit", "submit", RateLimited, 429, True),
        ("server_error", "submit", ServerError, 500, True),
        ("server_error", "result", ServerError, 500, True),
        ("unavailable", "submit", ServerError, 503, True),
        ("gateway_timeout", "result", ProviderTimeout, 504, True),
        ("locked", "submit", QuotaExhausted, 403, False),
        ("forbidden", "result", PermissionDenied, 403, False),
        ("truncated", "result", ServerError, 200, True),  # a 2xx whose body is unreadable (issue #14)
    ],
)
def test_http_failures_map_to_typed_errors_with_the_request_id(
    stub: FalStub,
    fal: FalQueueClient,
    fault: str,
    route: str,
    cls: type[ProviderError],
    code: int | None,
    retryable: bool,
) -> None:
    stub.fail_next(fault, route=route)
    err = _raises(lambda: fal.upscale(SRC), cls)
    assert err.status_code == code and err.retryable is retryable and err.provider == "fal"
    assert err.model == CLARITY and err.request_id
    assert err.request_id in {j for j in stub._state.jobs} or route == "submit"
    assert f"request_id={err.request_id}" in str(err)
    if cls is ContentBlocked:
        assert isinstance(err, ContentBlocked) and err.block_reason == "content_policy_violation [sexual]"
    if cls is RateLimited:
        assert isinstance(err, RateLimited) and err.retry_after == 3.0


def test_validation_422_is_a_bad_request_and_unknown_model_too(stub: FalStub, fal: FalQueueClient) -> None:
    err = _raises(lambda: fal.submit(CLARITY, {"image_url": _uri(SRC), "upscale_factor": 9}), BadRequest)
    assert err.status_code == 422 and "upscale_factor" in err.reason and err.request_id
    err = _raises(lambda: fal.submit(CLARITY, {"image_url": _uri(SRC), "typo_field": 1}), BadRequest)
    assert "extra_forbidden" in err.reason
    err = _raises(lambda: fal.submit(CLARITY, {"prompt": "no image"}), BadRequest)
    assert "image_url" in err.reason and "missing" in err.reason
    err = _raises(lambda: fal.submit("fal-ai/nope-model", {"x": 1}), BadRequest)
    assert err.status_code == 404 and err.request_id
    with pytest.raises(ValueError):
        fal.submit("not a model", {})


def test_missing_and_wrong_key_are_auth_errors(stub: FalStub) -> None:
    with FalQueueClient("wrong-key-value", queue_url=stub.url, base_url=stub.url) as bad:
        err = _raises(lambda: bad.submit(CLARITY, {"image_url": _uri(SRC)}), AuthError)
    assert err.status_code == 401 and "Invalid key" in err.reason
    raw = httpx.post(f"{stub.url}/{CLARITY}", json={"image_url": _uri(SRC)})
    assert raw.status_code == 401 and raw.json() == {"detail": "Missing authorization header"}
    assert [r.auth for r in stub.requests] == ["invalid", "missing"]
    with pytest.raises(AuthError):
        FalQueueClient("  ")


@pytest.mark.parametrize(
    ("options", "cls", "retryable"),
    [
        ({}, ServerError, True),
        ({"error_type": "content_policy_violation", "message": "flagged", "code": 422}, ContentBlocked, False),
        ({"error_type": "startup_timeout", "message": "runner did not start", "code": 504}, ProviderTimeout, True),
    ],
)
def test_a_job_that_ends_in_error_raises_from_wait(
    stub: FalStub, fal: FalQueueClient, options: dict[str, Any], cls: type[ProviderError], retryable: bool
) -> None:
    stub.fail_next("job_error", **options)
    handle = fal.submit(CLARITY, {"image_url": _uri(SRC)})
    err = _raises(lambda: fal.wait(handle), cls)
    assert err.request_id == handle.request_id and err.retryable is retryable
    assert stub.calls("status") == 3  # the error came with COMPLETED, not before
    # the result GET answers the failed request's error status and body (contract section 4)
    err = _raises(lambda: fal.result(handle), cls)
    assert err.request_id == handle.request_id and err.status_code == options.get("code", 500)


def test_job_content_policy_on_result_and_nsfw_output_are_content_blocked(stub: FalStub, fal: FalQueueClient) -> None:
    stub.fail_next("job_content_policy")
    err = _raises(lambda: fal.upscale(SRC), ContentBlocked)
    assert err.status_code == 422 and err.request_id and err.request_id in stub.requests[-1].path  # the result GET
    stub.fail_next("nsfw_output")
    err = _raises(lambda: fal.inpaint(SRC, png((16, 12), (255, 255, 255)), prompt="x"), ContentBlocked)
    assert isinstance(err, ContentBlocked) and err.block_reason == "has_nsfw_concepts" and err.request_id


def test_slow_answer_is_a_provider_timeout_with_request_id(stub: FalStub) -> None:
    with FalQueueClient(KEY, queue_url=stub.url, base_url=stub.url, timeout=httpx.Timeout(5.0, read=0.2)) as client:
        handle = client.submit(CLARITY, {"image_url": _uri(SRC)})
        stub.fail_next("slow", route="result", delay_s=0.6)
        err = _raises(lambda: client.result(handle), ProviderTimeout)
    assert err.request_id == handle.request_id and err.retryable


def test_wait_tolerates_transient_poll_failures_and_times_out(
    stub: FalStub, fal: FalQueueClient, fake_time: FakeTime
) -> None:
    handle = fal.submit(CLARITY, {"image_url": _uri(SRC)})
    stub.fail_next("rate_limit", route="status", retry_after="4")
    stub.fail_next("server_error", route="status")
    assert fal.wait(handle).done
    assert fake_time.sleeps == [4.0, 0.5, 0.5, 0.5]  # Retry-After raised the first wait
    slow_stub_job = fal.submit(CLARITY, {"image_url": _uri(SRC)})
    stub.job(slow_stub_job.request_id).progress_polls = 100
    err = _raises(lambda: fal.wait(slow_stub_job, timeout_s=2.0), ProviderTimeout)
    assert not err.retryable and err.request_id == slow_stub_job.request_id
    stub.fail_next("locked", route="status")
    other = fal.submit(CLARITY, {"image_url": _uri(SRC)})
    _raises(lambda: fal.wait(other), QuotaExhausted)  # not retryable: not swallowed by wait


# --------------------------------------------------------------------------------------------------------
# retries
# --------------------------------------------------------------------------------------------------------


def test_call_with_retries_honours_retry_after(stub: FalStub, fal: FalQueueClient) -> None:
    stub.fail_next("rate_limit", count=2, route="submit", retry_after="7")
    retry_time = FakeTime()
    out = call_with_retries(
        lambda: fal.upscale(SRC), base_delay=0.01, max_delay=0.01, sleep=retry_time.sleep, clock=retry_time.clock
    )
    assert size_of(out) == (32, 24)
    assert retry_time.sleeps == [7.0, 7.0] and stub.calls("submit") == 3


def test_content_policy_is_not_retried(stub: FalStub, fal: FalQueueClient) -> None:
    stub.fail_next("content_policy", route="result")
    retry_time = FakeTime()
    with pytest.raises(ContentBlocked) as info:
        call_with_retries(lambda: fal.upscale(SRC), sleep=retry_time.sleep, clock=retry_time.clock)
    assert info.value.attempts == 1 and retry_time.sleeps == [] and stub.calls("submit") == 1


def test_server_errors_are_retried_until_success(stub: FalStub, fal: FalQueueClient) -> None:
    stub.fail_next("unavailable", count=2, route="submit")
    retry_time = FakeTime()
    call_with_retries(lambda: fal.upscale(SRC), base_delay=1.0, sleep=retry_time.sleep, clock=retry_time.clock)
    assert len(retry_time.sleeps) == 2 and stub.calls("submit") == 3


# --------------------------------------------------------------------------------------------------------
# the key
# --------------------------------------------------------------------------------------------------------


def test_key_goes_only_to_fal_hosts_and_never_into_errors_logs_or_urls(
    stub: FalStub, fal: FalQueueClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[ProviderError] = []

    def expect(call: Callable[[], object]) -> None:
        with pytest.raises(ProviderError) as info:
            call()
        errors.append(info.value)

    fal.upscale(SRC)
    for fault, route in [("content_policy", "result"), ("rate_limit", "submit"), ("locked", "submit")]:
        stub.fail_next(fault, route=route)
        expect(lambda: fal.upscale(SRC))
    stub.fail_next("server_error", route="result", message=f"backend echoed {KEY} and {SECRET}")
    expect(lambda: fal.upscale(SRC))
    stub.fail_next("job_error", message=f"runner saw Key {KEY}")
    expect(lambda: fal.upscale(SRC))
    expect(lambda: call_with_retries(lambda: fal.submit("fal-ai/unknown", {})))
    assert len(errors) == 6 and "[REDACTED]" in str(errors[3]) and "[REDACTED]" in str(errors[4])
    for err in errors:
        assert err.request_id
        for secret in (KEY, SECRET):
            assert secret not in str(err) and secret not in repr(err)
    assert KEY not in repr(fal) and SECRET not in caplog.text and "fal request submitted" in caplog.text

    recorded = stub.requests
    api = [r for r in recorded if r.listener == "api"]
    cdn = [r for r in recorded if r.listener == "cdn"]
    assert api and all(r.auth == "valid" for r in api)  # the key reached fal, in the header
    assert cdn and all(r.auth == "missing" for r in cdn)  # ... and not the CDN (another origin)
    for request in recorded:
        assert SECRET not in request.path and SECRET not in json.dumps(request.headers)
        assert SECRET not in json.dumps(request.body)


def test_submit_answer_pointing_at_another_host_is_refused(stub: FalStub) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Key {KEY}"
        body = {"request_id": "r-9", "status_url": "https://evil.example/s", "response_url": "https://evil.example/r"}
        return httpx.Response(200, json=body)

    with FalQueueClient(KEY, transport=httpx.MockTransport(handler)) as client:
        err = _raises(lambda: client.submit(CLARITY, {"image_url": "x"}), ServerError)
    assert err.request_id == "r-9" and not err.retryable and "evil.example" in err.reason
    assert client.is_fal_host("https://queue.fal.run/x") and client.is_fal_host("https://fal.run/x")
    assert not client.is_fal_host("https://v3.fal.media/files/x") and not client.is_fal_host("http://queue.fal.run/x")


def test_from_env_reads_key_and_urls(stub: FalStub) -> None:
    env = {"FAL_KEY": KEY, "FAL_QUEUE_URL": stub.url, "FAL_BASE_URL": stub.url}
    with FalQueueClient.from_env(env, poll_interval_s=0.0) as client:
        assert client.queue_url == stub.url and size_of(client.upscale(SRC, model="fal-ai/esrgan")) == (32, 24)
    with pytest.raises(AuthError, match="FAL_KEY"):
        FalQueueClient.from_env({"FAL_QUEUE_URL": stub.url})
    with FalQueueClient.from_env({"FAL_KEY": KEY}) as default:
        assert default.queue_url == "https://queue.fal.run" and default.base_url == "https://fal.run"


# --------------------------------------------------------------------------------------------------------
# the official fal-client against the stub
# --------------------------------------------------------------------------------------------------------

_FAL_CLIENT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import fal_client
    client = fal_client.SyncClient(key=sys.argv[1])
    handle = client.submit("fal-ai/esrgan", {"image_url": sys.argv[2], "scale": 2})
    statuses = [type(s).__name__ for s in handle.iter_events(with_logs=True, interval=0.01)]
    result = handle.get(interval=0.01)
    try:
        client.submit("fal-ai/esrgan", {"image_url": sys.argv[2], "scale": 9})
        error = None
    except fal_client.FalClientHTTPError as exc:
        error = exc.status_code
    print(json.dumps({"id": handle.request_id, "statuses": statuses, "result": result, "error": error}))
    """
)


def test_official_fal_client_talks_to_the_stub(tmp_path: Path) -> None:
    """fal-client builds ``https://{FAL_QUEUE_RUN_HOST}/`` at import time (no http, no base-url argument).

    Without patching its internals, the way in is a TLS listener plus the ``FAL_QUEUE_RUN_HOST`` and
    ``SSL_CERT_FILE`` environment variables, in a subprocess (the host is read when the module is imported).
    """
    pytest.importorskip("fal_client", reason="fal-client not installed (pip install fal-client)")
    pytest.importorskip("cryptography", reason="cryptography is needed to make a test certificate")
    cert, key = _self_signed(tmp_path)
    with FalStub(api_key=KEY, tls=(cert, key)) as server:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "HTTP", "HTTPS", "ALL_PROXY"))},
            "FAL_QUEUE_RUN_HOST": f"127.0.0.1:{server.port}",
            "FAL_RUN_HOST": f"127.0.0.1:{server.port}",
            "SSL_CERT_FILE": str(cert),
            "NO_PROXY": "127.0.0.1",
        }
        done = subprocess.run(
            [sys.executable, "-c", _FAL_CLIENT_SCRIPT, KEY, _uri(SRC)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        out = json.loads(done.stdout.strip().splitlines()[-1])
        assert out["statuses"] == ["Queued", "InProgress", "Completed"]
        assert out["result"]["image"]["width"] == 32 and out["error"] == 422
        submit = next(r for r in server.requests if r.route == "submit")
        assert submit.auth == "valid" and submit.path == "/fal-ai/esrgan"
        assert any(r.path.endswith("/status?logs=true") or "logs=" in r.path for r in server.requests)


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path
